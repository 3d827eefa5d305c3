"""Notifications and the safeguards against mass changes, end to end (dag.test, both emulators, a local
SMTP server and a webhook receiver): a failed sync, a sync with failed records and a tripped safeguard
each deliver exactly one message per target, with the counts and the links and no secret; a target that
cannot be reached never fails the run. A listing shrunk to a tenth of the fleet flags nothing; a person's
confirmation then flags; an ordinary departure flags as before."""

from __future__ import annotations

import pytest
from helpers.alerts import AlertSink
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, days_ago, oomnitza_assets, patch_record
from helpers.waiting import wait_until
from helpers.workflow_runs import finished

pytestmark = pytest.mark.e2e
GONE = {"after_days": 1, "set": {"status": "Not in Kandji"}}
REFUSED = "json://127.0.0.1:9/nobody-listens"  # the discard port: connection refused


@pytest.fixture
def sink(airflow_connections):
    """The alert stand-ins, and connection ``it_alerts`` (type apprise) mailing through the local relay."""
    alerts = AlertSink()
    airflow_connections("it_alerts", conn_type="apprise", extra={"config": [{"path": alerts.mail_url}]})
    yield alerts
    alerts.stop()


@pytest.fixture
def assets_dag(integration_dag_from, sink):
    def build(notify: dict, **changes):
        return integration_dag_from(
            "kandji_devices_and_software", software={"enabled": False}, notify=notify, **changes
        )

    return build


def assert_no_secret(sink: AlertSink) -> None:
    text = sink.everything()
    assert KANDJI_TOKEN not in text and OOMNITZA_TOKEN not in text


def test_a_failed_sync_sends_one_message_to_each_target_and_a_dead_target_changes_nothing(
    run_dag,
    assets_dag,
    sink,
    small_fleet,
    kandji_emulator,
    oomnitza_emulator,
    airflow_connections,
    kandji_process,
):
    airflow_connections(
        "kandji_default", conn_type="kandji", host=kandji_process.url, password="revoked-token"
    )
    dag = assets_dag({"on_failure": ["it_alerts", sink.webhook_url("failure"), REFUSED]})
    result = run_dag(dag)
    assert result.state == "failed" and result.task_states["extract"] == "failed"
    sink.wait_for(mails=1, hooks=1)
    (mail,), (hook,) = sink.mails, sink.hooks
    assert mail["subject"] == "Kandji Devices and Software: run failed" == hook["title"]
    assert mail["body"].strip() == hook["message"].strip()
    # dag.test() runs the DAG's failure callback where no XCom can be read, so the message names the
    # failed task; under the DAG processor it also carries the report's sentence and counts
    # (tests/e2e/platform/test_sandbox_notifications.py).
    assert f"(kandji_devices_and_software) run {result.run_id} failed: task report failed" in mail["body"]
    assert (
        f"/dags/kandji_devices_and_software/runs/{result.run_id.replace(':', '%3A').replace('+', '%2B')}"
        in mail["body"]
    )
    assert "revoked-token" not in sink.everything()
    assert_no_secret(sink)
    assert "Could not notify json://127.0.0.1" in result.log  # logged by scheme and host, never failing


def test_a_sync_with_failed_records_sends_one_message(
    run_dag, assets_dag, sink, small_fleet, kandji_emulator, oomnitza_emulator
):
    model = oomnitza_emulator.get("state")["data_model"]
    for field in model["assets"]:
        if field["field"] == "kandji_platform":  # a dropdown that knows only Macs
            field.update(type="dropdown", searchhelp=["Mac"])
    oomnitza_emulator.put("data_model", model)
    dag = assets_dag(
        {"on_records_failed": [sink.webhook_url("records")], "on_failure": [sink.webhook_url("failure")]},
        load={"max_failed_records": 1000},
    )
    result = run_dag(dag)
    summary = result.xcom("report")
    assert result.state == "success" and summary["failed"] > 0
    sink.wait_for(hooks=1)
    (hook,) = sink.hooks
    assert hook["path"] == "/records" and hook["type"] == "warning"
    assert (
        hook["title"] == f"Kandji Devices and Software: {summary['failures']} record(s) not loaded, 0 skipped"
    )
    assert f"failed {summary['failed']}" in hook["message"] and summary["error_log"] in hook["message"]
    assert_no_secret(sink)

    model["assets"] = [f for f in model["assets"] if f["field"] != "kandji_platform"] + [
        {"field": "kandji_platform", "type": "string", "unique": False, "searchhelp": []}
    ]
    oomnitza_emulator.put("data_model", model)
    sink.clear()
    assert run_dag(dag).state == "success"
    assert sink.hooks == [] and sink.mails == []  # a clean run says nothing


