"""A Kandji API emulator, faithful to ``docs/reference/kandji-api.md`` including its quirks.

Run it:  python -m dev.emulators.kandji --port 8181 --devices 300 --token sandbox-kandji-token

Followed from the reference: bare-array ``/devices`` pages capped at 300 with substring filters and
``ordering``; ``user`` as an object or ``""``; ``"True"``/``"False"`` strings in details; mixed
timestamp formats and ``""``; polymorphic Windows/Android records; Prism pages with ``limit`` default
25 and cap 300, an opaque cursor, ``total`` that can be null; the asynchronous Prism export with a
signed URL on another path; users paged by a cursor whose ``next`` link points at the web host;
PascalCase action bodies, ``lock`` returning ``{"PIN"}`` for Macs, 400 answers as bare JSON strings;
Kong-style rate limits (429 + ``Retry-After``, ``X-RateLimit-*`` headers); error bodies as string,
array, ``{"detail"}``, ``{"message"}`` and HTML.

Invented where the reference is silent (INFERRED): the Prism cursor encoding, the page on which a
Prism page comes back short (every third page by default), the export CSV's column headings and its
failure state (``"failed"`` with ``error_msg``), the 401/403 bodies, the command-status timing and
the validation messages for missing action inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import html
import io
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from dev.emulators.common import Emulator, RateLimitConfig, serve
from dev.emulators.kandji_fleet import APPLE_PLATFORMS, Fleet

PRISM_CATEGORIES = {
    "activation_lock", "apps", "application_firewall", "cellular", "certificates", "desktop_and_screensaver",
    "device_information", "filevault", "gatekeeper_and_xprotect", "installed_profiles", "kernel_extensions",
    "launch_agents_and_daemons", "local_users", "startup_settings", "system_extensions", "transparency_database",
}  # fmt: skip
DEVICE_FILTERS_CONTAINS = ("serial_number", "model", "os_version", "blueprint_id", "device_name", "asset_tag")
ACTION_PLATFORMS = {
    "blankpush": APPLE_PLATFORMS,
    "clearpasscode": ("iPhone", "iPad"),
    "erase": APPLE_PLATFORMS,
    "lock": (*APPLE_PLATFORMS, "Android"),
    "restart": ("iPhone", "iPad", "AppleTV", "Mac"),
    "shutdown": ("iPhone", "iPad", "Mac"),
    "setname": APPLE_PLATFORMS,
    "unlockaccount": ("Mac",),
    "reinstallagent": ("Mac",),
    "renewmdmprofile": APPLE_PLATFORMS,
    "updateinventory": APPLE_PLATFORMS,
    "dailycheckin": (*APPLE_PLATFORMS, "Windows"),
}
COMMAND_TYPES = {
    "clearpasscode": "ClearPasscode",
    "erase": "EraseDevice",
    "lock": "DeviceLock",
    "restart": "RestartDevice",
    "shutdown": "ShutDownDevice",
    "setname": "Settings",
    "unlockaccount": "UnlockUserAccount",
    "blankpush": "BlankPush",
}
# INFERRED: the export CSV's headings are undocumented; these are human-style, as Kandji's UI shows them.
# Export files larger than this are streamed (a 100,000-device export is 1.8 GB); the ``truncate`` fault
# cuts the smaller ones, which is what the tests download.
STREAM_EXPORTS_ABOVE = 64 * 1024 * 1024
EXPORT_COLUMNS = [
    ("Device ID", "device_id"),
    ("Device Name", "device__name"),
    ("Device Family", "device__family"),
    ("Serial Number", "serial_number"),
    ("Name", "name"),
    ("Version", "version"),
    ("Short Version", "short_version"),
    ("Bundle ID", "bundle_id"),
    ("Path", "path"),
    ("Obtained From", "obtained_from"),
    ("Last Collected At", "last_collected_at"),
]


@dataclass
class KandjiSettings:
    subdomain: str = "sandbox"
    prism_short_page_every: int = 3  # every Nth Prism page is short, yet its cursor continues
    prism_total_null: bool = False
    prism_omit_cursor: bool = False  # the older offset-only Prism responses
    export_ready_after_polls: int = 2
    export_mode: str = "ok"  # ok | failed | bad_columns
    users_page_size: int = 300
    command_completion_seconds: float = 1.0
    mutate_devices_at_offset: dict[str, Any] | None = None  # {"offset": N, "remove": k, "add": m}
    listing_hides: int = 0  # the device list leaves out its last N devices; X-Total-Count still counts them
    prism_count_approximate: bool = False  # /prism/count says "approximate": true (its count is then a guess)


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"p={position}".encode()).decode()


def _decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        return int(text.removeprefix("p=")) if text.startswith("p=") else None
    except ValueError:
        return None


def _public(device: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in device.items() if not k.startswith("_")}


class KandjiEmulator(Emulator):
    name = "kandji"
    auth_header = "Authorization"

    def __init__(self, *, tokens: set[str], fleet: Fleet, rate_limit: RateLimitConfig | None = None) -> None:
        self.fleet = fleet
        self.settings = KandjiSettings()
        self.exports: dict[str, dict[str, Any]] = {}
        self._sorted: dict[str, list[dict[str, Any]]] = {}
        super().__init__(tokens=tokens, rate_limit=rate_limit)

    def _token_of(self, header_value: str) -> str:
        return header_value.removeprefix("Bearer ")

    # -- routing ------------------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        api = "/api/v1"
        router.add_get(f"{api}/devices", self.list_devices)
        router.add_get(f"{api}/devices/{{device_id}}", self.get_device)
        router.add_get(f"{api}/devices/{{device_id}}/details", self.device_details)
        router.add_get(f"{api}/devices/{{device_id}}/apps", self.device_apps)
        router.add_get(f"{api}/devices/{{device_id}}/commands", self.device_commands)
        router.add_post(f"{api}/devices/{{device_id}}/action/{{action}}", self.device_action)
        router.add_get(f"{api}/devices/{{device_id}}/secrets/unlockpin", self.unlock_pin)
        router.add_get(f"{api}/prism/count", self.prism_count)
        router.add_post(f"{api}/prism/export", self.prism_export)
        router.add_get(f"{api}/prism/export/{{export_id}}", self.prism_export_status)
        router.add_get(f"{api}/prism/{{category}}", self.prism_category)
        router.add_get(f"{api}/users", self.list_users)
        router.add_get(f"{api}/users/{{user_id}}", self.get_user)
        router.add_get("/_s3/{path:.*}", self.download_export)
        router.add_get("/devices/{device_id}", self.device_page)  # what the "Device in Kandji" link opens
        # admin
        router.add_post("/_emulator/reset", self.admin_reset)
        router.add_put("/_emulator/settings", self.admin_settings)
        router.add_get("/_emulator/settings", self.admin_get_settings)
        router.add_get("/_emulator/devices", self.admin_devices)
        router.add_post("/_emulator/devices", self.admin_add_device)
        router.add_delete("/_emulator/devices/{device_id}", self.admin_remove_device)
        router.add_patch("/_emulator/devices/{device_id}", self.admin_change_device)
        router.add_get("/_emulator/users", self.admin_users)
        router.add_post("/_emulator/users", self.admin_add_user)
        router.add_delete("/_emulator/users/{user_id}", self.admin_remove_user)
        router.add_get("/_emulator/summary", self.admin_summary)
        router.add_route("*", "/{tail:.*}", self.unrouted)  # last: Kong's answer for unrouted paths

    def unauthenticated_paths(self) -> tuple[str, ...]:
        # The signed export URL stands in for S3 (no Kandji token belongs there); /devices/ is the web
        # app's device page, which a person opens from a task's link.
        return ("/_s3/", "/devices/")

    def authenticate(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header.removeprefix("Bearer ") not in self.tokens:
            return web.json_response({"detail": "Incorrect authentication credentials."}, status=401)
        return None

    def permission(self, request: web.Request) -> str | None:
        """Each endpoint its own permission, as Kandji's token form has it: ``devices.list``,
        ``devices.get``, ``devices.details``, ``devices.apps``, ``devices.commands``,
        ``devices.action.<action>``, ``devices.secrets.<kind>``, ``prism.count``, ``prism.export``,
        ``prism.<category>``, ``users.list``, ``users.get``. Deny ``prism`` for all of Prism,
        ``devices.action`` for every action."""
        parts = request.path.removeprefix("/api/v1/").split("/")
        if not request.path.startswith("/api/v1/"):
            return None
        if parts[0] == "devices":
            if len(parts) == 1:
                return "devices.list"
            if len(parts) == 2:
                return "devices.get"
            return ".".join(["devices", *parts[2:4]])
        if parts[0] == "prism":
            return f"prism.{parts[1] if len(parts) > 1 else ''}"
        if parts[0] == "users":
            return "users.list" if len(parts) == 1 else "users.get"
        return parts[0]

    def forbidden_response(self, permission: str) -> web.Response:
        return web.json_response({"detail": "You do not have permission to perform this action."}, status=403)

    async def device_page(self, request: web.Request) -> web.Response:
        device = self.fleet.device(request.match_info["device_id"])
        if device is None:
            return web.Response(
                status=404, content_type="text/html", text="<h1>No such device in this tenant</h1>"
            )
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in _public(device).items()
        )
        commands = "".join(
            f"<li>{html.escape(c['command_type'])} at "
            f"{time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(c['requested']))}</li>"
            for c in device["_commands"]
        )
        return web.Response(
            content_type="text/html",
            text=f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(device["device_name"])}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}th{{text-align:left;padding-right:1em}}</style></head><body>
<h1>Kandji emulator: {html.escape(device["device_name"])}</h1><table>{rows}</table>
<p>{self.fleet.app_count(device["device_id"])} apps installed.</p>
<h2>Commands sent</h2><ul>{commands or "<li>none</li>"}</ul></body></html>""",
        )

    async def unrouted(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"message": "no Route matched with those values", "request_id": uuid.uuid4().hex}, status=404
        )

    # -- devices ------------------------------------------------------------------------------
    def _ordered(self, ordering: str) -> list[dict[str, Any]]:
        cache_key = f"{ordering}:{id(self.fleet.devices)}:{len(self.fleet.devices)}"
        if cache_key not in self._sorted:
            keys = [k.strip() for k in ordering.split(",") if k.strip()]
            devices = list(self.fleet.devices)
            for key in reversed(keys):
                field_name = key.lstrip("-")
                if field_name == "user":
                    getter = lambda d: d["user"]["name"] if isinstance(d["user"], dict) else ""  # noqa: E731
                else:
                    getter = lambda d, f=field_name: str(d.get(f, ""))  # noqa: E731
                devices.sort(key=getter, reverse=key.startswith("-"))
            self._sorted = {cache_key: devices}
        return self._sorted[cache_key]

    def _maybe_mutate(self, offset: int) -> None:
        plan = self.settings.mutate_devices_at_offset
        if not plan or offset < plan["offset"]:
            return
        self.settings.mutate_devices_at_offset = None
        ordered = self._ordered("device_id")
        for device in ordered[: plan.get("remove", 1)]:
            self.fleet.remove_device(device["device_id"])
        for _ in range(plan.get("add", 0)):
            self.fleet.add_device()
        self._sorted = {}

    async def list_devices(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = min(int(q.get("limit", "300")), 300)
            offset = int(q.get("offset", "0"))
        except ValueError:
            return web.json_response({"detail": "A valid integer is required."}, status=400)
        self._maybe_mutate(offset)
        devices = self._ordered(q.get("ordering", "device_id"))
        filters = {k: q[k] for k in DEVICE_FILTERS_CONTAINS if k in q}
        if filters or any(k in q for k in ("platform", "device_id", "user_email", "user_id")):
            devices = [d for d in devices if self._matches(d, q, filters)]
        total = len(devices)
        listed = devices[: max(total - self.settings.listing_hides, 0)]
        page = [_public(d) for d in listed[offset : offset + limit]]
        return web.json_response(page, headers={"X-Total-Count": str(total)})

    @staticmethod
    def _matches(device: dict[str, Any], q: Any, contains: dict[str, str]) -> bool:
        for key, value in contains.items():
            if value.lower() not in str(device.get(key, "")).lower():
                return False
        if "platform" in q and device["platform"] != q["platform"]:
            return False
        if "device_id" in q and device["device_id"] != q["device_id"]:
            return False
        user = device["user"] if isinstance(device["user"], dict) else {}
        if "user_email" in q and q["user_email"].lower() not in str(user.get("email", "")).lower():
            return False
        return not ("user_id" in q and user.get("id") != q["user_id"])

    def _device_or_404(self, request: web.Request) -> dict[str, Any]:
        device = self.fleet.device(request.match_info["device_id"])
        if device is None:
            raise web.HTTPNotFound(text=json.dumps({"detail": "Not found."}), content_type="application/json")
        return device

    async def get_device(self, request: web.Request) -> web.Response:
        return web.json_response(_public(self._device_or_404(request)))

    async def device_details(self, request: web.Request) -> web.Response:
        device = self._device_or_404(request)
        return web.json_response(self._details(device))

    def _details(self, d: dict[str, Any]) -> dict[str, Any]:
        user = d["user"]
        general = {
            "device_id": d["device_id"],
            "device_name": d["device_name"],
            "last_enrollment": d["last_enrollment"],
            "first_enrollment": d["first_enrollment"],
            "model": d["model"],
            "platform": d["platform"],
            "os_version": d["os_version"],
            "asset_tag": d["asset_tag"],
            "assigned_user": user,
            "blueprint_name": d["blueprint_name"],
            "blueprint_uuid": d["blueprint_id"],
        }
        if d["platform"] == "Android":
            return {
                "general": general,
                "hardware": {"serial_number": d["serial_number"], "model": d["model"]},
                "management": {"enrolled": "True"},
                "security": {"security_patch_level": d.get("security_patch_level", "")},
                "cellular": {},
                "tags": d["tags"],
            }
        mdm_check_in = (
            d["last_check_in"].replace("T", " ").replace("Z", "+00:00") if d["last_check_in"] else ""
        )
        details: dict[str, Any] = {
            "general": general,
            "mdm": {
                "mdm_enabled": str(d["mdm_enabled"]),
                "supervised": "True",
                "install_date": d["last_enrollment"],
                "last_check_in": mdm_check_in,
            },
            "kandji_agent": {
                "agent_installed": str(d["agent_installed"]),
                "agent_version": d["agent_version"],
                "last_check_in": d["last_check_in"],
            },
            "hardware_overview": {
                "model_name": d["model"].split(" (")[0],
                "serial_number": d["serial_number"],
                "udid": str(uuid.uuid5(uuid.NAMESPACE_OID, d["device_id"])),
                "processor_name": "Apple M1" if d["platform"] == "Mac" else "",
                "memory": "16 GB" if d["platform"] == "Mac" else "",
            },
            "network": {
                "local_hostname": d["device_name"].replace("'", "").replace(" ", "-"),
                "mac_address": ":".join(d["device_id"].replace("-", "")[i : i + 2] for i in range(0, 12, 2)),
                "ip_address": "192.168.1.76",
                "public_ip": "",
            },
            "tags": d["tags"],
        }
        if d["platform"] == "Windows":
            return details
        details.update(
            {
                "activation_lock": {
                    "activation_lock_supported": True,
                    "device_activation_lock_enabled": False,
                },
                "filevault": {"filevault_enabled": d["platform"] == "Mac" or None},
                "automated_device_enrollment": {},
                "volumes": [{"name": "Macintosh HD", "format": "APFS", "encrypted": "Yes"}],
                "recovery_information": {},
                "users": {
                    "regular_users": [
                        {"username": "localadmin", "uid": "501", "path": "/Users/localadmin", "admin": "Yes"}
                    ],
                    "system_users": [],
                },
                "installed_profiles": [],
                "apple_business_manager": {},
                "security_information": {"remote_desktop_enabled": False},
            }
        )
        if d["platform"] != "AppleTV":
            details["lost_mode"] = {}
            details["cellular"] = {}
        return details

    async def device_apps(self, request: web.Request) -> web.Response:
        device = self._device_or_404(request)
        apps = self.fleet.device_apps_payload(device)
        return web.json_response(
            {"device_id": device["device_id"], "apps": apps},
            headers={"X-Total-Count": str(len(apps)), "X-Total-Pages": "1"},
        )

    async def device_commands(self, request: web.Request) -> web.Response:
        device = self._device_or_404(request)
        now = time.time()
        results = []
        for command in reversed(device["_commands"]):
            done = now - command["requested"] >= self.settings.command_completion_seconds
            results.append(
                {
                    "uuid": command["uuid"],
                    "error_chain": [],
                    "command_type": command["command_type"],
                    "request_type": command["command_type"],
                    "metadata": {},
                    "request_requires_network_tether": False,
                    "status": 3 if done else 1,
                    "attempts": 1,
                    "date_requested": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(command["requested"])),
                    "date_completed": (
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(command["requested"] + 1))
                        if done
                        else None
                    ),
                    "last_pushed": None,
                    "user": None,
                    "priority": 0,
                }
            )
        return web.json_response(
            {
                "device_id": device["device_id"],
                "commands": {"count": len(results), "next": None, "previous": None, "results": results},
            }
        )

    async def device_action(self, request: web.Request) -> web.Response:
        device = self._device_or_404(request)
        action = request.match_info["action"]
        if action not in ACTION_PLATFORMS:
            return web.json_response({"message": "no Route matched with those values"}, status=404)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError as exc:
            return web.json_response(f"JSON parse error - {exc}", status=400)
        if device["platform"] not in ACTION_PLATFORMS[action]:
            return web.json_response("Command is not allowed for current device", status=400)
        if action == "lock" and device["_locked"]:
            return web.json_response("This device is already locked.", status=400)
        command_type = COMMAND_TYPES.get(action, action)
        now = time.time()
        if any(
            c["command_type"] == command_type
            and now - c["requested"] < self.settings.command_completion_seconds
            for c in device["_commands"]
        ):
            return web.json_response("Command already running", status=400)
        required = {"setname": "DeviceName", "unlockaccount": "UserName"}
        if action in required and not str(body.get(required[action], "")).strip():
            return web.json_response({required[action]: ["This field is required."]}, status=400)
        device["_commands"].append(
            {"uuid": str(uuid.uuid4()), "command_type": command_type, "requested": now}
        )
        if action == "setname":
            device["device_name"] = body["DeviceName"]
        if action == "lock":
            device["_locked"] = True
            if device["platform"] == "Mac":
                device["_unlock_pin"] = f"{random.SystemRandom().randint(0, 999999):06d}"
                return web.json_response({"PIN": device["_unlock_pin"]})
        return web.Response(status=200)

    async def unlock_pin(self, request: web.Request) -> web.Response:
        device = self._device_or_404(request)
        return web.json_response({"pin": device.get("_unlock_pin", "")})

    # -- Prism --------------------------------------------------------------------------------
    def _prism_rows(self, category: str, start: int, stop: int, families: set[str] | None) -> list[dict]:
        if category == "apps":
            return self.fleet.prism_app_rows(start, stop, families)
        ids, _ = self.fleet.prism_index(families)
        rows = []
        for device_id in ids[start:stop]:
            d = self.fleet.device(device_id)
            rows.append(
                {
                    "device_id": d["device_id"],
                    "device__name": d["device_name"],
                    "device__family": d["platform"] if d["platform"] != "AppleTV" else "tvOS",
                    "serial_number": d["serial_number"],
                    "model": d["model"],
                    "os_version": d["os_version"],
                    "last_checkin": d["last_check_in"],
                }
            )
        return rows

    def _prism_total(self, category: str, families: set[str] | None) -> int:
        ids, sums = self.fleet.prism_index(families)
        return sums[-1] if category == "apps" else len(ids)

    @staticmethod
    def _families(value: str | None) -> set[str] | None:
        return {f.strip() for f in value.split(",") if f.strip()} if value else None

    async def prism_category(self, request: web.Request) -> web.Response:
        category = request.match_info["category"]
        if category not in PRISM_CATEGORIES:
            return web.json_response({"detail": f"Invalid category: {category}"}, status=400)
        q = request.query
        limit = min(int(q.get("limit", "25")), 300)
        families = self._families(q.get("device_families"))
        if "cursor" in q:
            start = _decode_cursor(q["cursor"])
            if start is None:
                return web.json_response({"detail": "invalid cursor"}, status=400)
        else:
            start = int(q.get("offset", "0") or 0)
        total = self._prism_total(category, families)
        page_number = start // max(limit, 1) + 1
        size = limit
        if self.settings.prism_short_page_every and page_number % self.settings.prism_short_page_every == 0:
            size = max(1, limit - 7)  # a short page in the middle: the cursor still continues
        rows = self._prism_rows(category, start, start + size, families)
        end = start + len(rows)
        body: dict[str, Any] = {
            "offset": None if "cursor" in q else start,
            "limit": limit,
            "total": None if self.settings.prism_total_null else total,
            "data": rows,
        }
        if not self.settings.prism_omit_cursor:
            body["cursor"] = _encode_cursor(end) if end < total else None
        return web.json_response(body)

    async def prism_count(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        if category not in PRISM_CATEGORIES:
            return web.json_response({"detail": f"Invalid category: {category}"}, status=400)
        return web.json_response(
            {"count": self._prism_total(category, None), "approximate": self.settings.prism_count_approximate}
        )

    async def prism_export(self, request: web.Request) -> web.Response:
        body = await request.json()
        category = body.get("category", "")
        if category not in PRISM_CATEGORIES:
            return web.json_response({"detail": f"Invalid category: {category}"}, status=400)
        export_id = str(uuid.uuid4())
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        self.exports[export_id] = {
            "id": export_id,
            "status": "pending",
            "category": category,
            "args": {
                "filter": body.get("filter", {}),
                "columns": [],
                "sort_by": body.get("sort_by", ""),
                "blueprint_ids": body.get("blueprint_ids", []),
                "device_families": body.get("device_families", []),
            },
            "error_msg": None,
            "path": None,
            "signed_url": None,
            "created_at": now,
            "updated_at": now,
            "_polls": 0,
        }
        # Like Kandji, the file is built while the export is pending (here in a thread, so the API
        # keeps answering); the download waits for it if a client is quicker than the build.
        families = self._families(",".join(body.get("device_families", [])))
        self.exports[export_id]["_csv"] = asyncio.get_running_loop().run_in_executor(
            None, self._export_csv, category, families, self.settings.export_mode
        )
        return web.json_response(_public(self.exports[export_id]))

    def _export_csv(self, category: str, families: Any, mode: str) -> list[bytes]:
        """The export's file, in blocks of about a megabyte (a large fleet's is gigabytes; the download
        streams the blocks)."""
        columns = EXPORT_COLUMNS
        if mode == "bad_columns":
            columns = [("Application", "name"), ("Computer", "device__name")]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([heading for heading, _ in columns])
        if category == "apps" and columns is EXPORT_COLUMNS:
            blocks, pending = [buffer.getvalue().encode()], []
            for text in self.fleet.prism_app_export_csv(families):
                pending.append(text)
                if len(pending) >= 500:
                    blocks.append("".join(pending).encode())
                    pending = []
            blocks.append("".join(pending).encode())
            return blocks
        total = self._prism_total(category, families)
        for start in range(0, total, 5000):
            for row in self._prism_rows(category, start, start + 5000, families):
                writer.writerow(["" if row.get(key) is None else row.get(key) for _, key in columns])
        return [buffer.getvalue().encode()]

    async def prism_export_status(self, request: web.Request) -> web.Response:
        export = self.exports.get(request.match_info["export_id"])
        if export is None:
            return web.json_response({"detail": "Not found."}, status=404)
        export["_polls"] += 1
        if export["status"] == "pending" and export["_polls"] >= self.settings.export_ready_after_polls:
            if self.settings.export_mode == "failed":
                export.update(status="failed", error_msg="Export failed: internal error while building CSV")
            else:
                name = f"export-{export['category']}-{export['id']}.csv"
                export.update(
                    status="success",
                    path=f"visibility-export/{name}",
                    signed_url=(
                        f"{request.scheme}://{request.host}/_s3/{name}"
                        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=172800&X-Amz-Signature={uuid.uuid4().hex}"
                    ),
                    _mode=self.settings.export_mode,
                )
        return web.json_response(_public(export))

    async def download_export(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["path"]
        export = next(
            (e for e in self.exports.values() if e.get("signed_url") and name in e["signed_url"]), None
        )
        if export is None:
            return web.Response(
                status=403, text="<Error><Code>AccessDenied</Code></Error>", content_type="text/xml"
            )
        blocks = await export["_csv"]
        size = sum(len(block) for block in blocks)
        if size <= STREAM_EXPORTS_ABOVE:  # one body, which the truncate fault can cut
            return web.Response(body=b"".join(blocks), content_type="text/csv")
        # A large file is streamed a block at a time with its length up front, as S3 serves one.
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        response.content_length = size
        await response.prepare(request)
        for block in blocks:
            await response.write(block)
        await response.write_eof()
        return response

    # -- users --------------------------------------------------------------------------------
    def _filtered_users(self, q: Any) -> list[dict[str, Any]]:
        users = self.fleet.users
        if "email" in q:
            users = [u for u in users if q["email"].lower() in u["email"].lower()]
        if "id" in q:
            users = [u for u in users if u["id"] == q["id"]]
        if "integration_id" in q:
            users = [
                u
                for u in users
                if q["integration_id"] in (str(u["integration"]["id"]), u["integration"]["uuid"])
            ]
        if "archived" in q:
            wanted = q["archived"].lower() == "true"
            users = [u for u in users if u["archived"] == wanted]
        return users

    async def list_users(self, request: web.Request) -> web.Response:
        q = request.query
        start = 0
        if "cursor" in q:
            decoded = _decode_cursor(q["cursor"])
            if decoded is None:
                return web.json_response({"detail": "Invalid cursor"}, status=400)
            start = decoded
        users = self._filtered_users(q)
        size = self.settings.users_page_size
        page = users[start : start + size]
        web_host = f"https://{self.settings.subdomain}.kandji.io/api/v1/users"
        extra = "".join(f"&{k}={v}" for k, v in q.items() if k != "cursor")
        next_link = (
            f"{web_host}?cursor={_encode_cursor(start + size)}{extra}" if start + size < len(users) else None
        )
        previous = f"{web_host}?cursor={_encode_cursor(max(start - size, 0))}{extra}" if start > 0 else None
        return web.json_response({"next": next_link, "previous": previous, "results": page})

    async def get_user(self, request: web.Request) -> web.Response:
        user = next((u for u in self.fleet.users if u["id"] == request.match_info["user_id"]), None)
        if user is None:
            return web.json_response({"detail": "Not found."}, status=404)
        return web.json_response(user)

    # -- admin --------------------------------------------------------------------------------
    async def admin_reset(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.fleet = Fleet(
            seed=body.get("seed", 42), device_count=body.get("devices", 300), user_count=body.get("users")
        )
        self.settings = KandjiSettings(**body.get("settings", {}))
        self.exports.clear()
        self._sorted = {}
        self.reset_traffic(body, rate_limit_default=asdict(self.rate_limit))
        return await self.admin_summary(request)

    async def admin_settings(self, request: web.Request) -> web.Response:
        self.settings = KandjiSettings(**{**asdict(self.settings), **await request.json()})
        return web.json_response(asdict(self.settings))

    async def admin_get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.settings))

    async def admin_devices(self, request: web.Request) -> web.Response:
        out = []
        for d in self.fleet.devices:
            record = _public(d)
            record["_locked"] = d["_locked"]
            record["_unlock_pin"] = d.get("_unlock_pin")
            record["_app_count"] = self.fleet.app_count(d["device_id"])
            out.append(record)
        return web.json_response(out)

    async def admin_add_device(self, request: web.Request) -> web.Response:
        device = self.fleet.add_device(await request.json())
        self._sorted = {}
        return web.json_response(_public(device))

    async def admin_change_device(self, request: web.Request) -> web.Response:
        """Change a device's fields (a rename, a new OS version), as a person in Kandji would."""
        device = self.fleet.device(request.match_info["device_id"])
        if device is None:
            return web.json_response({"detail": "Not found."}, status=404)
        device.update(await request.json())
        self._sorted = {}
        return web.json_response(_public(device))

    async def admin_remove_device(self, request: web.Request) -> web.Response:
        removed = self.fleet.remove_device(request.match_info["device_id"])
        self._sorted = {}
        return web.json_response({"removed": removed})

    async def admin_users(self, request: web.Request) -> web.Response:
        return web.json_response(self.fleet.users)

    async def admin_add_user(self, request: web.Request) -> web.Response:
        template = dict(self.fleet.users[0]) if self.fleet.users else {}
        user = {**template, "id": str(uuid.uuid4()), "device_count": 0, **await request.json()}
        self.fleet.users.append(user)
        return web.json_response(user)

    async def admin_remove_user(self, request: web.Request) -> web.Response:
        before = len(self.fleet.users)
        self.fleet.users = [u for u in self.fleet.users if u["id"] != request.match_info["user_id"]]
        return web.json_response({"removed": len(self.fleet.users) < before})

    async def admin_summary(self, request: web.Request) -> web.Response:
        platforms: dict[str, int] = {}
        for d in self.fleet.devices:
            platforms[d["platform"]] = platforms.get(d["platform"], 0) + 1
        _, sums = self.fleet.prism_index()
        return web.json_response(
            {
                "devices": len(self.fleet.devices),
                "users": len(self.fleet.users),
                "platforms": platforms,
                "prism_app_rows": sums[-1],
                "app_rows": sum(self.fleet.app_count(d["device_id"]) for d in self.fleet.devices),
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="Kandji API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181, help="0 picks a free port (printed on start)")
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--token", action="append", default=None, help="accepted API token (repeatable)")
    parser.add_argument("--per-second", type=int, default=50, help="rate limit; 0 disables")
    parser.add_argument("--per-hour", type=int, default=10000, help="rate limit; 0 disables")
    args = parser.parse_args()
    emulator = KandjiEmulator(
        tokens=set(args.token or ["sandbox-kandji-token"]),
        fleet=Fleet(seed=args.seed, device_count=args.devices, user_count=args.users),
        rate_limit=RateLimitConfig(per_second=args.per_second or None, per_hour=args.per_hour or None),
    )
    serve(emulator, args.host, args.port)


if __name__ == "__main__":
    main()
