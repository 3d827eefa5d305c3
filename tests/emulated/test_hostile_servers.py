"""Servers that never end a listing, or answer with more than any answer holds: every listing and every body
is bounded, and hitting a bound is one clear error naming the endpoint, never a hang or a task's memory
gone. The servers are made up here (``helpers.hostile.CaptureServer``), on loopback: no emulator of ours
would do this."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN
from helpers.hostile import CaptureServer

from kandji_oomnitza.hooks.errors import MalformedResponseError, PermanentApiError
from kandji_oomnitza.hooks.kandji import KandjiHook
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook


def query(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


@pytest.fixture
def server():
    started: list[CaptureServer] = []

    def start(answer) -> CaptureServer:
        started.append(CaptureServer(answer))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def kandji_at(airflow_connections, url: str, **extra) -> KandjiHook:
    airflow_connections(
        "kandji_default",
        host=url,
        password=KANDJI_TOKEN,
        extra={"max_attempts": 1, "backoff_seconds": 0, **extra},
    )
    return KandjiHook()


def oomnitza_at(airflow_connections, url: str) -> OomnitzaHook:
    airflow_connections(
        "oomnitza_default", host=url, password=OOMNITZA_TOKEN, extra={"max_attempts": 1, "backoff_seconds": 0}
    )
    return OomnitzaHook()


def test_an_oomnitza_that_ignores_skip_is_stopped_at_its_second_page(server, airflow_connections):
    same_page = json.dumps([{"equipment_id": f"e{i}", "status": "Lost"} for i in range(500)]).encode()
    hostile = server((200, "application/json", same_page))
    with pytest.raises(MalformedResponseError, match="sent again a page of 500 record") as raised:
        list(oomnitza_at(airflow_connections, hostile.url).iter_records("assets", page_size=500))
    assert "GET api/v3/assets" in str(raised.value)
    assert len(hostile.received) == 2


def test_a_listing_past_what_oomnitza_said_it_holds_stops(server, airflow_connections):
    def pages(path: str):
        skip = int(query(path).get("skip", 0))
        rows = [{"equipment_id": f"e{skip + i}"} for i in range(500)]
        return 200, "application/json", json.dumps(rows).encode(), {"X-Total-Count": "1000"}

    hostile = server(pages)
    with pytest.raises(MalformedResponseError, match="more than the 1000 the server said it holds"):
        list(oomnitza_at(airflow_connections, hostile.url).iter_records("assets", page_size=500))
    assert len(hostile.received) == 3


def test_a_kandji_that_makes_up_devices_without_end_is_stopped(server, airflow_connections, monkeypatch):
    monkeypatch.setattr("kandji_oomnitza.hooks.kandji.MAX_DEVICES", 3000)

    def endless(path: str):
        offset = int(query(path).get("offset", 0))
        devices = [{"device_id": f"d-{offset + i}", "serial_number": f"S{offset + i}"} for i in range(300)]
        return 200, "application/json", json.dumps(devices).encode()

    hostile = server(endless)
    with pytest.raises(MalformedResponseError, match="passed 3000 records"):
        list(kandji_at(airflow_connections, hostile.url).iter_device_pages())
    assert len(hostile.received) < 20


def test_kandji_user_cursors_without_end_are_stopped(server, airflow_connections, monkeypatch):
    monkeypatch.setattr("kandji_oomnitza.hooks.kandji.MAX_USERS", 1000)

    def endless(path: str):
        cursor = int(query(path).get("cursor", 0))
        body = {
            "results": [{"id": f"u-{cursor}-{i}"} for i in range(100)],
            "next": f"https://x/users?cursor={cursor + 1}",
        }
        return 200, "application/json", json.dumps(body).encode()

    hostile = server(endless)
    with pytest.raises(MalformedResponseError, match="passed 1000 records"):
        list(kandji_at(airflow_connections, hostile.url).iter_user_pages())


def test_prism_pages_without_a_cursor_that_never_end_are_stopped(server, airflow_connections):
    page = json.dumps({"data": [{"device_id": "d1", "name": f"App {i}"} for i in range(300)]}).encode()
    hostile = server((200, "application/json", page))  # no cursor: the older offset paging, offset ignored
    with pytest.raises(MalformedResponseError, match="sent again a page of 300 record"):
        list(kandji_at(airflow_connections, hostile.url).iter_prism_pages("apps"))
    assert len(hostile.received) == 2


def test_an_answer_larger_than_any_page_is_refused_unread(server, airflow_connections):
    huge = json.dumps([{"device_id": f"d{i}", "padding": "x" * 1000} for i in range(3000)]).encode()  # ~3 MB
    hostile = server((200, "application/json", huge))
    with pytest.raises(PermanentApiError) as raised:
        list(kandji_at(airflow_connections, hostile.url, max_body_mb=1).iter_device_pages())
    message = str(raised.value)
    assert "GET api/v1/devices answered with more than 1 MB" in message and "max_body_mb" in message
    assert len(hostile.received) == 1  # permanent: not asked again


def test_a_watcher_reading_an_oomnitza_that_pages_forever_fails_that_poll_and_changes_nothing(
    server, airflow_connections
):
    import asyncio

    from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger

    same_page = json.dumps(
        [{"equipment_id": f"e{i}", "status": "Lost", "serial_number": f"S{i}"} for i in range(500)]
    )
    hostile = server((200, "application/json", same_page.encode()))
    oomnitza_at(airflow_connections, hostile.url)
    watch = OomnitzaRecordsTrigger(
        workflow="kandji_workflow_x",
        trigger={"conditions": [{"field": "status", "equals": "Lost"}], "poll_interval": "5s"},
        serial_field="serial_number",
        record_fields=["status"],
    )

    async def first_snapshot():
        stream = type(watch).open_shared_stream(watch.serialize()[1])
        return await anext(stream)

    snapshot = asyncio.run(first_snapshot())
    assert snapshot["ok"] is False and "sent again a page of 500 record" in snapshot["error"]
    assert asyncio.run(watch._advance(snapshot)) == []
    assert len(hostile.received) == 2
