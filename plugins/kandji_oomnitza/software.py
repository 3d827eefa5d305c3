"""Installed software for a fleet, by the cheapest route that covers it.

- Prism (``/prism/apps``, 300 rows a call) covers Macs, iPhones, iPads and Apple TVs;
- the asynchronous Prism export (one CSV) is cheaper still for large fleets;
- per-device ``/devices/{id}/apps`` is the only route for Windows and Android devices, and the fallback
  when the token lacks the Prism permission.

The result is one row per device: its id and its apps as Oomnitza's ``APPLICATIONS`` list (JSON).
A device gets a row only when the route speaks for it: a per-device answer always does (even an empty
list); Prism speaks only for devices it has rows for, so a device Prism has not inventoried yet keeps
its software in Oomnitza instead of having it wiped.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kandji_oomnitza.hooks.base import ApiError
from kandji_oomnitza.hooks.kandji import KandjiHook, PrismExportError
from kandji_oomnitza.integration_config import Software, SoftwareRoute
from kandji_oomnitza.kandji_values import software_entry
from kandji_oomnitza.mapping import ID

log = logging.getLogger(__name__)
PRISM_PLATFORMS = {"Mac", "iPhone", "iPad", "AppleTV"}
EXPORT_COLUMNS = ("device_id", "name", "version", "path")


@dataclass
class SoftwareResult:
    route: str
    per_device_calls: int = 0
    prism_rows: int = 0
    fallbacks: list[str] = field(default_factory=list)
    # device id -> (name, version, path) tuples: a fleet can hold millions of app rows, and tuples
    # cost a fraction of dicts; they become Oomnitza's {name, version, path} objects in frame().
    apps: dict[str, list[tuple[Any, Any, Any]]] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        encoded = [
            json.dumps([{"name": n, "version": v, "path": p} for n, v, p in entries])
            for entries in self.apps.values()
        ]
        return pd.DataFrame({ID: list(self.apps), "_applications": encoded}, dtype=object)

    def summary(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "devices_with_software": len(self.apps),
            "software_rows": sum(len(v) for v in self.apps.values()),
            "prism_rows": self.prism_rows,
            "per_device_calls": self.per_device_calls,
            "fallbacks": self.fallbacks,
        }


def choose_route(kandji: KandjiHook, settings: Software, result: SoftwareResult) -> SoftwareRoute:
    """The automatic choice: Prism pages, or the export at or above the threshold of app rows."""
    if settings.route is not SoftwareRoute.AUTO:
        return settings.route
    try:
        rows = kandji.prism_count("apps")
    except ApiError as exc:
        if exc.status in (401, 403):
            result.fallbacks.append(
                f"Prism unavailable to this token (HTTP {exc.status}); per-device /apps used"
            )
            return SoftwareRoute.PER_DEVICE
        raise
    route = SoftwareRoute.PRISM_EXPORT if rows >= settings.export_threshold_rows else SoftwareRoute.PRISM
    log.info(
        "Prism reports %d app rows; threshold %d → %s", rows, settings.export_threshold_rows, route.value
    )
    return route


def collect(kandji: KandjiHook, devices: pd.DataFrame, settings: Software) -> SoftwareResult:
    """Apps for every device in ``devices`` (columns ``_kandji_id`` and ``platform``)."""
    result = SoftwareResult(route=settings.route.value)
    wanted = set(devices[ID])
    route = choose_route(kandji, settings, result)
    result.route = route.value
    if route is SoftwareRoute.PER_DEVICE:
        _per_device(kandji, list(devices[ID]), settings.concurrency, result)
        return result
    prism_ids = set(devices.loc[devices["platform"].isin(PRISM_PLATFORMS), ID])
    others = [d for d in devices[ID] if d not in prism_ids]
    # The devices Prism cannot cover are fetched one by one while Prism answers for the rest.
    kandji.session  # noqa: B018 - build the shared session before the threads use it
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kandji-per-device") as background:
        others_done = background.submit(_apps_per_device, kandji, others, settings.concurrency)
        prism = SoftwareResult(route=route.value)
        try:
            if route is SoftwareRoute.PRISM_EXPORT:
                try:
                    _from_export(kandji, wanted, prism)
                except PrismExportError as exc:
                    result.fallbacks.append(f"Prism export failed ({exc}); Prism pages used instead")
                    log.warning("Prism export failed, falling back to Prism pages: %s", exc)
                    prism = SoftwareResult(route=route.value)
                    _from_prism_pages(kandji, wanted, prism)
            else:
                _from_prism_pages(kandji, wanted, prism)
        except ApiError as exc:
            if exc.status not in (401, 403):
                raise
            result.fallbacks.append(f"Prism refused (HTTP {exc.status}); per-device /apps used")
            prism = SoftwareResult(route=route.value)
            _per_device(kandji, [d for d in devices[ID] if d in prism_ids], settings.concurrency, prism)
        result.apps.update(prism.apps)
        result.prism_rows = prism.prism_rows
        result.per_device_calls = prism.per_device_calls
        result.apps.update(others_done.result())
        result.per_device_calls += len(others)
    return result


def _apps_per_device(kandji: KandjiHook, device_ids: list[str], concurrency: int) -> dict[str, list]:
    found = SoftwareResult(route=SoftwareRoute.PER_DEVICE.value)
    _per_device(kandji, device_ids, concurrency, found)
    return found.apps


def _per_device(kandji: KandjiHook, device_ids: list[str], concurrency: int, result: SoftwareResult) -> None:
    """One ``/apps`` call per device, ``concurrency`` at a time (the hook's rate limiter still paces
    them under the tenant's budget). With concurrency 1 this is what Kandji's own scripts do."""
    if concurrency <= 1:
        for device_id in device_ids:
            result.apps[device_id] = _entries(kandji.get_device_apps(device_id))
            result.per_device_calls += 1
        return
    kandji.session  # noqa: B018 - build the shared session before the threads use it
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kandji-apps") as pool:
        for device_id, apps in zip(device_ids, pool.map(kandji.get_device_apps, device_ids), strict=True):
            result.apps[device_id] = _entries(apps)
            result.per_device_calls += 1


def _shared(value: Any) -> Any:
    """One copy of each app name, version and path string: fleets repeat them millions of times."""
    return sys.intern(value) if isinstance(value, str) else value


def _entries(apps: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(e["name"], e["version"], e["path"]) for e in map(software_entry, apps) if e]


def _add_rows(rows: list[dict[str, Any]], wanted: set[str], result: SoftwareResult) -> None:
    grouped: dict[str, list[tuple[Any, Any, Any]]] = defaultdict(list)
    for row in rows:
        device_id = row.get("device_id")
        if device_id in wanted:
            entry = software_entry(row)
            if entry:
                grouped[device_id].append(
                    (_shared(entry["name"]), _shared(entry["version"]), _shared(entry["path"]))
                )
    for device_id, entries in grouped.items():
        result.apps.setdefault(device_id, []).extend(entries)
    result.prism_rows += len(rows)


def _from_prism_pages(kandji: KandjiHook, wanted: set[str], result: SoftwareResult) -> None:
    for page in kandji.iter_prism_pages("apps"):
        _add_rows(page, wanted, result)


def _from_export(kandji: KandjiHook, wanted: set[str], result: SoftwareResult) -> None:
    for chunk in kandji.export_prism("apps", required_columns=EXPORT_COLUMNS):
        # Column by column, not row dicts: a chunk is 200,000 rows.
        for device_id, name, version, path in zip(
            chunk["device_id"], chunk["name"], chunk["version"], chunk["path"], strict=True
        ):
            if device_id in wanted and name:
                result.apps.setdefault(device_id, []).append(
                    (_shared(name), _shared(version or None), _shared(path or None))
                )
        result.prism_rows += len(chunk)
