"""The one base of every typed hand-over: a value one task (or the page, or a notification) reads that
another wrote, through XCom or the asset state store. A feature's hand-overs live in its ``handover.py``
and are read and written only through this base, so a renamed field fails a type check and a test, not
the page or a message, silently.

Whoever can edit an XCom can put anything there: ``from_xcom`` is for the tasks of one run (a wrong shape
is an error, naming the task), ``read`` for displays (a wrong shape shows as nothing, never a crash).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from kandji_oomnitza.common.redaction import redact_value


class Handover(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def to_xcom(self) -> dict[str, Any]:
        """The JSON that XCom holds, redacted (text made from an API's answer may echo a token)."""
        return redact_value(self.model_dump(mode="json"))

    def redacted(self) -> Self:
        """The same hand-over with every text redacted, as ``to_xcom`` writes it."""
        return self.model_validate(self.to_xcom())

    @classmethod
    def from_xcom(cls, value: Any) -> Self | None:
        """The hand-over, or None when the writing task did not finish (it left nothing)."""
        return cls.model_validate(value) if isinstance(value, dict) else None

    @classmethod
    def require(cls, value: Any, task_id: str) -> Self:
        """The hand-over a task cannot do without: when ``task_id`` left none (it did not finish) or one
        of another shape, this task fails (no retry: the other task's XCom will not change), saying so."""
        from kandji_oomnitza.exceptions import RunIncomplete

        try:
            read = cls.from_xcom(value)
        except ValidationError as exc:
            raise RunIncomplete(
                f"What {task_id} handed over is not a {cls.__name__} ({exc.error_count()} problem(s), first: "
                f"{exc.errors()[0]['msg']}); was it edited by hand? Run the DAG again."
            ) from None
        if read is None:
            raise RunIncomplete(f"{task_id} handed over nothing: it did not finish (see its log)")
        return read

    @classmethod
    def read(cls, value: Any) -> Self | None:
        """The hand-over for a display or a message: None when absent or not of this shape (an older
        version's, or one edited through the REST API)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls.model_validate(value)
        except ValidationError:
            return None
