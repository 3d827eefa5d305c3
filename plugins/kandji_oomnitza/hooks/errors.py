"""How an API call failed, as one taxonomy both hooks and every operator use: ``ApiError`` (transient: the
hook retries it, then Airflow's task retries take over) and ``PermanentApiError`` (an
``AirflowFailException``: the same request would fail again, so nothing retries it), their kinds, and the
API's own words read out of any body. Every text here is redacted: an answer may echo a credential."""

from __future__ import annotations

import email.utils
import html
import json
import re
import time
from typing import Any

import pydantic_core
import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from kandji_oomnitza.common.redaction import redact

MESSAGE_LIMIT = 500
TRANSIENT_CLIENT_STATUSES = (408, 425, 429)  # request timeout, too early, too many requests


def is_permanent_status(status: int | None) -> bool:
    """An HTTP status the same request will get again: a 4xx other than 408, 425 and 429."""
    return status is not None and 400 <= status < 500 and status not in TRANSIENT_CLIENT_STATUSES


class ApiError(AirflowException):
    """An API answered with an error, or could not be reached. Its texts never carry a credential."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        endpoint: str = "",
        api_message: str = "",
        retry_after: float | None = None,
        answer_was_json: bool = True,
    ) -> None:
        super().__init__(redact(message))
        self.status = status
        self.endpoint = endpoint
        self.api_message = redact(api_message)
        self.retry_after = retry_after
        self.answer_was_json = answer_was_json  # False: an HTML or text page said it, not the API

    @property
    def permanent(self) -> bool:
        return isinstance(self, AirflowFailException)


class PermanentApiError(ApiError, AirflowFailException):
    """The same request would fail again (a 4xx, a refused redirect, a TLS failure): no retry at all."""


class TransportError(ApiError):
    """No complete answer: the connection failed, timed out, or the body was cut mid-stream.

    ``certainly_unsent`` is true only when the connection never opened, so the server cannot have
    acted on the request (decided from urllib3's exception types).
    """

    def __init__(
        self, message: str, *, endpoint: str = "", certainly_unsent: bool = False, plain: str = ""
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.certainly_unsent = certainly_unsent
        # The message without the HTTP library's own words (its "Max retries exceeded" counts urllib3's
        # attempts, not ours): what the connection Test says.
        self.plain = redact(plain or message)


class MalformedResponseError(ApiError):
    """A 2xx response whose body could not be decoded (a truncated or garbled page)."""


class CrossOriginRedirectError(PermanentApiError):
    """The server redirected to another origin; credentials and payloads stay on the configured one."""


def api_error(message: str, **kwargs: Any) -> ApiError:
    """The ApiError for an HTTP error answer, permanent or not by its status."""
    kind = PermanentApiError if is_permanent_status(kwargs.get("status")) else ApiError
    return kind(message, **kwargs)


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``, else ``RateLimit-Reset``)."""
    for header in ("Retry-After", "RateLimit-Reset"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(float(value), 0.0)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if header == "Retry-After" else None
            if parsed is not None:
                return max(parsed.timestamp() - time.time(), 0.0)
    return None


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


def json_of(response: requests.Response) -> Any:
    """A body as JSON, which is UTF-8 (RFC 8259), read strictly: a byte that is not UTF-8 makes the body
    unreadable (a ``ValueError`` saying where), never a U+FFFD quietly loaded into a record. Parsed by
    pydantic's parser, which is several times faster than the standard library's on a page of a fleet."""
    body = response.content
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 (byte {body[exc.start]:#04x} at position {exc.start})") from None
    return pydantic_core.from_json(body)


def is_json(response: requests.Response) -> bool:
    """Whether the body is JSON (whatever the Content-Type claims)."""
    try:
        json.loads(response.text)
    except ValueError:
        return False
    return True


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
