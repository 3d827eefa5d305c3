"""The steps of an integration run: extract, transform, load, report. Plain functions over hooks and
frames, so the DAG's tasks stay thin and every step is testable on its own.

Accounting rule: every Kandji record ends up either loaded into Oomnitza or in the run's error log with
its reason (rejected before loading, or failed/skipped by Oomnitza).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from airflow.sdk.exceptions import AirflowFailException

from kandji_oomnitza.hooks.kandji import KandjiHook
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
from kandji_oomnitza.integration_config import Integration, Preference, UserSelection
from kandji_oomnitza.mapping import ID, LABEL, apply_mappings, plain, source_frame, to_oomnitza
from kandji_oomnitza.software import Applications, SoftwareResult, collect

log = logging.getLogger(__name__)
SAAS_COLUMN = "_saas"
SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


class FieldCheckError(AirflowFailException):
    """A mapped field does not exist in the Oomnitza instance (a retry cannot fix that)."""


class TooManyFailures(AirflowFailException):
    """More records than the integration allows were not loaded (a retry would load them again, and
    fail them again)."""


def source_paths(integration: Integration) -> list[str]:
    paths = [p for target in integration.mappings for p in integration.resolved(target)["paths"]]
    always = ["platform"] if integration.type == "assets" else ["archived"]
    return list(dict.fromkeys([*always, *paths]))


# -- check --------------------------------------------------------------------------------------
def check_fields(integration: Integration, oomnitza: OomnitzaHook) -> dict[str, Any]:
    """Stop before loading anything when a mapped field is not a field of the Oomnitza instance."""
    fields = oomnitza.field_metadata(integration.type)
    unknown = [name for name in integration.mappings if name not in fields]
    if unknown:
        raise FieldCheckError(
            f"{integration.name}: Oomnitza has no {integration.type} field(s) {unknown} (mapped in the "
            f"integration file). Create them under {integration.type.title()} > Customization with these "
            "external ids, or fix the names under mappings."
        )
    not_unique = [k for k in integration.sync_key if fields[k].get("unique") is False]
    if not_unique:
        raise FieldCheckError(
            f"{integration.name}: sync key field(s) {not_unique} are not Unique in Oomnitza; only unique "
            "fields can be sync keys. Pick another sync_key or mark the field Unique."
        )
    return {"checked_fields": sorted(integration.mappings), "calls": oomnitza.calls}


# -- extract ------------------------------------------------------------------------------------
def extract_devices(
    integration: Integration,
    kandji: KandjiHook,
    on_page: Callable[[list[dict[str, Any]]], None] | None = None,
) -> pd.DataFrame:
    """Kandji devices, page by page, into a frame of the paths the mappings read; ``on_page`` sees each
    page as it arrives."""
    records: list[dict[str, Any]] = []
    for page in kandji.iter_device_pages():
        if on_page is not None:
            on_page(page)
        if integration.needs_details:
            for device in page:
                device["details"] = kandji.get_device_details(device["device_id"])
        records.extend(page)
        log.info("Kandji devices so far: %d", len(records))
    frame = source_frame(records, source_paths(integration), id_path="device_id", label_path="device_name")
    frame.attrs["calls"] = kandji.calls
    return frame


def extract_assets(
    integration: Integration, kandji: KandjiHook
) -> tuple[pd.DataFrame, SoftwareResult | None]:
    """The devices and, with software on, every device's apps (the Prism route running in the
    background while the devices are listed)."""
    if not integration.software_settings.enabled:
        return extract_devices(integration, kandji), None
    return collect(
        kandji, integration.software_settings, lambda on_page: extract_devices(integration, kandji, on_page)
    )


def extract_users(integration: Integration, kandji: KandjiHook) -> pd.DataFrame:
    settings = integration.user_settings
    filters = {"archived": "false"} if settings.skip_archived else {}
    records: list[dict[str, Any]] = []
    for integration_id in settings.integration_ids or [None]:
        for page in kandji.iter_user_pages(integration_id=integration_id, **filters):
            records.extend(page)
    unique = list({str(r.get("id")): r for r in records}.values())
    return source_frame(unique, source_paths(integration), id_path="id", label_path="name")


# -- transform ----------------------------------------------------------------------------------
def transform(integration: Integration, source: pd.DataFrame, sync_time: str) -> pd.DataFrame:
    """Mapped records and rejected ones in one frame; rejected rows carry ``_reason``. The software
    stays in its own frame until the load: it would outweigh the records a hundred times over."""
    mapped = apply_mappings(source, integration, sync_time)
    records = mapped.records
    if (
        integration.type == "users"
        and integration.user_settings.selection is UserSelection.USER_PLUS_SAAS_USER
    ):
        archived = source.set_index(ID)["archived"].map(lambda v: str(v).lower() == "true")
        records[SAAS_COLUMN] = records[ID].map(
            lambda i: json.dumps([{"name": "Kandji", "status": "archived" if archived.get(i) else "active"}])
        )
    rejected = mapped.rejected.rename(columns={"reason": "_reason", "sync_key": "_sync_key"})
    out = pd.concat([records, rejected], ignore_index=True)
    for column in out.columns:
        if out[column].dtype == object or out[column].isna().any():
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def report_index(integration: Integration, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of the transformed frame the report needs: which records were rejected and why,
    and the sync keys that name a record in Oomnitza's messages. A few columns of small values."""
    wanted = [ID, LABEL, *integration.sync_key, "_reason", "_sync_key"]
    return frame[[c for c in dict.fromkeys(wanted) if c in frame.columns]]


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "_reason" not in frame.columns:
        return frame, frame.iloc[0:0]
    rejected = frame["_reason"].notna()
    return frame[~rejected], frame[rejected]


