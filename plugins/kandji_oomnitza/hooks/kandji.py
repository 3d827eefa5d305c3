"""The Kandji (Iru Endpoint Management) API hook, per Kandji's API documentation (api-docs.kandji.io)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

import requests

from kandji_oomnitza.common.kandji_values import to_int, valid_id
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.hooks.base import RestApiHook
from kandji_oomnitza.hooks.errors import ApiError, MalformedResponseError, PermanentApiError, json_of
from kandji_oomnitza.hooks.pagination import (
    ListingShifted,
    NextLinkCursorPaginator,
    OffsetArrayPaginator,
    PageGuard,
    PrismCursorPaginator,
)
from kandji_oomnitza.hooks.ratelimit import RateLimiter
from kandji_oomnitza.hooks.retry import RetryMode

if TYPE_CHECKING:
    pass

SUBDOMAIN_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
REGION_HOSTS = {"us": "https://{sub}.api.kandji.io", "eu": "https://{sub}.api.eu.kandji.io"}
API = "api/v1"
MAX_PAGE = 300  # the most records Kandji returns in one page of /devices or a Prism category
# Device pages in flight at once: a page costs Kandji's latency more than it costs either side's CPU, and the
# listing is on the critical path of every assets run (100,000 devices: 334 pages). The rate limiter paces them.
DEVICE_PAGES_IN_FLIGHT = 4
# Listings longer than these are a server paging forever (or fabricating records), not a tenant: they stop.
MAX_DEVICES = 1_000_000
MAX_USERS = 1_000_000
MAX_PRISM_ROWS = 100_000_000  # a million devices with a hundred apps each
MAX_EXPORT_GB = 40  # a Prism export file (spooled to disk): 100,000 devices' apps are about 2 GB
EXPORT_PENDING = (None, "pending", "processing", "in_progress", "running")
# The permission a Kandji API token needs for each endpoint (Settings > Access > API Token), as the
# token form names them (INFERRED from third-party guides: "Device list", "Device details", ...).
PERMISSIONS = (
    (r"/devices/[^/]+/action/(\w+)$", "the device action '{0}'"),
    (r"/devices/[^/]+/details$", "Device details"),
    (r"/devices/[^/]+/apps$", "Application list"),
    (r"/devices/[^/]+/commands$", "Device commands"),
    (r"/devices/[^/]+$", "Device information"),
    (r"/devices$", "Device list"),
    (r"/prism/", "Prism (Visibility)"),
    (r"/users", "User list"),
)


class DeviceNotFoundError(PermanentApiError):
    """No Kandji device has exactly this serial number."""


class AmbiguousDeviceError(PermanentApiError):
    """More than one Kandji device has exactly this serial number."""


class InvalidIdError(PermanentApiError):
    """A Kandji id that cannot go into a URL path (callers check ``valid_id`` first)."""


class PrismExportError(ApiError):
    """The asynchronous Prism export failed, timed out, or produced a CSV we cannot use (incomplete)."""


class PrismCount(NamedTuple):
    rows: int
    approximate: bool


def normalise_column(name: str) -> str:
    """'Serial Number' / 'serial_number' / ' Device ID ' → 'serial_number' / 'device_id'."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def permission_for(endpoint: str) -> str:
    """The token permission an endpoint needs, in the words of Kandji's token form."""
    path = endpoint.split(" ", 1)[-1].split("?", 1)[0]
    for pattern, name in PERMISSIONS:
        if match := re.search(pattern, path):
            return name.format(*match.groups())
    return "this endpoint"


