"""The Oomnitza API hook: the connector ingestion protocol and the REST API (shared/reference/oomnitza.md).

The ingestion protocol is the one Oomnitza's own open-source connector uses: mapped records in
batches to ``POST /api/v3/bulk`` under one ``portion`` id per run, then ``finalize``, then the run's
outcome from the connector run log. The server's response shapes are not public (our emulator defines
them), so everything read back is read tolerantly.
"""

from __future__ import annotations

import contextlib
import enum
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from kandji_oomnitza.hooks.base import ApiError, RestApiHook, RetryMode

CONNECTOR_NAME = "kandji-oomnitza-airflow"
CONNECTOR_VERSION = "1.0.0"
OUTCOMES = ("added", "updated", "unchanged", "skipped", "failed")


class Preference(enum.StrEnum):
    """Oomnitza's integration preference and the flags it sends."""

    CREATE_AND_UPDATE = "create_and_update"
    CREATE_ONLY = "create_only"
    UPDATE_ONLY = "update_only"

    @property
    def flags(self) -> dict[str, bool]:
        return {"insert_only": self is Preference.CREATE_ONLY, "update_only": self is Preference.UPDATE_ONLY}


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
        objects = body.get("objects") if isinstance(body.get("objects"), dict) else {}
        logs = body.get("logs") if isinstance(body.get("logs"), dict) else {}
        counts = {k: _int(objects.get(k)) for k in OUTCOMES}
        messages = {k: [str(m) for m in logs.get(k) or []] for k in (*OUTCOMES, "Fatal Error")}
        return cls(
            portion=portion, status=str(body.get("status") or ""), counts=counts, messages=messages, raw=body
        )

    @property
    def processing(self) -> bool:
        return self.status.strip().lower() in (
            "",
            "processing",
            "in progress",
            "running",
            "pending",
            "queued",
        )


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


