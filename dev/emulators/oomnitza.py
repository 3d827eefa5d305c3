"""An Oomnitza emulator: the connector ingestion protocol and the REST API (docs/reference/oomnitza.md).

Run it:  python -m dev.emulators.oomnitza --port 8282 --token sandbox-oomnitza-token [--state-file F]

Followed from the reference: ``Authorization2: <token>`` auth; ``POST /api/v3/bulk`` with the connector's
payload (``sync_field``, ``records``, ``portion``, ``data_type``, ``insert_only``/``update_only``,
``error``, ``test_run``, ``connector_name``/``connector_version``) and ``POST /api/v3/bulk/{portion}/finalize``;
run logs at ``/api/v3/connector_run_logs/connectors/{portion}`` with ``objects`` counts and ``logs``
message lists; sync keys in priority order (update the match, else create); create only / update only;
empty or duplicate sync-key values fail the record; dropdown values must be in the field's list;
``APPLICATIONS`` ``[{name, version, path}]`` on assets; ``SAAS`` on users; REST lists as bare arrays
paged by ``limit``/``skip`` with ``filter``/``fields``/``sortby``; ``PATCH /{id}`` updates; equipment ids
are 32-hex GUIDs; ``/api/v3/assets/{id}/software``; ``/api/v3/{assets,users}/meta``.

Invented (INFERRED: Oomnitza's server responses are not public): every response body shape (the bulk
reply, the run-log document, the meta document, error bodies ``{"errors": [...]}``), the run status
words ("processing", "Finished", "Completed with errors"), the per-record message wording, that a run
stays "processing" for a configurable number of polls after finalize, type checks for boolean/date/
number fields, and how ``SAAS`` is stored.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from dev.emulators.common import BODY_JSON, NOT_JSON, Emulator, RateLimitConfig, serve

SPECIAL_FIELDS = {"APPLICATIONS", "SAAS"}


APP_KEYS = {"name", "version", "path"}


def _normal_apps(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's APPLICATIONS as Oomnitza keeps them: name, version and path of each (the list as sent
    when that is what it holds already: a fleet's app lists are most of a bulk body)."""
    apps = record["APPLICATIONS"]
    if all(type(a) is dict and a.keys() == APP_KEYS for a in apps):
        return apps
    return [{"name": a.get("name"), "version": a.get("version"), "path": a.get("path")} for a in apps]


def _fingerprint(record: dict[str, Any], apps: list[dict[str, Any]] | None) -> tuple[str, Any]:
    """What tells a record sent again from another record with the same sync key: its fields, and its app
    list (compared only when a sync key comes twice: serialising every app list again costs the most)."""
    fields = {k: v for k, v in record.items() if k != "APPLICATIONS" or apps is None}
    return json.dumps(fields, sort_keys=True, default=str), apps


def _field(external_id: str, type_: str = "string", *, unique: bool = False, values=None) -> dict[str, Any]:
    return {
        "field": external_id,
        "label": external_id.replace("_", " ").title(),
        "type": type_,
        "unique": unique,
        "optional": True,
        "editable": True,
        "searchhelp": values or [],
    }


def default_data_model() -> dict[str, list[dict[str, Any]]]:
    """System fields from the reference plus the ``kandji_*`` custom fields of the default mappings."""
    assets = [
        _field("serial_number", unique=True),
        _field("barcode", unique=True),
        _field("device_name"),
        _field("model"),
        _field("assigned_to"),
        _field(
            "status",
            "dropdown",
            values=["Deployed", "In Use", "In Stock", "Retired", "Lost", "Stolen", "Not in Kandji"],
        ),
        _field("operating_system"),
        _field("manufacturer"),
        _field("asset_type"),
        _field("notes"),
        _field("mac_address"),
        _field("ip_address"),
        _field("kandji_device_id", unique=True),
        _field("kandji_asset_tag"),
        _field("kandji_blueprint_id"),
        _field("kandji_last_check_in", "date"),
        _field("kandji_os_version"),
        _field("kandji_platform"),
        _field("kandji_connector_sync_time", "date"),
        _field("kandji_last_action"),  # a workflow's write-back (include/workflows/lost_device_lock.yaml)
    ]
    users = [
        _field("username", unique=True),
        _field("email", unique=True),
        _field("full_name"),
        _field("first_name"),
        _field("last_name"),
        _field("position"),
        _field("phone_number"),
        _field("external_id", unique=True),
        _field("kandji_user_id", unique=True),
        _field("kandji_user_is_archived", "boolean"),
        _field("kandji_status"),
        _field("kandji_connector_sync_time", "date"),
    ]
    return {"assets": assets, "users": users}


