"""Browser test of the UI flows on the real `make run` sandbox: headless Debian Chromium driven by
Playwright (no browser download). Screenshots go to artifacts/screenshots/.

Needs Chromium: `make test` installs Debian's (or Playwright's own) where it can; without one, these
tests are skipped with the reason and the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from helpers.harness import ARTIFACTS
from helpers.waiting import ms, wait_until

pytestmark = pytest.mark.e2e
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser_sandbox(chromium, sandbox):
    return sandbox


@pytest.fixture(scope="module")
def browser_page(browser_sandbox, chromium):
    sandbox = browser_sandbox
    from playwright.sync_api import sync_playwright

    shots = ARTIFACTS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        # Every wait of the page (navigations, clicks, locators) sized for a loaded machine.
        page.set_default_timeout(ms(30))
        page.set_default_navigation_timeout(ms(60))
        page.goto(sandbox["base"] + "/", wait_until="networkidle")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(sandbox["password"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=ms(30))
        page.screenshot(path=str(shots / "01-logged-in.png"))
        yield page, shots
        browser.close()


def wait_for_manual_run(sandbox, dag_id: str, timeout: float = 300) -> dict:
    def finished() -> dict | None:
        runs = (
            sandbox["api"]
            .get(f"{sandbox['base']}/api/v2/dags/{dag_id}/dagRuns", params={"run_type": "manual"}, timeout=30)
            .json()["dag_runs"]
        )
        done = [r for r in runs if r["run_type"] == "manual" and r["state"] in ("success", "failed")]
        return done[-1] if done else None

    return wait_until(f"a manual run of {dag_id} to finish", finished, timeout, every=2)


def open_trigger_form(page, sandbox, dag_id: str) -> None:
    page.goto(sandbox["base"] + f"/dags/{dag_id}", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    page.get_by_role("dialog").wait_for()


def show_finished_run(page, sandbox, dag_id: str, run: dict, screenshot: Path) -> None:
    page.goto(sandbox["base"] + f"/dags/{dag_id}/runs/{run['dag_run_id']}", wait_until="networkidle")
    page.get_by_text("success").first.wait_for(timeout=ms(30))
    page.screenshot(path=str(screenshot))


def trigger_from_form(page, serial: str | None = None) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    if serial is not None:
        page.locator("#element_serial_number").fill(serial)
    submit = page.get_by_test_id("trigger-dag-submit")
    # The form re-validates after an edit, and under load a click landing meanwhile was dropped (the run
    # then never came): wait for the request the click sends, and click again only if none went out.
    for _ in range(3):
        expect(submit).to_be_enabled(timeout=ms(15))
        try:
            with page.expect_request(lambda r: r.method == "POST" and "/dagRuns" in r.url, timeout=ms(10)):
                # force: an error toast from an earlier attempt may still float over the button
                submit.click(force=True)
            return
        except PlaywrightTimeout:
            continue
    pytest.fail("the trigger form sent no request after three clicks")


def test_trigger_the_devices_integration_from_the_ui(sandbox, browser_page):
    page, shots = browser_page
    open_trigger_form(page, sandbox, "kandji_devices_and_software")
    page.screenshot(path=str(shots / "02-devices-trigger-form.png"))
    trigger_from_form(page)
    run = wait_for_manual_run(sandbox, "kandji_devices_and_software")
    assert run["state"] == "success"
    show_finished_run(
        page, sandbox, "kandji_devices_and_software", run, shots / "03-devices-run-succeeded.png"
    )
    landed = requests.get(sandbox["oomnitza"] + "/?format=json", timeout=10).json()
    assert landed["assets"] == 40 and landed["assets_with_software"] == 40


def test_preset_form_rejects_a_bad_serial_then_runs_a_good_one(sandbox, browser_page):
    page, shots = browser_page
    open_trigger_form(page, sandbox, "kandji_preset_lock_device")
    trigger_from_form(page, "bad sn!")
    page.get_by_text("does not match").first.wait_for(timeout=ms(15))
    assert "Invalid input for param serial_number" in page.get_by_role("dialog").inner_text()
    page.screenshot(path=str(shots / "04-preset-invalid-serial.png"))
    recorded = requests.get(sandbox["kandji"] + "/_emulator/requests", timeout=10).json()
    assert not [r for r in recorded if "/action/" in r["path"]], "an invalid serial must send nothing"
    devices = requests.get(sandbox["kandji"] + "/_emulator/devices", timeout=10).json()
    serial = next(d["serial_number"] for d in devices if d["platform"] == "iPhone")
    # A fresh form for the second trigger: after Airflow's form shows a 400, resubmitting the same
    # dialog sometimes sends nothing (the earlier flake); a person would close it and open it again.
    open_trigger_form(page, sandbox, "kandji_preset_lock_device")
    trigger_from_form(page, serial)
    run = wait_for_manual_run(sandbox, "kandji_preset_lock_device")
    assert run["state"] == "success"
    show_finished_run(page, sandbox, "kandji_preset_lock_device", run, shots / "05-preset-run-succeeded.png")
    actions = [
        r
        for r in requests.get(sandbox["kandji"] + "/_emulator/requests", timeout=10).json()
        if "/action/" in r["path"]
    ]
    assert len(actions) == 1 and actions[0]["path"].endswith("/action/lock")


def test_integrations_page_shows_tiles_mappings_and_a_dry_run_it_started(sandbox, browser_page):
    page, shots = browser_page
    page.goto(sandbox["base"] + "/", wait_until="networkidle")
    page.get_by_role("link", name="Integrations").first.click()  # the plugin's entry in Airflow's navigation
    page.wait_for_url("**/plugin/integrations**")
    frame = page.frame_locator("iframe").first  # Airflow shows the plugin page inside its own layout
    tiles = frame.get_by_test_id("tile")
    tiles.first.wait_for(timeout=ms(30))
    # The shipped files, and the tests' own (tests/fixtures/integrations, the sandbox fixture adds it).
    assert tiles.count() == 4
    names = frame.locator("[data-testid=tile] h2").all_inner_texts()
    assert sorted(names) == [
        "Kandji Devices (guarded)",
        "Kandji Devices and Software",
        "Kandji Users",
        "Kandji Users (watched)",
    ]
    page.screenshot(path=str(shots / "06-integrations-tiles.png"))

    frame.locator("[data-testid=tile][data-id=kandji_devices_and_software]").click()
    mapping = frame.get_by_test_id("mapping-table")
    mapping.wait_for()
    assert "Serial Number" in mapping.locator("tr[data-field=serial_number]").inner_text()
    assert "sync key" in mapping.locator("tr[data-field=serial_number]").inner_text()
    assert mapping.locator("tbody tr").count() == 11
    page.screenshot(path=str(shots / "07-integration-detail.png"))

    assert frame.get_by_test_id("dry-run").is_checked()
    frame.get_by_test_id("run-now").click()
    message = frame.get_by_test_id("run-message")
    message.wait_for()
    assert "queued" in message.inner_text() or "running" in message.inner_text(), message.inner_text()
    run_id = message.inner_text().split()[1]
    row = frame.locator(f'tr[data-run-id="{run_id}"]')
    row.wait_for(timeout=ms(30))
    # The page polls until the run has finished and its summary is published.
    row.locator("[data-testid=run-state]", has_text="success").wait_for(timeout=ms(300))
    frame.locator(f'tr[data-run-id="{run_id}"] td.num').first.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[3] == "yes"  # dry run
    assert cells[4] == "full"  # the mode: delta loads are off in the shipped file
    assert cells[5] == "40" and cells[6] == "40"  # Kandji records, would send
    run = (
        sandbox["api"]
        .get(f"{sandbox['base']}/api/v2/dags/kandji_devices_and_software/dagRuns/{run_id}", timeout=10)
        .json()
    )
    assert run["conf"] == {"dry_run": True} and run["state"] == "success"
    # The Run-now banner followed the run to its end, with its counts.
    frame.locator("[data-testid=run-message][data-state=success]").wait_for(timeout=ms(60))
    assert "would send 40 of 40" in frame.get_by_test_id("run-message").inner_text()
    row.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "08-integration-dry-run-finished.png"))
    # The dry run's preview opens by itself when the followed run ends: the first records as they would
    # be sent (mapped fields, app counts), what would be refused, and where every payload is.
    preview = frame.get_by_test_id("preview-table")
    preview.wait_for(timeout=ms(30))
    headers = preview.locator("th").all_inner_texts()
    assert "serial_number" in headers and "APPLICATIONS" in headers, headers
    assert preview.locator("tbody tr").count() == 5
    column = headers.index("APPLICATIONS") + 1
    apps = preview.locator(f"tbody td:nth-child({column})").all_inner_texts()
    assert len(apps) == 5 and all(text.endswith(" apps") for text in apps), apps
    assert (
        frame.get_by_test_id("preview-rejected").inner_text() == "No record would be refused before loading."
    )
    assert "dry_run_payloads.jsonl" in frame.locator("#error-log").inner_text()
    assert row.get_by_test_id("show-error-log").count() == 0  # a clean run's error log lists nothing
    frame.locator("#error-log").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "08b-integration-dry-run-preview.png"))


def test_a_skipped_backfill_run_says_why_on_the_integrations_page(browser_sandbox, browser_page):
    """A backfill over two dates, up to the schedule's last time (so the schedule itself has nothing to
    catch up afterwards): the older run skips itself (a newer one exists); its row says so in words
    instead of a green row of dashes."""
    from datetime import datetime, timedelta

    sandbox = browser_sandbox
    page, shots = browser_page
    dag = sandbox.get("dags/kandji_users")
    newest = datetime.fromisoformat(dag["next_dagrun_logical_date"]) - timedelta(days=1)
    created = sandbox.api.post(
        f"{sandbox.base}/api/v2/backfills",
        json={"dag_id": "kandji_users", "from_date": (newest - timedelta(days=1)).isoformat(),
              "to_date": newest.isoformat(), "max_active_runs": 2, "reprocess_behavior": "completed"},
        timeout=30,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    older = (newest - timedelta(days=1)).isoformat()

    def skipped_run():
        runs = sandbox.get("dags/kandji_users/dagRuns", run_type="backfill", limit=100)["dag_runs"]
        return next(
            (
                r
                for r in runs
                if datetime.fromisoformat(r["logical_date"]).isoformat() == older and r["state"] == "success"
            ),
            None,
        )

    run = wait_until("the older backfill run", skipped_run, 300)
    page.goto(sandbox["base"] + "/plugin/integrations", wait_until="networkidle")
    frame = page.frame_locator("iframe").first
    frame.locator("[data-testid=tile][data-id=kandji_users]").click()
    reason = frame.locator(f'tr[data-run-id="{run["dag_run_id"]}"] [data-testid=skipped-reason]')
    reason.wait_for(timeout=ms(30))
    assert reason.inner_text().startswith("Skipped: a newer run of this integration exists"), (
        reason.inner_text()
    )
    assert "To sync now, trigger the DAG." in reason.inner_text()
    reason.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "08c-skipped-backfill-run.png"))


def test_a_preset_failure_reads_as_one_sentence_in_the_log_panel(browser_sandbox, browser_page):
    sandbox = browser_sandbox
    page, shots = browser_page
    open_trigger_form(page, sandbox, "kandji_preset_device_restart")
    trigger_from_form(page, "NOSUCHSERIAL1")
    run = wait_for_manual_run(sandbox, "kandji_preset_device_restart")
    assert run["state"] == "failed"
    page.goto(
        sandbox["base"] + f"/dags/kandji_preset_device_restart/runs/{run['dag_run_id']}/tasks/run_action",
        wait_until="networkidle",
    )
    sentence = "No Kandji device has serial number 'NOSUCHSERIAL1'"
    page.get_by_text(sentence).first.wait_for(timeout=ms(60))
    page.screenshot(path=str(shots / "09-preset-failure-log.png"))
    line = page.get_by_text(sentence).first.inner_text()
    assert "check the serial number" in line and "Traceback" not in line


def add_connection_in_the_ui(page, sandbox, conn_id: str, type_name: str, fields: dict[str, str]) -> None:
    page.goto(sandbox["base"] + "/connections", wait_until="networkidle")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox").fill(type_name)
    page.keyboard.press("Enter")
    for label, value in fields.items():
        dialog.get_by_label(label, exact=True).fill(value)


def run_connection_test(page, conn_id: str) -> dict:
    row = page.get_by_role("row").filter(has_text=conn_id)
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
        row.get_by_role("button", name="Test Connection").click()
    return answer.value.json()


def test_kandji_connection_form_relabels_its_fields_and_its_test_tells_the_truth(
    browser_sandbox, browser_page
):
    sandbox = browser_sandbox
    page, shots = browser_page
    add_connection_in_the_ui(page, sandbox, "kandji_from_the_ui", "Kandji", {})
    dialog = page.get_by_role("dialog")
    labels = dialog.locator("label").all_inner_texts()
    assert {"API URL", "API token"} <= {label.strip() for label in labels}  # relabelled
    assert not {"Login", "Schema", "Port"} & {label.strip() for label in labels}  # hidden
    for extra in ("Subdomain", "Region", "Requests per second", "Requests per hour", "Timeout (seconds)"):
        assert any(label.strip().startswith(extra) for label in labels), (extra, labels)
    host = dialog.get_by_label("API URL", exact=True)
    assert "acme.api.kandji.io" in host.get_attribute("placeholder")
    host.fill(sandbox["kandji"])
    dialog.get_by_label("API token", exact=True).fill("sandbox-kandji-token")
    page.screenshot(path=str(shots / "10-kandji-connection-form.png"))
    dialog.get_by_role("button", name="Save").click()
    page.get_by_role("row").filter(has_text="kandji_from_the_ui").wait_for()
    result = run_connection_test(page, "kandji_from_the_ui")
    assert result == {
        "status": True,
        "message": f"Connected to {sandbox['kandji']}: the API token is valid and may list devices.",
    }
    page.screenshot(path=str(shots / "11-kandji-connection-tested.png"))

    add_connection_in_the_ui(
        page,
        sandbox,
        "kandji_wrong_token",
        "Kandji",
        {"API URL": sandbox["kandji"], "API token": "not-the-token"},
    )
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    page.get_by_role("row").filter(has_text="kandji_wrong_token").wait_for()
    result = run_connection_test(page, "kandji_wrong_token")
    assert result["status"] is False
    assert "Kandji rejected the API token of this connection (HTTP 401" in result["message"]
    assert "not-the-token" not in result["message"]


def test_the_sandboxs_connections_are_listed_and_test_from_the_ui(browser_sandbox, browser_page):
    """Admin > Connections holds the sandbox's two connections (rows of the metadata DB, not environment
    variables), and each row's Test button connects to its emulator."""
    sandbox = browser_sandbox
    page, shots = browser_page
    page.goto(sandbox["base"] + "/connections", wait_until="networkidle")
    for conn_id, url, what in (
        ("kandji_default", sandbox["kandji"], "the API token is valid and may list devices."),
        ("oomnitza_default", sandbox["oomnitza"], "the API token is valid"),
    ):
        page.get_by_role("row").filter(has_text=conn_id).first.wait_for()
        result = run_connection_test(page, conn_id)
        assert result["status"] is True and result["message"].startswith(f"Connected to {url}"), result
        assert what in result["message"], result
    page.screenshot(path=str(shots / "12-sandbox-connections-tested.png"))


