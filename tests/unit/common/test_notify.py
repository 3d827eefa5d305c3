"""common/notify.py: notification targets hold no credentials, messages carry no secrets, delivery never
fails a run and names a target without its URL's path or query."""

from __future__ import annotations

import logging

import pytest
from pydantic import TypeAdapter, ValidationError

from kandji_oomnitza.common.notify import Notice, Targets, check_target, deliver, target_label

ACCEPTED = [
    "it_alerts",
    "alerts.team-1",
    "json://hooks.example.com/kandji",
    "jsons://hooks.example.com:8443/path?format=markdown",
    "mailto://relay.example.com:25?from=airflow@example.com&to=it@example.com",
    "form://10.0.0.5/alerts",
]
REFUSED = [
    ("slack://T000/B000/XXXXXXXX", "put it in an Airflow connection of type apprise"),
    ("msteams://token@team", "put it in an Airflow connection of type apprise"),
    ("json://user:secret@hooks.example.com/x", "holds credentials"),
    ("mailtos://me:pw@smtp.example.com", "holds credentials"),
    ("json://hooks.example.com/x?token=abc", "holds credentials"),
    ("json://hooks.example.com/x?apiKey=abc", "holds credentials"),
    ("json:///only-a-path", "without a host"),
    ("it alerts", "neither an Airflow connection id"),
    ("", "neither an Airflow connection id"),
    ("https://hooks.example.com/x", "https:// URL carries the service's credentials"),
]


@pytest.mark.parametrize("target", ACCEPTED)
def test_connection_ids_and_credential_free_urls_are_targets(target):
    assert check_target(target) == target


@pytest.mark.parametrize(("target", "expected"), REFUSED, ids=[r[0] or "empty" for r in REFUSED])
def test_targets_with_credentials_or_of_another_kind_are_refused_with_the_fix(target, expected):
    with pytest.raises(ValueError, match=expected.replace("?", r"\?").replace("+", r"\+")) as caught:
        check_target(target)
    assert not any(echo in str(caught.value) for echo in ("secret@", ":pw@", "=abc", "XXXXXXXX"))


def test_a_target_list_is_never_empty():
    with pytest.raises(ValidationError, match="at least 1 item"):
        TypeAdapter(Targets).validate_python([])


def test_a_message_body_is_redacted_and_short():
    notice = Notice(
        title="t",
        sentence="Kandji answered 401 for Authorization: Bearer abcdef0123456789abcdef0123456789",
        details=["x" * 5000],
    )
    assert "abcdef0123456789" not in notice.body
    assert len(notice.body) <= 1500


def test_logs_name_a_url_target_by_scheme_and_host_only():
    assert target_label("json://hooks.example.com/secret-path?x=1") == "json://hooks.example.com"
    assert target_label("it_alerts") == "connection 'it_alerts'"


def test_an_unreachable_target_is_logged_and_skipped_never_raised(caplog):
    caplog.set_level(logging.INFO)
    notice = Notice(title="sync failed", sentence="it failed")
    # Port 9 on loopback: nothing listens there, so the webhook is refused at once.
    missed = deliver(["json://127.0.0.1:9/hook-path", "no_such_connection_id"], notice)
    assert missed == ["json://127.0.0.1:9/hook-path", "no_such_connection_id"]
    assert "Could not notify json://127.0.0.1 (sync failed)" in caplog.text
    assert "Could not notify connection 'no_such_connection_id'" in caplog.text
    assert "hook-path" not in caplog.text
