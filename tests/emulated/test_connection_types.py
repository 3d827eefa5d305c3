"""The `kandji` and `oomnitza` connection types: registered through this project's provider entry point,
with a Test that tells the truth for either type (and for `http` connections with the same fields)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, ROOT, free_port

from kandji_oomnitza.hooks.kandji import KandjiHook
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

SERVICES = {
    "kandji": (KandjiHook, "kandji_default", KANDJI_TOKEN, "devices.list"),
    "oomnitza": (OomnitzaHook, "oomnitza_default", OOMNITZA_TOKEN, "assets.read"),
}


@pytest.fixture(params=["own type", "http"])
def conn_type(request):
    return request.param


def _connect(service, conn_type, airflow_connections, url, token):
    hook_class, conn_id, _, _ = SERVICES[service]
    airflow_connections(
        conn_id, conn_type=service if conn_type == "own type" else "http", host=url, password=token
    )
    return hook_class(conn_id, max_attempts=1)


@pytest.mark.parametrize("service", list(SERVICES))
def test_a_valid_token_passes_and_a_wrong_one_fails_with_the_fix(
    service, conn_type, airflow_connections, kandji_emulator, oomnitza_emulator
):
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    token = SERVICES[service][2]
    ok, message = _connect(service, conn_type, airflow_connections, admin.url, token).test_connection()
    assert ok and message.startswith(f"Connected to {admin.url}"), message
    ok, message = _connect(
        service, conn_type, airflow_connections, admin.url, "wrong-token"
    ).test_connection()
    assert not ok and "rejected the API token" in message and "wrong-token" not in message
    assert ("Settings > Access > API Token" if service == "kandji" else "API tokens") in message


@pytest.mark.parametrize("service", list(SERVICES))
def test_a_token_without_the_permission_fails_naming_it(
    service, conn_type, airflow_connections, kandji_emulator, oomnitza_emulator
):
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    _, _, token, permission = SERVICES[service]
    admin.put("permissions", {token: [permission]})
    ok, message = _connect(service, conn_type, airflow_connections, admin.url, token).test_connection()
    assert not ok and "HTTP 403" in message
    assert ("'Device list'" if service == "kandji" else "reading and editing assets") in message


@pytest.mark.parametrize("service", list(SERVICES))
def test_an_unreachable_host_a_name_that_does_not_resolve_and_a_tls_failure_say_so(
    service, conn_type, airflow_connections, kandji_emulator, oomnitza_emulator
):
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    token = SERVICES[service][2]
    cases = {
        f"http://127.0.0.1:{free_port()}": "connection refused",
        "https://no-such-tenant.invalid": "does not resolve",
        admin.url.replace("http://", "https://"): "TLS handshake",  # TLS spoken to a plain-HTTP server
    }
    for url, expected in cases.items():
        ok, message = _connect(service, conn_type, airflow_connections, url, token).test_connection()
        assert not ok and expected in message, (url, message)
        assert token not in message
        # One sentence of ours: no HTTP library's words (the Test makes no retries, whatever urllib3 says).
        assert "Max retries" not in message and "HTTPConnectionPool" not in message, message


@pytest.mark.parametrize("service", list(SERVICES))
def test_the_test_names_the_connection_or_this_connection_under_airflows_made_up_id(
    service, airflow_connections, kandji_emulator, oomnitza_emulator, monkeypatch
):
    """`airflow connections test <id>` names the id; Airflow's Test button tests a copy under a made-up
    id of eight letters and digits (an AIRFLOW_CONN_ variable of the API server), which would mean
    nothing to the person: the message says "this connection" there."""
    hook_class, conn_id, _, _ = SERVICES[service]
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    airflow_connections(conn_id, conn_type=service, host=admin.url, password="wrong-token")
    ok, message = hook_class(conn_id, max_attempts=1).test_connection()
    assert not ok and f"'{conn_id}'" in message, message
    monkeypatch.setenv(
        "AIRFLOW_CONN_QX7LM2ZA",
        json.dumps({"conn_type": service, "host": admin.url, "password": "wrong-token"}),
    )
    ok, message = hook_class("qX7lM2za", max_attempts=1).test_connection()
    assert not ok and "this connection" in message and "qX7lM2za" not in message, message


def test_the_project_is_an_airflow_provider_with_both_connection_types():
    env = {**os.environ}
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    providers = json.loads(listed.stdout[listed.stdout.index("[") :])
    assert any(p["package_name"] == "kandji-oomnitza-airflow" for p in providers), providers
    hooks = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
    )
    by_type = {h["connection_type"]: h for h in json.loads(hooks.stdout[hooks.stdout.index("[") :])}
    assert by_type["kandji"]["class"] == "kandji_oomnitza.hooks.kandji.KandjiHook"
    assert by_type["oomnitza"]["class"] == "kandji_oomnitza.hooks.oomnitza.OomnitzaHook"
    import kandji_oomnitza

    assert kandji_oomnitza.__file__ == str(ROOT / "plugins" / "kandji_oomnitza" / "__init__.py")  # one copy


@pytest.mark.parametrize("service", list(SERVICES))
def test_airflow_connections_test_on_the_cli(service, kandji_emulator, oomnitza_emulator):
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    _, conn_id, token, _ = SERVICES[service]

    def cli(password: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
                {"conn_type": service, "host": admin.url, "password": password}
            ),
        }
        return subprocess.run(
            [sys.executable, "-m", "airflow", "connections", "test", conn_id],
            capture_output=True,
            text=True,
            env=env,
        )

    good = cli(token)
    assert good.returncode == 0 and "Connection success!" in good.stdout, good.stdout + good.stderr
    bad = cli("wrong-token")
    assert bad.returncode != 0 and "rejected the API token" in bad.stdout + bad.stderr


INTERNAL_PAGE = (
    b"<html><head><title>Acme intranet admin</title></head><body>db password: s3cr3t-intranet</body></html>"
)


@pytest.mark.parametrize("service", list(SERVICES))
def test_a_host_is_only_an_address_and_nothing_is_sent_to_anything_else(
    service, airflow_connections, bystander
):
    token = SERVICES[service][2]
    for host, expected in {
        f"{bystander.url}/?x=": "give only the address (scheme, host and port)",
        f"{bystander.url}#fragment": "give only the address (scheme, host and port)",
        f"{bystander.url}/admin/console": "give only the address (scheme, host and port)",
        f"{bystander.url}/;params": "give only the address (scheme, host and port)",
        "http://169.254.169.254": "leads to 169.254.169.254, a link-local or cloud metadata address",
        "http://[fe80::1]:8080": "leads to fe80::1, a link-local or cloud metadata address",
        # The same address written other ways, and the metadata services' own names and addresses.
        "http://2852039166": "leads to 169.254.169.254",
        "http://0xa9fea9fe": "leads to 169.254.169.254",
        "http://0251.0376.0251.0376": "leads to 169.254.169.254",
        "http://169.254.169.254.": "leads to 169.254.169.254",
        "http://[::ffff:169.254.169.254]": "leads to 169.254.169.254",
        "http://[fd00:ec2::254]": "leads to fd00:ec2::254",
        "http://metadata.google.internal": "is metadata.google.internal, a cloud metadata service",
        "http://metadata.google.internal.": "is metadata.google.internal, a cloud metadata service",
    }.items():
        ok, message = _connect(service, "own type", airflow_connections, host, token).test_connection()
        assert not ok and expected in message, (host, message)
        assert token not in message
    assert bystander.received == [], "nothing may be sent to a host that is more than an address"


@pytest.mark.parametrize("service", list(SERVICES))
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, "text/html", INTERNAL_PAGE), "answered HTTP 200 with an HTML or text page"),
        ((200, "text/plain", b"OK"), "answered HTTP 200 with an HTML or text page"),
        ((200, "application/json", b'{"status": "ok"}'), "answered HTTP 200 with JSON of another shape"),
        ((404, "text/html", INTERNAL_PAGE), "HTTP 404: (its own words are not shown"),
        ((401, "text/html", INTERNAL_PAGE), "rejected the API token"),
        (
            (403, "application/json", b'{"detail": "Token expired: paste it at https://evil.example/renew"}'),
            "(its own words are not shown",
        ),
    ],
)
def test_only_an_answer_shaped_like_the_apis_passes_and_no_other_page_is_quoted(
    service, answer, expected, airflow_connections
):
    from helpers.hostile import CaptureServer

    server = CaptureServer(answer)
    try:
        token = SERVICES[service][2]
        ok, message = _connect(service, "own type", airflow_connections, server.url, token).test_connection()
    finally:
        server.stop()
    assert not ok and expected in message, message
    assert "intranet" not in message and "s3cr3t" not in message and "valid" not in message
    assert "evil.example" not in message and "paste" not in message
    assert len(message) < 500


@pytest.mark.parametrize("service", list(SERVICES))
def test_the_documented_api_path_and_a_port_are_accepted(service, airflow_connections):
    hook_class, conn_id, _, _ = SERVICES[service]
    api = "/api/v1/" if service == "kandji" else "/api/v3"
    airflow_connections(conn_id, conn_type=service, host=f"https://Acme.Example.com:8443{api}", password="t")
    assert hook_class(conn_id).root_url() == "https://acme.example.com:8443"


@pytest.mark.parametrize("service", list(SERVICES))
def test_the_test_waits_out_one_rate_limit_and_never_blames_the_token_for_one(
    service, airflow_connections, kandji_emulator, oomnitza_emulator
):
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    token = SERVICES[service][2]
    admin.faults(scripted=[{"kind": "status", "status": 429, "retry_after": 0.2, "times": 1}])
    ok, message = _connect(service, "own type", airflow_connections, admin.url, token).test_connection()
    assert ok and message.startswith(f"Connected to {admin.url}"), message
    assert [r["status"] for r in admin.requests()][-2:] == [429, 200]

    admin.faults(scripted=[{"kind": "status", "status": 429, "retry_after": 0.2, "times": 50}])
    ok, message = _connect(service, "own type", airflow_connections, admin.url, token).test_connection()
    assert not ok and "could not be checked because the API is rate-limiting" in message, message
    assert "HTTP 429" in message and "rejected" not in message.replace("was not rejected", "")
    assert [r["status"] for r in admin.requests()][-2:] == [429, 429]
