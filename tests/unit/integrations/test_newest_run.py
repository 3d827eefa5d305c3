"""integrations/newest_run.py: the schedule's next date after a run's, which decides whether a newer run
exists (then an older run has nothing to add)."""

from __future__ import annotations

import pendulum
import yaml
from helpers.harness import ROOT

from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.dag import build_dag
from kandji_oomnitza.integrations.newest_run import next_scheduled_date

DATA = yaml.safe_load((ROOT / "include" / "integrations" / "kandji_users.yaml").read_text())


def test_the_next_date_follows_the_schedule_and_a_manual_only_dag_has_none(tmp_path):
    daily = build_dag("kandji_users", Integration.model_validate(DATA), tmp_path / "kandji_users.yaml")
    day = pendulum.datetime(2026, 11, 27, tz="UTC")
    assert next_scheduled_date(daily, day) == pendulum.datetime(2026, 11, 28, tz="UTC")
    manual = build_dag(
        "kandji_users", Integration.model_validate({**DATA, "schedule": {"cron": None}}), tmp_path / "x.yaml"
    )
    assert next_scheduled_date(manual, day) is None
