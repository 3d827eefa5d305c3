"""Installed software for a fleet, by the cheapest route that covers it.

- Prism (``/prism/apps``, 300 rows a call) covers Macs, iPhones, iPads and Apple TVs;
- the asynchronous Prism export (one CSV) is cheaper still for large fleets;
- per-device ``/devices/{id}/apps`` is the only route for Windows and Android devices, and the fallback
  when the token lacks the Prism permission.

The Prism route runs in the background while the devices are listed, so its export is being built
while the device pages come in.

The result is one long frame, a row per installed app: ``_kandji_id``, ``name``, ``version``, ``path``,
all categorical (a fleet repeats a few thousand apps millions of times, so a row costs a few bytes).
A device appears in it only when the route speaks for it: a per-device answer always does (a device
with no apps gets one row without a name); Prism speaks only for the devices it has rows for, so a
device Prism has not inventoried yet keeps its software in Oomnitza instead of having it wiped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kandji_oomnitza.common.kandji_values import software_entry, valid_id
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.hooks.errors import ApiError
from kandji_oomnitza.hooks.kandji import KandjiHook, PrismCount, PrismExportError
from kandji_oomnitza.hooks.kandji_export import export_prism
from kandji_oomnitza.integrations.config import Software, SoftwareRoute
from kandji_oomnitza.integrations.handover import SoftwareStats
from kandji_oomnitza.integrations.mapping import ID

log = logging.getLogger(__name__)
PRISM_PLATFORMS = {"Mac", "iPhone", "iPad", "AppleTV"}
APP_FIELDS = ("name", "version", "path")
EXPORT_COLUMNS = ("device_id", *APP_FIELDS)
COLUMNS = (ID, *APP_FIELDS)
FLUSH_ROWS = 200_000  # rows held as Python tuples before they are packed into a categorical frame
PRISM_REFUSALS = (403, 404)  # the token lacks the Prism permission, or the tenant has no Prism


def _pack(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as categorical columns of text (every part's categories then share one dtype: a column of only
    None would not). A column that already holds categories (the export's) keeps them."""
    packed = {}
    for column in COLUMNS:
        values = rows[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            packed[column] = values.cat.set_categories(values.cat.categories.astype("str"))
        else:
            packed[column] = values.astype("str").astype("category")
    return pd.DataFrame(packed, index=rows.index)


def empty_software() -> pd.DataFrame:
    return _pack(pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS}))