class OomnitzaHook(RestApiHook):
    """Talks to one Oomnitza instance with the API token from an Airflow connection
    (default ``oomnitza_default``), sent as ``Authorization2: <token>`` and nothing else."""

    conn_name_attr = "oomnitza_conn_id"
    default_conn_name = "oomnitza_default"
    conn_type = "http"
    hook_name = "Oomnitza API"
    service_name = "Oomnitza"

    def __init__(self, oomnitza_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(oomnitza_conn_id, **kwargs)
        self.oomnitza_conn_id = oomnitza_conn_id

    @property
    def base_url_checked(self) -> str:
        return self.url_from_host(
            "Use your Oomnitza address, e.g. https://acme.oomnitza.com.", api_path=r"/api(/v3)?"
        )

    @property
    def integration_user(self) -> str | None:
        return self.connection.login or None

    def url_from_endpoint(self, endpoint: str | None) -> str:
        return f"{self.base_url_checked}/{(endpoint or '').lstrip('/')}"

    def apply_credentials(self, session: requests.Session, token: str) -> None:
        session.headers.pop("Authorization", None)
        session.headers["Authorization2"] = token
        session.headers["Content-Type"] = "application/json; charset=utf-8"

    def describe_error(self, status: int, endpoint: str, api_message: str) -> str:
        conn = f"connection '{self.oomnitza_conn_id}'"
        if status == 401:
            return (
                f"Oomnitza rejected the API token of {conn} (HTTP 401 on {endpoint}). Create a token under "
                "Configuration > Security > API tokens (ideally for the integration user) and put it in the "
                "connection's password."
            )
        if status == 403:
            return (
                f"The Oomnitza user behind the token of {conn} may not call {endpoint} (HTTP 403: {api_message}). "
                "Give the integration user's role the permission, or use another token."
            )
        return super().describe_error(status, endpoint, api_message)

    # -- the connector ingestion protocol -----------------------------------------------------
    def bulk_payload(
        self,
        run: ConnectorRun,
        records: list[dict[str, Any]],
        error: str | None = None,
    ) -> dict[str, Any]:
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
        # Finalizing twice closes an already closed run: safe to retry.
        self.request("POST", f"api/v3/bulk/{quote(portion)}/finalize", json_body={})

    def run_outcome(self, portion: str) -> RunOutcome:
        body = self.get_json(f"api/v3/connector_run_logs/connectors/{quote(portion)}")
        return RunOutcome.from_run_log(portion, body if isinstance(body, dict) else {})

    def wait_for_outcome(
        self, portion: str, *, timeout_seconds: float = 600.0, poll_seconds: float = 1.0
    ) -> RunOutcome:
        deadline = time.monotonic() + timeout_seconds
        wait = poll_seconds
        while True:
            outcome = self.run_outcome(portion)
            if not outcome.processing:
                return outcome
            if time.monotonic() > deadline:
                raise RunOutcomeTimeout(
                    f"Oomnitza still reports run {portion} as {outcome.status!r} after {timeout_seconds:.0f}s; "
                    "its records were all sent. Check the run in Oomnitza's connector logs.",
                    endpoint=f"GET api/v3/connector_run_logs/connectors/{portion}",
                )
            time.sleep(wait)
            wait = min(wait * 1.5, 15.0)

    def start_run(
        self,
        *,
        data_type: str,
        sync_field: Iterable[str],
        preference: Preference | str = Preference.CREATE_AND_UPDATE,
        connector_name: str = CONNECTOR_NAME,
        test_run: bool = False,
        batch_size: int = 100,
        portion: str | None = None,
        concurrency: int = 1,
    ) -> ConnectorRun:
        if data_type not in ("assets", "users"):
            raise ValueError(f"data_type must be 'assets' or 'users', not {data_type!r}")
        return ConnectorRun(
            hook=self,
            data_type=data_type,
            sync_field=tuple(sync_field),
            preference=Preference(preference),
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
    ) -> Iterator[dict[str, Any]]:
        """Every record of ``assets`` or ``users`` matching ``filter_expr``, paged with limit/skip to the end."""
        skip = 0
        while True:
            params: dict[str, Any] = {"limit": page_size, "skip": skip}
            if filter_expr:
                params["filter"] = filter_expr
            if fields:
                params["fields"] = ",".join(fields)
            page = self.get_json(f"api/v3/{_kind(kind)}", params)
            if not isinstance(page, list):
                raise ApiError(f"Oomnitza API GET api/v3/{kind} returned {type(page).__name__}, not a list")
            yield from page
            if len(page) < page_size:
                return
            skip += len(page)

    def get_record(self, kind: str, ident: str) -> dict[str, Any]:
        return self.get_json(f"api/v3/{_kind(kind)}/{quote(ident, safe='')}")

    def create_record(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        # Not idempotent: a resend after a timeout could create a second record.
        return self.request(
            "POST",
            f"api/v3/{_kind(kind)}",
            json_body=record,
            retry=RetryMode.UNSENT_ONLY,
            decode=_json_or_none,
        )

    def update_record(self, kind: str, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
        # PATCH sets fields to values: sending it twice has the same effect as once.
        return self.request(
            "PATCH", f"api/v3/{_kind(kind)}/{quote(ident, safe='')}", json_body=changes, decode=_json_or_none
        )

    def asset_software(self, equipment_id: str) -> list[dict[str, Any]]:
        return self.get_json(f"api/v3/assets/{quote(equipment_id, safe='')}/software")

    def field_metadata(self, kind: str) -> dict[str, dict[str, Any]]:
        """The instance's fields by external id: ``{"serial_number": {"type": ..., "unique": ...}}``."""
        body = self.get_json(f"api/v3/{_kind(kind)}/meta")
        entries = body if isinstance(body, list) else body.get("fields", []) if isinstance(body, dict) else []
        out = {}
        for entry in entries:
            if isinstance(entry, dict):
                name = entry.get("field") or entry.get("external_id") or entry.get("name")
                if name:
                    out[str(name)] = entry
        return out


def _kind(kind: str) -> str:
    if kind not in ("assets", "users"):
        raise ValueError(f"kind must be 'assets' or 'users', not {kind!r}")
    return kind


def _json_or_none(response: requests.Response) -> Any:
    return response.json() if response.content else None


@dataclass
class ConnectorRun:
    """One ingestion run ("portion"): buffers records into batches, sends rejects with their reason.

    Up to ``concurrency`` batches are in flight at once: batches of one run are independent upserts
    on the sync key, so their order does not matter, and the wait for each answer overlaps.
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
    sent: int = 0
    rejected_sent: int = 0
    batches: int = 0
    _buffer: list[dict[str, Any]] = field(default_factory=list)
    _in_flight: deque = field(default_factory=deque)
    _pool: ThreadPoolExecutor | None = None

    def add(self, record: dict[str, Any]) -> None:
        self._buffer.append(record)
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def add_many(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.add(record)

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._send(batch, None)

    def reject(self, rejected: Iterable[tuple[dict[str, Any], str]]) -> None:
        """Send records we refused to load, each with its reason, so Oomnitza's error log lists them too.
        Records sharing a reason share a request."""
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for record, reason in rejected:
            by_reason.setdefault(reason, []).append(record)
        for reason, records in by_reason.items():
            for start in range(0, len(records), self.batch_size):
                self._send(records[start : start + self.batch_size], reason)

    def _send(self, batch: list[dict[str, Any]], error: str | None) -> None:
        if self.concurrency <= 1:
            self.hook.send_bulk(self, batch, error=error)
            self._count(batch, error)
            return
        if self._pool is None:
            self.hook.session  # noqa: B018 - build the shared session before the threads use it
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="oomnitza-bulk")
        while len(self._in_flight) >= self.concurrency:
            self._settle_oldest()
        self._in_flight.append(
            (self._pool.submit(self.hook.send_bulk, self, batch, error=error), batch, error)
        )

    def _settle_oldest(self) -> None:
        future, batch, error = self._in_flight.popleft()
        future.result()  # a batch that failed after its retries fails the run here
        self._count(batch, error)

    def _count(self, batch: list[dict[str, Any]], error: str | None) -> None:
        if error is None:
            self.sent += len(batch)
        else:
            self.rejected_sent += len(batch)
        self.batches += 1

    def __enter__(self) -> ConnectorRun:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.drain()
            return
        # Already failing: let the batches in flight settle; the first failure is the one reported.
        with contextlib.suppress(Exception):
            self.drain()

    def drain(self) -> None:
        """Wait for every batch in flight; the first failure is raised after all have settled."""
        failure: BaseException | None = None
        while self._in_flight:
            try:
                self._settle_oldest()
            except BaseException as exc:
                failure = failure or exc
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if failure is not None:
            raise failure

    def finish(self, *, timeout_seconds: float = 600.0, poll_seconds: float = 1.0) -> RunOutcome:
        self.flush()
        self.drain()
        self.hook.finalize(self.portion)
        return self.hook.wait_for_outcome(
            self.portion, timeout_seconds=timeout_seconds, poll_seconds=poll_seconds
        )
