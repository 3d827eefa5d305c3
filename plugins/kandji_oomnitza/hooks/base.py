"""What the Kandji and Oomnitza hooks share: one session per hook, timeouts, retries, clear errors.

Built on the HTTP provider's ``HttpHook``: it reads the connection and builds the ``requests`` session
(``get_conn``), and sends through ``run_and_check``. The session is built once and reused, so every
call rides one keep-alive connection and the connection is looked up once per hook, not per request.

One classification of failures, used by both hooks and every operator:

- **permanent** (``PermanentApiError``, an ``AirflowFailException``): a 4xx other than 408/425/429, a
  redirect off the configured origin, a TLS failure, an invalid connection (``ConfigurationError``).
  Sending the same request again cannot help, so neither the hook nor Airflow retries: the task ends
  at once with a message naming the connection, the endpoint and the fix.
- **transient**: 429, 408, 5xx, connection errors, timeouts, bodies cut mid-stream or unreadable.
  The hook retries them (per ``RetryMode``), then Airflow's task retries take over.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import pydantic_core
import requests
import tenacity
import urllib3.exceptions
from airflow.providers.http.hooks.http import HttpHook

from kandji_oomnitza.common.redaction import redact, register_secret, shorten
from kandji_oomnitza.exceptions import ConfigurationError
from kandji_oomnitza.hooks.errors import (
    ApiError,
    CrossOriginRedirectError,
    MalformedResponseError,
    PermanentApiError,
    TransportError,
    api_error,
    error_message_from_body,
    is_json,
    json_of,
    retry_after_seconds,
)
from kandji_oomnitza.hooks.pagination import PageGuard, Paginator, UnexpectedPageError, paginate
from kandji_oomnitza.hooks.retry import RetryMode, caused_by, is_retryable

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_RETRY_SECONDS = 600.0  # a request's retries, waits included, never take longer than this
MAX_RETRY_WAIT_SECONDS = 120.0
MESSAGE_LIMIT = 500
MAX_RECORDS = 5_000_000  # a listing longer than this is a server paging forever, not a fleet
# The most a single answer may hold (a page of 300 devices with their details is about a megabyte): a
# larger one is refused naming the endpoint, never read whole. Connection extra "max_body_mb" changes it.
MAX_BODY_MB = 64
RATE_LIMIT_PATIENCE = 5
# The connection Test waits out one 429 (its Retry-After, at most this long) before trying once more: a
# person is waiting for the answer.
TEST_RATE_LIMIT_WAIT_SECONDS = 5.0
NOT_QUOTED = "(its own words are not shown: a connection test quotes no server)"
TRANSIENT_CLIENT_STATUSES = (408, 425, 429)  # request timeout, too early, too many requests
# Cloud metadata services, beyond the link-local range every address there is refused for: AWS's IPv6
# endpoint, Alibaba's; and the names Google's and others' answer to.
METADATA_ADDRESSES = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
METADATA_HOSTS = {"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


class RestApiHook(HttpHook):
    """Base for our API hooks. Subclasses set the credential header and the connection extras they own."""

    service_name = "API"
    # Connection extras this project reads; HttpHook would otherwise send each of them as a header.
    own_extra_keys: tuple[str, ...] = (
        "max_attempts",
        "backoff_seconds",
        "timeout",
        "max_retry_seconds",
        "max_body_mb",
    )

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
        self.calls = 0  # requests actually sent, retries included
        self.retries = 0
        self._count_lock = threading.Lock()  # worker threads may share one hook

    # -- connection ---------------------------------------------------------------------------
    @functools.cached_property
    def connection(self):
        return self.get_connection(self.http_conn_id)

    @property
    def extra(self) -> dict[str, Any]:
        return self.connection.extra_dejson

    def _config_error(self, field: str, problem: str, fix: str) -> ConfigurationError:
        return ConfigurationError(
            f"Connection '{self.http_conn_id}' ({self.service_name}): {field} {problem}. {fix}"
        )

    def url_from_host(self, fix: str, api_path: str) -> str:
        """The connection's ``host`` as a base URL: a scheme (https when none is given), a host and a port,
        and nothing else but the documented API path (``api_path``, a regex such as ``/api(/v1)?``),
        which is dropped. ``fix`` says what to use. Refused: a user name or password (the token belongs
        in the password field), any other path, a query or fragment (they would take over the path and
        query of every request). Where the address leads is checked once per session
        (``refuse_metadata_address``)."""
        raw = (self.connection.host or "").strip()
        host = raw if "://" in raw or not raw else f"{self.connection.schema or 'https'}://{raw}"
        parsed = urlsplit(host)
        if "@" in parsed.netloc:  # checked first, and never quoted: what precedes the @ may be a secret
            raise self._config_error(
                "host",
                "contains a user name or password (text before an '@')",
                "Remove them from the host: the API token goes in the connection's password field.",
            )
        if parsed.scheme not in ("http", "https") or not parsed.hostname or re.search(r"\s", host):
            raise self._config_error("host", f"is {shorten(raw, 80)!r}, not a URL", fix)
        path = parsed.path.rstrip("/")
        if "?" in host or "#" in host or ";" in path or (path and not re.fullmatch(api_path, path)):
            raise self._config_error(
                "host", f"is {shorten(raw, 80)!r}: give only the address (scheme, host and port)", fix
            )
        try:
            port = self.connection.port or parsed.port
        except ValueError:
            raise self._config_error(
                "host", f"is {shorten(raw, 80)!r}: its port is not a number", fix
            ) from None
        name = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return f"{parsed.scheme}://{name}" + (f":{port}" if port else "")

    def root_url(self) -> str:
        """The validated base URL every request goes to (the credential's only destination)."""
        raise NotImplementedError

    def refuse_metadata_address(self) -> None:
        """Refuse a base URL that leads to a cloud metadata service (where credentials of the machine itself
        are handed out, and no API of ours lives): by the name, and by every address the name resolves
        to, as the HTTP library will resolve it, so ``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``,
        ``169.254.169.254.``, ``::ffff:169.254.169.254`` and ``metadata.google.internal`` are all seen for
        what they are. A name that does not resolve is left to the request, which says so."""
        import socket

        root = urlsplit(self.root_url())
        host = (root.hostname or "").rstrip(".").lower()
        fix = "Use the API's own address; cloud metadata services hand out the machine's credentials."
        if host in METADATA_HOSTS:
            raise self._config_error("host", f"is {host}, a cloud metadata service", fix)
        try:
            resolved = {
                info[4][0] for info in socket.getaddrinfo(host, root.port or 443, proto=socket.IPPROTO_TCP)
            }
        except (OSError, UnicodeError):
            return
        for text in sorted(str(a) for a in resolved):
            address = ipaddress.ip_address(text.split("%", 1)[0])
            mapped = getattr(address, "ipv4_mapped", None) or address
            if mapped.is_link_local or mapped in METADATA_ADDRESSES:
                raise self._config_error(
                    "host",
                    f"leads to {mapped}, a link-local or cloud metadata address, where no {self.service_name} "
                    "API lives",
                    fix,
                )

    def url_from_endpoint(self, endpoint: str | None) -> str:
        return f"{self.root_url()}/{(endpoint or '').lstrip('/')}"

    def credential(self) -> str:
        token = self.connection.password
        if not token:
            raise self._config_error(
                "password", "is empty", f"Put the {self.service_name} API token in the connection's password."
            )
        register_secret(token)
        return token

    def apply_credentials(self, session: requests.Session, token: str) -> None:
        raise NotImplementedError

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """The stock HTTP session, minus Basic auth and our own extras, plus our credential header and
        a guard that stops any redirect off the configured origin before it is followed."""
        self.refuse_metadata_address()  # before any request, with or without the credential
        session = super().get_conn(headers, extra_options)
        # A login on the connection, user info in a URL or a ~/.netrc entry must never turn into Basic
        # auth: a no-op auth object stops requests from looking for any of them (proxies still apply).
        session.auth = _no_auth
        for key in self.own_extra_keys:
            session.headers.pop(key, None)
        self.apply_credentials(session, self.credential())
        session.headers.setdefault("Accept", "application/json")
        session.hooks["response"].append(self._refuse_cross_origin_redirect)
        return session

    def _refuse_cross_origin_redirect(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """A ``requests`` response hook: it sees every answer, redirects included, before ``requests``
        follows one, so a redirect that leaves the configured origin is stopped before anything is sent
        there. Same-origin redirects are followed: the credential stays on its origin."""
        if not response.is_redirect:
            return
        target = urljoin(response.url, response.headers.get("Location", ""))
        if origin(target) == origin(self.root_url()):
            return
        shown = urlsplit(target)
        raise CrossOriginRedirectError(
            f"{self.service_name} API {response.request.method} {urlsplit(response.url).path} answered "
            f"HTTP {response.status_code} redirecting to {shown.scheme}://{shown.netloc}{shown.path}, another "
            f"origin than {self.root_url()}. Not followed: the token and the payload stay on the configured "
            f"origin. Fix the host of connection '{self.http_conn_id}' (use the address the redirect names, "
            "if you trust it).",
            status=response.status_code,
            endpoint=f"{response.request.method} {urlsplit(response.url).path}",
        )

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
            raise self._config_error(
                f"extra '{name}'", f"is {shorten(value, 40)!r}", "Use a number."
            ) from None

    @property
    def max_attempts(self) -> int:
        return max(1, self._setting("max_attempts", self._max_attempts, DEFAULT_MAX_ATTEMPTS, int))

    @property
    def backoff_seconds(self) -> float:
        return self._setting("backoff_seconds", self._backoff_seconds, 1.0, float)

    @property
    def max_retry_seconds(self) -> float:
        return self._setting("max_retry_seconds", None, DEFAULT_MAX_RETRY_SECONDS, float)

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

        :param endpoint: the path under the base URL, e.g. ``api/v1/devices``
        :param retry: when a failed attempt may be sent again (actions: ``UNSENT_ONLY``)
        :param decode: turns the response into the result; a body it cannot read (``ValueError``)
            counts as a failed attempt, since a truncated page is worth fetching again
        :return: ``decode(response)``, or the response itself without ``decode``
        :raises PermanentApiError: at once, for an answer the same request would get again
        :raises ApiError: a transient failure that outlasted the retries
        """
        label = f"{method} {endpoint}"
        # Encoded once, for every attempt, by pydantic's JSON encoder (the session's headers say JSON): a
        # bulk upload of 100 records with their app lists is most of a load's work, and this is several
        # times faster than the standard library's.
        body = pydantic_core.to_json(json_body) if json_body is not None else None

        def send() -> Any:
            session = self.session
            prepared = session.prepare_request(
                requests.Request(method, self.url_from_endpoint(endpoint), params=params, data=body)
            )
            self.before_request()
            with self._count_lock:
                self.calls += 1
            try:
                # Streamed, then read whole here, up to the body limit: a body cut mid-stream fails here,
                # and one larger than any answer is refused before it is read.
                response = self.run_and_check(
                    session, prepared, {"check_response": False, "timeout": self.timeout, "stream": True}
                )
                self._read_body(response, label)
            except requests.RequestException as exc:
                raise self._transport_error(exc, label) from None
            self.after_response(response)
            if response.status_code >= 300:
                api_message = error_message_from_body(response)
                raise api_error(
                    self.describe_error(response.status_code, label, redact(api_message)),
                    status=response.status_code,
                    endpoint=label,
                    api_message=api_message,
                    retry_after=retry_after_seconds(response),
                    answer_was_json=is_json(response),
                )
            if decode is None:
                return response
            try:
                return decode(response)
            except ValueError as exc:
                raise MalformedResponseError(
                    f"{self.service_name} API {label} returned a body that could not be read ({shorten(exc, 120)}): "
                    f"{shorten(response.text, 120)!r}",
                    endpoint=label,
                ) from None

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: is_retryable(exc, retry)),
            stop=self._stop,
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(send)

    @property
    def max_body_bytes(self) -> int:
        return int(self._setting("max_body_mb", None, MAX_BODY_MB, float) * 1024 * 1024)

    def _read_body(self, response: requests.Response, label: str) -> None:
        """The whole body, at most ``max_body_bytes`` (decompressed): a larger answer is refused naming the
        endpoint, without reading it (a server sending hundreds of megabytes as one page would otherwise
        take the task's memory with it)."""
        limit = self.max_body_bytes
        chunks, size = [], 0
        for chunk in response.iter_content(1 << 20):
            size += len(chunk)
            if size > limit:
                response.close()
                raise PermanentApiError(
                    f"{self.service_name} API {label} answered with more than {limit // (1024 * 1024)} MB: far "
                    f"more than one answer holds, so it was not read. If it is real, raise the extra max_body_mb "
                    f"of connection '{self.http_conn_id}'.",
                    status=response.status_code,
                    endpoint=label,
                )
            chunks.append(chunk)
        response._content = b"".join(chunks)  # what requests itself keeps once a body is read

    def _transport_error(self, exc: requests.RequestException, label: str) -> ApiError | ConfigurationError:
        """Our own error for a failure below HTTP, redacted, classified from urllib3's exception types."""
        where = f"{self.service_name} API {label}"
        if isinstance(exc, requests.exceptions.SSLError):
            reason = re.search(r"\[SSL[^\]]*\][^'\"()]*", str(exc))
            said = f" ({reason[0].strip()})" if reason else ""
            return PermanentApiError(
                f"{where}: the TLS handshake with {self.root_url()} failed{said}. Check the host of "
                f"connection '{self.http_conn_id}' (https:// where the server speaks TLS) and the server's "
                "certificate.",
                endpoint=label,
            )
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return self._config_error("host", f"gives an invalid URL ({shorten(exc, 200)})", "Fix the host.")
        unsent = isinstance(exc, requests.ConnectTimeout) or caused_by(
            exc, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )
        what = {
            requests.exceptions.ChunkedEncodingError: "the answer was cut off mid-body",
            requests.exceptions.ContentDecodingError: "the answer could not be decoded",
            requests.exceptions.ReadTimeout: f"no answer within {self.timeout:g}s",
        }.get(type(exc), "could not connect" if unsent else "the connection failed")
        if caused_by(exc, (urllib3.exceptions.NameResolutionError,)):
            what = (
                f"the host {urlsplit(self.root_url()).hostname} does not resolve: check the host of connection "
                f"'{self.http_conn_id}'"
            )
        elif unsent and caused_by(exc, (ConnectionRefusedError,)):
            what = f"nothing answers at {self.root_url()} (connection refused): check the host and port"
        return TransportError(
            f"{where}: {what} ({type(exc).__name__}: {shorten(exc, 300)})",
            endpoint=label,
            certainly_unsent=unsent,
            plain=f"{where}: {what}.",
        )

    # -- the connection test (Admin → Connections → Test; `airflow connections test`) ------------------
    probe_endpoint = ""  # one cheap authenticated read, under the base URL
    probe_params: ClassVar[dict[str, Any]] = {}
    probe_success = ""
    probe_shape = "a JSON list"  # what the probe's answer is, from the real API

    def probe_answer_is_the_apis(self, body: Any) -> bool:
        return isinstance(body, list)

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated read against the configured origin only (no retries, no redirect
        elsewhere). Returns whether it worked and, either way, what it means: what to fix when it failed.
        It succeeds only on an answer shaped like the API's: a login page or any other server answering
        200 is not "a valid token". No page another server sent is ever quoted."""
        try:
            root = self.root_url()
            response = self._probe()
        except (ConfigurationError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status == 429:
                return False, self._rate_limited_message(exc)
            if isinstance(exc, ApiError) and exc.status is not None:
                # In our words only: the server may not be the API, and a person reads this answer (a
                # page saying "paste your token at ..." must never be passed on).
                described = self.describe_error(exc.status, exc.endpoint, exc.api_message)
                if exc.api_message:
                    described = described.replace(exc.api_message, NOT_QUOTED)
                exc = api_error(described, status=exc.status)
            return False, self._as_tested(exc.plain if isinstance(exc, TransportError) else str(exc))
        except Exception as exc:  # a test must answer, whatever went wrong
            return False, f"{self.service_name}: {shorten(exc, 300)}"
        try:
            shaped = self.probe_answer_is_the_apis(json.loads(response.text))
        except ValueError:
            shaped = False
        if not shaped:
            kind = "JSON of another shape" if is_json(response) else "an HTML or text page"
            return False, (
                f"{root} answered HTTP {response.status_code} with {kind}, where the {self.service_name} API "
                f"answers {self.probe_shape}: this address is not the {self.service_name} API. Check the host "
                "of this connection."
            )
        return True, f"Connected to {root}: {self.probe_success}"

    def _as_tested(self, message: str) -> str:
        """Airflow's Test button tests a copy under a made-up id (eight random letters and digits, as an
        environment variable of the API server) and never tells the hook the real one: there the message
        says "this connection"; `airflow connections test <id>` keeps the id."""
        conn_id = self.http_conn_id
        made_up = re.fullmatch(r"[A-Za-z0-9]{8}", conn_id) and f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ
        if not made_up:
            return message
        return message.replace(f"connection '{conn_id}'", "this connection").replace(
            f"'{conn_id}'", "this connection"
        )

    def _probe(self) -> requests.Response:
        """The Test's one read; after a 429, once more when its Retry-After (bounded) has passed."""
        try:
            return self.request("GET", self.probe_endpoint, params=self.probe_params, retry=RetryMode.NEVER)
        except ApiError as exc:
            if exc.status != 429:
                raise
            wait = min(exc.retry_after if exc.retry_after is not None else 1.0, TEST_RATE_LIMIT_WAIT_SECONDS)
            self.log.info("%s answered HTTP 429; trying once more in %.1fs", self.service_name, wait)
            time.sleep(max(0.0, wait))
            return self.request("GET", self.probe_endpoint, params=self.probe_params, retry=RetryMode.NEVER)

    def _rate_limited_message(self, exc: ApiError) -> str:
        asked = f"; it now asks for {exc.retry_after:g}s more" if exc.retry_after is not None else ""
        return (
            f"{self.service_name}: the credentials could not be checked because the API is rate-limiting "
            f"requests (HTTP 429, and again after waiting{asked}). The token was not rejected. Other tools "
            "using the same token share its limit: try Test again in a minute."
        )

    def _stop(self, retry_state: tenacity.RetryCallState) -> bool:
        """Give up after ``max_attempts``, or once the retries have taken ``max_retry_seconds`` (extra
        ``max_retry_seconds``, 600 by default): a server that answers 429 is pacing us, not failing, so
        rate-limited attempts get ``RATE_LIMIT_PATIENCE`` times as many, within the same time."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        rate_limited = isinstance(exc, ApiError) and exc.status == 429
        limit = self.max_attempts * (RATE_LIMIT_PATIENCE if rate_limited else 1)
        spent = retry_state.seconds_since_start or 0.0
        return retry_state.attempt_number >= limit or spent >= self.max_retry_seconds

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            wait = min(exc.retry_after, MAX_RETRY_WAIT_SECONDS)
        else:
            jitter = tenacity.wait_random_exponential(
                multiplier=self.backoff_seconds, max=MAX_RETRY_WAIT_SECONDS
            )
            wait = jitter(retry_state)
        left = self.max_retry_seconds - (retry_state.seconds_since_start or 0.0)
        return max(0.0, min(wait, left))

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

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", endpoint, params=params, decode=json_of)

    def pages(
        self,
        endpoint: str,
        paginator: Paginator,
        params: Mapping[str, Any] | None = None,
        prefetch: int = 1,
        guard: PageGuard | None = None,
    ) -> Iterator[list]:
        """The records of ``endpoint``, a page at a time, paged by ``paginator`` (``pagination.py``), with up
        to ``prefetch`` pages in flight where the paginator can guess ahead, and every page checked by
        ``guard`` (a listing that would never end stops; by default at ``MAX_RECORDS`` records)."""
        if prefetch > 1:
            self.session  # noqa: B018 - build the shared session before the threads use it
        guard = guard if guard is not None else PageGuard(max_records=MAX_RECORDS)
        try:
            yield from paginate(self.get_json, endpoint, paginator, dict(params or {}), prefetch, guard)
        except UnexpectedPageError as exc:
            raise MalformedResponseError(
                f"{self.service_name} API GET {endpoint} returned an unexpected page: {exc}",
                endpoint=f"GET {endpoint}",
            ) from None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
