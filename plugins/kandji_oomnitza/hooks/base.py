"""What the Kandji and Oomnitza hooks share: one session per hook, timeouts, retries, clear errors.

Built on the HTTP provider's ``HttpHook``: it reads the connection and builds the ``requests`` session
(``get_conn``), and sends through ``run_and_check``. The session is built once and reused, so every
call rides one keep-alive connection and the connection is looked up once per hook, not per request.
"""

from __future__ import annotations

import email.utils
import enum
import html
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowException

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 6
MAX_RETRY_WAIT_SECONDS = 120.0
MESSAGE_LIMIT = 500
RATE_LIMIT_PATIENCE = 5


class RetryMode(enum.Enum):
    """When a failed request may be sent again."""

    IDEMPOTENT = "idempotent"  # 429, 5xx, connection errors, timeouts
    UNSENT_ONLY = "unsent_only"  # only when the server certainly did not act: 429, connection refused
    NEVER = "never"


class ApiError(AirflowException):
    """An API answered with an error status, or could not be reached. Never carries a credential."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        endpoint: str = "",
        api_message: str = "",
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint
        self.api_message = api_message
        self.response = response

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait (``Retry-After``, else ``RateLimit-Reset``)."""
        if self.response is None:
            return None
        for header in ("Retry-After", "RateLimit-Reset"):
            value = self.response.headers.get(header)
            if value is None:
                continue
            try:
                return max(float(value), 0.0)
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(value) if header == "Retry-After" else None
                if parsed is not None:
                    return max(parsed.timestamp() - time.time(), 0.0)
        return None


class MalformedResponseError(ApiError):
    """A 2xx response whose body could not be decoded (a truncated or garbled page)."""


class ConfigurationError(AirflowException):
    """A connection or input is invalid; the message names it and says how to fix it."""


def error_message_from_body(response: requests.Response) -> str:
    """The API's own words, whatever the body's shape: JSON string, array, object, or HTML."""
    text = response.text or ""
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type or text.lstrip().lower().startswith(("<!doctype", "<html")):
        title = re.search(r"<(h1|title)[^>]*>(.*?)</\1>", text, re.IGNORECASE | re.DOTALL)
        body = title.group(2) if title else re.sub(r"<[^>]+>", " ", text)
        return " ".join(html.unescape(body).split())[:MESSAGE_LIMIT]
    try:
        payload = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:MESSAGE_LIMIT]
    return _flatten_message(payload)[:MESSAGE_LIMIT]


def _flatten_message(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, list):
        return "; ".join(_flatten_message(item) for item in payload)
    if isinstance(payload, dict):
        for key in ("detail", "message", "error", "errors", "error_msg"):
            if key in payload:
                return _flatten_message(payload[key])
        return "; ".join(f"{key}: {_flatten_message(value)}" for key, value in payload.items())
    return "" if payload is None else str(payload)


def _is_retryable(exc: BaseException, mode: RetryMode) -> bool:
    if mode is RetryMode.NEVER:
        return False
    if isinstance(exc, MalformedResponseError):
        return mode is RetryMode.IDEMPOTENT
    if isinstance(exc, ApiError) and exc.status is not None:
        if exc.status == 429:
            return True
        return mode is RetryMode.IDEMPOTENT and exc.status >= 500
    if isinstance(exc, requests.ConnectTimeout):
        return True  # the connection never opened, so nothing was sent
    if isinstance(exc, requests.ConnectionError):
        if mode is RetryMode.IDEMPOTENT:
            return True
        # A refused connection certainly sent nothing; a reset after connecting may have.
        return "refused" in str(exc).lower() or "NewConnectionError" in repr(exc)
    return mode is RetryMode.IDEMPOTENT and isinstance(exc, requests.Timeout)


