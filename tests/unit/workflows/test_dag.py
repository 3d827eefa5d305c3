"""workflows/dag.py: a DAG per valid workflow file; a broken file breaks only itself."""

from __future__ import annotations

from helpers.workflow_files import SHIPPED

from kandji_oomnitza.settings_files import WORKFLOWS, scan
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
