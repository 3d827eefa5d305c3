"""hooks/pagination.py: each paging style on Kandji's and Oomnitza's envelopes, and the loops and shifts it refuses."""

from __future__ import annotations

import pytest
from helpers.kandji_examples import example

from kandji_oomnitza.hooks.pagination import (
    LimitSkipPaginator,
    ListingShifted,
    NextLinkCursorPaginator,
    OffsetArrayPaginator,
    PrismCursorPaginator,
    UnexpectedPageError,
    paginate,
)


def test_paginators_on_official_envelopes():
    users = example("list_users_success")
    assert NextLinkCursorPaginator().next_params(users, users["results"]) == {"cursor": "cD0yOTE0Mw=="}
    prism = example("applications_success")
    paginator = PrismCursorPaginator(300)
    # This envelope has "cursor": null: the listing is complete even though total (165) > 25 rows.
    assert paginator.next_params(prism, prism["data"]) is None


# -- paging -------------------------------------------------------------------------------------------
def walk(paginator, pages: list) -> tuple[list, list[dict]]:
    """Run ``paginate`` over canned pages; return the records and the parameters each request sent."""
    sent: list[dict] = []

    def fetch(endpoint, params):
        sent.append(params)
        return pages[len(sent) - 1]

    records = [r for page in paginate(fetch, "x", paginator) for r in page]
    return records, sent


def devices(*ids):
    return [{"device_id": i} for i in ids]


def test_offset_pages_overlap_by_one_and_stop_on_a_page_with_nothing_new():
    records, sent = walk(
        OffsetArrayPaginator(3, key="device_id"), [devices(1, 2, 3), devices(3, 4, 5), devices(5)]
    )
    assert [r["device_id"] for r in records] == [1, 2, 3, 4, 5]
    assert [p["offset"] for p in sent] == [0, 2, 4]


def test_offset_pages_notice_a_shift():
    with pytest.raises(ListingShifted):
        walk(OffsetArrayPaginator(3, key="device_id"), [devices(1, 2, 3), devices(4, 5, 6)])


def test_prism_cursors_continue_after_short_pages_and_refuse_a_loop():
    body = lambda rows, cursor: {"data": [{"r": r} for r in rows], "cursor": cursor}  # noqa: E731
    records, sent = walk(PrismCursorPaginator(300), [body([1, 2], "c1"), body([3], "c2"), body([4], None)])
    assert len(records) == 4 and [p.get("cursor") for p in sent] == [None, "c1", "c2"]
    with pytest.raises(UnexpectedPageError, match="already returned"):
        walk(PrismCursorPaginator(300), [body([1], "c1"), body([2], "c1"), body([3], None)])


def test_users_next_links_give_only_their_cursor_and_refuse_a_loop():
    page = lambda cursor: {  # noqa: E731
        "results": [{"id": 1}],
        "next": f"https://acme.kandji.io/api/v1/users?cursor={cursor}" if cursor else None,
    }
    records, sent = walk(NextLinkCursorPaginator(), [page("a"), page("b"), page(None)])
    assert len(records) == 3 and sent[1:] == [{"cursor": "a"}, {"cursor": "b"}]
    with pytest.raises(UnexpectedPageError, match="already returned"):
        walk(NextLinkCursorPaginator(), [page("a"), page("a"), page(None)])


def test_oomnitza_limit_skip_ends_on_a_short_page():
    records, sent = walk(LimitSkipPaginator(2), [[1, 2], [3, 4], [5]])
    assert records == [1, 2, 3, 4, 5] and [p["skip"] for p in sent] == [0, 2, 4]
    with pytest.raises(UnexpectedPageError):
        walk(LimitSkipPaginator(2), [{"not": "a list"}])


def walk_ahead(paginator, pages_by_offset: dict[int, list], prefetch: int) -> tuple[list, list[int]]:
    """``paginate`` with pages in flight, over canned pages by offset; the records, and every offset asked."""
    asked: list[int] = []

    def fetch(endpoint, params):
        asked.append(params["offset"])
        return pages_by_offset.get(params["offset"], [])

    return [
        r["device_id"] for page in paginate(fetch, "x", paginator, prefetch=prefetch) for r in page
    ], asked


def test_offset_pages_in_flight_are_used_only_where_the_walk_itself_asks_for_them():
    fleet = devices(*range(1, 12))  # 11 devices, pages of 3 overlapping by one: offsets 0, 2, 4, 6, 8, 10
    pages = {offset: fleet[offset : offset + 3] for offset in range(0, 12, 2)}
    one_by_one, asked_one_by_one = walk_ahead(OffsetArrayPaginator(3, key="device_id"), pages, prefetch=1)
    ahead, asked_ahead = walk_ahead(OffsetArrayPaginator(3, key="device_id"), pages, prefetch=4)
    assert ahead == one_by_one == list(range(1, 12))
    # The same requests, plus at most prefetch - 1 guesses past the end that are never used.
    assert set(asked_one_by_one) <= set(asked_ahead)
    assert len(asked_ahead) - len(asked_one_by_one) <= 3
    # A shift is noticed as when walking one page at a time.
    shifted = {**pages, 4: devices(99, 6, 7)}
    with pytest.raises(ListingShifted):
        walk_ahead(OffsetArrayPaginator(3, key="device_id"), shifted, prefetch=4)
