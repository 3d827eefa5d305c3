"""Machinery shared by the Kandji and Oomnitza emulators: fault injection, rate limits, request log.

Both emulators are real aiohttp servers. Everything a test needs to steer them goes through admin
endpoints under ``/_emulator/`` (no token, never faulted, never recorded), so a test can drive an
emulator that runs in another process exactly as it drives one in its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import pydantic_core
from aiohttp import web

ADMIN_PREFIX = "/_emulator/"
SECRET_HEADERS = {"authorization", "authorization2", "cookie"}
# The request's body, parsed once by the recorder for the handlers too (``NOT_JSON`` when it is not JSON).
BODY_JSON = "kandji_oomnitza.body_json"
NOT_JSON = object()


@dataclass
class ScriptedFault:
    """A fault for the next ``times`` requests matching ``method`` and ``path`` (a regex).

    kind: ``status`` (answer ``status`` with ``body``/``retry_after``), ``reset`` (drop the connection),
    ``timeout`` (hang for ``seconds``), ``malformed_json`` (a truncated JSON body), ``html`` (an HTML
    error page with ``status``), ``latency`` (delay by ``seconds``, then serve normally),
    ``lost_response`` (serve the request, then drop the connection before the answer: the client cannot
    know the request took effect), ``truncate`` (serve the request, send the first ``bytes`` of the
    answer, then end the connection: a body cut mid-stream, framed as ``framing``, at a line break with
    ``at_row_boundary``), ``echo`` (a hostile or
    buggy server: answer ``status`` with ``body`` plus every request header it received, credentials
    included, under ``echo``), ``redirect`` (answer ``status`` 301/302/303/307/308 pointing at
    ``location``).
    """

    kind: str
    path: str = ".*"
    method: str = "*"
    times: int = 1
    status: int = 500
    body: Any = None
    retry_after: float | None = None
    seconds: float = 0.0
    after: int = 0  # let this many matching requests through first
    bytes: int = 0  # truncate: how much of the answer is sent
    framing: str = "chunked"  # truncate: chunked | length | eof (see ``Emulator._truncated``)
    at_row_boundary: bool = False  # truncate: end the cut at the last line break (a CSV cut between rows)
    location: str = ""  # redirect: where to

    def matches(self, request: web.Request) -> bool:
        return (self.method in ("*", request.method)) and re.search(self.path, request.path) is not None


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of requests answered with a 5xx
    reset_rate: float = 0.0  # share of requests whose connection is dropped
    timeout_rate: float = 0.0  # share of requests that hang for timeout_seconds
    timeout_seconds: float = 30.0
    malformed_json_rate: float = 0.0
    seed: int = 7
    scripted: list[ScriptedFault] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        scripted = [ScriptedFault(**f) for f in data.get("scripted", [])]
        return cls(**{**{k: v for k, v in data.items() if k != "scripted"}, "scripted": scripted})


@dataclass
class RateLimitConfig:
    per_second: int | None = None
    per_hour: int | None = None
    retry_after: float = 1.0


class RateLimiter:
    """Fixed windows like Kong's rate-limiting plugin: one per second, one per clock hour."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self.second_window = (0, 0)  # (window start, count)
        self.hour_window = (0, 0)

    def check(self) -> tuple[bool, dict[str, str]]:
        now = time.time()
        sec, hour = int(now), int(now // 3600)
        if self.second_window[0] != sec:
            self.second_window = (sec, 0)
        if self.hour_window[0] != hour:
            self.hour_window = (hour, 0)
        per_s, per_h = self.config.per_second, self.config.per_hour
        over = (per_s is not None and self.second_window[1] >= per_s) or (
            per_h is not None and self.hour_window[1] >= per_h
        )
        if not over:
            self.second_window = (sec, self.second_window[1] + 1)
            self.hour_window = (hour, self.hour_window[1] + 1)
        headers = {}
        if per_s is not None:
            remaining = max(per_s - self.second_window[1], 0)
            headers.update(
                {
                    "RateLimit-Limit": str(per_s),
                    "RateLimit-Remaining": str(remaining),
                    "RateLimit-Reset": "1",
                    "X-RateLimit-Limit-Second": str(per_s),
                    "X-RateLimit-Remaining-Second": str(remaining),
                }
            )
        if per_h is not None:
            headers.update(
                {
                    "X-RateLimit-Limit-Hour": str(per_h),
                    "X-RateLimit-Remaining-Hour": str(max(per_h - self.hour_window[1], 0)),
                }
            )
        return over, headers


class Emulator:
    """Base class: an aiohttp application with admin endpoints, faults, rate limits and a request log."""

    name = "emulator"
    auth_header = "Authorization"

    def __init__(self, *, tokens: set[str], rate_limit: RateLimitConfig | None = None) -> None:
        self.tokens = set(tokens)
        self.faults = FaultConfig()
        self.rng = random.Random(self.faults.seed)
        self.rate_limit = RateLimitConfig() if rate_limit is None else rate_limit
        self.limiter = RateLimiter(self.rate_limit)
        self.requests: deque[dict[str, Any]] = deque(maxlen=500_000)
        self.denied: dict[str, list[str]] = {}  # token -> permissions it lacks (see ``permission``)
        self.request_count = 0
        # Whether the request log keeps each body (tests read them; a benchmark's millions of app rows
        # would only fill the memory): PUT /_emulator/recording {"bodies": false}.
        self.record_bodies = True
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        self.app.router.add_get(ADMIN_PREFIX + "requests", self._admin_requests)
        self.app.router.add_delete(ADMIN_PREFIX + "requests", self._admin_clear_requests)
        self.app.router.add_get(ADMIN_PREFIX + "faults", self._admin_get_faults)
        self.app.router.add_put(ADMIN_PREFIX + "faults", self._admin_set_faults)
        self.app.router.add_put(ADMIN_PREFIX + "rate_limit", self._admin_set_rate_limit)
        self.app.router.add_put(ADMIN_PREFIX + "tokens", self._admin_set_tokens)
        self.app.router.add_get(ADMIN_PREFIX + "permissions", self._admin_get_permissions)
        self.app.router.add_put(ADMIN_PREFIX + "permissions", self._admin_set_permissions)
        self.app.router.add_put(ADMIN_PREFIX + "recording", self._admin_set_recording)
        self.add_routes(self.app.router)

    # -- to implement -------------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def authenticate(self, request: web.Request) -> web.Response | None:
        """Return an error response when the request's credentials are not accepted."""
        raise NotImplementedError

    def unauthenticated_paths(self) -> tuple[str, ...]:
        return ()

    def permission(self, request: web.Request) -> str | None:
        """The permission a request needs (dotted, e.g. ``devices.apps``), or None when it needs none.
        A token denied ``x`` lacks ``x`` and every ``x.*``."""
        return None

    def forbidden_response(self, permission: str) -> web.Response:
        raise NotImplementedError

    def _forbidden(self, request: web.Request) -> web.Response | None:
        needed = self.permission(request)
        if needed is None:
            return None
        denied = self.denied.get(self._token_of(request.headers.get(self.auth_header, "")), [])
        if any(needed == d or needed.startswith(d + ".") for d in denied):
            return self.forbidden_response(needed)
        return None

    # -- middleware ---------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        entry = await self._record(request)
        fault_response = await self._apply_faults(request)
        if isinstance(fault_response, ScriptedFault) and fault_response.kind == "truncate":
            return await self._truncated(request, await handler(request), fault_response, entry)
        if isinstance(fault_response, ScriptedFault):  # lost_response: act, then drop the answer
            await handler(request)
            if request.transport is not None:
                request.transport.abort()
            entry["status"] = 599
            return web.Response(status=599)
        if fault_response is not None:
            entry["status"] = fault_response.status
            return fault_response
        over, rate_headers = self.limiter.check()
        if over:
            response = self.rate_limited_response(self.rate_limit.retry_after)
        elif not request.path.startswith(self.unauthenticated_paths()) and (
            denied := self.authenticate(request) or self._forbidden(request)
        ):
            response = denied
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
        for key, value in rate_headers.items():
            response.headers[key] = value
        entry["status"] = response.status
        return response

    @staticmethod
    async def _truncated(
        request: web.Request, response: web.Response, fault: ScriptedFault, entry: dict[str, Any]
    ) -> web.StreamResponse:
        """The answer's first ``fault.bytes`` bytes, then the connection ends, framed as ``fault.framing``:

        - ``chunked``: chunked encoding, dropped mid-chunk (the client sees a broken chunked body);
        - ``length``: the whole answer's Content-Length declared, fewer bytes sent (an incomplete read);
        - ``eof``: no length at all, the connection closed cleanly after the bytes: the body looks
          complete to HTTP, as when a proxy or a network cut ends a download that had no length.
        """
        body = bytes(response.body or b"")[: fault.bytes]
        if fault.at_row_boundary:  # what a cut file looks like when the cut falls between two rows
            body = body[: body.rfind(b"\n") + 1]
        entry["status"] = response.status
        transport = request.transport
        if fault.framing in ("eof", "length"):
            length = f"Content-Length: {len(response.body or b'')}\r\n" if fault.framing == "length" else ""
            head = (
                f"HTTP/1.1 {response.status} {response.reason}\r\nContent-Type: {response.content_type}\r\n"
                f"{length}Connection: close\r\n\r\n"
            )
            if transport is not None:
                transport.write(head.encode() + body)
                transport.close() if fault.framing == "eof" else transport.abort()
            return web.Response(status=599)  # never reaches the client: its connection is gone
        cut = web.StreamResponse(status=response.status, headers={"Content-Type": response.content_type})
        cut.enable_chunked_encoding()
        await cut.prepare(request)
        await cut.write(body)
        if transport is not None:
            transport.abort()
        return cut

    def rate_limited_response(self, retry_after: float) -> web.Response:
        return web.json_response(
            {"message": "API rate limit exceeded"},
            status=429,
            headers={"Retry-After": f"{retry_after:g}"},
        )

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read() if request.can_read_body else b""
        try:
            # pydantic's JSON parser (installed with Airflow): a fleet's bulk bodies are gigabytes
            body: Any = pydantic_core.from_json(raw) if raw else None
            request[BODY_JSON] = body if raw else NOT_JSON
        except ValueError:
            body = raw.decode("utf-8", "replace")
            request[BODY_JSON] = NOT_JSON
        if not self.record_bodies:
            body = {"_not_recorded": len(raw)} if raw else None
        auth_value = request.headers.get(self.auth_header, "")
        self.request_count += 1
        entry = {
            "seq": self.request_count,
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS},
            # What arrived as credentials, without the credential itself.
            "auth_scheme": auth_value.split(" ", 1)[0]
            if " " in auth_value
            else ("raw" if auth_value else None),
            "token_ok": self._token_of(auth_value) in self.tokens if auth_value else False,
            "basic_auth": request.headers.get("Authorization", "").startswith("Basic "),
            "body": body,
            "status": None,
        }
        self.requests.append(entry)
        return entry

    def _token_of(self, header_value: str) -> str:
        return header_value

    async def _apply_faults(self, request: web.Request) -> web.StreamResponse | ScriptedFault | None:
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        for scripted in faults.scripted:
            if scripted.times > 0 and scripted.matches(request):
                if scripted.after > 0:
                    scripted.after -= 1
                    continue
                scripted.times -= 1
                return await self._fault(request, scripted)
        roll = self.rng.random()
        for kind, rate in (
            ("status", faults.error_rate),
            ("reset", faults.reset_rate),
            ("timeout", faults.timeout_rate),
            ("malformed_json", faults.malformed_json_rate),
        ):
            if roll < rate:
                status = self.rng.choice([500, 502, 503, 504])
                return await self._fault(
                    request, ScriptedFault(kind=kind, status=status, seconds=faults.timeout_seconds)
                )
            roll -= rate
        return None

    async def _fault(
        self, request: web.Request, fault: ScriptedFault
    ) -> web.StreamResponse | ScriptedFault | None:
        if fault.kind in ("lost_response", "truncate"):
            return fault
        if fault.kind == "echo":
            body = fault.body if isinstance(fault.body, dict) else {}
            echo = {"headers": dict(request.headers), "query": dict(request.query), "path": request.path}
            return web.json_response({**body, "echo": echo}, status=fault.status)
        if fault.kind == "redirect":
            return web.Response(status=fault.status, headers={"Location": fault.location})
        if fault.kind == "latency":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind in ("reset", "timeout"):
            if fault.kind == "timeout":
                await asyncio.sleep(fault.seconds)
            transport = request.transport
            if transport is not None:
                transport.abort()  # the client sees the connection drop, with no response
            return web.Response(status=599)
        if fault.kind == "malformed_json":
            return web.Response(status=200, text='[{"device_id": "trunc', content_type="application/json")
        if fault.kind == "html":
            return web.Response(
                status=fault.status,
                text=f"<!doctype html><html><body><h1>Error {fault.status}</h1></body></html>",
                content_type="text/html",
            )
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        body = fault.body if fault.body is not None else {"message": "An unexpected error occurred"}
        return web.json_response(body, status=fault.status, headers=headers)

    # -- admin --------------------------------------------------------------------------------
    def reset_traffic(self, body: dict[str, Any], rate_limit_default: dict[str, Any]) -> None:
        """For a reset: forget recorded requests and faults; take the body's rate limit and tokens."""
        self.requests.clear()
        self.faults = FaultConfig()
        self.rng = random.Random(self.faults.seed)
        self.rate_limit = RateLimitConfig(**body.get("rate_limit", rate_limit_default))
        self.limiter = RateLimiter(self.rate_limit)
        if "tokens" in body:
            self.tokens = set(body["tokens"])
        self.denied = dict(body.get("permissions", {}))

    async def _admin_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response([r for r in self.requests if r["seq"] > since])

    async def _admin_clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return web.json_response({"cleared": True})

    async def _admin_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.faults))

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        self.faults = FaultConfig.from_json(await request.json())
        self.rng = random.Random(self.faults.seed)
        return web.json_response(asdict(self.faults))

    async def _admin_set_rate_limit(self, request: web.Request) -> web.Response:
        self.rate_limit = RateLimitConfig(**await request.json())
        self.limiter = RateLimiter(self.rate_limit)
        return web.json_response(asdict(self.rate_limit))

    async def _admin_set_tokens(self, request: web.Request) -> web.Response:
        self.tokens = set((await request.json())["tokens"])
        return web.json_response({"tokens": len(self.tokens)})

    async def _admin_get_permissions(self, request: web.Request) -> web.Response:
        return web.json_response(self.denied)

    async def _admin_set_permissions(self, request: web.Request) -> web.Response:
        """``{"<token>": ["devices.apps", "prism", ...]}``: what each token lacks (replaces the model)."""
        self.denied = {str(token): list(perms) for token, perms in (await request.json()).items()}
        return web.json_response(self.denied)

    async def _admin_set_recording(self, request: web.Request) -> web.Response:
        """``{"bodies": false}``: the request log keeps each request's size, not its body."""
        self.record_bodies = bool((await request.json()).get("bodies", True))
        return web.json_response({"bodies": self.record_bodies})


def serve(emulator: Emulator, host: str, port: int) -> None:
    """Run until interrupted; print the bound address on one line so a parent process can read it."""

    async def main() -> None:
        runner = web.AppRunner(emulator.app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"{emulator.name} emulator listening on http://{host}:{bound_port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
