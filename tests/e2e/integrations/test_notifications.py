"""Notifications and the safeguards against mass changes, end to end (dag.test, both emulators, a local
SMTP server and a webhook receiver): a failed sync, a sync with failed records and a tripped safeguard
each deliver exactly one message per target, with the counts and the links and no secret; a target that
cannot be reached never fails the run. A listing shrunk to a tenth of the fleet flags nothing until a person
approves under Required Actions (answers given through Airflow's own code, as its REST API does); an
ordinary departure flags as before."""

from __future__ import annotations

import pytest
from helpers.alerts import AlertSink
from helpers.answers import Answerer
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, days_ago, oomnitza_assets, patch_record
from helpers.waiting import wait_until
from helpers.workflow_runs import finished

from kandji_oomnitza.common.approval import APPROVE_OPTION, REJECT_OPTION
from kandji_oomnitza.integrations.safeguard import SHOWN

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


def flagged_count(oomnitza_emulator) -> int:
    return sum(a.get("status") == "Not in Kandji" for a in oomnitza_assets(oomnitza_emulator).values())


def test_a_listing_shrunk_to_a_tenth_asks_a_person_and_flags_only_on_their_approval(
    run_dag, assets_dag, sink, small_fleet, kandji_emulator, oomnitza_emulator
):
    notify = {"on_safeguard": [sink.webhook_url("safeguard")], "on_failure": [sink.webhook_url("failure")]}
    dag = assets_dag(notify, when_missing=GONE)
    fleet_in_oomnitza(run_dag, dag, oomnitza_emulator)
    # A token re-scoped to fewer blueprints: Kandji answers 200 with 3 of its 30 devices, and its own
    # total agrees (nothing says the listing is partial).
    for device in small_fleet[3:]:
        kandji_emulator.delete(f"devices/{device['device_id']}")

    # The retired conf flag lifts nothing (anyone who can trigger could set it): the run asks, alice rejects.
    rejecting = Answerer(dag.dag_id, "flag_missing", REJECT_OPTION, user="alice")
    shrunk = run_dag(dag, conf={"confirm_mass_flag": True})
    asked = rejecting.result()
    assert asked["subject"] == "Kandji Devices and Software: flag 27 devices gone from Kandji?"
    assert "Kandji listed 3 devices, 27 fewer (90%)" in asked["body"]
    assert asked["body"].count("(Kandji id ") == SHOWN and "and 7 more" in asked["body"]
    assert asked["params"]["records"]["value"].startswith("27 records, sha256 ")
    summary = shrunk.xcom("report")
    assert shrunk.state == "success", shrunk.task_states  # a warning, not a failure
    assert summary["flagged_as_missing"] == 0 and summary["safeguard_confirmed_by"] is None
    assert summary["when_missing"].startswith(
        "stopped by the safeguard: Kandji listed 3 devices, 27 fewer (90%)"
    )
    assert summary["when_missing"].endswith("Rejected by alice.")
    assert "confirm_mass_flag no longer lifts the safeguards" in shrunk.log
    assert flagged_count(oomnitza_emulator) == 0
    # Told once, when it asked (Airflow's human-in-the-loop notifier), with where to answer.
    sink.wait_for(hooks=1)
    (hook,) = sink.hooks
    assert hook["path"] == "/safeguard"
    assert (
        hook["title"] == "Kandji Devices and Software: a safeguard stopped the flagging; confirmation needed"
    )
    assert "confirm or reject: " in hook["message"] and "/required_actions" in hook["message"]
    assert "flag 27 devices gone from Kandji?" in hook["message"]

    # Still shrunk the next night: asked again (the comparison is with the last run that flagged); approved.
    sink.clear()
    approving = Answerer(dag.dag_id, "flag_missing", APPROVE_OPTION, user="alice")
    confirmed = run_dag(dag)
    approving.result()
    summary = confirmed.xcom("report")
    assert confirmed.state == "success", confirmed.task_states
    assert summary["flagged_as_missing"] == 27
    # Airflow's record of who answered, never anything the run's conf or an XCom says.
    assert summary["safeguard_confirmed_by"] == "alice"
    assert summary["when_missing"].endswith("(a safeguard's question confirmed by alice)")
    assert flagged_count(oomnitza_emulator) == 27
    assert len(sink.hooks) == 1  # the question, told when asked; nothing after