@dataclass
class OomnitzaSettings:
    polls_until_finished: int = 1  # run-log reads that still say "processing" after finalize
    max_records_per_bulk: int = 100
    omit_failure_messages: bool = False  # run logs that count failures without describing them
    refuse_filter_ops: list[str] = field(default_factory=list)  # e.g. ["lte"]: answered 400, as for a typo


@dataclass
class Store:
    data_model: dict[str, list[dict[str, Any]]] = field(default_factory=default_data_model)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {"assets": {}, "users": {}})
    software: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # equipment_id -> apps
    saas: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # user id -> SaaS entries
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _ordered_value(value: Any) -> tuple[int, Any] | None:
    """A value as filters compare it: a time (epoch seconds), a number, or text; None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (0, (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    except ValueError:
        pass
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def _compare(value: Any, op: str, bound: str) -> bool:
    left, right = _ordered_value(value), _ordered_value(bound)
    if left is None or right is None or left[0] != right[0]:
        return False  # like SQL: an empty field matches no comparison
    return {"lte": left <= right, "gte": left >= right, "lt": left < right, "gt": left > right}[op]


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _is_date(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    return (
        isinstance(value, str)
        and re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?", value)
        is not None
    )


class OomnitzaEmulator(Emulator):
    name = "oomnitza"
    auth_header = "Authorization2"

    def __init__(
        self, *, tokens: set[str], state_file: Path | None = None, rate_limit: RateLimitConfig | None = None
    ) -> None:
        self.store = Store()
        self.settings = OomnitzaSettings()
        self.state_file = state_file
        # portion -> sync-key value -> the fingerprint of the record it came with
        self._seen: dict[str, dict[str, tuple[str, Any]]] = {}
        self._indexes: dict[tuple[str, str], dict[Any, set[str]]] = {}
        if state_file and state_file.exists():
            self.store = Store(**json.loads(state_file.read_text()))
        super().__init__(tokens=tokens, rate_limit=rate_limit)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/v3/bulk", self.bulk)
        router.add_post("/api/v3/bulk/{portion}/finalize", self.finalize)
        router.add_get("/api/v3/bulk/{portion}", self.portion_info)
        router.add_get("/api/v3/connector_run_logs/connectors/{portion}", self.run_log)
        router.add_get("/api/v3/connector_run_logs/{connector}", self.run_logs)
        for kind in ("assets", "users"):
            router.add_get(f"/api/v3/{kind}/meta", self.meta)
            router.add_get(f"/api/v3/{kind}", self.list_records)
            router.add_post(f"/api/v3/{kind}", self.create_record)
            router.add_get(f"/api/v3/{kind}/{{ident}}", self.get_record)
            router.add_patch(f"/api/v3/{kind}/{{ident}}", self.update_record)
        router.add_get("/api/v3/assets/{ident}/software", self.asset_software)
        router.add_get("/api/v3/users/{ident}/software/saas", self.user_saas)
        router.add_post("/_emulator/reset", self.admin_reset)
        router.add_put("/_emulator/settings", self.admin_settings)
        router.add_get("/_emulator/state", self.admin_state)
        router.add_post("/_emulator/records/{kind}", self.admin_seed_records)
        router.add_put("/_emulator/data_model", self.admin_data_model)
        # The sandbox's stand-in for a person editing an asset in Oomnitza (the records page's buttons).
        router.add_post("/_emulator/assets/{ident}", self.admin_edit_asset)
        router.add_get("/", self.overview)
        # What the tasks' "Oomnitza records" and "Asset in Oomnitza" links open, as Oomnitza's web app would.
        router.add_get("/assets", self.records_page)
        router.add_get("/users", self.records_page)

    def authenticate(self, request: web.Request) -> web.Response | None:
        if request.path in ("/", "/assets", "/users"):
            return None  # the sandbox's human-readable pages
        if request.headers.get("Authorization2", "") not in self.tokens:
            return web.json_response(
                {"errors": ["Authentication credentials were not provided or are invalid."]}, status=401
            )
        return None

    def unauthenticated_paths(self) -> tuple[str, ...]:
        return ("/_emulator/",)

    def permission(self, request: web.Request) -> str | None:
        """Role-style permissions of the token's user (INFERRED names): ``connector`` (bulk, finalize),
        ``connector_logs`` (run logs), ``<kind>.meta``, ``<kind>.read``, ``<kind>.write`` for assets and
        users. Deny ``assets`` for everything about assets."""
        path = request.path
        if path.startswith("/api/v3/bulk"):
            return "connector"
        if path.startswith("/api/v3/connector_run_logs"):
            return "connector_logs"
        if match := re.fullmatch(r"/api/v3/(assets|users)(/.*)?", path):
            kind, rest = match[1], match[2] or ""
            if rest == "/meta":
                return f"{kind}.meta"
            return f"{kind}.{'read' if request.method == 'GET' else 'write'}"
        return None

    def forbidden_response(self, permission: str) -> web.Response:
        return web.json_response(
            {"errors": ["You do not have permission to perform this action."]}, status=403
        )

    def _save(self) -> None:
        if self.state_file:
            tmp = self.state_file.with_suffix(".tmp")
            # vars(), not asdict(): asdict deep-copies every record first, which made each bulk call
            # of a large store slow enough to time out a client with a short timeout.
            tmp.write_text(json.dumps(vars(self.store)))
            tmp.replace(self.state_file)

    # -- data model ---------------------------------------------------------------------------
    def _fields(self, kind: str) -> dict[str, dict[str, Any]]:
        return {f["field"]: f for f in self.store.data_model[kind]}

    def _validate(self, kind: str, record: dict[str, Any]) -> str | None:
        fields = self._fields(kind)
        for name, value in record.items():
            if name in SPECIAL_FIELDS:
                if not isinstance(value, list):
                    return f"{name} must be a list"
                continue
            meta = fields.get(name)
            if meta is None:
                return f"Unknown field '{name}' for {kind}"
            if value is None or value == "":
                continue
            kind_of = meta["type"]
            if kind_of == "boolean" and not isinstance(value, bool):
                return f"Field '{name}' expects a boolean, got {value!r}"
            if kind_of == "date" and not _is_date(value):
                return f"Field '{name}' expects a date (ISO 8601 or epoch seconds), got {value!r}"
            if kind_of == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                return f"Field '{name}' expects a number, got {value!r}"
            if kind_of == "dropdown" and value not in meta["searchhelp"]:
                return f"Value {value!r} is not in the dropdown list of field '{name}'"
        return None

    def _id_field(self, kind: str) -> str:
        return "equipment_id" if kind == "assets" else "user_id"

    # -- ingestion ----------------------------------------------------------------------------
    def _run(self, portion: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        if portion not in self.store.runs:
            payload = payload or {}
            self.store.runs[portion] = {
                "portion_id": uuid.uuid4().hex,
                "portion_correlation_id": portion,
                "connector": payload.get("connector_name") or payload.get("connector_id"),
                "data_type": payload.get("data_type"),
                "start_time": time.time(),
                "end_time": None,
                "status": "processing",
                "test_run": bool(payload.get("test_run")),
                "finalized": False,
                "polls_after_finalize": 0,
                "canceled": False,
                "objects": {
                    k: 0
                    for k in ("updated", "added", "failed", "skipped", "unchanged", "canceled", "processing")
                },
                "logs": {
                    k: []
                    for k in (
                        "Fatal Error",
                        "updated",
                        "added",
                        "failed",
                        "skipped",
                        "unchanged",
                        "canceled",
                        "processing",
                    )
                },
                "test_run_payload": [],
            }
        return self.store.runs[portion]

    async def bulk(self, request: web.Request) -> web.Response:
        payload = request.get(BODY_JSON, NOT_JSON)  # parsed once, by the request log
        if payload is NOT_JSON:
            return web.json_response({"errors": ["Request body is not valid JSON"]}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"errors": ["Request body must be a JSON object"]}, status=400)
        problems = []
        if payload.get("data_type") not in ("assets", "users"):
            problems.append("data_type must be 'assets' or 'users'")
        if not isinstance(payload.get("records"), list):
            problems.append("records must be a list")
        if not payload.get("portion"):
            problems.append("portion is required")
        if payload.get("insert_only") and payload.get("update_only"):
            problems.append('"insert_only" and "update_only" can not be both of True value')
        if (
            isinstance(payload.get("records"), list)
            and len(payload["records"]) > self.settings.max_records_per_bulk
        ):
            problems.append(f"at most {self.settings.max_records_per_bulk} records per request")
        if problems:
            return web.json_response({"errors": problems}, status=400)
        run = self._run(payload["portion"], payload)
        if run["finalized"]:
            return web.json_response(
                {"errors": [f"portion {payload['portion']} is already finalized"]}, status=400
            )
        kind = payload["data_type"]
        sync_fields = payload.get("sync_field") or []
        if isinstance(sync_fields, str):
            sync_fields = [s.strip() for s in sync_fields.split(",") if s.strip()]
        outcomes = []
        for record in payload["records"]:
            outcome, message = self._ingest(kind, record, sync_fields, payload, run)
            run["objects"][outcome] += 1
            run["logs"][outcome].append(message)
            outcomes.append(outcome)
        if payload.get("error_type") == "Fatal Error":
            run["logs"]["Fatal Error"].append(str(payload.get("error")))
        self._save()
        return web.json_response(
            {"portion": payload["portion"], "received": len(payload["records"]), "outcomes": outcomes}
        )

    def _key_of(self, record: dict[str, Any], sync_fields: list[str]) -> str:
        return ", ".join(f"{f}={record.get(f)!r}" for f in sync_fields)

    def _ingest(self, kind, record, sync_fields, payload, run) -> tuple[str, str]:
        if not isinstance(record, dict):
            return "failed", f"Record is not an object: {record!r}"
        key = self._key_of(record, sync_fields) if sync_fields else "(no sync key)"
        if payload.get("error"):
            return "failed", f"[{key}] {payload['error']}"
        if not sync_fields:
            return "failed", "[no sync key] No sync field was given for this integration"
        problem = self._validate(kind, {k: v for k, v in record.items()})
        if problem:
            return "failed", f"[{key}] {problem}"
        if all(record.get(f) in (None, "") for f in sync_fields):
            return "failed", f"[{key}] Sync key value is empty"
        seen = self._seen.setdefault(run["portion_correlation_id"], {})
        apps = _normal_apps(record) if kind == "assets" and "APPLICATIONS" in record else None
        fingerprint = _fingerprint(record, apps)
        if key in seen:
            # INFERRED: the very same record sent again (a client's retry) changes nothing; another
            # record with the same sync-key value is the documented duplicate error.
            if seen[key] == fingerprint:
                return "unchanged", f"[{key}] Already received in this run"
            return "failed", f"[{key}] Duplicate sync key value in this run"
        seen[key] = fingerprint
        match, problem = self._match(kind, record, sync_fields)
        if problem:
            return "failed", f"[{key}] {problem}"
        if run["test_run"]:
            run["test_run_payload"].append(record)
            return ("updated" if match else "added"), f"[{key}] test run: not saved"
        fields = {k: v for k, v in record.items() if k not in SPECIAL_FIELDS}
        if match is None:
            if payload.get("update_only"):
                return "skipped", f"[{key}] No existing record matches the sync key (update only)"
            ident = uuid.uuid4().hex
            stored = {k: v for k, v in fields.items() if v not in (None, "")}
            stored[self._id_field(kind)] = ident
            if kind == "users" and not stored.get("username"):
                stored["username"] = stored.get("email") or ident
            self._put(kind, ident, stored)
            self._attach(kind, ident, record, apps)
            return "added", f"[{key}] Created {self._id_field(kind)} {ident}"
        ident = match[self._id_field(kind)]
        if payload.get("insert_only"):
            return "skipped", f"[{key}] A record with this sync key exists (create only)"
        changed = {
            k: v for k, v in fields.items() if match.get(k) != v and not (v is None and k not in match)
        }
        attachments_changed = self._attach(kind, ident, record, apps)
        if not changed and not attachments_changed:
            return "unchanged", f"[{key}] No changes"
        updated = {**match, **changed}
        for k, v in changed.items():
            if v is None or v == "":
                updated.pop(k, None)
        self._put(kind, ident, updated)
        return "updated", f"[{key}] Updated {', '.join(sorted(changed)) or 'attachments'}"

    def _match(self, kind, record, sync_fields) -> tuple[dict[str, Any] | None, str | None]:
        for name in sync_fields:
            value = record.get(name)
            if value in (None, ""):
                continue
            found = [self.store.records[kind][i] for i in self._index(kind, name).get(_hashable(value), ())]
            if len(found) > 1:
                return None, f"Sync key {name}={value!r} matches {len(found)} records"
            if found:
                return found[0], None
        return None, None

    def _index(self, kind: str, name: str) -> dict[Any, set[str]]:
        """value -> ids for one field, built on first use and kept current by ``_put``."""
        if (kind, name) not in self._indexes:
            index: dict[Any, set[str]] = {}
            for ident, record in self.store.records[kind].items():
                if record.get(name) not in (None, ""):
                    index.setdefault(_hashable(record[name]), set()).add(ident)
            self._indexes[(kind, name)] = index
        return self._indexes[(kind, name)]

    def _put(self, kind: str, ident: str, record: dict[str, Any]) -> None:
        before = self.store.records[kind].get(ident, {})
        for (index_kind, name), index in self._indexes.items():
            if index_kind != kind:
                continue
            if before.get(name) not in (None, ""):
                index.get(_hashable(before[name]), set()).discard(ident)
            if record.get(name) not in (None, ""):
                index.setdefault(_hashable(record[name]), set()).add(ident)
        self.store.records[kind][ident] = record

    def _attach(
        self, kind: str, ident: str, record: dict[str, Any], apps: list[dict[str, Any]] | None = None
    ) -> bool:
        """Store APPLICATIONS/SAAS (``apps``: the record's APPLICATIONS, normalised once); return whether
        they changed."""
        changed = False
        if kind == "assets" and "APPLICATIONS" in record:
            apps = apps if apps is not None else _normal_apps(record)
            changed = self.store.software.get(ident) != apps
            self.store.software[ident] = apps
        if kind == "users" and "SAAS" in record:
            changed = self.store.saas.get(ident) != record["SAAS"]
            self.store.saas[ident] = record["SAAS"]
        return changed

    async def finalize(self, request: web.Request) -> web.Response:
        portion = request.match_info["portion"]
        if portion not in self.store.runs:
            return web.json_response({"errors": [f"Unknown portion {portion}"]}, status=404)
        run = self.store.runs[portion]
        run["finalized"] = True
        self._save()
        return web.json_response({"portion": portion, "finalized": True})

    async def portion_info(self, request: web.Request) -> web.Response:
        run = self.store.runs.get(request.match_info["portion"])
        if run is None:
            return web.json_response({"errors": ["Unknown portion"]}, status=404)
        return web.json_response(
            {"portion": run["portion_correlation_id"], "canceled": run["canceled"], "status": run["status"]}
        )

    def _public_run(self, run: dict[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in run.items() if k not in ("polls_after_finalize", "finalized")}
        if self.settings.omit_failure_messages:
            public["logs"] = {**public["logs"], "failed": []}
        return public

    async def run_log(self, request: web.Request) -> web.Response:
        run = self.store.runs.get(request.match_info["portion"])
        if run is None:
            return web.json_response({"errors": ["Unknown portion"]}, status=404)
        if run["finalized"] and run["status"] == "processing":
            run["polls_after_finalize"] += 1
            if run["polls_after_finalize"] > self.settings.polls_until_finished:
                run["status"] = "Completed with errors" if run["objects"]["failed"] else "Finished"
                run["end_time"] = time.time()
                self._save()
        return web.json_response(self._public_run(run))

    async def run_logs(self, request: web.Request) -> web.Response:
        connector = request.match_info["connector"]
        runs = [r for r in self.store.runs.values() if r["connector"] == connector]
        return web.json_response(
            [
                {
                    "portion_id": r["portion_id"],
                    "portion_correlation_id": r["portion_correlation_id"],
                    "start_time": r["start_time"],
                    "end_time": r["end_time"],
                    "connector": r["connector"],
                    "status": r["status"],
                    "test_run": r["test_run"],
                    "added_records_count": r["objects"]["added"],
                    "updated_records_count": r["objects"]["updated"],
                    "skipped_records_count": r["objects"]["skipped"],
                    "error_logs_count": r["objects"]["failed"],
                }
                for r in runs
            ]
        )

    # -- REST ---------------------------------------------------------------------------------
    @staticmethod
    def _kind(request: web.Request) -> str:
        return request.path.split("/")[3]

    async def meta(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.data_model[self._kind(request)])

    def _filter(self, expression: str) -> Any:
        """A small subset of Oomnitza's filter language: eq/ne/lte/gte/lt/gt/IN/IS NULL/LIKE joined by AND.
        The comparisons read both sides as times when they can (a date field holds ISO text or epoch
        seconds), else as numbers, else as text."""
        clauses = [c.strip() for c in re.split(r"\s+AND\s+", expression, flags=re.IGNORECASE) if c.strip()]
        tests = []
        for clause in clauses:
            if m := re.fullmatch(r"(\w+)\s+IS\s+(NOT\s+)?NULL", clause, re.IGNORECASE):
                if m[2] and "is_not_null" in self.settings.refuse_filter_ops:
                    raise ValueError(f"Unsupported operator IS NOT NULL in filter: {clause}")
                tests.append(lambda r, f=m[1], negate=bool(m[2]): (r.get(f) in (None, "")) != negate)
            elif m := re.fullmatch(r"(\w+)\s+(eq|ne)\s+['\"](.*)['\"]", clause, re.IGNORECASE):
                field_name, op, value = m[1], m[2].lower(), m[3]
                tests.append(lambda r, f=field_name, v=value, o=op: (str(r.get(f)) == v) == (o == "eq"))
            elif m := re.fullmatch(r"(\w+)\s+(lte|gte|lt|gt)\s+['\"]?([^'\"]*)['\"]?", clause, re.IGNORECASE):
                op = m[2].lower()
                if op in self.settings.refuse_filter_ops:
                    raise ValueError(f"Unsupported operator {m[2]!r} in filter: {clause}")
                tests.append(lambda r, f=m[1], o=op, v=m[3]: _compare(r.get(f), o, v))
            elif m := re.fullmatch(r"(\w+)\s+IN\s+\[(.*)\]", clause, re.IGNORECASE):
                values = [v.strip().strip("'\"") for v in m[2].split(",")]
                tests.append(lambda r, f=m[1], vs=values: str(r.get(f)) in vs)
            elif m := re.fullmatch(r"(\w+)\s+LIKE\s+['\"](.*)['\"]", clause, re.IGNORECASE):
                pattern = re.compile("^" + re.escape(m[2]).replace("%", ".*") + "$", re.IGNORECASE)
                tests.append(lambda r, f=m[1], p=pattern: bool(p.match(str(r.get(f, "")))))
            else:
                raise ValueError(f"Unsupported filter: {clause}")
        return lambda r: all(t(r) for t in tests)

    async def list_records(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        q = request.query
        records = list(self.store.records[kind].values())
        if q.get("filter"):
            try:
                keep = self._filter(q["filter"])
            except ValueError as exc:
                return web.json_response({"errors": [str(exc)]}, status=400)
            records = [r for r in records if keep(r)]
        if q.get("sortby"):
            name, _, direction = q["sortby"].partition(" ")
            records.sort(key=lambda r: str(r.get(name, "")), reverse=direction.lower() == "desc")
        total = len(records)
        skip, limit = int(q.get("skip", "0")), min(int(q.get("limit", "100")), 1000)
        page = records[skip : skip + limit]
        if q.get("fields"):
            wanted = [f.strip() for f in q["fields"].split(",")]
            page = [{k: r.get(k) for k in wanted} for r in page]
        return web.json_response(page, headers={"X-Total-Count": str(total)})

    def _find(self, kind: str, ident: str) -> dict[str, Any] | None:
        record = self.store.records[kind].get(ident)
        if record is None and kind == "users":
            record = next((r for r in self.store.records[kind].values() if r.get("username") == ident), None)
        return record

    async def get_record(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        record = self._find(kind, request.match_info["ident"])
        if record is None:
            return web.json_response({"errors": ["Not found"]}, status=404)
        return web.json_response(record)

    async def create_record(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        body = await request.json()
        problem = self._validate(kind, body)
        if problem:
            return web.json_response({"errors": [problem]}, status=400)
        for name in (f["field"] for f in self.store.data_model[kind] if f["unique"]):
            if body.get(name) not in (None, "") and any(
                r.get(name) == body[name] for r in self.store.records[kind].values()
            ):
                return web.json_response(
                    {"errors": [f"Field '{name}' must be unique: {body[name]!r} exists"]}, status=400
                )
        ident = uuid.uuid4().hex
        record = {**{k: v for k, v in body.items() if k not in SPECIAL_FIELDS}, self._id_field(kind): ident}
        self._put(kind, ident, record)
        self._save()
        return web.json_response(record, status=201)

    async def update_record(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        record = self._find(kind, request.match_info["ident"])
        if record is None:
            return web.json_response({"errors": ["Not found"]}, status=404)
        body = await request.json()
        problem = self._validate(kind, body)
        if problem:
            return web.json_response({"errors": [problem]}, status=400)
        ident = record[self._id_field(kind)]
        self._put(kind, ident, {**record, **{k: v for k, v in body.items() if k not in SPECIAL_FIELDS}})
        self._save()
        return web.json_response(self.store.records[kind][ident])

    async def asset_software(self, request: web.Request) -> web.Response:
        ident = request.match_info["ident"]
        if ident not in self.store.records["assets"]:
            return web.json_response({"errors": ["Not found"]}, status=404)
        return web.json_response(
            [
                {"software_name": a["name"], "version": a["version"], "path": a["path"]}
                for a in self.store.software.get(ident, [])
            ]
        )

    async def user_saas(self, request: web.Request) -> web.Response:
        record = self._find("users", request.match_info["ident"])
        if record is None:
            return web.json_response({"errors": ["Not found"]}, status=404)
        return web.json_response(self.store.saas.get(record["user_id"], []))

    async def records_page(self, request: web.Request) -> web.Response:
        """Assets or users as a page (``?filter=serial_number eq 'X'`` narrows it, as the links do)."""
        kind = request.path.strip("/")
        records = list(self.store.records[kind].values())
        if request.query.get("filter"):
            try:
                records = [r for r in records if self._filter(request.query["filter"])(r)]
            except ValueError as exc:
                return web.Response(status=400, text=html.escape(str(exc)))
        columns = sorted({k for r in records[:200] for k in r}) or ["(no records)"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        back = html.escape(str(request.rel_url), quote=True)
        statuses = next(
            (f["searchhelp"] for f in self.store.data_model["assets"] if f["field"] == "status"), []
        )

        def edit(record: dict[str, Any]) -> str:
            """A person's edit in Oomnitza: set the asset's status (what workflows watch)."""
            if kind != "assets":
                return ""
            ident = html.escape(str(record.get("equipment_id", "")), quote=True)
            current = record.get("status")
            # The record's own status, selected; none yet: an empty choice (the first status would look
            # like the asset's). autocomplete=off: a browser must not restore an earlier choice.
            options = ("" if current in statuses else '<option value="" selected>(none)</option>') + "".join(
                f"<option{' selected' if v == current else ''}>{html.escape(v)}</option>" for v in statuses
            )
            return (
                f'<td><form method="post" action="/_emulator/assets/{ident}" class="status" autocomplete="off">'
                f'<input type="hidden" name="_back" value="{back}">'
                f'<select name="status" aria-label="status">{options}</select> <button type="submit">Set status</button>'
                "</form></td>"
            )

        if kind == "assets":
            head = "<th>change (as a person in Oomnitza)</th>" + head
        rows = "".join(
            "<tr>"
            + edit(r)
            + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns)
            + "</tr>"
            for r in records[:200]
        )
        shown = html.escape(request.query.get("filter", "all"))
        return web.Response(
            content_type="text/html",
            text=f"""<!doctype html><html><head><meta charset="utf-8"><title>Oomnitza emulator: {kind}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{background:#eef}}</style></head><body>
<h1>{kind.title()} ({len(records)}; filter: {shown})</h1><p><a href="/">What landed</a></p>
<table><tr>{head}</tr>{rows}</table></body></html>""",
        )

    async def overview(self, request: web.Request) -> web.Response:
        """What landed, for a person: assets with their software, users, and the runs with their counts.

        ``/?format=json`` gives the same as JSON. No token needed: this page is the sandbox's window.
        """
        assets = list(self.store.records["assets"].values())
        users = list(self.store.records["users"].values())
        runs = [self._public_run(r) for r in self.store.runs.values()][::-1][:20]
        with_software = sum(1 for v in self.store.software.values() if v)
        if request.query.get("format") == "json":
            return web.json_response(
                {
                    "assets": len(assets),
                    "users": len(users),
                    "assets_with_software": with_software,
                    "runs": [{**r, "logs": None} for r in runs],
                }
            )

        def cell(value: Any) -> str:
            return html.escape("" if value is None else str(value))

        def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
            head = "".join(f"<th>{cell(c)}</th>" for c in columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
            )
            return f"<table><tr>{head}</tr>{body}</table>"

        run_rows = [
            {"portion": r["portion_correlation_id"], "connector": r["connector"], "type": r["data_type"],
             "status": r["status"], **r["objects"], "test run": r["test_run"]}
            for r in runs
        ]  # fmt: skip
        asset_rows = [
            {**a, "software": len(self.store.software.get(a["equipment_id"], []))} for a in assets[:200]
        ]
        user_rows = [
            {
                **u,
                "SaaS": ", ".join(
                    f"{x.get('name')} ({x.get('status')})" for x in self.store.saas.get(u["user_id"], [])
                ),
            }
            for u in users[:200]
        ]
        run_columns = [
            "portion",
            "connector",
            "type",
            "status",
            "added",
            "updated",
            "unchanged",
            "skipped",
            "failed",
            "test run",
        ]
        asset_columns = ["serial_number", "device_name", "model", "assigned_to", "kandji_platform", "kandji_os_version",
                         "kandji_last_check_in", "software", "equipment_id"]  # fmt: skip
        user_columns = ["email", "full_name", "kandji_user_id", "kandji_user_is_archived", "SaaS"]
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Oomnitza emulator</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:13px;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}th{{background:#eef}}</style></head><body>
<h1>Oomnitza emulator: what landed</h1>
<p>{len(assets)} assets ({with_software} with software), {len(users)} users, {len(self.store.runs)} runs.
JSON: <a href="?format=json">/?format=json</a>; an asset's software: <code>/api/v3/assets/&lt;equipment_id&gt;/software</code>.</p>
<h2>Runs (newest first)</h2>{table(run_rows, run_columns)}
<h2>Assets (first 200)</h2>{table(asset_rows, asset_columns)}
<h2>Users (first 200)</h2>{table(user_rows, user_columns)}
</body></html>"""
        return web.Response(text=page, content_type="text/html")

    # -- admin --------------------------------------------------------------------------------
    async def admin_reset(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.store = Store()
        self._seen.clear()
        self._indexes.clear()
        self.settings = OomnitzaSettings(**body.get("settings", {}))
        self.reset_traffic(body, rate_limit_default={})
        self._save()
        return web.json_response({"reset": True})

    async def admin_settings(self, request: web.Request) -> web.Response:
        self.settings = OomnitzaSettings(**{**asdict(self.settings), **await request.json()})
        return web.json_response(asdict(self.settings))

    async def admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.store))

    async def admin_seed_records(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        created = []
        for body in await request.json():
            ident = uuid.uuid4().hex
            self._put(kind, ident, {**body, self._id_field(kind): ident})
            created.append(ident)
        self._save()
        return web.json_response(created)

    async def admin_edit_asset(self, request: web.Request) -> web.Response:
        """Set fields on one asset (JSON body, or the records page's form), as a person would in Oomnitza."""
        record = self._find("assets", request.match_info["ident"])
        if record is None:
            return web.json_response({"errors": ["Not found"]}, status=404)
        form = request.content_type != "application/json"
        body = dict(await request.post()) if form else await request.json()
        back = body.pop("_back", None)
        problem = self._validate("assets", body)
        if problem:
            return web.json_response({"errors": [problem]}, status=400)
        self._put("assets", record["equipment_id"], {**record, **body})
        self._save()
        if form:
            raise web.HTTPSeeOther(
                back if isinstance(back, str) and back.startswith("/assets") else "/assets"
            )
        return web.json_response(self.store.records["assets"][record["equipment_id"]])

    async def admin_data_model(self, request: web.Request) -> web.Response:
        self.store.data_model = await request.json()
        self._indexes.clear()
        return web.json_response(self.store.data_model)


def main() -> None:
    parser = argparse.ArgumentParser(description="Oomnitza API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8282, help="0 picks a free port (printed on start)")
    parser.add_argument("--token", action="append", default=None, help="accepted API token (repeatable)")
    parser.add_argument(
        "--state-file", type=Path, default=None, help="keep data across restarts in this JSON file"
    )
    parser.add_argument("--per-second", type=int, default=0, help="rate limit; 0 disables")
    args = parser.parse_args()
    emulator = OomnitzaEmulator(
        tokens=set(args.token or ["sandbox-oomnitza-token"]),
        state_file=args.state_file,
        rate_limit=RateLimitConfig(per_second=args.per_second or None),
    )
    serve(emulator, args.host, args.port)


if __name__ == "__main__":
    main()
