"""Every paging style we meet, as small interchangeable strategies behind one ``paginate()`` loop
(``RestApiHook.pages`` runs it): Kandji's bare-array offset pages, Prism's cursors, the users' ``next``
links, and Oomnitza's limit/skip lists. A new paging style is one class here.

Each strategy says what the first request sends, where a page's records are, and what the next
request sends (``None`` when the listing is complete). A strategy whose next request can be guessed
without the page (offset paging: the next offset, if the page is full) also says ``ahead``; ``paginate``
then has up to ``prefetch`` pages in flight, and uses a guessed page only when the strategy's own next
request is exactly the one guessed: the strategy still decides, page by page, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlparse


class Paginator(Protocol):
    def first_params(self) -> dict[str, Any]: ...

    def records(self, body: Any) -> list[dict[str, Any]]: ...

    def next_params(self, body: Any, records: list[dict[str, Any]]) -> dict[str, Any] | None: ...


@runtime_checkable
class GuessingPaginator(Paginator, Protocol):
    """A strategy that can tell the requests of the pages ahead before they are read (prefetch)."""

    def ahead(self, params: dict[str, Any], pages: int) -> dict[str, Any]: ...

    def full(self, body: Any) -> bool: ...


class UnexpectedPageError(ValueError):
    """A page did not have the shape the strategy expects."""


_START = object()  # no page read yet


class ListingShifted(Exception):
    """The collection changed under an offset walk: records before the current offset were added or
    removed, so the walk may have skipped one. The caller walks again."""


class OffsetArrayPaginator:
    """``limit`` + ``offset``, bare JSON arrays of records identified by ``key`` (Kandji's ``/devices``).

    Each page after the first starts one record early, on the last record already seen (the anchor).
    If that record is not where it was, records before the offset were added or removed mid-walk, and
    ``ListingShifted`` says so. The walk ends when a page holds nothing after the anchor (or is empty),
    so the overlap costs no extra call.
    """

    def __init__(self, limit: int, *, key: str) -> None:
        self.limit = limit
        self.key = key
        self.offset = 0
        self.anchor: Any = _START

    def first_params(self) -> dict[str, Any]:
        return {"limit": self.limit, "offset": 0}

    def records(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise UnexpectedPageError(f"expected a JSON array of records, got {type(body).__name__}")
        if self.anchor is _START:
            return body
        if not body or body[0].get(self.key) != self.anchor:
            raise ListingShifted(f"the record at offset {self.offset} is no longer {self.anchor!r}")
        return body[1:]

    def next_params(self, body: Any, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not records:
            return None
        self.offset += len(body) - 1
        self.anchor = body[-1].get(self.key)
        return {"limit": self.limit, "offset": self.offset}

    def ahead(self, params: dict[str, Any], pages: int) -> dict[str, Any]:
        """The request ``pages`` pages after ``params``, if every page in between is full."""
        return {"limit": self.limit, "offset": params["offset"] + pages * (self.limit - 1)}

    def full(self, body: Any) -> bool:
        """Whether more pages may follow at guessable offsets (after a short page, only the end's probe)."""
        return isinstance(body, list) and len(body) >= self.limit


class PrismCursorPaginator:
    """A fixed ``limit``; follow the opaque ``cursor`` until it is null or empty (Kandji's Prism).

    A short page does not end the listing (Kandji's cursors continue after short pages). Responses
    without a ``cursor`` key (the older API) fall back to ``offset`` paging until an empty page.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.offset = 0
        self.cursors = CursorGuard()

    def first_params(self) -> dict[str, Any]:
        return {"limit": self.limit}

    def records(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise UnexpectedPageError("expected a Prism page with a 'data' list")
        return body["data"]

    def next_params(self, body: Any, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        if "cursor" in body:
            cursor = body["cursor"]
            return {"limit": self.limit, "cursor": self.cursors.check(cursor)} if cursor else None
        if not records:
            return None
        self.offset += len(records)
        return {"limit": self.limit, "offset": self.offset}


class NextLinkCursorPaginator:
    """``/users``: ``{"next", "previous", "results"}``. The ``next`` URL may name another host (the
    web app's), so only its ``cursor`` is taken and requested from our own base URL."""

    def __init__(self) -> None:
        self.cursors = CursorGuard()

    def first_params(self) -> dict[str, Any]:
        return {}

    def records(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise UnexpectedPageError("expected a page with a 'results' list")
        return body["results"]

    def next_params(self, body: Any, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        next_link = body.get("next")
        if not next_link:
            return None
        cursor = parse_qs(urlparse(next_link).query).get("cursor")
        if not cursor:
            raise UnexpectedPageError("the 'next' link has no cursor to follow")
        return {"cursor": self.cursors.check(cursor[0])}


class LimitSkipPaginator:
    """Oomnitza's REST lists: ``limit`` + ``skip``, bare JSON arrays; a page shorter than the limit is
    the last (its ``X-Total-Count`` header is not documented, so it is not relied on)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.skip = 0

    def first_params(self) -> dict[str, Any]:
        return {"limit": self.limit, "skip": 0}

    def records(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise UnexpectedPageError(f"expected a JSON array of records, got {type(body).__name__}")
        return body

    def next_params(self, body: Any, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        if len(records) < self.limit:
            return None
        self.skip += len(records)
        return {"limit": self.limit, "skip": self.skip}

    def ahead(self, params: dict[str, Any], pages: int) -> dict[str, Any]:
        return {"limit": self.limit, "skip": params["skip"] + pages * self.limit}

    def full(self, body: Any) -> bool:
        return isinstance(body, list) and len(body) >= self.limit


class CursorGuard:
    """A server that hands back a cursor it gave before would have us loop forever: stop instead."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def check(self, cursor: str) -> str:
        if cursor in self.seen:
            raise UnexpectedPageError("the server returned a cursor it had already returned (a paging loop)")
        self.seen.add(cursor)
        return cursor


@dataclass
class PageGuard:
    """What stops a listing that would never end: a server that ignores the paging parameters (the same
    page again and again), fabricates records without end, or holds far more than it said. A listing
    stops with ``UnexpectedPageError`` naming why when a page repeats what was already listed (by
    ``record_key``, each record's id, where records have one; else the page as a whole), when it outgrows
    ``total()`` (what the API said it holds, when it says) by more than growth during a walk explains, or
    when it passes ``max_records``. Only ids and page hashes are kept, never the records."""

    max_records: int
    record_key: Callable[[Any], Hashable] | None = None
    total: Callable[[], int | None] = lambda: None
    listed: int = 0
    seen: set[Hashable] = field(default_factory=set)

    def check(self, records: list[Any]) -> None:
        if self.record_key is not None:
            fresh = {self.record_key(record) for record in records} - self.seen
            repeated = bool(records) and not fresh
            self.seen |= fresh
        else:
            page = hash(repr(records))
            repeated = bool(records) and page in self.seen
            self.seen.add(page)
        if repeated:
            raise UnexpectedPageError(
                f"the server sent again a page of {len(records)} record(s) it had already sent (it ignores "
                f"the paging parameters?); stopped after {self.listed} records"
            )
        self.listed += len(records)
        total = self.total()
        if total is not None and self.listed > total + max(100, total // 100):
            raise UnexpectedPageError(
                f"the listing holds {self.listed} records, more than the {total} the server said it holds; stopped"
            )
        if self.listed > self.max_records:
            raise UnexpectedPageError(
                f"the listing passed {self.max_records} records, more than any real one holds; stopped"
            )


def paginate(
    fetch,
    endpoint: str,
    paginator: Paginator,
    params: dict[str, Any] | None = None,
    prefetch: int = 1,
    guard: PageGuard | None = None,
) -> Iterator[list]:
    """Yield the records of each page. ``fetch(endpoint, params)`` returns a decoded page body; with
    ``prefetch`` > 1 and a strategy that can guess ahead, that many pages are in flight at once (a guess
    that turns out wrong, such as a page past the end, costs one request and is never used). ``guard``
    checks each page before it is yielded (``PageGuard``)."""
    for records in _pages(fetch, endpoint, paginator, dict(params or {}), prefetch):
        if guard is not None:
            guard.check(records)
        yield records


def _pages(fetch, endpoint: str, paginator: Paginator, base: dict[str, Any], prefetch: int) -> Iterator[list]:
    step: dict[str, Any] | None = paginator.first_params()
    if prefetch <= 1 or not isinstance(paginator, GuessingPaginator):
        while step is not None:
            body = fetch(endpoint, {**base, **step})
            records = paginator.records(body)
            yield records
            step = paginator.next_params(body, records)
        return
    pool = ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="pages")
    guessed: deque[tuple[dict[str, Any], Future]] = deque()
    guessing = False  # from the first full page on; after a short page, only the strategy's own requests
    try:
        while step is not None:
            if guessed and guessed[0][0] == step:
                current = guessed.popleft()[1]
            else:  # nothing guessed yet, or the guess was wrong: start again from the strategy's request
                for _, stale in guessed:
                    stale.cancel()
                guessed.clear()
                current = pool.submit(fetch, endpoint, {**base, **step})
            last = guessed[-1][0] if guessed else step
            while guessing and len(guessed) < prefetch - 1:
                last = paginator.ahead(last, 1)
                guessed.append((last, pool.submit(fetch, endpoint, {**base, **last})))
            body = current.result()
            records = paginator.records(body)
            guessing = paginator.full(body)
            yield records
            step = paginator.next_params(body, records)
    finally:
        for _, pending in guessed:
            pending.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
