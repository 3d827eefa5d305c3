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

A run triggered with ``{"confirm_mass_flag": true}`` lifts both, once; the report names who triggered it
(Airflow's record of the run's triggering user).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kandji_oomnitza.common.kandji_values import TIMESTAMP_FORMAT
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.integrations.config import Integration, percent_of
from kandji_oomnitza.integrations.handover import Listing

CONFIRM_PARAM = "confirm_mass_flag"
HISTORY_NAME = "listing.json"
SKEW = timedelta(minutes=1)
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


def _kind(integration: Integration) -> str:
    return "devices" if integration.type == "assets" else "users"


def _how_to_confirm() -> str:
    return f'If they really left Kandji, trigger the DAG with {{"{CONFIRM_PARAM}": true}}.'


def listing_shrank(
    integration: Integration, listing: Listing, previous: PreviousListing | None
) -> Stop | None:
    """The listing-shrink safeguard: this listing against the last one that flagged."""
    if previous is None or previous.listed <= 0 or listing.listed >= previous.listed:
        return None
    limit = integration.when_missing.max_listing_shrink
    drop = (previous.listed - listing.listed) / previous.listed * 100
    if drop <= percent_of(limit):
        return None
    return Stop(
        LISTING_SHRANK,
        f"Kandji listed {listing.listed} {_kind(integration)}, {previous.listed - listing.listed} fewer ({drop:.0f}%) "
        f"than at the last run that flagged ({previous.listed}, read {previous.read_at}); flagging was stopped by "
        f"the safeguard (max_listing_shrink {limit}). {_how_to_confirm()}",
    )


def too_many(integration: Integration, listed: int, to_flag: int, held: int | None) -> Stop | None:
    """The max_flagged safeguard: ``to_flag`` records against the limit (``held``: the records Oomnitza
    holds with a Kandji id; None when the limit is a number and they were not counted)."""
    option = integration.when_missing
    limit = option.flagging_limit(held or 0)
    if to_flag <= limit:
        return None
    known = f" of the {held} Oomnitza holds with a Kandji id" if held is not None else ""
    return Stop(
        MAX_FLAGGED,
        f"Kandji listed {listed} {_kind(integration)}, and {to_flag}{known} were not in it: flagging them was "
        f"stopped by the safeguard (max {limit}, max_flagged {option.max_flagged}); nothing was flagged. "
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
    try:
        when = datetime.strptime(read_at, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        latest = datetime.strptime(now, TIMESTAMP_FORMAT).replace(tzinfo=UTC) + SKEW
    except (TypeError, ValueError):
        when = latest = None
    if isinstance(listed, bool) or not isinstance(listed, int) or listed < 0 or when is None:
        return None, "the last listing's size is not {listed: <count>, read_at: <time>}"
    if when > latest:
        return None, f"the last listing's time ({read_at}) is in the future"
    return PreviousListing(listed, read_at), None


def write_listing(path, listing: Listing, read_at: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(json.dumps({"listed": listing.listed, "read_at": read_at}).encode())