def payloads(
    integration: Integration, records: pd.DataFrame, software: pd.DataFrame | None = None
) -> Iterator[dict[str, Any]]:
    """Oomnitza records one by one: app and SaaS lists are built only as each record is sent."""
    applications = Applications(software) if software is not None else None
    saas = records[SAAS_COLUMN] if SAAS_COLUMN in records.columns else [None] * len(records)
    for record, record_id, saas_list in zip(
        to_oomnitza(records, integration), records[ID], saas, strict=True
    ):
        if applications is not None and record_id in applications:
            record["APPLICATIONS"] = applications.get(record_id)
        if isinstance(saas_list, str):
            record["SAAS"] = json.loads(saas_list)
        yield record


# -- load ---------------------------------------------------------------------------------------
def load(
    integration: Integration,
    oomnitza: OomnitzaHook,
    frame: pd.DataFrame,
    *,
    software: pd.DataFrame | None = None,
    portion: str,
    dry_run: bool,
) -> dict[str, Any]:
    records, rejected = split(frame)
    # A generator: each record is built as its batch goes out.
    bodies = payloads(integration, records, software)
    rejects = [
        (
            {"kandji_id": plain(row[ID]), "name": plain(row[LABEL]), "sync_key": plain(row["_sync_key"])},
            str(row["_reason"]),
        )
        for row in rejected[[ID, LABEL, "_sync_key", "_reason"]].to_dict("records")
    ]
    if dry_run:
        sample = [record for _, record in zip(range(5), bodies, strict=False)]
        log.info("Dry run: %d records would be sent, %d rejected; nothing sent", len(records), len(rejects))
        return {
            "dry_run": True,
            "portion": None,
            "would_send": len(records),
            "sample": sample,
            "outcome": None,
            "calls": 0,
        }
    with oomnitza.start_run(
        data_type=integration.type,
        sync_field=integration.sync_key,
        preference=integration.preference.value,
        batch_size=integration.load.batch_size,
        portion=portion,
        concurrency=integration.load.concurrency,
    ) as run:
        run.add_many(bodies)
        run.reject(rejects)
        outcome = run.finish(timeout_seconds=integration.load.outcome_timeout_seconds)
    log.info("Oomnitza run %s: %s %s", portion, outcome.status, outcome.counts)
    return {
        "dry_run": False,
        "portion": portion,
        "sent": run.sent,
        "rejected_sent": run.rejected_sent,
        "batches": run.batches,
        # Only the messages the error log needs: a message per unchanged record would bloat XCom.
        "outcome": {
            "status": outcome.status,
            "counts": outcome.counts,
            "messages": {k: outcome.messages.get(k, []) for k in ("failed", "skipped", "Fatal Error")},
        },
        "calls": oomnitza.calls,
        "retries": oomnitza.retries,
    }


