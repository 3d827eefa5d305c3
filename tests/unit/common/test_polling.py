"""common/polling.py: one poll helper with a growing interval and a deadline."""

from __future__ import annotations

from kandji_oomnitza.common.polling import poll


# -- polling ------------------------------------------------------------------------------------------
def test_poll_returns_once_done_and_the_last_answer_on_timeout(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    answers = iter(["pending", "pending", "done"])
    assert (
        poll(lambda: next(answers), done=lambda a: a == "done", timeout_seconds=60, first_wait=0.5) == "done"
    )
    assert waits == [0.5, 0.75]  # growing by 1.5 each time
    never = poll(lambda: "pending", done=lambda a: a == "done", timeout_seconds=0.05, first_wait=0.01)
    assert never == "pending"
