"""workflows/dag.py: a DAG per valid workflow file; a broken file breaks only itself."""

from __future__ import annotations

from typing import Any

import yaml
from helpers.workflow_files import SHIPPED, changed

from kandji_oomnitza import names
from kandji_oomnitza.settings_files import scan
from kandji_oomnitza.workflows.config import WORKFLOWS
from kandji_oomnitza.workflows.dag import build_all


def test_a_broken_file_breaks_only_itself(tmp_path):
    (tmp_path / "good.yaml").write_text(SHIPPED.read_text())
    (tmp_path / "bad.yaml").write_text("enabled: true\ntrigger: {}\n")
    (tmp_path / "Bad Name.yaml").write_text(SHIPPED.read_text())
    entries = {e.path.name: e for e in scan(WORKFLOWS, tmp_path)}
    assert entries["good.yaml"].model is not None
    assert "trigger.conditions: is required" in entries["bad.yaml"].error
    assert "lower-case letters" in entries["Bad Name.yaml"].error
    assert list(build_all(tmp_path)) == ["kandji_workflow_good"]


def _watchers(folder) -> dict[str, Any]:
    """Each workflow DAG's asset watchers (the asset is also the prepare task's inlet)."""
    return {
        dag_id: dag.get_task(names.PREPARE).inlets[0].watchers for dag_id, dag in build_all(folder).items()
    }


def test_workflows_watching_the_same_field_share_one_read_whatever_values_they_compare(tmp_path):
    def write(name: str, conditions: list[dict], enabled: bool = True) -> None:
        data = changed(trigger__conditions=conditions, enabled=enabled)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))

    write("lost", [{"field": "status", "equals": "Lost"}])
    write("stolen", [{"field": "status", "in": ["Stolen", "Missing"]}])
    write("noted", [{"field": "notes", "equals": "call IT"}])
    write("off", [{"field": "status", "equals": "Retired"}], enabled=False)
    triggers = {dag_id: watchers[0].trigger for dag_id, watchers in _watchers(tmp_path).items() if watchers}
    lost, stolen, noted = (triggers[f"kandji_workflow_{n}"] for n in ("lost", "stolen", "noted"))
    # One read for both status watchers (a disabled workflow polls nothing and widens nothing).
    assert lost.shared_filters == stolen.shared_filters == ["status IN ['Lost','Missing','Stolen']"]
    assert lost.shared_stream_key() == stolen.shared_stream_key() != noted.shared_stream_key()
    assert noted.shared_filters == ["notes IN ['call IT']"]
    assert "kandji_workflow_off" not in triggers
    # What each matches is still its own: the shared read returns both, each keeps its own.
    records = [{"equipment_id": "a", "status": "Lost"}, {"equipment_id": "b", "status": "Stolen"}]
    assert list(lost.matching(records)[0]) == ["a"] and list(stolen.matching(records)[0]) == ["b"]
    # The shared stream reads what the group reads, from any member's serialized form.
    assert lost.serialize()[1]["shared_filters"] == lost.shared_filters
