"""The words of Oomnitza's connector protocol that settings files speak too, importable without the HTTP
stack (a DAG file that reads an integration file must not pay for ``requests`` and the HTTP provider)."""

from __future__ import annotations

import enum


class Preference(enum.StrEnum):
    """Oomnitza's integration preference, and the flags the connector protocol sends for it."""

    CREATE_AND_UPDATE = "create_and_update"
    CREATE_ONLY = "create_only"
    UPDATE_ONLY = "update_only"

    @property
    def flags(self) -> dict[str, bool]:
        return {"insert_only": self is Preference.CREATE_ONLY, "update_only": self is Preference.UPDATE_ONLY}
