"""hooks/base.py: one classification of failures (permanent or transient), one retry rule, hosts without credentials."""

from __future__ import annotations

import pytest
import requests
import urllib3.exceptions
from airflow.sdk.exceptions import AirflowFailException
from helpers.harness import OOMNITZA_TOKEN

from kandji_oomnitza.exceptions import ConfigurationError
from kandji_oomnitza.hooks.errors import (
    ApiError,
    MalformedResponseError,
    PermanentApiError,
    TransportError,
    api_error,
    is_permanent_status,
)
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
from kandji_oomnitza.hooks.retry import RetryMode, is_retryable


# -- hosts with credentials ------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["https://user:secret@acme.oomnitza.com", "user:secret@acme.oomnitza.com"])
def test_a_host_with_credentials_in_it_is_refused_without_quoting_them(airflow_connections, host):
    airflow_connections("oomnitza_default", host=host, password=OOMNITZA_TOKEN)
    with pytest.raises(ConfigurationError) as excinfo:
        OomnitzaHook().root_url()
    assert "user name or password" in str(excinfo.value) and "secret" not in str(excinfo.value)


# -- retry classification ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (403, True), (404, True), (405, True), (422, True),
     (408, False), (425, False), (429, False), (500, False), (502, False), (503, False), (None, False)],
)  # fmt: skip
def test_which_statuses_are_permanent(status, permanent):
    assert is_permanent_status(status) is permanent
    error = api_error("x", status=status)
    assert isinstance(error, AirflowFailException) is permanent  # Airflow then never retries the task


CASES = {
    # error: (idempotent, unsent_only, never)
    "403": (PermanentApiError("x", status=403), (False, False, False)),
    "429": (ApiError("x", status=429), (True, True, False)),
    "503": (ApiError("x", status=503), (True, False, False)),
    "malformed body": (MalformedResponseError("x"), (True, False, False)),
    "connection refused": (TransportError("x", certainly_unsent=True), (True, True, False)),
    "reset or timeout": (TransportError("x", certainly_unsent=False), (True, False, False)),
    "not ours": (ValueError("x"), (False, False, False)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_hook_retries_by_one_rule(case):
    error, expected = CASES[case]
    modes = (RetryMode.IDEMPOTENT, RetryMode.UNSENT_ONLY, RetryMode.NEVER)
    assert tuple(is_retryable(error, mode) for mode in modes) == expected


def _wrapped(reason: BaseException) -> requests.ConnectionError:
    """What requests raises: its ConnectionError around urllib3's MaxRetryError around the cause."""
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", reason=reason))


@pytest.mark.parametrize(
    ("exc", "unsent"),
    [
        (_wrapped(urllib3.exceptions.NewConnectionError(None, "refused")), True),
        (_wrapped(urllib3.exceptions.NameResolutionError("h", None, OSError("no such host"))), True),
        (requests.ConnectTimeout("connect timed out"), True),
        (_wrapped(urllib3.exceptions.ProtocolError("Connection aborted.")), False),
        (requests.ReadTimeout("read timed out"), False),
        (requests.exceptions.ChunkedEncodingError("cut"), False),
    ],
    ids=["refused", "dns", "connect-timeout", "reset", "read-timeout", "cut-body"],
)
def test_never_sent_or_maybe_sent_is_decided_from_urllib3_types(airflow_connections, exc, unsent):
    airflow_connections("oomnitza_default", host="https://acme.oomnitza.com", password="t0ken")
    error = OomnitzaHook()._transport_error(exc, "POST api/v3/bulk")
    assert isinstance(error, TransportError) and error.certainly_unsent is unsent
    assert "POST api/v3/bulk" in str(error)


def test_a_tls_failure_is_permanent(airflow_connections):
    airflow_connections("oomnitza_default", host="https://acme.oomnitza.com", password="t0ken")
    error = OomnitzaHook()._transport_error(
        requests.exceptions.SSLError("certificate verify failed"), "GET x"
    )
    assert isinstance(error, PermanentApiError) and "TLS handshake" in str(error)
