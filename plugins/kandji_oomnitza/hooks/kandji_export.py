"""Kandji's asynchronous Prism export (``POST /prism/export``, poll, download the signed CSV), read in
chunks: the cheapest way to read a large fleet's apps. A file that is not proven complete is an error."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import requests

from kandji_oomnitza.common.kandji_values import valid_id
from kandji_oomnitza.common.polling import poll
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.hooks.errors import json_of
from kandji_oomnitza.hooks.kandji import (
    API,
    EXPORT_PENDING,
    MAX_EXPORT_GB,
    PrismCount,
    PrismExportError,
    dict_body,
    normalise_column,
)

if TYPE_CHECKING:
    import pandas as pd

    from kandji_oomnitza.hooks.kandji import KandjiHook


def export_prism(
    kandji: KandjiHook,
    category: str,
    *,
    device_families: list[str] | None = None,
    required_columns: tuple[str, ...] = (),
    expected: PrismCount | None = None,
    poll_seconds: float = 0.5,
    timeout_seconds: float = 900.0,
    chunk_rows: int = 200_000,
    dtype: str = "str",
) -> Iterator[pd.DataFrame]:
    """Run an asynchronous Prism export and yield its CSV in chunks of strings (``dtype="category"``:
    of categories, built by the CSV parser itself: a fleet repeats a few thousand apps millions of times).

    Column names are normalised (``Serial Number`` → ``serial_number``). Only ``required_columns``
    are read when given, and the file is streamed to disk first, so a ten-million-row export never
    sits in memory whole. The CSV is downloaded from the signed URL without any Kandji credential.

    A file that is not proven complete raises ``PrismExportError`` after its last chunk (so the caller
    must drop what it read): a download cut mid-row, fewer rows than ``expected`` (``/prism/count`` read
    just before), or, when that count is approximate (or missing), a download whose end nothing vouches
    for: no Content-Length and no chunked framing, so a cut between two rows would look like the end.
    """
    signed_url, export_id = _run_export(kandji, category, device_families, poll_seconds, timeout_seconds)
    rows = 0
    framed: list[bool] = []
    for chunk in _read_export(
        kandji, signed_url, export_id, category, required_columns, chunk_rows, framed, dtype
    ):
        rows += len(chunk)
        yield chunk
    if expected is not None and not expected.approximate:
        if rows < expected.rows:
            raise PrismExportError(
                f"Kandji's Prism export {export_id} ({category}) holds {rows} rows, but Prism counted "
                f"{expected.rows}: the file is incomplete",
                endpoint=f"GET {API}/prism/export/{export_id}",
            )
    elif not all(framed):
        raise PrismExportError(
            f"Kandji's Prism export {export_id} ({category}) cannot be proven complete: Prism's row count is "
            f"{'approximate' if expected else 'unknown'} and the download had no length, so a cut between "
            "two rows would look like its end",
            endpoint=f"GET {API}/prism/export/{export_id}",
        )


def _run_export(
    kandji: KandjiHook, category, device_families, poll_seconds, timeout_seconds
) -> tuple[str, str]:
    body = {
        "blueprint_ids": [],
        "device_families": device_families or [],
        "category": category,
        "filter": {},
        "sort_by": "",
    }
    # Starting an export twice only costs a second export, never wrong data: safe to retry.
    job = kandji.request(
        "POST", f"{API}/prism/export", json_body=body, decode=lambda r: dict_body(json_of(r))
    )
    export_id = job.get("id")
    if not valid_id(export_id):
        raise PrismExportError(
            f"Kandji did not return a usable export id for category {category!r}: {shorten(job, 200)}"
        )
    if job.get("status") in EXPORT_PENDING:
        job = poll(
            lambda: kandji.request(
                "GET", f"{API}/prism/export/{export_id}", decode=lambda r: dict_body(json_of(r))
            ),
            done=lambda answer: answer.get("status") not in EXPORT_PENDING,
            timeout_seconds=timeout_seconds,
            first_wait=poll_seconds,
            max_wait=30.0,
        )
    status = job.get("status")
    if status in EXPORT_PENDING:
        raise PrismExportError(
            f"Kandji's Prism export {export_id} ({category}) was not ready after {timeout_seconds:.0f}s"
        )
    if status != "success":
        raise PrismExportError(
            f"Kandji's Prism export {export_id} ({category}) ended with status {shorten(status, 40)!r}: "
            f"{shorten(job.get('error_msg') or 'no message', 200)}"
        )
    if not job.get("signed_url"):
        raise PrismExportError(f"Kandji's Prism export {export_id} succeeded without a download URL")
    return job["signed_url"], export_id


def _read_export(
    kandji: KandjiHook,
    signed_url,
    export_id,
    category,
    required_columns,
    chunk_rows,
    framed: list[bool],
    dtype: str,
) -> Iterator[pd.DataFrame]:
    """The CSV in chunks; ``framed`` gets whether HTTP itself marked the body's end (a Content-Length
    or chunked encoding, whose cut the client detects)."""
    import pandas as pd

    with tempfile.TemporaryFile() as spool:
        # A bare request: the signed URL carries its own authorisation, and no Kandji token may leave.
        with kandji._count_lock:
            kandji.calls += 1
        try:
            with requests.get(signed_url, timeout=max(kandji.timeout, 300.0), stream=True) as response:
                if response.status_code >= 400:
                    raise PrismExportError(
                        f"Downloading Kandji's Prism export {export_id} failed with HTTP {response.status_code}"
                    )
                framed.append(
                    "Content-Length" in response.headers
                    or "chunked" in response.headers.get("Transfer-Encoding", "").lower()
                )
                limit = kandji._setting("max_export_gb", None, MAX_EXPORT_GB, float) * 1024**3
                for block in response.iter_content(chunk_size=1 << 20):
                    spool.write(block)
                    if spool.tell() > limit:
                        raise PrismExportError(
                            f"Kandji's Prism export {export_id} ({category}) is larger than {limit / 1024**3:g} GB "
                            f"(the extra max_export_gb of connection '{kandji.kandji_conn_id}'): not read further"
                        )
        except requests.RequestException as exc:
            raise PrismExportError(
                f"Could not download Kandji's Prism export {export_id}: {type(exc).__name__}"
            ) from None
        size = spool.tell()
        if size:
            spool.seek(size - 1)
            if spool.read(1) not in (b"\n", b"\r"):
                raise PrismExportError(
                    f"Kandji's Prism export {export_id} ({category}) ends mid-row after {size} bytes: "
                    "the download was cut off"
                )
        spool.seek(0)
        header = spool.readline().decode("utf-8-sig", "replace")
        raw_names = next(csv.reader([header]), [])
        by_normal = {normalise_column(name): name for name in raw_names}
        missing = [c for c in required_columns if c not in by_normal]
        if missing:
            raise PrismExportError(
                f"Kandji's Prism export {export_id} ({category}) lacks columns {missing}; "
                f"it has {shorten(sorted(by_normal)[:20], 300)}"
            )
        spool.seek(0)
        usecols = [by_normal[c] for c in required_columns] if required_columns else None
        try:
            reader = pd.read_csv(
                spool,
                dtype=dtype,
                keep_default_na=False,
                usecols=usecols,
                chunksize=chunk_rows,
                on_bad_lines="error",  # a row we cannot read makes the export unusable, not shorter
            )
            for chunk in reader:
                chunk.columns = [normalise_column(str(c)) for c in chunk.columns]
                yield chunk
        except (ValueError, pd.errors.ParserError) as exc:
            raise PrismExportError(
                f"Kandji's Prism export {export_id} could not be parsed: {shorten(exc, 200)}"
            ) from None


# -- actions ------------------------------------------------------------------------------