class KandjiHook(RestApiHook):
    """Talks to one Kandji tenant with the token from an Airflow connection (default ``kandji_default``).

    The token goes only to the tenant's API base URL, as ``Authorization: Bearer``; never Basic auth,
    even if the connection has a login; never to the host of a ``next`` link or a signed export URL;
    never to another origin through a redirect.
    """

    conn_name_attr = "kandji_conn_id"
    default_conn_name = "kandji_default"
    conn_type = "kandji"  # connections of type http work the same way
    hook_name = "Kandji"
    service_name = "Kandji"
    probe_endpoint = f"{API}/devices"
    probe_params: ClassVar[dict[str, Any]] = {"limit": 1}
    probe_success = "the API token is valid and may list devices."
    probe_shape = "a JSON list of devices"
    own_extra_keys = (
        *RestApiHook.own_extra_keys,
        "subdomain",
        "region",
        "requests_per_hour",
        "requests_per_second",
        "max_export_gb",
    )

    def __init__(self, kandji_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(kandji_conn_id, **kwargs)
        self.kandji_conn_id = kandji_conn_id
        self._limiter: RateLimiter | None = None
        self.rewalks = 0
        # X-Total-Count of the last device listing page: undocumented (seen in recorded traffic), so a
        # sanity check on a listing's completeness when present, never relied on when absent.
        self.device_total: int | None = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def api_base_url(self) -> str:
        """The tenant's API URL from ``host``, or from extra ``subdomain`` + ``region``; validated."""
        if (self.connection.host or "").strip():
            return self.url_from_host(
                "Use your tenant's API URL, e.g. https://acme.api.kandji.io.",
                api_path=r"/api(/v1)?",
            )
        subdomain = str(self.extra.get("subdomain", "")).strip()
        region = str(self.extra.get("region", "us")).strip().lower()
        if not subdomain:
            raise self._config_error(
                "host",
                "is empty and extra has no 'subdomain'",
                "Set host to your API URL (https://acme.api.kandji.io) or extra "
                '{"subdomain": "acme", "region": "us"}.',
            )
        if not SUBDOMAIN_PATTERN.match(subdomain):
            raise self._config_error(
                "extra 'subdomain'",
                f"is {shorten(subdomain, 80)!r}",
                "Use only the first label of your API URL: letters, digits and hyphens (acme in acme.api.kandji.io).",
            )
        if region not in REGION_HOSTS:
            raise self._config_error(
                "extra 'region'",
                f"is {shorten(region, 20)!r}",
                'Use "us" or "eu" (the region in your API URL).',
            )
        return REGION_HOSTS[region].format(sub=subdomain)

    def root_url(self) -> str:
        return self.api_base_url

    def apply_credentials(self, session: requests.Session, token: str) -> None:
        session.headers["Authorization"] = f"Bearer {token}"
        session.headers["Content-Type"] = "application/json;charset=utf-8"

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._limiter = RateLimiter(
                per_second=self._setting("requests_per_second", None, 50, float),
                per_hour=self._setting("requests_per_hour", None, 10_000, int),
            )
        return self._limiter

    def before_request(self) -> None:
        self.limiter.acquire()

    def after_response(self, response: requests.Response) -> None:
        self.limiter.observe(response.headers)
        if urlsplit(response.url).path.rstrip("/").endswith(f"{API}/devices"):
            self.device_total = to_int(response.headers.get("X-Total-Count"), self.device_total)

    def describe_error(self, status: int, endpoint: str, api_message: str) -> str:
        conn = f"connection '{self.kandji_conn_id}'"
        if status == 401:
            return (
                f"Kandji rejected the API token of {conn} (HTTP 401 on {endpoint}): it is wrong, revoked or "
                "expired. Create a token in Kandji (Settings > Access > API Token) and put it in the "
                "connection's password."
            )
        if status == 403:
            return (
                f"The Kandji API token of {conn} lacks the permission {permission_for(endpoint)!r} needed for "
                f"{endpoint} (HTTP 403: {api_message}). Tick it in the token's permissions in Kandji "
                "(Settings > Access > API Token)."
            )
        if status == 404 and "no Route matched" in api_message:
            return (
                f"Kandji has no endpoint {endpoint} at {self.api_base_url} (HTTP 404: {api_message}). Check the "
                f"host of {conn}: it should be your tenant's API URL, e.g. https://acme.api.kandji.io."
            )
        return super().describe_error(status, endpoint, api_message)

    # -- listings -----------------------------------------------------------------------------
    def iter_device_pages(
        self,
        *,
        page_size: int = 300,
        ordering: str = "device_id",
        max_walks: int = 3,
        prefetch: int = DEVICE_PAGES_IN_FLIGHT,
        **filters: Any,
    ) -> Iterator[list[dict[str, Any]]]:
        """Device records page by page, in a stable order, each device once.

        Offset paging over a fleet that changes mid-walk can skip a device (one removed before the
        current offset shifts the rest back) or repeat one (one inserted shifts them forward). Pages
        overlap by one record to notice such a shift (``OffsetArrayPaginator``); then the list is
        walked again, yielding only devices not yet seen, at most ``max_walks`` times in all. A record
        without a device id cannot be recognised on a second walk; it is yielded as it comes (the
        transform rejects it, with its reason). Up to ``prefetch`` pages are requested at once (the
        pages after a full page are at known offsets); each is checked in order as if read one by one.
        """
        seen: set[str] = set()
        params = {"ordering": ordering, **{k: v for k, v in filters.items() if v is not None}}
        for walk in range(1, max_walks + 1):
            try:
                guard = PageGuard(
                    max_records=MAX_DEVICES, record_key=_device_key, total=lambda: self.device_total
                )
                for page in self.pages(
                    f"{API}/devices",
                    OffsetArrayPaginator(min(page_size, MAX_PAGE), key="device_id"),
                    params,
                    prefetch=prefetch,
                    guard=guard,
                ):
                    fresh = [d for d in page if _id_of(d) is None or _id_of(d) not in seen]
                    seen.update(i for i in map(_id_of, fresh) if i is not None)
                    if fresh:
                        yield fresh
                return
            except ListingShifted as exc:
                if walk == max_walks:
                    raise ApiError(
                        f"Kandji's device list kept changing during {max_walks} walks ({exc}); run again later.",
                        endpoint=f"GET {API}/devices",
                    ) from None
                self.log.warning("Kandji's device list changed during the walk (%s); walking it again", exc)
                self.rewalks += 1

    def iter_prism_pages(
        self,
        category: str,
        *,
        device_families: list[str] | None = None,
        filter_json: str | None = None,
        page_size: int = 300,
        expected: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """A Prism category's rows, page by page, following its cursor.

        :param category: ``apps``, ``device_information``, ... (Kandji's Prism categories)
        :param device_families: only these families (``Mac``, ``iPhone``, ``iPad``, ``AppleTV``)
        :param filter_json: Prism's own filter, as JSON text
        :param expected: how many rows ``/prism/count`` said the category holds (a listing far past it stops)
        """
        params: dict[str, Any] = {}
        if device_families:
            params["device_families"] = ",".join(device_families)
        if filter_json:
            params["filter"] = filter_json
        yield from self.pages(
            f"{API}/prism/{category}",
            PrismCursorPaginator(min(page_size, MAX_PAGE)),
            params,
            guard=PageGuard(max_records=MAX_PRISM_ROWS, total=lambda: expected),
        )

    def iter_user_pages(self, **filters: Any) -> Iterator[list[dict[str, Any]]]:
        """Kandji's users page by page (``filters``: ``archived``, ``integration_id``, ``email``, ...)."""
        params = {k: v for k, v in filters.items() if v is not None}
        guard = PageGuard(
            max_records=MAX_USERS, record_key=lambda u: u.get("id") if isinstance(u, dict) else repr(u)
        )
        yield from self.pages(f"{API}/users", NextLinkCursorPaginator(), params, guard=guard)

    # -- single reads -------------------------------------------------------------------------
    def get_device_details(self, device_id: str) -> dict[str, Any]:
        """The device's ``/details`` document (hardware, MDM, agent, network, ... as Kandji sends them)."""
        return self.request(
            "GET", f"{API}/devices/{_path_id(device_id)}/details", decode=lambda r: dict_body(json_of(r))
        )

    def get_device_apps(self, device_id: str) -> list[dict[str, Any]]:
        """Installed apps of one device (no paging parameters exist on this endpoint)."""
        return self.request(
            "GET", f"{API}/devices/{_path_id(device_id)}/apps", decode=lambda r: _list_in(json_of(r), "apps")
        )

    def get_device_commands(self, device_id: str, limit: int = 300) -> list[dict[str, Any]]:
        """The device's MDM commands, newest first (``command_type``, ``status`` 1-5, dates)."""
        return self.request(
            "GET",
            f"{API}/devices/{_path_id(device_id)}/commands",
            params={"limit": limit},
            decode=lambda r: _list_in(dict_body(json_of(r)).get("commands"), "results"),
        )

    def prism_count(self, category: str) -> PrismCount:
        """How many rows a Prism category holds (``approximate`` when Kandji says it estimated)."""
        body = self.get_json(f"{API}/prism/count", {"category": category})
        try:
            return PrismCount(int(body["count"]), bool(body.get("approximate")))
        except (TypeError, KeyError, ValueError):
            raise MalformedResponseError(
                f"Kandji API GET {API}/prism/count returned no count: {shorten(body, 120)!r}",
                endpoint=f"GET {API}/prism/count",
            ) from None

    def find_device_by_serial(self, serial_number: str) -> dict[str, Any]:
        """The one device whose serial number equals ``serial_number`` (Kandji's filter matches substrings)."""
        wanted = serial_number.strip().upper()
        candidates = [d for page in self.iter_device_pages(serial_number=wanted, prefetch=1) for d in page]
        exact = [d for d in candidates if str(d.get("serial_number", "")).strip().upper() == wanted]
        if not exact:
            similar = ", ".join(sorted(str(d.get("serial_number", "?")) for d in candidates)[:5])
            hint = ""
            if candidates:
                which = (
                    "device has a serial number" if len(candidates) == 1 else "devices have serial numbers"
                )
                hint = f" ({len(candidates)} {which} containing it: {similar})"
            raise DeviceNotFoundError(
                f"No Kandji device has serial number {wanted!r}{hint}: check the serial number and that the "
                "device is enrolled in this tenant.",
                status=404,
                endpoint="GET devices?serial_number",
            )
        if len(exact) > 1:
            ids = ", ".join(str(d.get("device_id", "?")) for d in exact)
            raise AmbiguousDeviceError(
                f"{len(exact)} Kandji devices have serial number {wanted!r} (device ids {ids}); "
                "remove the stale record in Kandji, then run again.",
                endpoint="GET devices?serial_number",
            )
        return exact[0]

    # -- Prism export -------------------------------------------------------------------------
    def device_action(
        self, device_id: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Queue one MDM command. Sent at most once: an action is retried only when Kandji certainly did
        not receive it (429, connection refused), never after a timeout or a 5xx.

        :param action: Kandji's action name in the URL (``lock``, ``restart``, ``setname``, ...)
        :param body: the action's PascalCase inputs, if it takes any
        :return: the decoded body (``{}`` for Kandji's usual empty 200; ``{"PIN": ...}`` for a Mac lock)
        """
        if not re.fullmatch(r"[a-z]+", action):
            raise ValueError(f"not a Kandji action name: {action!r}")
        response = self.request(
            "POST",
            f"{API}/devices/{_path_id(device_id)}/action/{action}",
            json_body=body if body else None,
            retry=RetryMode.UNSENT_ONLY,
        )
        if not response.content:
            return {}
        try:
            decoded = json_of(response)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {"message": decoded}


def _device_key(device: Any) -> Any:
    """What tells two listed devices apart: the id, else (a record the transform will reject) the record."""
    return (device.get("device_id") or repr(device)) if isinstance(device, dict) else repr(device)


def _id_of(device: dict[str, Any]) -> str | None:
    value = device.get("device_id")
    return None if value in (None, "") else str(value)


def _path_id(value: Any) -> str:
    """Ids go into URL paths; refuse anything that could change the path."""
    if not valid_id(value):
        raise InvalidIdError(f"not a valid Kandji id: {shorten(value, 80)!r} (letters, digits and hyphens)")
    return value


def dict_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _list_in(body: Any, key: str) -> list[dict[str, Any]]:
    """``body[key]`` when it is a list; a ValueError (an unreadable answer, fetched again) otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise ValueError(f"expected an object with a {key!r} list")
    return body[key]
