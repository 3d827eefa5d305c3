"""When a failed request is sent again: the retry modes, and the one rule that decides (``is_retryable``).
The hook's tenacity policy (how many attempts, how long, the waits) is ``RestApiHook``'s (base.py)."""

from __future__ import annotations

import enum
from typing import Any

from kandji_oomnitza.hooks.errors import ApiError, TransportError


class RetryMode(enum.Enum):
    """When a failed request may be sent again."""

    IDEMPOTENT = "idempotent"  # 429, 408, 5xx, connection errors, timeouts, cut or unreadable bodies
    UNSENT_ONLY = "unsent_only"  # only when the server certainly did not act: 429, connection refused
    NEVER = "never"


def caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or anything it wraps (args, cause, context, MaxRetryError.reason) is of ``kinds``."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        pending += [*current.args, current.__cause__, current.__context__, getattr(current, "reason", None)]
    return False


def is_retryable(exc: BaseException, mode: RetryMode) -> bool:
    """The hook's retry rule: never a permanent error; a 429 or a request that never left in every
    mode but NEVER; everything else transient only for idempotent requests."""
    if mode is RetryMode.NEVER or not isinstance(exc, ApiError) or exc.permanent:
        return False
    if exc.status == 429:
        return True
    if isinstance(exc, TransportError) and exc.certainly_unsent:
        return True
    return mode is RetryMode.IDEMPOTENT
