"""Poll until something is done, with a growing interval and a deadline: one helper for every poll
(the Prism export, Oomnitza's run outcome, a device command's delivery).

Built on tenacity (``retry_if_result`` + ``wait_exponential`` + ``stop_after_delay``), the same library
the hooks retry with. Exceptions raised by ``check`` are not retried here: the hook under it has
already retried what may be retried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


def poll(
    check: Callable[[], T],
    *,
    done: Callable[[T], bool],
    timeout_seconds: float,
    first_wait: float = 0.5,
    max_wait: float = 15.0,
    growth: float = 1.5,
) -> T:
    """Call ``check`` until ``done(result)`` is true or ``timeout_seconds`` have passed.

    :param first_wait: seconds before the second call; each later wait grows by ``growth``
    :param max_wait: the longest wait between two calls
    :return: the last result, done or not: the caller says what a timeout means
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda result: not done(result)),
        wait=tenacity.wait_exponential(multiplier=first_wait, exp_base=growth, max=max_wait),
        stop=tenacity.stop_after_delay(timeout_seconds),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        reraise=True,
    )
    return retrying(check)
