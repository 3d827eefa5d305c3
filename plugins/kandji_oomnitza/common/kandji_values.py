"""Lenient readers for Kandji's value quirks (docs/reference/kandji-api.md §2.2–2.5, §4.2).

- ``user`` is an object on an assigned device and ``""`` on an unassigned one;
- booleans arrive as JSON booleans or as ``"True"``/``"False"``/``"Yes"``/``"No"`` strings;
- timestamps mix ``T`` and space separators, ``Z`` and ``+00:00``, with or without microseconds, or ``""``
  (read by the ``date`` converter in ``fields.py``);
- ``/apps`` records differ by platform (Apple, Windows, Android); Prism rows name fields differently.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, overload

ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,64}")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every timestamp we send: UTC ISO-8601, whole seconds
# How far ahead of a run's read time a time it stored may be (clocks of two machines differ a little).
CLOCK_SKEW = timedelta(minutes=1)
TRUE_STRINGS = {"true", "yes", "1", "y", "on"}
FALSE_STRINGS = {"false", "no", "0", "n", "off"}


def is_empty(value: Any) -> bool:
    """Kandji's ways of saying "nothing": None, "", whitespace, an empty list or object (and the
    missing-value markers NaN/NA that a pandas column holds in their place)."""
    if value is None or type(value).__name__ == "NAType":
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, dict, tuple, set)) or hasattr(value, "tolist"):  # incl. numpy arrays
        return len(value) == 0 if hasattr(value, "__len__") else False
    return False


def valid_id(value: Any) -> bool:
    """Whether a Kandji id is usable: letters, digits and hyphens (Kandji's ids are UUIDs), so it can go
    into a URL path and name its record."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


@overload
def to_int(value: Any, default: int) -> int: ...


@overload
def to_int(value: Any, default: None = None) -> int | None: ...


def to_int(value: Any, default: int | None = None) -> int | None:
    """An int from a header or a loosely typed field; ``default`` when it is missing or not a number."""
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def parse_bool(value: Any) -> bool | None:
    """True/False from a JSON boolean or a "True"/"Yes"/"1" style string; None when empty or unknown."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_STRINGS:
            return True
        if text in FALSE_STRINGS:
            return False
    return None


def software_entry(app: dict[str, Any]) -> dict[str, Any] | None:
    """One installed app as Oomnitza's ``{name, version, path}``, from any record shape Kandji sends:
    Apple ``/apps`` (``app_name``), Windows (``display_name``/``name``, ``installed_path``), Android
    (``display_name``/``package_name``, ``version_name``) and Prism rows (``name``)."""
    name = _first(app, "app_name", "display_name", "name", "bundle_name", "package_name")
    if name is None:
        return None
    version = _first(app, "version", "version_name", "short_version")
    path = _first(app, "path", "installed_path")
    return {"name": name, "version": version, "path": path}


def _first(record: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = record.get(key)
        if not is_empty(value):
            return value.strip() if isinstance(value, str) else value
    return None
