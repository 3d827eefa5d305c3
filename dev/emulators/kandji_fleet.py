"""A deterministic, realistic Kandji tenant of any size: devices, users and installed apps.

Apps are not stored per device: each device's app list is derived from its index and the seed, and
Prism rows are addressed through prefix sums, so a 100,000-device fleet with ~100 apps each (ten
million app rows) costs only the device and user records in memory.
"""

from __future__ import annotations

import bisect
import csv
import io
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

APPLE_PLATFORMS = ("Mac", "iPhone", "iPad", "AppleTV")
# Prism's device_families names differ from /devices' platform names for Apple TV.
PRISM_FAMILY = {"Mac": "Mac", "iPhone": "iPhone", "iPad": "iPad", "AppleTV": "tvOS"}
PLATFORM_MIX = (("Mac", 70), ("iPhone", 14), ("iPad", 8), ("AppleTV", 3), ("Windows", 3), ("Android", 2))
APP_COUNT = {
    "Mac": (50, 200),
    "iPhone": (5, 30),
    "iPad": (5, 30),
    "AppleTV": (2, 8),
    "Windows": (20, 60),
    "Android": (10, 30),
}
MODELS = {
    "Mac": [
        "MacBook Air (M1, 2020)",
        "MacBook Pro (14-inch, 2023)",
        "Mac mini (M2, 2023)",
        "iMac (24-inch, M3)",
    ],
    "iPhone": ["iPhone 11 Pro Max", "iPhone 14", "iPhone 15 Pro"],
    "iPad": ["iPad (9th generation)", "iPad Air (5th generation)", "iPad Pro (11-inch)"],
    "AppleTV": ["Apple TV 4K (3rd generation)"],
    "Windows": ["Surface Laptop 5", "ThinkPad X1 Carbon Gen 11"],
    "Android": ["Pixel 8", "Galaxy S23"],
}
OS_VERSIONS = {
    "Mac": ["14.4.1", "14.6", "15.1", "15.3.2"],
    "iPhone": ["17.5", "18.1", "18.3"],
    "iPad": ["17.5", "18.1"],
    "AppleTV": ["17.4", "18.0"],
    "Windows": ["23H2", "24H2"],
    "Android": ["14", "15"],
}
VENDORS = ["Apple", "Identified Developer", "App Store"]
APP_WORDS = [
    "Slack",
    "Zoom",
    "Chrome",
    "Firefox",
    "1Password",
    "Notion",
    "Figma",
    "Docker",
    "Postman",
    "Xcode",
    "Teams",
    "Outlook",
    "Word",
    "Excel",
    "PowerPoint",
    "OneDrive",
    "Dropbox",
    "Spotify",
    "VLC",
    "iTerm",
    "Safari",
    "Keynote",
    "Pages",
    "Numbers",
    "Terminal",
    "Calendar",
    "Notes",
    "Preview",
    "Photos",
    "Music",
]


def _catalogue(size: int = 600) -> list[dict[str, str]]:
    rng = random.Random(1)
    apps = []
    for i in range(size):
        word = APP_WORDS[i % len(APP_WORDS)]
        name = (
            word if i < len(APP_WORDS) else f"{word} {['Helper', 'Pro', 'Tools', 'Agent', 'Lite'][i % 5]} {i}"
        )
        bundle = f"com.{word.lower()}.{name.lower().replace(' ', '')}"
        apps.append(
            {
                "name": name,
                "bundle_id": bundle,
                "version": f"{rng.randint(1, 30)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                "source": VENDORS[i % len(VENDORS)],
                "mac_app_id": str(83000 + i),
                "ios_app_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, bundle)),
            }
        )
    return apps


CATALOGUE = _catalogue()