def test_mark_an_asset_lost_then_approve_the_lock_in_airflow(browser_sandbox, browser_page, fleet):
    """The workflow as a person meets it: the asset's status changed on the Oomnitza page, the approval in
    Airflow's UI, the lock in the Kandji emulator's request log."""
    from helpers.workflow_runs import LOCK, approval, device_of, finished, kandji_actions, new_run, runs_of
    from playwright.sync_api import expect

    sandbox = browser_sandbox
    page, shots = browser_page
    mac = fleet[-1]
    device = device_of(sandbox, mac["serial_number"])
    before = len(runs_of(sandbox, LOCK))
    page.goto(
        f"{sandbox.oomnitza}/assets?filter=serial_number eq '{mac['serial_number']}'",
        wait_until="networkidle",
    )
    page.get_by_label("status").select_option("Lost")
    page.get_by_role("button", name="Set status").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("cell", name="Lost", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "10-asset-marked-lost.png"))

    run = new_run(sandbox, LOCK, before)
    approval(sandbox, LOCK, run["dag_run_id"])
    page.goto(
        sandbox.base
        + f"/dags/{LOCK}/runs/{run['dag_run_id']}/tasks/per_device.run_action/mapped/0/required_actions",
        wait_until="networkidle",
    )
    page.get_by_text(f"Kandji Lock Device on {mac['serial_number']}").first.wait_for(timeout=ms(60))
    page.get_by_text(device["device_id"]).first.wait_for(timeout=ms(30))
    page.screenshot(path=str(shots / "11-approval-in-airflow.png"))
    assert kandji_actions(sandbox, device["device_id"]) == []
    page.get_by_role("button", name="Approve").click()
    assert finished(sandbox, LOCK, run["dag_run_id"])["state"] == "success"

    page.goto(f"{sandbox.kandji}/_emulator/requests", wait_until="networkidle")
    assert f"/devices/{device['device_id']}/action/lock" in page.content()
    page.screenshot(path=str(shots / "12-lock-in-kandji-request-log.png"))
    assert kandji_actions(sandbox, device["device_id"]) == ["lock"]