class RestApiHook(HttpHook):
    """Base for our API hooks. Subclasses set the credential header and the connection extras they own."""

    service_name = "API"
    # Connection extras this project reads; HttpHook would otherwise send each of them as a header.
    own_extra_keys: tuple[str, ...] = ("max_attempts", "backoff_seconds")

    def __init__(
        self,
        conn_id: str,
        *,
        max_attempts: int | None = None,
        backoff_seconds: float | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(method="GET", http_conn_id=conn_id)
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._timeout = timeout
        self._session: requests.Session | None = None
        self._secret: str | None = None
        self.calls = 0  # requests actually sent, retries included
        self.retries = 0
        self._count_lock = threading.Lock()  # worker threads may share one hook

    # -- connection ---------------------------------------------------------------------------
    @property
    def connection(self):
        if not hasattr(self, "_connection"):
            self._connection = self.get_connection(self.http_conn_id)
        return self._connection

    @property
    def extra(self) -> dict[str, Any]:
        return self.connection.extra_dejson

    def _config_error(self, field: str, problem: str, fix: str) -> ConfigurationError:
        return ConfigurationError(
            f"Connection '{self.http_conn_id}' ({self.service_name}): {field} {problem}. {fix}"
        )

    def url_from_host(self, fix: str, api_path: str) -> str:
        """The connection's ``host`` as a base URL: https when no scheme is given, the port applied, and
        a pasted API path (``api_path``, a regex such as ``/api(/v1)?``) dropped. ``fix`` says what to use."""
        host = (self.connection.host or "").strip()
        if host and "://" not in host:
            host = f"{self.connection.schema or 'https'}://{host}"
        parsed = urlparse(host)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or re.search(r"\s", host):
            raise self._config_error("host", f"is {self.connection.host!r}, not a URL", fix)
        if self.connection.port:
            host = f"{parsed.scheme}://{parsed.hostname}:{self.connection.port}"
        return re.sub(f"{api_path}/?$", "", host.rstrip("/"))

    def credential(self) -> str:
        token = self.connection.password
        if not token:
            raise self._config_error(
                "password", "is empty", f"Put the {self.service_name} API token in the connection's password."
            )
        return token

    def apply_credentials(self, session: requests.Session, token: str) -> None:
        raise NotImplementedError

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """The stock HTTP session, minus Basic auth and our own extras, plus our credential header."""
        session = super().get_conn(headers, extra_options)
        session.auth = None  # a login on the connection must never turn into Basic auth
        for key in self.own_extra_keys:
            session.headers.pop(key, None)
        self._secret = self.credential()
        self.apply_credentials(session, self._secret)
        session.headers.setdefault("Accept", "application/json")
        return session

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = self.get_conn()
        return self._session

    def _setting(self, name: str, explicit: Any, default: Any, cast: Callable[[Any], Any]) -> Any:
        value = explicit if explicit is not None else self.extra.get(name, default)
        try:
            return cast(value)
        except (TypeError, ValueError):
            raise self._config_error(f"extra '{name}'", f"is {value!r}", "Use a number.") from None

    @property
    def max_attempts(self) -> int:
        return max(1, self._setting("max_attempts", self._max_attempts, DEFAULT_MAX_ATTEMPTS, int))

    @property
    def backoff_seconds(self) -> float:
        return self._setting("backoff_seconds", self._backoff_seconds, 1.0, float)

    @property
    def timeout(self) -> float:
        return self._setting("timeout", self._timeout, DEFAULT_TIMEOUT_SECONDS, float)

    # -- requests -----------------------------------------------------------------------------
    def before_request(self) -> None:
        """Hook for client-side throttling."""

    def after_response(self, response: requests.Response) -> None:
        """Hook to learn from response headers (rate-limit budgets)."""

    def describe_error(self, status: int, endpoint: str, api_message: str) -> str:
        return (
            f"{self.service_name} API {endpoint} failed with HTTP {status}: {api_message or '(no message)'}"
        )

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry: RetryMode = RetryMode.IDEMPOTENT,
        decode: Callable[[requests.Response], Any] | None = None,
    ) -> Any:
        """Send one request, with bounded retries per ``retry``.

        Returns the successful response, or ``decode(response)`` when given; a body that ``decode``
        cannot read counts as a failed attempt (a truncated page is worth fetching again).
        """
        label = f"{method} {endpoint}"

        def send() -> Any:
            session = self.session
            prepared = session.prepare_request(
                requests.Request(method, self.url_from_endpoint(endpoint), params=params, json=json_body)
            )
            self.before_request()
            with self._count_lock:
                self.calls += 1
            try:
                response = self.run_and_check(
                    session, prepared, {"check_response": False, "timeout": self.timeout}
                )
            except requests.RequestException as exc:
                raise self._redacted(exc, label) from None
            self.after_response(response)
            if response.status_code >= 400:
                api_message = self._redact(error_message_from_body(response))
                raise ApiError(
                    self.describe_error(response.status_code, label, api_message),
                    status=response.status_code,
                    endpoint=label,
                    api_message=api_message,
                    response=response,
                )
            if decode is None:
                return response
            try:
                return decode(response)
            except ValueError:
                snippet = " ".join(response.text[:120].split())
                raise MalformedResponseError(
                    f"{self.service_name} API {label} returned a body that could not be read: {snippet!r}",
                    status=None,
                    endpoint=label,
                    response=response,
                ) from None

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: _is_retryable(exc, retry)),
            stop=self._stop,
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(send)

    def _stop(self, retry_state: tenacity.RetryCallState) -> bool:
        """Give up after ``max_attempts``; a server that answers 429 is pacing us, not failing, so
        rate-limited attempts get ``RATE_LIMIT_PATIENCE`` times as many."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        rate_limited = isinstance(exc, ApiError) and exc.status == 429
        limit = self.max_attempts * (RATE_LIMIT_PATIENCE if rate_limited else 1)
        return retry_state.attempt_number >= limit

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_WAIT_SECONDS)
        jitter = tenacity.wait_random_exponential(multiplier=self.backoff_seconds, max=MAX_RETRY_WAIT_SECONDS)
        return jitter(retry_state)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        with self._count_lock:
            self.retries += 1
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self.log.warning(
            "%s request failed (attempt %d of %d): %s; retrying in %.1fs",
            self.service_name,
            retry_state.attempt_number,
            self.max_attempts,
            exc,
            retry_state.next_action.sleep if retry_state.next_action else 0.0,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _redacted(self, exc: requests.RequestException, label: str) -> requests.RequestException:
        """The same exception type, with a message that names the endpoint and cannot leak the token."""
        kind = type(exc)
        message = self._redact(f"{self.service_name} API {label}: {type(exc).__name__}: {exc}")
        try:
            return kind(message)
        except TypeError:
            return requests.ConnectionError(message)

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", endpoint, params=params, decode=lambda response: response.json())

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