def _csv_row(values: list[Any]) -> str:
    """One CSV row as ``csv.writer`` writes it (quoted where needed), without its line ending."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["" if v is None else v for v in values])
    return buffer.getvalue().removesuffix("\r\n")


def _serial(rng: random.Random) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(12))


def _iso_z(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _space(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


@dataclass
class Fleet:
    seed: int = 42
    device_count: int = 300
    user_count: int | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    # device_id -> (seed index used for its apps, app count)
    app_keys: dict[str, tuple[int, int]] = field(default_factory=dict)
    next_index: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.base_time = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
        n_users = self.user_count if self.user_count is not None else max(5, self.device_count // 2)
        for i in range(n_users):
            self.users.append(self._make_user(rng, i))
        self.serials: set[str] = set()
        for _ in range(self.device_count):
            self.devices.append(self._make_device(rng))
        self._prism_index: tuple[list[str], list[int]] | None = None
        self._device_by_id: dict[str, dict[str, Any]] | None = None

    # -- generation ---------------------------------------------------------------------------
    def _make_user(self, rng: random.Random, i: int) -> dict[str, Any]:
        created = self.base_time - timedelta(days=rng.randint(30, 900), seconds=rng.randint(0, 86400))
        archived = rng.random() < 0.05
        integration_type = rng.choice(["office365", "office365", "okta", "google_workspace"])
        return {
            "active": not archived,
            "archived": archived,
            "created_at": _iso_z(created),
            "department": rng.choice([None, "Engineering", "Sales", "Finance", "IT"]),
            "deprecated_user_id": str(29000 + i),
            "email": f"user{i:05d}@example.com",
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "integration": {
                "id": 600 + ["office365", "okta", "google_workspace"].index(integration_type),
                "name": "example",
                "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "type": integration_type,
            },
            "job_title": rng.choice([None, "Engineer", "Manager", "Analyst"]),
            "name": f"User {i:05d}",
            "device_count": 0,
            "updated_at": _iso_z(created + timedelta(days=rng.randint(0, 29))),
        }

    def _pick_platform(self, rng: random.Random) -> str:
        roll = rng.randint(1, 100)
        for platform, weight in PLATFORM_MIX:
            if roll <= weight:
                return platform
            roll -= weight
        return "Mac"

    def _make_device(self, rng: random.Random, platform: str | None = None) -> dict[str, Any]:
        index = self.next_index
        self.next_index += 1
        platform = platform or self._pick_platform(rng)
        serial = _serial(rng)
        while serial in self.serials:
            serial = _serial(rng)
        self.serials.add(serial)
        device_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        user: dict[str, Any] | str = ""
        if platform in ("Mac", "Windows") and self.users and rng.random() < 0.9:
            owner = self.users[rng.randrange(len(self.users))]
            owner["device_count"] += 1
            user = {
                "email": owner["email"],
                "name": owner["name"],
                "id": owner["id"],
                "is_archived": owner["archived"],
            }
        enrolled = self.base_time - timedelta(days=rng.randint(1, 700), seconds=rng.randint(0, 86400))
        never_checked_in = rng.random() < 0.02
        check_in = self.base_time - timedelta(minutes=rng.randint(1, 60 * 24 * 20))
        device: dict[str, Any] = {
            "device_id": device_id,
            "device_name": (
                f"{user['name'].split()[0]}'s {MODELS[platform][0].split(' (')[0]}"
                if isinstance(user, dict)
                else f"{platform}-{serial[-5:]}"
            ),
            "model": rng.choice(MODELS[platform]),
            "serial_number": serial,
            "platform": platform,
            "os_version": rng.choice(OS_VERSIONS[platform]),
            "supplemental_build_version": "23E224" if platform == "Mac" else "",
            "supplemental_os_version_extra": "",
            "last_check_in": "" if never_checked_in else _iso_z(check_in),
            "user": user,
            "asset_tag": f"AT-{index:06d}" if rng.random() < 0.6 else "",
            "blueprint_id": str(uuid.UUID(int=rng.getrandbits(128) % 5 + 1, version=4)),
            "mdm_enabled": platform != "Windows" or rng.random() < 0.5,
            "agent_installed": platform == "Mac",
            "is_missing": rng.random() < 0.03,
            "is_removed": False,
            "agent_version": "4.5.9 (5160)" if platform == "Mac" else "",
            "first_enrollment": _space(enrolled),
            "last_enrollment": _space(enrolled + timedelta(days=rng.randint(0, 30))),
            "blueprint_name": ["Main", "Engineering", "Kiosk", "Executives", "Lab"][rng.randint(0, 4)],
            "lost_mode_status": "",
            "tags": rng.sample(["remote", "hq", "loaner", "vip", "lab"], rng.randint(0, 2)),
        }
        if platform == "Windows":
            device.update(
                {
                    "full_software_version": "10.0.26100.6584",
                    "agent_version": "1.0.00002.0002",
                    "api_level": "",
                }
            )
        if platform == "Android":
            device.update(
                {"api_level": "34", "security_patch_level": "2026-10-01", "full_software_version": ""}
            )
        low, high = APP_COUNT[platform]
        self.app_keys[device_id] = (self.seed * 1_000_003 + index, rng.randint(low, high))
        device["_locked"] = False
        device["_commands"] = []
        self._prism_index = None
        self._device_by_id = None
        return device

    # -- lookups ------------------------------------------------------------------------------
    def device(self, device_id: str) -> dict[str, Any] | None:
        if self._device_by_id is None:
            self._device_by_id = {d["device_id"]: d for d in self.devices}
        return self._device_by_id.get(device_id)

    def add_device(self, overrides: dict[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
        rng = random.Random(seed if seed is not None else self.seed + 7919 * (self.next_index + 1))
        overrides = overrides or {}
        device = self._make_device(rng, overrides.get("platform"))
        if "serial_number" in overrides:
            self.serials.discard(device["serial_number"])
            self.serials.add(overrides["serial_number"])
        if "device_id" in overrides:  # a malformed or missing id, as a test asks: its apps move with it
            self.app_keys[overrides["device_id"]] = self.app_keys.pop(device["device_id"])
        device.update(overrides)
        self.devices.append(device)
        self._device_by_id = None
        return device

    def remove_device(self, device_id: str) -> bool:
        before = len(self.devices)
        self.devices = [d for d in self.devices if d["device_id"] != device_id]
        self._prism_index = None
        self._device_by_id = None
        return len(self.devices) < before

    def apps(self, device_id: str) -> list[dict[str, str]]:
        """The catalogue entries installed on a device, in a stable order."""
        key, count = self.app_keys[device_id]
        picks = random.Random(key).sample(range(len(CATALOGUE)), count)
        return [CATALOGUE[i] for i in sorted(picks)]

    def app_count(self, device_id: str) -> int:
        return self.app_keys[device_id][1]

    # -- Prism rows ---------------------------------------------------------------------------
    def prism_index(self, families: set[str] | None = None) -> tuple[list[str], list[int]]:
        """Apple devices in Prism order and the prefix sums of their app counts."""
        if families is None and self._prism_index is not None:
            return self._prism_index
        ids, sums, total = [], [0], 0
        for d in sorted(self.devices, key=lambda d: str(d["device_id"])):
            if d["platform"] not in APPLE_PLATFORMS or not d["device_id"]:
                continue
            if families is not None and PRISM_FAMILY[d["platform"]] not in families:
                continue
            ids.append(d["device_id"])
            total += self.app_count(d["device_id"])
            sums.append(total)
        if families is None:
            self._prism_index = (ids, sums)
        return ids, sums

    def prism_app_rows(self, start: int, stop: int, families: set[str] | None = None) -> list[dict[str, Any]]:
        ids, sums = self.prism_index(families)
        rows: list[dict[str, Any]] = []
        position = start
        while position < min(stop, sums[-1]):
            d_index = bisect.bisect_right(sums, position) - 1
            device = self.device(ids[d_index])
            apps = self.apps(ids[d_index])
            offset_in_device = position - sums[d_index]
            take = min(len(apps) - offset_in_device, stop - position)
            for app in apps[offset_in_device : offset_in_device + take]:
                rows.append(self.prism_app_row(device, app))
            position += take
        return rows

    def prism_app_export_rows(self, families: set[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """Every Prism app row as the values of the export's columns (``kandji.EXPORT_COLUMNS``), built
        per device rather than as full row dicts: a large fleet's export has about a million rows."""
        ids, _ = self.prism_index(families)
        collected = (self.base_time - timedelta(hours=3)).isoformat()
        for device_id in ids:
            device = self.device(device_id)
            head = (device["device_id"], device["device_name"], PRISM_FAMILY[device["platform"]],
                    device["serial_number"])  # fmt: skip
            for app in self.apps(device_id):
                yield (*head, app["name"], app["version"], app["version"].replace(".", ""), app["bundle_id"],
                       self.app_path(device, app), app["source"], collected)  # fmt: skip

    def prism_app_export_csv(self, families: set[str] | None = None) -> Iterator[str]:
        """The rows of ``prism_app_export_rows`` as CSV text, the same characters ``csv.writer`` writes for
        them, one device's rows at a time: each device's columns and each catalogue app's are quoted once,
        not ten million times (a 100,000-device export is about 9 million rows, 1.8 GB)."""
        ids, _ = self.prism_index(families)
        collected = (self.base_time - timedelta(hours=3)).isoformat()
        fragments: dict[tuple[int, bool], str] = {}  # (catalogue entry by id, on a Mac) -> its columns as CSV
        for device_id in ids:
            device = self.device(device_id)
            mac = device["platform"] == "Mac"
            head = _csv_row([device["device_id"], device["device_name"], PRISM_FAMILY[device["platform"]],
                             device["serial_number"]])  # fmt: skip
            lines = []
            for app in self.apps(device_id):
                key = (id(app), mac)
                if key not in fragments:
                    fragments[key] = _csv_row([app["name"], app["version"], app["version"].replace(".", ""),
                                               app["bundle_id"], self.app_path(device, app), app["source"], collected])  # fmt: skip
                lines.append(f"{head},{fragments[key]}\r\n")
            yield "".join(lines)

    def prism_app_row(self, device: dict[str, Any], app: dict[str, str]) -> dict[str, Any]:
        user = device["user"] if isinstance(device["user"], dict) else {}
        collected = self.base_time - timedelta(hours=3)
        return {
            "device_id": device["device_id"],
            "device__name": device["device_name"],
            "device__family": PRISM_FAMILY[device["platform"]],
            "device__user_id": None,
            "device__user_name": user.get("name"),
            "device__user_email": user.get("email"),
            "blueprint_id": device["blueprint_id"],
            "blueprint_name": device["blueprint_name"],
            "tags": device["tags"] or None,
            "asset_tag": device["asset_tag"],
            "serial_number": device["serial_number"],
            "model_id": None,
            "count": None,
            "created_at": collected.isoformat(),
            "updated_at": collected.isoformat(),
            "last_changed_at": None,
            "last_collected_at": collected.isoformat(),
            "path": self.app_path(device, app),
            "obtained_from": app["source"],
            "bundle_size": None,
            "bundle_id": app["bundle_id"],
            "name": app["name"],
            "short_version": app["version"].replace(".", ""),
            "version": app["version"],
        }

    def app_path(self, device: dict[str, Any], app: dict[str, str]) -> str:
        return f"/Applications/{app['name']}.app" if device["platform"] == "Mac" else ""

    def device_apps_payload(self, device: dict[str, Any]) -> list[dict[str, Any]]:
        """The polymorphic /devices/{id}/apps records for one device."""
        platform = device["platform"]
        stamp = _iso_z(self.base_time - timedelta(days=3))
        out = []
        for app in self.apps(device["device_id"]):
            if platform == "Windows":
                out.append(
                    {
                        "name": app["bundle_id"],
                        "display_name": app["name"],
                        "publisher": f"CN={app['source']}",
                        "publisher_display_name": app["source"],
                        "product_code": "",
                        "version": app["version"],
                        "architecture": "x64",
                        "installed_path": f"C:\\Program Files\\{app['name']}",
                        "application_type": "Win32",
                    }
                )
            elif platform == "Android":
                out.append(
                    {
                        "display_name": app["name"],
                        "package_name": app["bundle_id"],
                        "version_name": app["version"],
                        "application_source": "INSTALLED_FROM_PLAY_STORE",
                        "installer_package_name": "com.android.vending",
                        "sha256_hash": "",
                        "sha1_hashes": [],
                    }
                )
            else:
                mac = platform == "Mac"
                out.append(
                    {
                        "app_id": app["mac_app_id"] if mac else app["ios_app_id"],
                        "app_name": app["name"],
                        "bundle_id": app["bundle_id"],
                        "bundle_size": "1" if mac else "68390912",
                        "app_store_vendable": "" if mac else "False",
                        "device_based_vpp": "" if mac else "True",
                        "source": app["source"] if mac else "",
                        "process": app["name"] if mac else "",
                        "signature": "Developer ID Application" if mac else "",
                        "creation_date": stamp if mac else "",
                        "modification_date": stamp if mac else "",
                        "path": self.app_path(device, app),
                        "version": app["version"],
                    }
                )
        return out