def test_a_safeguard_waits_under_required_actions_and_the_approval_flags(browser_sandbox, browser_page):
    """The mass-flag safeguard as a person meets it (tests/fixtures/integrations/kandji_devices_guarded.yaml,
    max_flagged 2, only the admin confirms): three Oomnitza assets whose devices left Kandji trip it; the
    run waits under Required Actions with the count and the records; Approve flags exactly those three."""
    from helpers.harness import days_ago
    from helpers.workflow_runs import approval, finished

    sandbox = browser_sandbox
    page, shots = browser_page
    guarded = "kandji_devices_guarded"
    gone = [
        {
            "serial_number": f"GONE-{n:04d}",
            "device_name": f"Left Kandji {n}",
            "kandji_device_id": f"0000000{n}-gone-from-kandji",
            "kandji_connector_sync_time": days_ago(3),
        }
        for n in range(1, 4)
    ]
    seeded = requests.post(f"{sandbox.oomnitza}/_emulator/records/assets", json=gone, timeout=30)
    seeded.raise_for_status()
    started = sandbox.api.post(
        f"{sandbox.base}/api/v2/dags/{guarded}/dagRuns",
        json={"logical_date": None, "conf": {"dry_run": False}},
        timeout=30,
    )
    assert started.status_code == 200, started.text
    run_id = started.json()["dag_run_id"]
    request = approval(sandbox, guarded, run_id, task=("flag_missing", -1))
    assert request["subject"] == "Kandji Devices (guarded): flag 3 devices gone from Kandji?"
    assert request["assigned_users"] == [{"id": "admin", "name": "admin"}]

    page.goto(
        sandbox.base + f"/dags/{guarded}/runs/{run_id}/tasks/flag_missing/required_actions",
        wait_until="networkidle",
    )
    page.get_by_text("flag 3 devices gone from Kandji?").first.wait_for(timeout=ms(60))
    page.get_by_text("GONE-0002").first.wait_for(timeout=ms(30))
    page.get_by_text("max_flagged 2").first.wait_for(timeout=ms(30))
    page.screenshot(path=str(shots / "13-safeguard-in-required-actions.png"))
    assets = requests.get(f"{sandbox.oomnitza}/_emulator/state", timeout=30).json()["records"]["assets"]
    assert not any(a.get("status") == "Not in Kandji" for a in assets.values())  # nothing before the answer
    page.get_by_role("button", name="Approve").click()

    assert finished(sandbox, guarded, run_id, timeout=180)["state"] == "success"
    summary = sandbox.get(
        f"dags/{guarded}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value", deserialize="true"
    )["value"]
    assert summary["flagged_as_missing"] == 3 and summary["safeguard_confirmed_by"] == "admin"
    assets = requests.get(f"{sandbox.oomnitza}/_emulator/state", timeout=30).json()["records"]["assets"]
    flagged = sorted(a["serial_number"] for a in assets.values() if a.get("status") == "Not in Kandji")
    assert flagged == ["GONE-0001", "GONE-0002", "GONE-0003"]
    page.goto(sandbox.base + f"/dags/{guarded}/runs/{run_id}", wait_until="networkidle")
    page.screenshot(path=str(shots / "14-safeguard-approved-run.png"))