def fleet_in_oomnitza(run_dag, dag, oomnitza_emulator) -> dict:
    """A first run loads the fleet (and becomes the listing the next one is compared with); every
    asset then looks last seen two days ago."""
    first = run_dag(dag)
    assert first.state == "success", first.task_states
    assets = oomnitza_assets(oomnitza_emulator)
    for asset in assets.values():
        patch_record(
            oomnitza_emulator, "assets", asset["equipment_id"], {"kandji_connector_sync_time": days_ago(2)}
        )
    return assets


def test_a_listing_shrunk_to_a_tenth_flags_nothing_until_a_person_confirms(
    run_dag, assets_dag, sink, small_fleet, kandji_emulator, oomnitza_emulator
):
    notify = {"on_safeguard": [sink.webhook_url("safeguard")], "on_failure": [sink.webhook_url("failure")]}
    dag = assets_dag(notify, when_missing=GONE)
    fleet_in_oomnitza(run_dag, dag, oomnitza_emulator)
    # A token re-scoped to fewer blueprints: Kandji answers 200 with 3 of its 30 devices, and its own
    # total agrees (nothing says the listing is partial).
    for device in small_fleet[3:]:
        kandji_emulator.delete(f"devices/{device['device_id']}")

    shrunk = run_dag(dag)
    summary = shrunk.xcom("report")
    assert shrunk.state == "success", shrunk.task_states  # a warning, not a failure
    assert summary["flagged_as_missing"] == 0
    assert summary["when_missing"].startswith(
        "stopped by the safeguard: Kandji listed 3 devices, 27 fewer (90%)"
    )
    assert any("max_listing_shrink 20%" in w for w in summary["warnings"])
    assert not any(a.get("status") == "Not in Kandji" for a in oomnitza_assets(oomnitza_emulator).values())
    sink.wait_for(hooks=1)
    (hook,) = sink.hooks
    assert hook["path"] == "/safeguard" and "confirm_mass_flag" in hook["message"]
    assert hook["title"] == "Kandji Devices and Software: flagging stopped by a safeguard"

    # Still shrunk the next night: still stopped (the comparison is with the last run that flagged).
    sink.clear()
    again = run_dag(dag)
    assert again.xcom("report")["flagged_as_missing"] == 0 and len(sink.hooks) == 1

    sink.clear()
    confirmed = run_dag(dag, conf={"confirm_mass_flag": True})
    summary = confirmed.xcom("report")
    assert confirmed.state == "success", confirmed.task_states
    assert summary["flagged_as_missing"] == 27
    # Airflow's record of who triggered the run (dag.test() records "dag_test"; the REST API, the user).
    assert summary["safeguard_confirmed_by"] == "dag_test"
    assert "safeguards lifted by dag_test" in summary["when_missing"]
    assert sum(a.get("status") == "Not in Kandji" for a in oomnitza_assets(oomnitza_emulator).values()) == 27
    assert sink.hooks == []


def test_more_departures_than_max_flagged_fail_the_flag_task_and_tell_once(
    run_dag, assets_dag, sink, small_fleet, kandji_emulator, oomnitza_emulator
):
    notify = {"on_safeguard": [sink.webhook_url("safeguard")], "on_failure": ["it_alerts"]}
    dag = assets_dag(notify, when_missing={**GONE, "max_listing_shrink": "100%"})
    fleet_in_oomnitza(run_dag, dag, oomnitza_emulator)
    for device in small_fleet[:12]:  # 12 of 30 gone: over the floor of 10 (5% of 30 is 2)
        kandji_emulator.delete(f"devices/{device['device_id']}")

    stopped = run_dag(dag)
    summary = stopped.xcom("report", "summary")
    assert stopped.state == "failed"
    assert stopped.task_states["flag_missing"] == "failed" and stopped.task_states["load"] == "success"
    assert stopped.tries["flag_missing"] == 1  # a safeguard is not retried
    expected = (
        "Kandji listed 18 devices, and 12 of the 30 Oomnitza holds with a Kandji id were not in it: flagging "
        "them was stopped by the safeguard (max 10, max_flagged 5%); nothing was flagged."
    )
    assert summary["safeguard"].startswith(expected)
    assert summary["held_back_by_safeguard"] == 12 and summary["flagged_as_missing"] == 0
    assert summary["added"] + summary["updated"] + summary["unchanged"] == 18  # the load's results stand
    assert not any(a.get("status") == "Not in Kandji" for a in oomnitza_assets(oomnitza_emulator).values())
    sink.wait_for(mails=1, hooks=1)
    (hook,), (mail,) = sink.hooks, sink.mails
    assert hook["message"].startswith(expected) and "12 record(s) held back" in hook["message"]
    assert mail["subject"] == "Kandji Devices and Software: run failed"  # the run failed: told once too
    assert_no_secret(sink)

    sink.clear()
    confirmed = run_dag(dag, conf={"confirm_mass_flag": True})
    assert confirmed.state == "success", confirmed.task_states
    assert confirmed.xcom("report")["flagged_as_missing"] == 12
    assert sink.hooks == [] and sink.mails == []


