"""The Oomnitza API hook: the connector ingestion protocol and the REST API (docs/reference/oomnitza.md).

The ingestion protocol is the one Oomnitza's own open-source connector uses: mapped records in
batches to ``POST /api/v3/bulk`` under one ``portion`` id per run, then ``finalize``, then the run's
outcome from the connector run log. The server's response shapes are not public (our emulator defines
them), so everything read back is read tolerantly.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import requests

from kandji_oomnitza import __version__
from kandji_oomnitza.common.kandji_values import to_int
from kandji_oomnitza.common.polling import poll
from kandji_oomnitza.common.redaction import redact, shorten
from kandji_oomnitza.hooks.base import MAX_RECORDS, RestApiHook
from kandji_oomnitza.hooks.errors import ApiError, MalformedResponseError, TransportError, json_of
from kandji_oomnitza.hooks.oomnitza_protocol import Preference
from kandji_oomnitza.hooks.pagination import LimitSkipPaginator, PageGuard

CONNECTOR_NAME = "kandji-oomnitza-airflow"
CONNECTOR_VERSION = __version__
OUTCOMES = ("added", "updated", "unchanged", "skipped", "failed")
PROCESSING = ("", "processing", "in progress", "running", "pending", "queued")
# What the Oomnitza integration user's role must allow for each endpoint (INFERRED wording).
PERMISSIONS = (
    (r"/api/v3/bulk", "connector uploads (the connector API: bulk, finalize)"),
    (r"/api/v3/connector_run_logs", "reading connector run logs"),
    (r"/api/v3/\w+/meta", "reading the data model (field metadata)"),
    (r"/api/v3/(assets|users)", "reading and editing {0}"),
)


class RunOutcomeTimeout(ApiError):
    """Oomnitza kept the run "processing" for longer than we were willing to wait."""


@dataclass
class RunOutcome:
    """What Oomnitza reports for one run (a "portion"): counts and messages per outcome."""

    portion: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    messages: dict[str, list[str]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run_log(cls, portion: str, body: dict[str, Any]) -> RunOutcome:
        objects, logs = body.get("objects"), body.get("logs")
        objects = objects if isinstance(objects, dict) else {}
        logs = logs if isinstance(logs, dict) else {}
        counts = {k: to_int(objects.get(k), 0) for k in OUTCOMES}
        messages = {k: [redact(m) for m in logs.get(k) or []] for k in (*OUTCOMES, "Fatal Error")}
        return cls(
            portion=portion, status=str(body.get("status") or ""), counts=counts, messages=messages, raw=body
        )

    @property
    def processing(self) -> bool:
        return self.status.strip().lower() in PROCESSING

    @property
    def total(self) -> int:
        return sum(self.counts.get(k, 0) for k in OUTCOMES)


def permission_for(endpoint: str) -> str:
    path = endpoint.split(" ", 1)[-1]
    for pattern, name in PERMISSIONS:
        if match := re.search(pattern, "/" + path.lstrip("/")):
            return name.format(*match.groups())
    return "this endpoint"


class OomnitzaHook(RestApiHook):
    """Talks to one Oomnitza instance with the API token from an Airflow connection
    (default ``oomnitza_default``), sent as ``Authorization2: <token>`` and nothing else."""

    conn_name_attr = "oomnitza_conn_id"
    default_conn_name = "oomnitza_default"
    conn_type = "oomnitza"  # connections of type http work the same way
    hook_name = "Oomnitza"
    service_name = "Oomnitza"
    probe_endpoint = "api/v3/assets"
    probe_params: ClassVar[dict[str, Any]] = {"limit": 1, "fields": "equipment_id"}
    probe_success = "the API token is valid and its user may read assets."
    probe_shape = "a JSON list of assets"

    def __init__(self, oomnitza_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(oomnitza_conn_id, **kwargs)
        self.oomnitza_conn_id = oomnitza_conn_id
        # X-Total-Count of the last page of each listing: undocumented (INFERRED), so only an upper bound a
        # listing must not outgrow, never a promise that it holds that many.
        self.totals: dict[str, int] = {}

    def after_response(self, response: requests.Response) -> None:
        total = to_int(response.headers.get("X-Total-Count"), None)
        if total is not None:
            self.totals[urlsplit(response.url).path.strip("/")] = total

    def root_url(self) -> str:
        return self.url_from_host(
            "Use your Oomnitza address, e.g. https://acme.oomnitza.com.", api_path=r"/api(/v3)?"
        )

    @property
    def integration_user(self) -> str | None:
        return self.connection.login or None

    def apply_credentials(self, session: requests.Session, token: str) -> None:
        session.headers.pop("Authorization", None)
        session.headers["Authorization2"] = token
        session.headers["Content-Type"] = "application/json; charset=utf-8"

    def describe_error(self, status: int, endpoint: str, api_message: str) -> str:
        conn = f"connection '{self.oomnitza_conn_id}'"
        if status == 401:
            return (
                f"Oomnitza rejected the API token of {conn} (HTTP 401 on {endpoint}): it is wrong, revoked or "
                "expired. Create a token under "
                "Configuration > Security > API tokens (ideally for the integration user) and put it in the "
                "connection's password."
            )
        if status == 403:
            return (
                f"The Oomnitza user behind the token of {conn} may not call {endpoint} (HTTP 403: {api_message}). "
                f"Give the integration user's role the permission for {permission_for(endpoint)}, or use "
                "another token."
            )
        return super().describe_error(status, endpoint, api_message)

    # -- the connector ingestion protocol -----------------------------------------------------
    def bulk_payload(
        self,
        run: ConnectorRun,
        records: list[dict[str, Any]],
        error: str | None = None,
    ) -> dict[str, Any]:
        """The body of one ``POST /api/v3/bulk``: ``records`` under the run's portion; with ``error``,
        records we refused to load, for Oomnitza's error log."""
        return {
            "connector_version": CONNECTOR_VERSION,
            "connector_name": run.connector_name,
            "sync_field": list(run.sync_field),
            "records": records,
            "portion": run.portion,
            "data_type": run.data_type,
            **run.preference.flags,
            "error": error,
            "test_run": run.test_run,
        }

    def send_bulk(self, run: ConnectorRun, records: list[dict[str, Any]], error: str | None = None) -> Any:
        """One ``POST /api/v3/bulk``. A resend is safe: Oomnitza matches records on the sync key, so a
        batch that arrived twice updates (or leaves unchanged) what the first copy created."""
        return self.request(
            "POST", "api/v3/bulk", json_body=self.bulk_payload(run, records, error), decode=_json_or_none
        )

    def finalize(self, portion: str) -> None:
        """Tell Oomnitza the run's records are all sent, so it closes the run's log. Finalizing twice
        closes an already closed run: safe to retry."""
        self.request("POST", f"api/v3/bulk/{quote(portion)}/finalize", json_body={})

    def run_outcome(self, portion: str) -> RunOutcome:
        """What Oomnitza's connector run log says of the run now (it may still be processing)."""
        endpoint = f"api/v3/connector_run_logs/connectors/{quote(portion)}"
        body = self.get_json(endpoint)
        if not isinstance(body, dict):
            raise MalformedResponseError(
                f"Oomnitza API GET {endpoint} returned no run log: {shorten(body, 120)!r}",
                endpoint=f"GET {endpoint}",
            )
        return RunOutcome.from_run_log(portion, body)

    def wait_for_outcome(
        self, portion: str, *, timeout_seconds: float = 600.0, poll_seconds: float = 1.0
    ) -> RunOutcome:
        """The run's outcome once Oomnitza has processed it (polling its run log)."""
        outcome = poll(
            lambda: self.run_outcome(portion),
            done=lambda outcome: not outcome.processing,
            timeout_seconds=timeout_seconds,
            first_wait=poll_seconds,
        )
        if outcome.processing:
            raise RunOutcomeTimeout(
                f"Oomnitza still reports run {portion} as {shorten(outcome.status, 40)!r} after "
                f"{timeout_seconds:.0f}s; check the run in Oomnitza's connector logs.",
                endpoint=f"GET api/v3/connector_run_logs/connectors/{portion}",
            )
        return outcome

    def start_run(
        self,
        *,
        data_type: str,
        sync_field: Iterable[str],
        preference: Preference = Preference.CREATE_AND_UPDATE,
        connector_name: str = CONNECTOR_NAME,
        test_run: bool = False,
        batch_size: int = 100,
        portion: str | None = None,
        concurrency: int = 1,
    ) -> ConnectorRun:
        """A new ingestion run ("portion"); see ``ConnectorRun``.

        :param sync_field: the Oomnitza fields records are matched on, in priority order
        :param portion: the run's id (a UUID); a fresh one when not given
        :param concurrency: batches in flight at once
        """
        if data_type not in ("assets", "users"):
            raise ValueError(f"data_type must be 'assets' or 'users', not {data_type!r}")
        return ConnectorRun(
            hook=self,
            data_type=data_type,
            sync_field=tuple(sync_field),
            preference=preference,
            connector_name=connector_name,
            test_run=test_run,
            batch_size=max(1, min(batch_size, 100)),
            portion=portion or str(uuid.uuid4()),
            concurrency=max(1, concurrency),
        )

    # -- REST API -----------------------------------------------------------------------------
    def iter_records(
        self,
        kind: str,
        *,
        filter_expr: str | None = None,
        fields: Iterable[str] | None = None,
        page_size: int = 100,
        max_records: int = MAX_RECORDS,
    ) -> Iterator[dict[str, Any]]:
        """Every record of ``assets`` or ``users`` matching ``filter_expr`` (Oomnitza's filter language,
        e.g. ``serial_number eq 'C02X'``), with only ``fields`` when given, paged with limit/skip. A listing
        that repeats a page (an Oomnitza ignoring ``skip``), outgrows the total Oomnitza gave (its
        ``X-Total-Count``, when it gives one) or passes ``max_records`` stops with an error."""
        params: dict[str, Any] = {}
        if filter_expr:
            params["filter"] = filter_expr
        if fields:
            params["fields"] = ",".join(fields)
        listing = f"api/v3/{_kind(kind)}"
        guard = PageGuard(max_records=max_records, total=lambda: self.totals.get(listing))
        for page in self.pages(listing, LimitSkipPaginator(page_size), params, guard=guard):
            yield from page

    def read_filtered(
        self,
        kind: str,
        filter_expr: str | None,
        *,
        fields: Iterable[str] | None = None,
        page_size: int = 100,
        max_records: int = MAX_RECORDS,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The records ``filter_expr`` selects; when Oomnitza refuses the filter (HTTP 400: an Oomnitza
        without that operator or field), every record instead, with a warning saying so. Either way the
        caller checks its conditions on what it reads."""
        try:
            return list(
                self.iter_records(
                    kind, filter_expr=filter_expr, fields=fields, page_size=page_size, max_records=max_records
                )
            ), None
        except ApiError as exc:
            if exc.status != 400 or not filter_expr:
                raise
            records = list(
                self.iter_records(kind, fields=fields, page_size=page_size, max_records=max_records)
            )
            return records, (
                f"Oomnitza refused the filter {filter_expr!r} ({shorten(exc.api_message or exc, 200)}); every "
                f"{kind} record was read instead and checked here"
            )

    def update_record(self, kind: str, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Set ``changes`` (field external id → value) on one record, by its id (``equipment_id`` for
        assets). A PATCH sets fields to values: sending it twice has the same effect as once."""
        return self.request(
            "PATCH", f"api/v3/{_kind(kind)}/{quote(ident, safe='')}", json_body=changes, decode=_json_or_none
        )

    def field_metadata(self, kind: str) -> dict[str, dict[str, Any]]:
        """The instance's fields by external id: ``{"serial_number": {"type": ..., "unique": ...}}``.

        An answer that names no field at all is unreadable (``MalformedResponseError``), not an instance
        without fields."""
        endpoint = f"api/v3/{_kind(kind)}/meta"
        body = self.get_json(endpoint)
        entries = body if isinstance(body, list) else body.get("fields", []) if isinstance(body, dict) else []
        out = {}
        for entry in entries:
            if isinstance(entry, dict):
                name = entry.get("field") or entry.get("external_id") or entry.get("name")
                if name:
                    out[str(name)] = entry
        if not out:
            raise MalformedResponseError(
                f"Oomnitza API GET {endpoint} named no field: {shorten(body, 120)!r}",
                endpoint=f"GET {endpoint}",
            )
        return out


def _kind(kind: str) -> str:
    if kind not in ("assets", "users"):
        raise ValueError(f"kind must be 'assets' or 'users', not {kind!r}")
    return kind


def _json_or_none(response: requests.Response) -> Any:
    return json_of(response) if response.content else None


# -- one ingestion run --------------------------------------------------------------------------
SENT, UNCONFIRMED, REFUSED, UNSENT = "sent", "sent, unconfirmed", "refused by Oomnitza", "never sent"


BatchKind = Literal["records", "rejects"]  # records to load, or records sent with their reason to reject


@dataclass
class Batch:
    """One bulk request: which records (positions in the order they were added) and how it ended."""

    kind: BatchKind
    positions: list[int]
    error: str | None = None  # the reason sent with rejected records
    state: str = ""
    detail: str = ""


@dataclass
class ConnectorRun:
    """One ingestion run ("portion"): buffers records into batches, sends rejects with their reason,
    and keeps a ledger of what happened to every batch.

    Up to ``concurrency`` batches are in flight at once: batches of one run are independent upserts
    on the sync key, so their order does not matter, and the wait for each answer overlaps.

    A batch that fails (after the hook's retries) stops the run: nothing more is sent (``stopped``),
    the batches in flight settle, and ``finish`` still finalizes the portion and reads what Oomnitza
    made of it, so its run log closes and the caller can account for every record. ``failure`` is
    the first failure, for the caller to raise once it has reported.
    """

    hook: OomnitzaHook
    data_type: str
    sync_field: tuple[str, ...]
    preference: Preference
    connector_name: str
    test_run: bool
    batch_size: int
    portion: str
    concurrency: int = 1
    batches: list[Batch] = field(default_factory=list)
    failure: BaseException | None = None
    added: dict[str, int] = field(default_factory=lambda: {"records": 0, "rejects": 0})
    _buffer: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    _in_flight: deque[tuple[Future, Batch]] = field(default_factory=deque)
    _pool: ThreadPoolExecutor | None = None

    @property
    def stopped(self) -> bool:
        return self.failure is not None

    def add(self, record: dict[str, Any]) -> None:
        """Queue one record (position = how many were added before it); sent with its batch."""
        if self.stopped:
            return
        self._buffer.append((self.added["records"], record))
        self.added["records"] += 1
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def add_many(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            if self.stopped:
                return
            self.add(record)

    def flush(self) -> None:
        if self._buffer and not self.stopped:
            buffered, self._buffer = self._buffer, []
            self._send(Batch("records", [p for p, _ in buffered]), [r for _, r in buffered])

    def reject(self, rejected: Iterable[tuple[dict[str, Any], str]]) -> None:
        """Send records we refused to load, each with its reason, so Oomnitza's error log lists them too.
        Records sharing a reason share a request."""
        by_reason: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for record, reason in rejected:
            by_reason.setdefault(reason, []).append((self.added["rejects"], record))
            self.added["rejects"] += 1
        for reason, entries in by_reason.items():
            for start in range(0, len(entries), self.batch_size):
                if self.stopped:
                    return
                chunk = entries[start : start + self.batch_size]
                self._send(Batch("rejects", [p for p, _ in chunk], error=reason), [r for _, r in chunk])

    def _send(self, batch: Batch, records: list[dict[str, Any]]) -> None:
        self.batches.append(batch)
        if self.concurrency <= 1:
            try:
                self.hook.send_bulk(self, records, error=batch.error)
            except Exception as exc:
                self._failed(batch, exc)
            else:
                batch.state = SENT
            return
        if self._pool is None:
            self.hook.session  # noqa: B018 - build the shared session before the threads use it
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="oomnitza-bulk")
        while len(self._in_flight) >= self.concurrency:
            self._settle_oldest()
        self._in_flight.append(
            (self._pool.submit(self.hook.send_bulk, self, records, error=batch.error), batch)
        )

    def _settle_oldest(self) -> None:
        future, batch = self._in_flight.popleft()
        try:
            future.result()
        except Exception as exc:
            self._failed(batch, exc)
        else:
            batch.state = SENT

    def _failed(self, batch: Batch, exc: BaseException) -> None:
        """Record how a batch failed: refused (a 4xx that is not 429: nothing of it was stored), unsent
        (the connection never opened, or Oomnitza kept answering 429) or unconfirmed (it may have arrived)."""
        if isinstance(exc, ApiError) and exc.permanent:
            batch.state = REFUSED
        elif (isinstance(exc, TransportError) and exc.certainly_unsent) or getattr(
            exc, "status", None
        ) == 429:
            batch.state = UNSENT
        else:
            batch.state = UNCONFIRMED
        batch.detail = shorten(exc, 300)
        self.failure = self.failure or exc

    def drain(self) -> None:
        """Wait for every batch in flight."""
        while self._in_flight:
            self._settle_oldest()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def count(self, kind: str, state: str = SENT) -> int:
        return sum(len(b.positions) for b in self.batches if b.kind == kind and b.state == state)

    @property
    def sent(self) -> int:
        return self.count("records")

    @property
    def rejected_sent(self) -> int:
        return self.count("rejects")

    def finish(self, *, timeout_seconds: float = 600.0, poll_seconds: float = 1.0) -> RunResult:
        """Send what is buffered, finalize the portion and read its outcome. Never raises: a failure to
        send (``failure``), to finalize or to read the outcome is in the result, next to the ledger."""
        self.flush()
        self.drain()
        result = RunResult(run=self)
        if not self.batches:
            return result  # nothing was sent (a delta run without changes): Oomnitza has no such run
        try:
            self.hook.finalize(self.portion)
        except Exception as exc:
            result.finalize_error = shorten(exc, 300)
            self.failure = self.failure or exc
            return result
        try:
            result.outcome = self.hook.wait_for_outcome(
                self.portion, timeout_seconds=timeout_seconds, poll_seconds=poll_seconds
            )
        except Exception as exc:
            result.outcome_error = shorten(exc, 300)
        return result


@dataclass
class RunResult:
    """What became of a run: the ledger of its batches, and Oomnitza's outcome when it could be read."""

    run: ConnectorRun
    outcome: RunOutcome | None = None
    finalize_error: str | None = None
    outcome_error: str | None = None

    @property
    def failure(self) -> BaseException | None:
        return self.run.failure