def test_more_departures_than_max_flagged_ask_and_an_answer_for_other_records_flags_nothing(
    run_dag, assets_dag, sink, small_fleet, kandji_emulator, oomnitza_emulator
):
    notify = {"on_safeguard": [sink.webhook_url("safeguard")], "on_failure": ["it_alerts"]}
    dag = assets_dag(notify, when_missing={**GONE, "max_listing_shrink": "100%"}, confirmers=["alice"])
    fleet_in_oomnitza(run_dag, dag, oomnitza_emulator)
    for device in small_fleet[:12]:  # 12 of 30 gone: over the floor of 10 (5% of 30 is 2)
        kandji_emulator.delete(f"devices/{device['device_id']}")

    # Approved, but with the form's digest changed: the answer is not for the records this run asked about.
    tampered = Answerer(
        dag.dag_id, "flag_missing", APPROVE_OPTION, changed={"records": "12 records, sha256 0"}
    )
    stopped = run_dag(dag)
    tampered.result()
    summary = stopped.xcom("report", "summary")
    assert stopped.state == "failed"
    assert stopped.task_states["flag_missing"] == "failed" and stopped.task_states["load"] == "success"
    assert stopped.tries["flag_missing"] == 1  # a safeguard is not retried
    expected = (
        "Kandji listed 18 devices, and 12 of the 30 Oomnitza holds with a Kandji id were not in it: flagging "
        "them was stopped by the safeguard (max 10, max_flagged 5%)."
    )
    assert summary["safeguard"].startswith(expected)
    assert summary["safeguard"].endswith("The records asked about are not the ones the answer was given for.")
    assert summary["held_back_by_safeguard"] == 12 and summary["flagged_as_missing"] == 0
    assert summary["added"] + summary["updated"] + summary["unchanged"] == 18  # the load's results stand
    assert flagged_count(oomnitza_emulator) == 0
    sink.wait_for(mails=1, hooks=1)
    (hook,), (mail,) = sink.hooks, sink.mails
    assert "alice may confirm it" in hook["message"]
    assert mail["subject"] == "Kandji Devices and Software: run failed"  # the run failed: told once too
    assert_no_secret(sink)

    # Someone who is not a confirmer cannot answer (Airflow refuses them); alice then approves.
    sink.clear()
    from fastapi import HTTPException

    bob = Answerer(dag.dag_id, "flag_missing", APPROVE_OPTION, user="bob")
    alice = Answerer(dag.dag_id, "flag_missing", APPROVE_OPTION, user="alice", after=bob)
    confirmed = run_dag(dag)
    bob.join(timeout=5)
    assert isinstance(bob.error, HTTPException) and bob.error.status_code == 403
    alice.result()
    assert confirmed.state == "success", confirmed.task_states
    assert confirmed.xcom("report")["flagged_as_missing"] == 12
    assert flagged_count(oomnitza_emulator) == 12
    assert len(sink.hooks) == 1 and sink.mails == []


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

    def titles() -> list[str]:
        return [h.get("title", "") for h in sandbox.alerts.hooks]

    (late,) = wait_until(
        "the deadline message", lambda: about_this_run("not finished within 10 seconds"), 90, seen=titles
    )
    assert late["title"] == "Kandji Users (watched): not finished within 10 seconds"
    assert f"{WATCHED}) run {run_id} has not finished 10 seconds after it was queued" in late["message"]
    assert f"run: {sandbox.base}/dags/{WATCHED}/runs/" in late["message"]
    assert finished(sandbox, WATCHED, run_id)["state"] == "failed"
    (failed,) = wait_until("the failure message", lambda: about_this_run("run failed"), 90, seen=titles)
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
