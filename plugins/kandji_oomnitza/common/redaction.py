"""One redaction for every text made from a request or a response.

A hostile or buggy server can echo what it received: request headers in a JSON body, the token in an
error page, credentials in a URL. Airflow's secrets masker hides registered secrets in task logs, but
XCom values, exception texts stored by callers, error-log files and the Integrations page are not
masked by Airflow. So every such text passes through ``redact`` at the edge where it is made: exception
messages (``ApiError`` redacts its own), notes pushed to XCom, summaries, CSV cells.

``redact`` removes, whatever shape the server echoes them in:
- every token a hook of this process has read (``register_secret``), exactly;
- the value of any ``Authorization``/``Authorization2``/``Cookie``/``X-API-Key`` header, as text
  (``Authorization: Bearer x``), JSON (``"Authorization": "Bearer x"``) or a Python repr;
- the user-info part of URLs (``https://user:secret@host`` → ``https://***@host``).
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()

CREDENTIAL_HEADER = re.compile(
    r"""(?ix)
    (authorization2?|proxy-authorization|x-api-key|api[-_]?key|cookie|set-cookie)  # a credential header
    (["']?\s*[:=]\s*["']?)                 # its separator, quoted or not
    ((?:bearer|basic|token)\s+)?           # a scheme word, kept
    [^\s"',;}\])]+                         # the value
    """
)
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")


def register_secret(value: str | None) -> None:
    """Remember a credential so ``redact`` removes it, and hand it to Airflow's secrets masker too."""
    if not value or len(value) < 4:  # a one-letter "token" would blank out every such letter
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(value)
    except Exception:  # noqa: S110 - outside a task (e.g. the API server) there is no masker to tell
        pass


def redact(text: Any) -> str:
    """``text`` as a string without any credential (see the module docstring)."""
    out = "" if text is None else str(text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        out = out.replace(secret, MASK)
    out = CREDENTIAL_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MASK}", out)
    return URL_USERINFO.sub(rf"\1{MASK}@", out)


def redact_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string redacted; other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def shorten(text: Any, limit: int = 200) -> str:
    """A redacted, single-line text of at most ``limit`` characters (for messages quoting input)."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
