"""Every checker command the docs name (README, the shipped files' headers, docs/deploy.md), run as a person
runs it: a new Python process each (an end-to-end test of the command, not a unit test: each imports
Airflow, ~2 s)."""

from __future__ import annotations

import os

import pytest
from helpers.harness import ROOT

# Every checker command the docs name (README, the shipped files' headers, docs/deploy.md), with the kinds
# each checks: each must check, and fail on a broken file.
CHECKERS = {
    "kandji_oomnitza.check": ("integration", "workflow"),
    "kandji_oomnitza.settings_files": ("integration", "workflow"),
    "kandji_oomnitza.integrations.config": ("integration",),
    "kandji_oomnitza.workflows.config": ("workflow",),
    "kandji_oomnitza.integration_config": ("integration",),
    "kandji_oomnitza.workflow_config": ("workflow",),
}


@pytest.mark.parametrize("module", sorted(CHECKERS))
def test_every_documented_checker_command_checks_and_fails_on_a_broken_file(module, tmp_path):
    import subprocess
    import sys

    kinds = CHECKERS[module]
    good = {
        "integration": ROOT / "include" / "integrations" / "kandji_users.yaml",
        "workflow": ROOT / "include" / "workflows" / "lost_device_lock.yaml",
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}

    def check(*paths) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", module, *map(str, paths)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    ok = check(*(good[k] for k in kinds))
    assert ok.returncode == 0 and ok.stdout.count("ok  ") == len(kinds), ok.stdout + ok.stderr
    for kind in kinds:
        assert f"({kind} file, DAG " in ok.stdout
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("mappings: [unclosed\n")
    typo = tmp_path / ("typo.yaml")
    typo.write_text(
        "trigger: {}\nenabled: true\n" if kinds == ("workflow",) else "name: x\ntype: assets\nmappings: {}\n"
    )
    for broken in (not_yaml, typo):
        failed = check(broken)
        assert failed.returncode == 1 and f"Invalid {kinds[0]} file" in failed.stdout, (
            failed.stdout + failed.stderr
        )
        assert str(broken) in failed.stdout
    missing = check(tmp_path / "nowhere.yaml")
    assert missing.returncode == 2 and "No such file" in missing.stderr
