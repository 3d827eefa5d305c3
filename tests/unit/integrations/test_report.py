"""integrations/report.py: every record accounted for, whatever happened upstream."""

from __future__ import annotations


def test_every_run_id_gets_its_own_report_folder():
    from kandji_oomnitza.integrations.report import run_folder

    ids = ["run:1", "run_1", "run 1", "run/1", "manual__2026-11-27T10:00:00+00:00", "a" * 300, "a" * 301]
    folders = [run_folder(i) for i in ids]
    assert len(set(folders)) == len(ids)
    assert all("/" not in f and ":" not in f and len(f) <= 100 for f in folders)
    assert run_folder("run_1") == run_folder("run_1")  # stable: the page finds what the report wrote
