"""Records whose device or user left Kandji: flagged in Oomnitza after a grace period, never deleted.

A run that listed Kandji completely looks in Oomnitza for this integration's records (those carrying
the mapped Kandji id field) that were last seen in Kandji (their Connector Sync Time) longer ago than
``when_missing.after_days`` and are absent from the listing, and sets the ``when_missing.set`` fields
on them, once, through the connector protocol (update only, on the sync key). A flagged record that
is in the listing again gets ``clear_when_seen``. A partial listing flags nothing.

The candidates are listed with a server-side filter on Connector Sync Time (``lte`` the cutoff), so
the cost grows with the stale records, not the fleet; every condition is checked again here, so an
Oomnitza that filters differently (or refuses the operator, which falls back to a full listing)
still flags only what it should.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum

from kandji_oomnitza.common.kandji_values import TIMESTAMP_FORMAT, is_empty
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
from kandji_oomnitza.hooks.oomnitza_protocol import Preference, named_records
from kandji_oomnitza.integrations.config import MissingSettings, WhenMissing
from kandji_oomnitza.integrations.handover import Listing, MissingResult, MissingStatus
from kandji_oomnitza.integrations.safeguard import PreviousListing, Stop, listing_shrank, too_many
from kandji_oomnitza.settings_files import Percent

log = logging.getLogger(__name__)
PAGE_SIZE = 500  # candidates per Oomnitza read: few fields each, so a large page is cheap


def listing_completeness(record_type: str, listed: int, total: int | None) -> Listing:
    """Whether this run's Kandji listing can be trusted to say what is gone. Every page was read (or the
    extract failed, and nothing runs after it); where Kandji gives a total (the device listing's
    X-Total-Count), the listing must hold at least that many records."""
    if total is not None and listed < total:
        kind = "devices" if record_type == "assets" else "users"
        why = f"Kandji says it holds {total} {kind} but the listing returned {listed}"
        return Listing(complete=False, listed=listed, total=total, why=why)
    return Listing(complete=True, listed=listed, total=total)


def cutoff_of(read_at: str, after: timedelta) -> str:
    read = datetime.strptime(read_at, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    return (read - after).strftime(TIMESTAMP_FORMAT)


def parse_time(value: Any) -> datetime | None:
    """A Connector Sync Time as Oomnitza returns it: ISO-8601 text (as we send it), or epoch seconds
    (or milliseconds) for a date field (INFERRED). None when it cannot be read."""
    if is_empty(value) or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)) or re.fullmatch(r"\d+(\.\d+)?", str(value).strip()):
            seconds = float(value)
            return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC)
        parsed = pendulum.parse(str(value).strip(), tz="UTC")
        return parsed if isinstance(parsed, datetime) else None
    except (ValueError, OverflowError, TypeError, pendulum.parsing.exceptions.ParserError):
        return None


def same_value(current: Any, wanted: Any) -> bool:
    if is_empty(wanted):
        return is_empty(current)
    if isinstance(wanted, bool) or isinstance(current, bool):
        return str(current).lower() == str(wanted).lower()
    return str(current) == str(wanted)


@dataclass
class MissingPlan:
    """What a run would send: records to flag, flagged records back in Kandji, and what it left alone."""

    cutoff: str
    to_flag: list[dict[str, Any]] = field(default_factory=list)
    to_clear: list[dict[str, Any]] = field(default_factory=list)
    already_flagged: int = 0
    unaddressable: list[dict[str, Any]] = field(default_factory=list)  # no sync-key value in Oomnitza
    unreadable_times: int = 0
    warnings: list[str] = field(default_factory=list)
    calls: int = 0


def _entry(settings: MissingSettings, record: dict[str, Any]) -> dict[str, Any]:
    keys = {k: record.get(k) for k in settings.sync_key if not is_empty(record.get(k))}
    return {
        "kandji_id": str(record.get(settings.kandji_id_field)),
        "sync_key": next((f"{k}={v!r}" for k, v in keys.items()), ""),
        "keys": keys,
        "last_seen": record.get(settings.sync_time_field),
    }


def _condition(name: str, value: Any) -> str:
    if is_empty(value):
        return f"{name} IS NULL"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{name} eq '{text.replace(chr(39), chr(39) * 2)}'"


def _records(
    settings: MissingSettings, oomnitza: OomnitzaHook, filter_expr: str, plan: MissingPlan
) -> list[dict[str, Any]]:
    """This integration's records matching ``filter_expr``; every record when Oomnitza refuses the
    filter (HTTP 400), with a warning: the conditions are checked here either way."""
    option = settings.when_missing
    fields = [settings.kandji_id_field, settings.sync_time_field, *settings.sync_key, *option.fields]
    fields = list(dict.fromkeys(f for f in fields if f))
    records, refused = oomnitza.read_filtered(settings.type, filter_expr, fields=fields, page_size=PAGE_SIZE)
    if refused:
        plan.warnings.append(f"{refused} (slower, same result)")
    return [r for r in records if isinstance(r, dict) and not is_empty(r.get(settings.kandji_id_field))]


def plan_missing(
    settings: MissingSettings, oomnitza: OomnitzaHook, seen_ids: set[str], read_at: str
) -> MissingPlan:
    """Find what to flag (gone for longer than the grace period, not flagged yet) and what to clear
    (flagged, and in this run's listing again)."""
    option = settings.when_missing
    plan = MissingPlan(cutoff=cutoff_of(read_at, option.after_days))
    calls_before = oomnitza.calls
    _plan_flags(settings, oomnitza, seen_ids, plan)
    if option.clear_when_seen:
        _plan_clears(settings, oomnitza, seen_ids, plan)
    if plan.unreadable_times:
        plan.warnings.append(
            f"{plan.unreadable_times} record(s) have a {settings.sync_time_field} that cannot be read as a "
            "time, so they were not considered for flagging"
        )
    plan.calls = oomnitza.calls - calls_before
    return plan


def _plan_flags(
    settings: MissingSettings, oomnitza: OomnitzaHook, seen_ids: set[str], plan: MissingPlan
) -> None:
    option = settings.when_missing
    cutoff_time = datetime.strptime(plan.cutoff, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    for record in _records(settings, oomnitza, f"{settings.sync_time_field} lte '{plan.cutoff}'", plan):
        if str(record[settings.kandji_id_field]) in seen_ids:
            continue
        last_seen = parse_time(record.get(settings.sync_time_field))
        if last_seen is None:
            plan.unreadable_times += 1
        elif last_seen > cutoff_time:
            continue
        elif all(same_value(record.get(k), v) for k, v in option.set.items()):
            plan.already_flagged += 1
        else:
            entry = _entry(settings, record)
            (plan.to_flag if entry["keys"] else plan.unaddressable).append(entry)


def _plan_clears(
    settings: MissingSettings, oomnitza: OomnitzaHook, seen_ids: set[str], plan: MissingPlan
) -> None:
    option = settings.when_missing
    flagged_filter = " AND ".join(_condition(k, v) for k, v in option.set.items())
    for record in _records(settings, oomnitza, flagged_filter, plan):
        if (
            str(record[settings.kandji_id_field]) in seen_ids
            and all(same_value(record.get(k), v) for k, v in option.set.items())
            and not all(same_value(record.get(k), v) for k, v in option.clear_when_seen.items())
        ):
            entry = _entry(settings, record)
            (plan.to_clear if entry["keys"] else plan.unaddressable).append(entry)


def count_held(settings: MissingSettings, oomnitza: OomnitzaHook) -> int:
    """The records Oomnitza holds with a Kandji id (the base of a percentage max_flagged)."""
    field_name = settings.kandji_id_field
    records = oomnitza.iter_records(settings.type, fields=[field_name], page_size=PAGE_SIZE)
    return sum(1 for r in records if isinstance(r, dict) and not is_empty(r.get(field_name)))


@dataclass
class FlagDecision:
    """What a run may flag: the plan, and the safeguard that stops it until a person confirms (if any)."""

    plan: MissingPlan
    stop: Stop | None = None


def decide(
    settings: MissingSettings,
    oomnitza: OomnitzaHook,
    *,
    seen_ids: set[str],
    read_at: str,
    listing: Listing,
    previous: PreviousListing | None = None,
) -> FlagDecision | MissingResult:
    """The records gone from Kandji and the ones back, and whether a safeguard stops flagging them (see
    safeguard.py): a listing far shorter than the last one that flagged, or more records to flag than
    ``max_flagged``. A stopped plan is flagged only after a person confirms it (``operator.py``). When the
    listing cannot be trusted: the result that says so, and flags nothing."""
    option = settings.when_missing
    if not listing.complete:
        why = listing.why or "the listing was not complete"
        log.warning("Nothing flagged as missing: %s", why)
        return MissingResult(**_base(option), status=MissingStatus.SKIPPED, why=why)
    plan = plan_missing(settings, oomnitza, seen_ids, read_at)
    stop = listing_shrank(settings, listing, previous)
    if stop is None and len(plan.to_flag) > option.flagging_limit(0):
        held = count_held(settings, oomnitza) if isinstance(option.max_flagged, Percent) else None
        stop = too_many(settings, listing.listed, len(plan.to_flag), held)
    plan.calls = oomnitza.calls
    if stop is not None:
        log.warning("%s", stop.message)
    return FlagDecision(plan, stop)


def _base(option: WhenMissing, dry_run: bool = False) -> dict[str, Any]:
    return {
        "after_days": option.after_days.total_seconds() / 86400,
        "dry_run": dry_run,
        "flagged": [],
        "cleared": [],
        "not_flagged": [],
    }


def _planned(option: WhenMissing, plan: MissingPlan, dry_run: bool) -> dict[str, Any]:
    for warning in plan.warnings:
        log.warning("%s", warning)
    return {
        **_base(option, dry_run),
        "cutoff": plan.cutoff,
        "already_flagged": plan.already_flagged,
        "warnings": plan.warnings,
        "not_flagged": [
            {**e, "reason": "its Oomnitza record has no sync-key value, so the connector cannot address it"}
            for e in plan.unaddressable
        ],
        "calls": plan.calls,
    }


def dry_run_result(settings: MissingSettings, decision: FlagDecision) -> MissingResult:
    """What a dry run would flag and clear (nothing is sent, nobody is asked)."""
    plan = decision.plan
    log.info(
        "Dry run: %d record(s) would be flagged as missing, %d cleared; nothing sent",
        len(plan.to_flag),
        len(plan.to_clear),
    )
    result = {**_planned(settings.when_missing, plan, True), "status": MissingStatus.DRY_RUN}
    result |= {"flagged": plan.to_flag, "cleared": plan.to_clear}
    if decision.stop is not None:
        result |= {"safeguard": decision.stop.message, "safeguard_kind": decision.stop.kind}
    return MissingResult.model_validate(result)


def flag_nothing(settings: MissingSettings, plan: MissingPlan, stop: Stop | None) -> MissingResult:
    """A plan that sends nothing: no record to flag (the listing shrank, so there is nothing to ask)."""
    result = {**_planned(settings.when_missing, plan, False), "status": MissingStatus.NOTHING}
    if stop is not None:
        result |= {
            "status": MissingStatus.STOPPED,
            "safeguard": stop.message,
            "safeguard_kind": stop.kind,
        }
    return MissingResult.model_validate(result)


def stopped_result(settings: MissingSettings, plan: MissingPlan, stop: Stop, why: str) -> MissingResult:
    """Nothing flagged: the safeguard stopped the plan and no person confirmed it (``why``: rejected by
    whom, or no answer in time). Every record it held back is listed with the reason."""
    held_back = [
        {**e, "reason": f"the {stop.kind} safeguard stopped this run's flagging; {why}"} for e in plan.to_flag
    ]
    result = {**_planned(settings.when_missing, plan, False), "status": MissingStatus.STOPPED}
    result |= {"safeguard": f"{stop.message} {why[0].upper()}{why[1:]}.", "safeguard_kind": stop.kind}
    return MissingResult.model_validate({**result, "held_back": held_back})


def flag(
    settings: MissingSettings,
    oomnitza: OomnitzaHook,
    plan: MissingPlan,
    *,
    portion: str,
    confirmation: str | None = None,
) -> tuple[MissingResult, BaseException | None]:
    """Flag ``plan``'s records gone from Kandji and clear the ones back, and say what became of each.
    Returns the result (for the report) and the failure that stopped the sending, if any.
    ``confirmation``: who confirmed a plan a safeguard had stopped (Airflow's record of the answer)."""
    option = settings.when_missing
    result = _planned(option, plan, False) | {"confirmed_by": confirmation}
    if not plan.to_flag and not plan.to_clear:
        return MissingResult.model_validate({**result, "status": MissingStatus.NOTHING}), None
    run = oomnitza.start_run(
        data_type=settings.type,
        sync_field=settings.sync_key,
        preference=Preference.UPDATE_ONLY,
        batch_size=settings.batch_size,
        portion=portion,
    )
    sent = [(e, option.set, True) for e in plan.to_flag]
    sent += [(e, option.clear_when_seen, False) for e in plan.to_clear]
    try:
        run.add_many({**entry["keys"], **values} for entry, values, _ in sent)
    finally:
        finished = run.finish(timeout_seconds=settings.outcome_timeout_seconds)
    flagged, cleared, not_flagged = _account(sent, finished)
    result.update(
        status=MissingStatus.SENT if finished.outcome is not None else MissingStatus.UNCONFIRMED,
        portion=portion,
        flagged=flagged,
        cleared=cleared,
        not_flagged=result["not_flagged"] + not_flagged,
        outcome=finished.outcome.counts if finished.outcome is not None else None,
        calls=oomnitza.calls,
    )
    return MissingResult.model_validate(result), run.failure


def _account(sent, finished) -> tuple[list, list, list]:
    """Each sent entry as flagged, cleared, or not flagged with Oomnitza's reason (its messages name a
    record by its sync-key value, INFERRED; a failure Oomnitza counts without naming the record
    leaves every entry of the run unconfirmed)."""
    outcome, run = finished.outcome, finished.run
    if outcome is None or run.failure is not None:
        why = shorten(run.failure or finished.outcome_error or finished.finalize_error or "unknown", 300)
        return [], [], [{**e, "reason": f"not confirmed by Oomnitza: {why}"} for e, _, _ in sent]
    problems = {
        name: f"{stage} in Oomnitza: {message}"
        for name, (stage, message) in named_records(outcome.messages, ("failed", "skipped")).items()
    }
    flagged: list[dict[str, Any]] = []
    cleared: list[dict[str, Any]] = []
    not_flagged: list[dict[str, Any]] = []
    named = 0
    for entry, _, flagging in sent:
        reason = next((problems[str(v)] for v in entry["keys"].values() if str(v) in problems), None)
        if reason is not None:
            named += 1
            not_flagged.append({**entry, "reason": reason})
        else:
            (flagged if flagging else cleared).append(entry)
    unnamed = outcome.counts.get("failed", 0) + outcome.counts.get("skipped", 0) - named
    if unnamed > 0:
        # Oomnitza counted problems it did not describe: nothing in this run can be called flagged.
        why = (
            f"Oomnitza counted {unnamed} failed or skipped record(s) in run {run.portion} without naming them"
        )
        return [], [], not_flagged + [{**e, "reason": why} for e in flagged + cleared]
    return flagged, cleared, not_flagged
