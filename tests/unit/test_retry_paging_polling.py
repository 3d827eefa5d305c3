"""The three seams every call goes through, without a server: which failures are retried, how each
paging style walks, and how a poll waits."""

from __future__ import annotations

import pytest
import requests
import urllib3.exceptions
from airflow.sdk.exceptions import AirflowFailException

from kandji_oomnitza.common.polling import poll
from kandji_oomnitza.hooks.base import (
    ApiError,
    MalformedResponseError,
    PermanentApiError,
    RetryMode,
    TransportError,
    api_error,
    is_permanent_status,
    is_retryable,
)
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
from kandji_oomnitza.hooks.pagination import (
    LimitSkipPaginator,
    ListingShifted,
    NextLinkCursorPaginator,
    OffsetArrayPaginator,
    PrismCursorPaginator,
    UnexpectedPageError,
    paginate,
)


# -- retry classification ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (403, True), (404, True), (405, True), (422, True),
     (408, False), (425, False), (429, False), (500, False), (502, False), (503, False), (None, False)],
)  # fmt: skip
def test_which_statuses_are_permanent(status, permanent):
    assert is_permanent_status(status) is permanent
    error = api_error("x", status=status)
    assert isinstance(error, AirflowFailException) is permanent  # Airflow then never retries the task


CASES = {
    # error: (idempotent, unsent_only, never)
    "403": (PermanentApiError("x", status=403), (False, False, False)),
    "429": (ApiError("x", status=429), (True, True, False)),
    "503": (ApiError("x", status=503), (True, False, False)),
    "malformed body": (MalformedResponseError("x"), (True, False, False)),
    "connection refused": (TransportError("x", certainly_unsent=True), (True, True, False)),
    "reset or timeout": (TransportError("x", certainly_unsent=False), (True, False, False)),
    "not ours": (ValueError("x"), (False, False, False)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_hook_retries_by_one_rule(case):
    error, expected = CASES[case]
    modes = (RetryMode.IDEMPOTENT, RetryMode.UNSENT_ONLY, RetryMode.NEVER)
    assert tuple(is_retryable(error, mode) for mode in modes) == expected


def _wrapped(reason: BaseException) -> requests.ConnectionError:
    """What requests raises: its ConnectionError around urllib3's MaxRetryError around the cause."""
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", reason=reason))


@pytest.mark.parametrize(
    ("exc", "unsent"),
    [
        (_wrapped(urllib3.exceptions.NewConnectionError(None, "refused")), True),
        (_wrapped(urllib3.exceptions.NameResolutionError("h", None, OSError("no such host"))), True),
        (requests.ConnectTimeout("connect timed out"), True),
        (_wrapped(urllib3.exceptions.ProtocolError("Connection aborted.")), False),
        (requests.ReadTimeout("read timed out"), False),
        (requests.exceptions.ChunkedEncodingError("cut"), False),
    ],
    ids=["refused", "dns", "connect-timeout", "reset", "read-timeout", "cut-body"],
)
def test_never_sent_or_maybe_sent_is_decided_from_urllib3_types(airflow_connections, exc, unsent):
    airflow_connections("oomnitza_default", host="https://acme.oomnitza.com", password="t0ken")
    error = OomnitzaHook()._transport_error(exc, "POST api/v3/bulk")
    assert isinstance(error, TransportError) and error.certainly_unsent is unsent
    assert "POST api/v3/bulk" in str(error)


def test_a_tls_failure_is_permanent(airflow_connections):
    airflow_connections("oomnitza_default", host="https://acme.oomnitza.com", password="t0ken")
    error = OomnitzaHook()._transport_error(
        requests.exceptions.SSLError("certificate verify failed"), "GET x"
    )
    assert isinstance(error, PermanentApiError) and "TLS handshake" in str(error)


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
    records, sent = walk(OffsetArrayPaginator(3), [devices(1, 2, 3), devices(3, 4, 5), devices(5)])
    assert [r["device_id"] for r in records] == [1, 2, 3, 4, 5]
    assert [p["offset"] for p in sent] == [0, 2, 4]


def test_offset_pages_notice_a_shift():
    with pytest.raises(ListingShifted):
        walk(OffsetArrayPaginator(3), [devices(1, 2, 3), devices(4, 5, 6)])


def test_prism_cursors_continue_after_short_pages_and_refuse_a_loop():
    body = lambda rows, cursor: {"data": [{"r": r} for r in rows], "cursor": cursor}  # noqa: E731
    records, sent = walk(PrismCursorPaginator(), [body([1, 2], "c1"), body([3], "c2"), body([4], None)])
    assert len(records) == 4 and [p.get("cursor") for p in sent] == [None, "c1", "c2"]
    with pytest.raises(UnexpectedPageError, match="already returned"):
        walk(PrismCursorPaginator(), [body([1], "c1"), body([2], "c1"), body([3], None)])


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


# -- polling ------------------------------------------------------------------------------------------
def test_poll_returns_once_done_and_the_last_answer_on_timeout(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    answers = iter(["pending", "pending", "done"])
    assert (
        poll(lambda: next(answers), done=lambda a: a == "done", timeout_seconds=60, first_wait=0.5) == "done"
    )
    assert waits == [0.5, 0.75]  # growing by 1.5 each time
    never = poll(lambda: "pending", done=lambda a: a == "done", timeout_seconds=0.05, first_wait=0.01)
    assert never == "pending"
