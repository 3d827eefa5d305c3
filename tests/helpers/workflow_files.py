"""Workflow-file helpers for the unit tests: the shipped example, changed copies of it, and one step of the watcher's bookkeeping."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from helpers.harness import ROOT
from kandji_oomnitza.exceptions import WorkflowFileError
from kandji_oomnitza.workflows.config import (
    Workflow,
    load_workflow,
)
from kandji_oomnitza.workflows.state import (
    advance,
)

SHIPPED = ROOT / "include" / "workflows" / "lost_device_lock.yaml"


DATA = yaml.safe_load(SHIPPED.read_text())


def changed(**changes) -> dict:
    """The shipped example's settings with ``a__b=value`` set (None removes the key)."""
    data = copy.deepcopy(DATA)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def workflow(**changes) -> Workflow:
    return Workflow.model_validate(changed(**changes))


def problems_of(tmp_path: Path, text: str, name: str = "broken.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(WorkflowFileError) as caught:
        load_workflow(path)
    return str(caught.value)


# -- exactly once per entry ------------------------------------------------------------------------
def step(state, matching, now, claimed=(), reemit_after=900):
    payloads = {rid: {"serial_number": f"S{rid}"} for rid in matching}
    return advance(state, payloads, now=now, claimed=set(claimed), reemit_after=reemit_after)
