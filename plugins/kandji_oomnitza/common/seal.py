"""Values this product keeps where others can write: sealed with a key Airflow's REST API cannot read, so a
value it did not write is told apart from one it did.

The workflows keep their state and their ``sent:`` marks in Airflow's asset state store,
which anyone allowed to edit assets (the simple auth manager's role op) can write through the REST API.
Each such value is stored as ``{"sealed": <value>, "seal": <HMAC-SHA256>}`` over the asset and key it is
stored under (so a sealed value cannot be moved to another key) and the value itself.

The key comes from Airflow's configuration, which every component reads and the REST API never shows in
full: ``[kandji_oomnitza] state_seal_key`` (sensitive; set the same value on the triggerer and the workers),
else one derived from ``[core] fernet_key``. With neither, values are stored as they are (nothing to seal
with) and read as before: SECURITY.md says to set one.

What a seal cannot do: tell that a value was deleted (an absent mark is an absent mark), or keep out
someone who can read Airflow's configuration or edit its connections (who can redirect a token anyway).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from typing import Any

SEALED, SEAL = "sealed", "seal"
_PURPOSE = b"kandji_oomnitza asset state seal v1"


@functools.cache
def _key() -> bytes | None:
    from airflow.configuration import conf

    own = (conf.get("kandji_oomnitza", "state_seal_key", fallback="") or "").strip()
    if own:
        return hmac.new(own.encode(), _PURPOSE, hashlib.sha256).digest()
    fernet = (conf.get("core", "fernet_key", fallback="") or "").strip()
    if fernet:
        return hmac.new(fernet.encode(), _PURPOSE, hashlib.sha256).digest()
    return None


def sealing() -> bool:
    """Whether values are sealed here (a key is configured)."""
    return _key() is not None


def _mac(key: bytes, where: str, value: Any) -> str:
    canonical = json.dumps([where, value], sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def seal(where: str, value: Any) -> Any:
    """``value`` as it is stored under ``where`` (``<asset name>/<store key>``)."""
    key = _key()
    if key is None:
        return value
    return {SEALED: value, SEAL: _mac(key, where, value)}


def unseal(where: str, stored: Any) -> tuple[Any, str | None]:
    """What was stored under ``where``, and why it is not to be trusted (None when it is). Nothing stored
    is (None, None). Without a key, what is stored is taken as it is."""
    if stored is None:
        return None, None
    key = _key()
    is_sealed = isinstance(stored, dict) and set(stored) == {SEALED, SEAL}
    if key is None:
        return (stored[SEALED] if is_sealed else stored), None
    if not is_sealed:
        return (
            None,
            "it carries no seal (it was not written by this product, or was written by an earlier version)",
        )
    if not hmac.compare_digest(str(stored[SEAL]), _mac(key, where, stored[SEALED])):
        return None, "its seal does not match (it was changed outside this product, or the key changed)"
    return stored[SEALED], None


def seal_of(where: str, value: Any) -> str | None:
    """The seal alone (None without a key), for a hand-over whose readers take the value as it is: it travels
    beside the value, and the one reader that decides on it checks it with ``changed_since_sealed``."""
    key = _key()
    return None if key is None else _mac(key, where, value)


def changed_since_sealed(where: str, value: Any, stored_seal: Any) -> str | None:
    """Why ``value`` is not what was sealed under ``where`` (None when it is, or when there is no key)."""
    key = _key()
    if key is None:
        return None
    if not isinstance(stored_seal, str):
        return "it carries no seal (written by an earlier version, or its seal was removed)"
    if not hmac.compare_digest(stored_seal, _mac(key, where, value)):
        return "it was changed after the task wrote it (its seal does not match)"
    return None
