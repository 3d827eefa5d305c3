"""Every paging style we meet, as small interchangeable strategies behind one ``paginate()`` loop
(``RestApiHook.pages`` runs it): Kandji's bare-array offset pages, Prism's cursors, the users' ``next``
links, and Oomnitza's limit/skip lists. A new paging style is one class here.

Each strategy says what the first request sends, where a page's records are, and what the next
request sends (``None`` when the listing is complete).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse


class Paginator(Protocol):
    def first_params(self) -> dict[str, Any]: ...

    def records(self, body: Any) -> list[dict[str, Any]]: ...

    def next_params(self, body: Any, records: list[dict[str, Any]]) -> dict[str, Any] | None: ...


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


class CursorGuard:
    """A server that hands back a cursor it gave before would have us loop forever: stop instead."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def check(self, cursor: str) -> str:
        if cursor in self.seen:
            raise UnexpectedPageError("the server returned a cursor it had already returned (a paging loop)")
        self.seen.add(cursor)
        return cursor


def paginate(
    fetch, endpoint: str, paginator: Paginator, params: dict[str, Any] | None = None
) -> Iterator[list]:
    """Yield the records of each page. ``fetch(endpoint, params)`` returns a decoded page body."""
    base = dict(params or {})
    step: dict[str, Any] | None = paginator.first_params()
    while step is not None:
        body = fetch(endpoint, {**base, **step})
        records = paginator.records(body)
        yield records
        step = paginator.next_params(body, records)
