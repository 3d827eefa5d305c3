"""The words of Oomnitza's connector protocol that settings files speak too, importable without the HTTP
stack (a DAG file that reads an integration file must not pay for ``requests`` and the HTTP provider)."""

from __future__ import annotations

import enum
import re

# INFERRED: Oomnitza's run-log messages name a record by its sync-key value, in quotes.
QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


class Preference(enum.StrEnum):
    """Oomnitza's integration preference, and the flags the connector protocol sends for it."""

    CREATE_AND_UPDATE = "create_and_update"
    CREATE_ONLY = "create_only"
    UPDATE_ONLY = "update_only"

    @property
    def flags(self) -> dict[str, bool]:
        return {"insert_only": self is Preference.CREATE_ONLY, "update_only": self is Preference.UPDATE_ONLY}


def named_in(message: str) -> list[str]:
    """The records a run-log message names (their sync-key values), in the order it names them."""
    return [a or b for a, b in QUOTED.findall(message)]


def named_records(messages: dict[str, list[str]], stages: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Every record the messages of ``stages`` name: its sync-key value → (stage, message)."""
    return {name: (stage, m) for stage in stages for m in messages.get(stage, []) for name in named_in(m)}