def test_an_ordinary_departure_flags_as_before(
    run_dag, assets_dag, sink, small_fleet, kandji_emulator, oomnitza_emulator
):
    dag = assets_dag({"on_safeguard": [sink.webhook_url("safeguard")]}, when_missing=GONE)
    fleet_in_oomnitza(run_dag, dag, oomnitza_emulator)
    kandji_emulator.delete(f"devices/{small_fleet[0]['device_id']}")
    result = run_dag(dag)
    summary = result.xcom("report")
    assert result.state == "success" and summary["flagged_as_missing"] == 1 and summary["safeguard"] is None
    assert sink.hooks == []


WATCHED = "kandji_users_watched"  # tests/fixtures/integrations/kandji_users_watched.yaml


def test_a_run_past_its_deadline_is_told_once_by_the_triggerer_then_its_failure_by_the_dag_processor(
    sandbox,
):
    """The real scheduler, triggerer and DAG processor: a run whose Kandji answers only after 15 seconds
    (then 401) misses its 10-second deadline (Airflow's deadline alert, run in the triggerer: one message),
    then fails (the DAG's failure callback, run by the DAG processor: one message with the report's
    sentence and the links)."""
    started = sandbox.api.post(
        f"{sandbox.base}/api/v2/dags/{WATCHED}/dagRuns", json={"logical_date": None}, timeout=30
    )
    assert started.status_code == 200, started.text
    run_id = started.json()["dag_run_id"]

    def about_this_run(title: str) -> list[dict]:
        return [h for h in sandbox.alerts.hooks if title in h.get("title", "") and run_id in h["message"]]

    (late,) = wait_until("the deadline message", lambda: about_this_run("not finished within 10s"), 90)
    assert late["title"] == "Kandji Users (watched): not finished within 10s"
    assert f"{WATCHED}) run {run_id} has not finished 10s after it was queued" in late["message"]
    assert f"run: {sandbox.base}/dags/{WATCHED}/runs/" in late["message"]
    assert finished(sandbox, WATCHED, run_id)["state"] == "failed"
    (failed,) = wait_until("the failure message", lambda: about_this_run("run failed"), 90)
    assert failed["title"] == "Kandji Users (watched): run failed"
    # The report's sentence (read from its summary XCom by the DAG processor), the counts, the links.
    assert "failed: Kandji was not read: the extract did not finish" in failed["message"], failed["message"]
    assert "records sent 0" in failed["message"] and "error log: " in failed["message"]
    assert "a-token-kandji-refuses" not in sandbox.alerts.everything()
    assert len(about_this_run("not finished within")) == 1  # told once, not once per scheduler loop


def test_a_record_value_in_a_notice_arrives_as_its_characters_never_as_markup(sink):
    """A device name anyone with Kandji access can set, in an HTML mail: Apprise is told every notice is
    plain text, so it escapes it for the service's format (HTML here; Slack's mrkdwn and Markdown alike)."""
    from kandji_oomnitza.common.notify import Notice, deliver

    hostile = (
        "<https://evil.example|Approve: false alarm> <!channel> <b>bold</b> & [link](https://evil.example)"
    )
    notice = Notice(title=f"Lock {hostile}?", sentence=f"Device {hostile} is waiting for approval.")
    assert deliver([sink.mail_url + "&format=html"], notice) == []
    sink.wait_for(mails=1)
    (mail,) = sink.mails
    html = mail["html"].replace("&nbsp;", " ")
    assert "&lt;https://evil.example|Approve: false alarm&gt;" in html
    assert "&lt;!channel&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>" not in html and 'href="https://evil.example"' not in html
