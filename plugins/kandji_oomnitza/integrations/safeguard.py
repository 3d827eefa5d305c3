"""The safeguards against mass changes: a Kandji listing that suddenly holds a fraction of the fleet (a
token re-scoped to fewer blueprints, a partial outage: HTTP 200, no total to compare with) must not flag
the rest of the fleet as gone. Identity-provisioning systems stop the same way (Microsoft Entra's
accidental-deletions threshold) until a person confirms.

- **max_flagged**: a run flags at most so many records (a number, or a percentage of the records Oomnitza
  holds with a Kandji id, never fewer than ``MAX_FLAGGED_FLOOR``). Over it, nothing is flagged and the
  flag task fails.
- **max_listing_shrink**: nothing is flagged when the listing shrank by more than this since the last run
  that flagged (its size is kept beside the reports, ``<reports>/<dag_id>/safeguard/listing.json``); the
  report and the Integrations page warn.

Over either, the run asks a person through Airflow's human-in-the-loop (Required Actions): the integration's
``confirmers`` (anyone allowed to answer, when it names none), showing the count, the limit and the first
records. Approve flags this run's records, the ones shown, that are still gone when the answer comes;
Reject, or no answer within ``confirm_within``, flags nothing. The report names who answered, from
Airflow's record. A cleared run asks again: nothing in a run's conf or its XComs can confirm anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kandji_oomnitza.common.kandji_values import CLOCK_SKEW, TIMESTAMP_FORMAT
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.integrations.config import MissingSettings
from kandji_oomnitza.integrations.handover import Listing

RETIRED_PARAM = "confirm_mass_flag"  # once a conf flag anyone who could trigger the DAG could set
SHOWN = 20  # records a question lists (the error log and the plan file hold them all)
HISTORY_NAME = "listing.json"
MAX_FLAGGED = "max_flagged"
LISTING_SHRANK = "listing_shrank"


@dataclass(frozen=True)
class Stop:
    """A safeguard that stopped the flagging: which one, and the sentence that says so."""

    kind: str  # MAX_FLAGGED or LISTING_SHRANK
    message: str

    @property
    def fails_the_run(self) -> bool:
        return self.kind == MAX_FLAGGED


@dataclass(frozen=True)
class PreviousListing:
    listed: int
    read_at: str


def _how_to_confirm() -> str:
    return "Nothing is flagged unless a person confirms it under Airflow's Required Actions."


def listing_shrank(
    settings: MissingSettings, listing: Listing, previous: PreviousListing | None
) -> Stop | None:
    """The listing-shrink safeguard: this listing against the last one that flagged."""
    if previous is None or previous.listed <= 0 or listing.listed >= previous.listed:
        return None
    limit = settings.when_missing.max_listing_shrink
    drop = (previous.listed - listing.listed) / previous.listed * 100
    if drop <= limit:
        return None
    return Stop(
        LISTING_SHRANK,
        f"Kandji listed {listing.listed} {settings.kind}, {previous.listed - listing.listed} fewer ({drop:.0f}%) "
        f"than at the last run that flagged ({previous.listed}, read {previous.read_at}); flagging was stopped by "
        f"the safeguard (max_listing_shrink {limit}). {_how_to_confirm()}",
    )


def too_many(settings: MissingSettings, listed: int, to_flag: int, held: int | None) -> Stop | None:
    """The max_flagged safeguard: ``to_flag`` records against the limit (``held``: the records Oomnitza
    holds with a Kandji id; None when the limit is a number and they were not counted)."""
    option = settings.when_missing
    limit = option.flagging_limit(held or 0)
    if to_flag <= limit:
        return None
    known = f" of the {held} Oomnitza holds with a Kandji id" if held is not None else ""
    return Stop(
        MAX_FLAGGED,
        f"Kandji listed {listed} {settings.kind}, and {to_flag}{known} were not in it: flagging them was "
        f"stopped by the safeguard (max {limit}, max_flagged {option.max_flagged}). "
        f"{_how_to_confirm()}",
    )


# -- the last listing that flagged --------------------------------------------------------------------
def history_path(root: str, dag_id: str):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root) / dag_id / "safeguard" / HISTORY_NAME


def read_previous(path, now: str) -> tuple[PreviousListing | None, str | None]:
    """The last listing that flagged, and why none could be used (unreadable, implausible): then the
    shrink check is skipped with a warning, and max_flagged still holds."""
    try:
        if not path.exists():
            return None, None
        with path.open("rb") as raw:
            data: Any = json.loads(raw.read())
    except (OSError, ValueError) as exc:
        return None, f"the last listing's size could not be read ({shorten(exc, 200)})"
    listed, read_at = (data.get("listed"), data.get("read_at")) if isinstance(data, dict) else (None, None)
    when: datetime | None
    latest: datetime | None
    try:
        when = datetime.strptime(str(read_at), TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        latest = datetime.strptime(now, TIMESTAMP_FORMAT).replace(tzinfo=UTC) + CLOCK_SKEW
    except ValueError:
        when = latest = None
    if (
        isinstance(listed, bool)
        or not isinstance(listed, int)
        or listed < 0
        or when is None
        or latest is None
    ):
        return None, "the last listing's size is not {listed: <count>, read_at: <time>}"
    if when > latest:
        return None, f"the last listing's time ({read_at}) is in the future"
    return PreviousListing(listed, str(read_at)), None


def write_listing(path, listing: Listing, read_at: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(json.dumps({"listed": listing.listed, "read_at": read_at}).encode())


# -- the question, and the plan a person confirms -------------------------------------------------------
def question(settings: MissingSettings, stop: Stop, entries: list[dict[str, Any]]) -> tuple[str, str]:
    """The human-in-the-loop request's subject and Markdown body: the count, the limit, the first records
    (each value literal text: a record's fields are whatever someone typed in Oomnitza)."""
    from kandji_oomnitza.common.approval import md_literal

    kind = settings.kind
    subject = f"{settings.name}: flag {len(entries)} {kind} gone from Kandji?"
    listed = "\n".join(
        f"- {md_literal(e.get('sync_key'))} (Kandji id {md_literal(e.get('kandji_id'))}, last seen "
        f"{md_literal(e.get('last_seen'))})"
        for e in entries[:SHOWN]
    )
    more = (
        f"\n- and {len(entries) - SHOWN} more (the run's error log lists every one)"
        if len(entries) > SHOWN
        else ""
    )
    option = settings.when_missing
    body = f"""**{md_literal(stop.message)}**

Approve to set {md_literal(", ".join(f"{k} = {v}" for k, v in option.set.items()))} on these {len(entries)} Oomnitza
records (only these, and only those still gone from Kandji when you answer). Reject, or no answer within the
time allowed, flags nothing.

{listed}{more}"""
    return subject, body


def plan_path(root: str, dag_id: str, run_folder: str, try_number: int):
    """Where a run keeps the records it asked about, for the answer (reports storage: no Airflow user can
    write it through Airflow's API, unlike an XCom)."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root) / dag_id / run_folder / "safeguard" / f"asked-try-{try_number}.json"


def write_plan(path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(json.dumps([e["kandji_id"] for e in entries]).encode())


def read_plan(path) -> set[str] | None:
    """The Kandji ids a person was asked about; None when the file is gone or unreadable (then nothing is
    flagged: what was confirmed cannot be told)."""
    try:
        with path.open("rb") as raw:
            ids = json.loads(raw.read())
    except (OSError, ValueError):
        return None
    return {str(i) for i in ids} if isinstance(ids, list) else None