# -- report -------------------------------------------------------------------------------------
def safe_cell(value: Any) -> str:
    """Text for a CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(SPREADSHEET_TRIGGERS) else text


def error_rows(integration: Integration, frame: pd.DataFrame, loaded: dict[str, Any]) -> list[dict[str, str]]:
    """Every record that was not loaded, with its reason."""
    _, rejected = split(frame)
    rows = [
        {
            "stage": "rejected before loading",
            "sync_key": plain(row["_sync_key"]) or "",
            "kandji_id": plain(row[ID]) or "",
            "name": plain(row[LABEL]) or "",
            "reason": row["_reason"],
        }
        for row in rejected[[ID, LABEL, "_sync_key", "_reason"]].to_dict("records")
    ]
    outcome = loaded.get("outcome") or {}
    update_only = integration.preference is Preference.UPDATE_ONLY
    rejected_reasons = {r["reason"] for r in rows}
    sent, _ = split(frame)
    by_key = {
        str(plain(value)): (plain(row_id), plain(label), f"{name}={plain(value)!r}")
        for name in integration.sync_key
        for value, row_id, label in zip(sent[name], sent[ID], sent[LABEL], strict=True)
        if plain(value) is not None
    }
    for stage in ("failed", "skipped"):
        for message in (outcome.get("messages") or {}).get(stage, []):
            if stage == "failed" and any(reason in message for reason in rejected_reasons):
                continue  # our own rejects, echoed back by Oomnitza: already listed
            reason = message
            if stage == "skipped" and update_only:
                reason = f"not in Oomnitza, so not created (the preference is update only): {message}"
            # INFERRED: Oomnitza's messages name the record by its sync-key value; find it to say which
            # Kandji record the message is about.
            tokens = [a or b for a, b in QUOTED.findall(message)]
            kandji_id, name, sync_key = next((by_key[t] for t in tokens if t in by_key), ("", "", ""))
            rows.append(
                {
                    "stage": f"{stage} in Oomnitza",
                    "sync_key": sync_key,
                    "kandji_id": kandji_id or "",
                    "name": name or "",
                    "reason": reason,
                }
            )
    for message in (outcome.get("messages") or {}).get("Fatal Error", []):
        rows.append(
            {
                "stage": "fatal error in Oomnitza",
                "sync_key": "",
                "kandji_id": "",
                "name": "",
                "reason": message,
            }
        )
    return rows


def error_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["stage", "sync_key", "kandji_id", "name", "reason"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def summarise(
    integration: Integration,
    *,
    source_count: int,
    frame: pd.DataFrame,
    software: dict[str, Any] | None,
    loaded: dict[str, Any],
    calls: dict[str, int],
    started: float,
    error_log: str | None,
    error_count: int,
) -> dict[str, Any]:
    records, rejected = split(frame)
    counts = (loaded.get("outcome") or {}).get("counts") or {}
    return {
        "integration": integration.name,
        "type": integration.type,
        "dry_run": loaded.get("dry_run", False),
        "portion": loaded.get("portion"),
        "kandji_records": source_count,
        "records_sent": len(records) if not loaded.get("dry_run") else 0,
        "would_send": loaded.get("would_send"),
        "rejected_before_load": len(rejected),
        **{k: counts.get(k, 0) for k in ("added", "updated", "unchanged", "skipped", "failed")},
        "oomnitza_status": (loaded.get("outcome") or {}).get("status"),
        "software_route": (software or {}).get("route"),
        "software_rows": (software or {}).get("software_rows", 0),
        "calls": calls,
        "duration_seconds": round(time.time() - started, 1),
        "not_loaded": error_count,
        "error_log": error_log,
    }