def concat_software(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Categorical frames into one, categories merged (plain ``pd.concat`` would fall back to strings)."""
    if not parts:
        return empty_software()
    from pandas.api.types import union_categoricals

    return pd.DataFrame({c: union_categoricals([p[c] for p in parts]) for c in COLUMNS})


@dataclass
class SoftwareResult:
    route: str
    per_device_calls: int = 0
    prism_rows: int = 0
    fallbacks: list[str] = field(default_factory=list)
    unread: dict[str, str] = field(default_factory=dict)  # device id -> why its apps could not be read
    parts: list[pd.DataFrame] = field(default_factory=list)
    _pending: list[tuple[Any, ...]] = field(default_factory=list)  # device id, then APP_FIELDS

    def add(self, device_id: str, apps: Iterable[dict[str, Any]], *, answered: bool = True) -> None:
        """A device's apps in any shape Kandji sends. ``answered``: the source speaks for the device
        even when it lists no apps (a per-device answer does; a Prism row does not)."""
        before = len(self._pending)
        for entry in filter(None, map(software_entry, apps)):
            self._pending.append((device_id, *(_text(entry[f]) for f in APP_FIELDS)))
        if answered and len(self._pending) == before:
            self._pending.append((device_id, None, None, None))
        if len(self._pending) >= FLUSH_ROWS:
            self._flush()

    def add_rows(self, rows: pd.DataFrame) -> None:
        """Rows already in the long shape (the export's CSV)."""
        self.parts.append(_pack(rows))

    def _flush(self) -> None:
        if self._pending:
            self.parts.append(_pack(pd.DataFrame(self._pending, columns=list(COLUMNS), dtype=object)))
            self._pending = []

    def frame(self) -> pd.DataFrame:
        self._flush()
        if len(self.parts) != 1:  # merged once; the summary and the push then reuse it
            self.parts = [concat_software(self.parts)]
        return self.parts[0]

    def merge(self, other: SoftwareResult, keep: set[str]) -> None:
        """Take ``other``'s rows for the devices in ``keep`` (Prism lists devices we did not list)."""
        rows = other.frame()
        self._flush()
        self.parts.append(rows[rows[ID].isin(keep)])
        self.prism_rows += other.prism_rows
        self.per_device_calls += other.per_device_calls
        self.fallbacks += other.fallbacks
        self.unread.update(other.unread)

    def summary(self) -> SoftwareStats:
        rows = self.frame()
        return SoftwareStats(
            route=self.route,
            devices_with_software=int(rows[ID].nunique()),
            software_rows=int(rows["name"].notna().sum()),
            prism_rows=self.prism_rows,
            per_device_calls=self.per_device_calls,
            fallbacks=self.fallbacks,
            unread=self.unread,
        )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def choose_route(
    kandji: KandjiHook, settings: Software, result: SoftwareResult
) -> tuple[SoftwareRoute, PrismCount | None]:
    """The automatic choice: Prism pages, or the export at or above the threshold of app rows. Prism's
    row count is also what an export is checked against, so the export route reads it too."""
    if settings.route in (SoftwareRoute.PER_DEVICE, SoftwareRoute.PRISM):
        return settings.route, None
    try:
        count = kandji.prism_count("apps")
    except ApiError as exc:
        if exc.status in PRISM_REFUSALS:
            log.warning("Prism is unavailable to this token: %s", exc)
            result.fallbacks.append(
                f"Prism unavailable to this token (HTTP {exc.status}); per-device /apps used"
            )
            return SoftwareRoute.PER_DEVICE, None
        raise
    if settings.route is SoftwareRoute.PRISM_EXPORT:
        return settings.route, count
    route = (
        SoftwareRoute.PRISM_EXPORT if count.rows >= settings.export_threshold_rows else SoftwareRoute.PRISM
    )
    log.info(
        "Prism reports %d app rows; threshold %d → %s",
        count.rows,
        settings.export_threshold_rows,
        route.value,
    )
    return route, count


def collect(
    kandji: KandjiHook, settings: Software, list_devices: Callable[[PageCallback], pd.DataFrame]
) -> tuple[pd.DataFrame, SoftwareResult]:
    """The devices and the apps of every one of them. ``list_devices(on_page)`` lists the devices into a
    frame (with ``_kandji_id`` and ``platform``), calling ``on_page`` with each page as it arrives."""
    result = SoftwareResult(route=settings.route.value)
    route, count = choose_route(kandji, settings, result)
    result.route = route.value
    kandji.session  # noqa: B018 - build the shared session before the threads use it
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kandji-prism") as background:
        prism = (
            None
            if route is SoftwareRoute.PER_DEVICE
            else background.submit(_from_prism, kandji, route, count)
        )

        def prism_covers(platform: Any) -> bool:
            return prism is not None and platform in PRISM_PLATFORMS

        if settings.concurrency > 1:
            # The devices Prism cannot cover are fetched one by one as their page arrives, while Prism
            # answers for the rest.
            # A device without a usable id is rejected by the transform; its apps are not asked for.
            with AppsFetcher(kandji, settings.concurrency, result) as per_device:
                devices = list_devices(
                    lambda page: per_device.submit(
                        d["device_id"]
                        for d in page
                        if not prism_covers(d.get("platform")) and valid_id(d.get("device_id"))
                    )
                )
        else:  # what Kandji's own scripts do: list, then one device at a time
            devices = list_devices(lambda page: None)
            uncovered = devices.loc[~devices["platform"].map(prism_covers).astype(bool), ID]
            fetch_apps(kandji, [d for d in uncovered if valid_id(d)], 1, result)
        if prism is None:
            return devices, result
        prism_ids = set(devices.loc[devices["platform"].isin(PRISM_PLATFORMS), ID])
        try:
            result.merge(prism.result(), keep=prism_ids)
        except ApiError as exc:
            if exc.status not in PRISM_REFUSALS:
                raise
            log.warning("Prism refused (HTTP %s); falling back to per-device /apps", exc.status)
            result.fallbacks.append(f"Prism refused (HTTP {exc.status}); per-device /apps used")
            fetch_apps(
                kandji,
                [d for d in devices[ID] if d in prism_ids and valid_id(d)],
                settings.concurrency,
                result,
            )
    return devices, result


PageCallback = Callable[[list[dict[str, Any]]], None]


class AppsFetcher:
    """Per-device ``/apps`` calls in flight on a thread pool, their answers taken in order as they come,
    with at most a few per worker waiting so a fleet's answers never pile up in memory. One worker is
    what Kandji's own scripts do (one device after another)."""

    def __init__(self, kandji: KandjiHook, concurrency: int, result: SoftwareResult) -> None:
        self.kandji, self.result, self.window = kandji, result, concurrency * 4
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kandji-apps")
        self.pending: deque[tuple[str, Future]] = deque()

    def __enter__(self) -> AppsFetcher:
        return self

    def submit(self, device_ids: Iterable[str]) -> None:
        for device_id in device_ids:
            self.pending.append((device_id, self.pool.submit(self.kandji.get_device_apps, device_id)))
            while len(self.pending) > self.window:
                self._take()

    def _take(self) -> None:
        device_id, answer = self.pending.popleft()
        self.result.per_device_calls += 1
        try:
            apps = answer.result()
        except ApiError as exc:
            if exc.status != 404:
                raise  # a missing permission or an outage: the software of the fleet cannot be read
            # The device left Kandji during the run: its record still loads, without a software list,
            # so Oomnitza keeps what it had. The report lists it.
            self.result.unread[device_id] = shorten(f"its apps could not be read ({exc})", 300)
            return
        self.result.add(device_id, apps)

    def __exit__(self, kind, error, trace) -> None:
        try:
            while self.pending and kind is None:
                self._take()
        finally:
            self.pool.shutdown(cancel_futures=True)


def _from_prism(kandji: KandjiHook, route: SoftwareRoute, count: PrismCount | None) -> SoftwareResult:
    found = SoftwareResult(route=route.value)
    if route is SoftwareRoute.PRISM_EXPORT:
        try:
            _from_export(kandji, found, count)
            return found
        except ApiError as exc:
            if not isinstance(exc, PrismExportError) and exc.status not in PRISM_REFUSALS:
                raise
            # Whatever the export gave is dropped: a partial list would replace a device's software.
            log.warning("Prism export failed, falling back to Prism pages: %s", exc)
            found = SoftwareResult(route=route.value)
            found.fallbacks.append(shorten(f"Prism export failed ({exc}); Prism pages used instead", 400))
    for page in kandji.iter_prism_pages(
        "apps", expected=count.rows if count and not count.approximate else None
    ):
        for row in page:
            if row.get("device_id"):
                found.add(row["device_id"], [row], answered=False)
        found.prism_rows += len(page)
    return found


def _from_export(kandji: KandjiHook, found: SoftwareResult, count: PrismCount | None) -> None:
    for chunk in export_prism(
        kandji, "apps", required_columns=EXPORT_COLUMNS, expected=count, dtype="category"
    ):
        rows = chunk[(chunk["device_id"] != "") & (chunk["name"] != "")].rename(columns={"device_id": ID})
        # An empty cell is no value (None), not the text "".
        found.add_rows(
            pd.DataFrame(
                {
                    c: rows[c].cat.remove_categories([v for v in ("",) if v in rows[c].cat.categories])
                    for c in COLUMNS
                }
            )
        )
        found.prism_rows += len(chunk)


def fetch_apps(kandji: KandjiHook, device_ids: list[str], concurrency: int, result: SoftwareResult) -> None:
    """One ``/apps`` call per device, ``concurrency`` at a time (the hook's rate limiter still paces
    them under the tenant's budget). With concurrency 1 this is what Kandji's own scripts do."""
    with AppsFetcher(kandji, max(1, concurrency), result) as per_device:
        per_device.submit(device_ids)


class Applications:
    """Each device's Oomnitza ``APPLICATIONS`` list, built only as its record is sent, so a fleet's
    app lists never sit in memory as Python objects at once. A fleet installs a few thousand distinct
    apps (name, version, path) millions of times: each distinct one is one dict, shared by every list
    that holds it (the lists are only read, to be sent)."""

    def __init__(self, software: pd.DataFrame) -> None:
        import numpy as np

        devices = software[ID].cat.codes.to_numpy()
        order = devices.argsort(kind="stable")
        devices = devices[order]
        starts = [0, *(devices[1:] != devices[:-1]).nonzero()[0] + 1]
        ends = [*starts[1:], len(devices)]
        names = software[ID].cat.categories
        self._span = {names[devices[s]]: (s, e) for s, e in zip(starts, ends, strict=True) if e > s}
        # Each row's app as one number (its three category codes; -1 is no value), numbered by distinct app.
        # Built in place, one column at a time: a fleet's software is ten million rows.
        sizes = [len(software[f].cat.categories) + 1 for f in APP_FIELDS]
        combined = np.zeros(len(order), dtype=np.int64)
        for field_name, size in zip(APP_FIELDS, sizes, strict=True):
            combined *= size
            combined += software[field_name].cat.codes.to_numpy()[order]
            combined += 1
        numbered, distinct = pd.factorize(combined)
        del combined
        self._app = numbered.astype(np.int32)
        del numbered
        values = [[None, *software[f].cat.categories] for f in APP_FIELDS]
        names_, versions, paths = values
        self._apps = [
            {
                "name": names_[int(c // (sizes[1] * sizes[2]))],
                "version": versions[int(c // sizes[2] % sizes[1])],
                "path": paths[int(c % sizes[2])],
            }
            for c in distinct
        ]
        self._named = np.array([app["name"] is not None for app in self._apps], dtype=bool)

    def __contains__(self, device_id: str) -> bool:
        return device_id in self._span

    def get(self, device_id: str) -> list[dict[str, Any]] | None:
        """The device's apps, ``[]`` when it has none, None when the route did not speak for it."""
        span = self._span.get(device_id)
        if span is None:
            return None
        apps = self._apps
        row = self._app[span[0] : span[1]]
        return [apps[i] for i in row[self._named[row]].tolist()]


# A fleet's software travels between tasks in parts: each XCom read or write is one Execution API request,
# which must finish within [workers] execution_api_timeout (5 s by default), and reading back the
# software of 100,000 devices (9.3M rows) as one XCom took about 7 s.
ROWS_PER_PART = 1_000_000


def software_parts(software: pd.DataFrame, rows_per_part: int | None = None) -> list[pd.DataFrame]:
    """The software frame in parts of at most ``rows_per_part`` rows, ordered by device (a part then names
    few devices), each with only its own devices' categories: each part is one XCom."""
    rows_per_part = rows_per_part or ROWS_PER_PART
    # The order by device, as positions: each part is taken from the frame as it is (no sorted copy of the
    # whole fleet's software beside it).
    order = software[ID].cat.codes.to_numpy().argsort(kind="stable")
    parts = []
    for number in range(max(1, -(-len(software) // rows_per_part))):
        part = software.take(order[number * rows_per_part : (number + 1) * rows_per_part])
        part = part.reset_index(drop=True)
        part[ID] = part[ID].cat.remove_unused_categories()
        parts.append(part)
    return parts
