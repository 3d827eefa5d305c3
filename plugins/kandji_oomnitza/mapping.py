"""The mapping engine: Kandji records → Oomnitza records, column by column (vectorised with pandas).

Input is a frame whose columns are the Kandji paths the mappings read (built by ``source_frame``);
output is the mapped records plus every record that cannot be loaded, with its reason: a value a
converter cannot read, an empty sync key, or a sync key that two Kandji records share.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kandji_oomnitza.integration_config import Integration
from kandji_oomnitza.kandji_values import is_empty, parse_bool, valid_id

ID = "_kandji_id"
LABEL = "_label"
PROBLEM = "_problem"  # why a record could not be read completely from Kandji (set during extract)
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def plain(value: Any) -> Any:
    """A JSON-ready Python value: NaN/NA → None, numpy arrays and scalars → lists and Python scalars
    (what list and number columns hold after a trip through XCom)."""
    if is_empty(value) and not isinstance(value, (list, dict, str)):
        return None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def dig(record: Any, path: str) -> Any:
    """The value at a dot path; numeric parts index lists; None when anything is missing."""
    value = record
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def source_frame(
    records: list[dict[str, Any]], paths: Iterable[str], *, id_path: str, label_path: str
) -> pd.DataFrame:
    """A frame with one column per path (plus the record's id, a human label and any problem met while
    reading it), XCom-safe."""
    columns: dict[str, list[Any]] = {
        ID: [dig(r, id_path) for r in records],
        LABEL: [dig(r, label_path) for r in records],
        PROBLEM: [r.get(PROBLEM) for r in records],
    }
    for path in dict.fromkeys(paths):
        columns[path] = [dig(r, path) for r in records]
    return xcom_safe(pd.DataFrame(columns))


def xcom_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Make every object column one type (pyarrow needs that to put the frame through XCom).

    A column mixing types (Kandji sends ``user`` as an object or ``""``, booleans as ``true`` or
    ``"True"``) keeps its empty values as None and turns the rest into JSON text.
    """
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        values = frame[column]
        kinds = {type(v) for v in values if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if len(kinds) > 1 or kinds & {dict}:
            frame[column] = values.map(
                lambda v: None if is_empty(v) else v if isinstance(v, str) else json.dumps(v, default=str)
            )
    return frame


def _empty_mask(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.isna()
    return series.map(is_empty).astype(bool)  # object and string columns: "" and [] are empty too


def _as_object(series: pd.Series) -> pd.Series:
    """Object dtype with None (not NaN) for missing values, so records serialise to JSON cleanly."""
    out = series.astype(object)
    return out.where(~out.isna(), None)


@dataclass
class ConversionResult:
    values: pd.Series
    errors: pd.Series  # bool: a non-empty value the converter could not read


def convert(name: str, columns: pd.DataFrame, separator: str = ", ") -> ConversionResult:
    first = columns.iloc[:, 0]
    if name == "first_non_empty":
        result = pd.Series([None] * len(columns), index=columns.index, dtype=object)
        for column in columns.columns:
            candidate = columns[column]
            fill = result.map(is_empty).astype(bool) & ~_empty_mask(candidate)
            result = result.where(~fill, candidate)
        return ConversionResult(result, pd.Series(False, index=columns.index))
    if name == "join":

        def join_row(row: Iterable[Any]) -> str | None:
            parts = []
            for value in row:
                value = plain(value)
                items = value if isinstance(value, list) else [value]
                parts.extend(str(v).strip() for v in items if not is_empty(v))
            return separator.join(parts) or None

        joined = pd.Series(
            [join_row(row) for row in columns.itertuples(index=False)], index=columns.index, dtype=object
        )
        return ConversionResult(joined, pd.Series(False, index=columns.index))
    empty = _empty_mask(first)
    if name == "date":
        parsed = pd.to_datetime(first.where(~empty, None), utc=True, format="mixed", errors="coerce")
        values = _as_object(parsed.dt.strftime(DATE_FORMAT))
        return ConversionResult(values, ~empty & parsed.isna())
    if name == "boolean":
        values = _as_object(first.map(parse_bool))
        return ConversionResult(values, ~empty & values.isna())
    change = {"lower": str.lower, "upper": str.upper, "strip": str.strip}.get(name, lambda text: text)
    text = _as_object(first.map(lambda v: None if is_empty(v) else change(str(v))))
    return ConversionResult(text, pd.Series(False, index=columns.index))


@dataclass
class MappedRecords:
    records: pd.DataFrame  # mapped Oomnitza fields, plus ID and LABEL
    rejected: pd.DataFrame  # ID, LABEL, sync_key, reason


def apply_mappings(frame: pd.DataFrame, integration: Integration, sync_time: str) -> MappedRecords:
    out = pd.DataFrame({ID: frame[ID], LABEL: frame[LABEL]}, index=frame.index)
    reasons = pd.Series([None] * len(frame), index=frame.index, dtype=object)

    def reject(mask: pd.Series, reason: pd.Series | str) -> None:
        nonlocal reasons
        fresh = mask & reasons.isna()
        reasons = reasons.where(~fresh, reason)

    # A record without a usable id cannot be told apart from others, nor its software or details read.
    ids = frame[ID]
    reject(
        ~ids.map(valid_id).astype(bool),
        ids.map(
            lambda i: (
                "the Kandji record has no id"
                if is_empty(i)
                else f"the Kandji id {str(i)[:80]!r} is not valid (Kandji ids are letters, digits and hyphens)"
            )
        ),
    )
    if PROBLEM in frame.columns:
        reject(frame[PROBLEM].notna(), frame[PROBLEM])

    for target in integration.mappings:
        spec = integration.resolved(target)
        if spec["special"] == "sync_time":
            out[target] = sync_time
            continue
        if spec["constant"] is not None:
            out[target] = spec["constant"]
            continue
        if spec["template"] is not None:
            template = spec["template"]
            rendered = []
            for row in frame[spec["paths"]].itertuples(index=False):
                values = ["" if is_empty(v) else str(v) for v in row]
                text = template
                for path, value in zip(spec["paths"], values, strict=True):
                    text = text.replace("{" + path + "}", value)
                rendered.append(text if any(values) else None)
            out[target] = pd.Series(rendered, index=frame.index, dtype=object)
            continue
        columns = frame[spec["paths"]]
        converter = spec["converter"]
        if converter is None:
            result = ConversionResult(_as_object(columns.iloc[:, 0]), pd.Series(False, index=frame.index))
            result.values = result.values.map(lambda v: None if is_empty(v) else v)
        else:
            result = convert(converter.name, columns, converter.separator)
        out[target] = result.values
        if result.errors.any():
            raw = columns.iloc[:, 0]
            messages = raw.map(
                lambda v, t=target, s=spec, c=converter.name: f"{t} ← {s['label']}: {c} cannot read {v!r}"
            )
            reject(result.errors, messages)

    sync_key = integration.sync_key
    key_values = out[sync_key]
    key_empty = key_values.apply(lambda row: all(is_empty(v) for v in row), axis=1)
    sources = ", ".join(integration.resolved(k)["label"] for k in sync_key)
    reject(key_empty, f"sync key {', '.join(sync_key)} is empty (Kandji {sources} has no value)")

    identity = key_values.apply(lambda row: _identity(sync_key, row), axis=1)
    valid = reasons.isna()
    duplicated = identity.where(valid).duplicated(keep=False) & valid & identity.notna()
    if duplicated.any():
        groups = (
            out.loc[duplicated].groupby(identity[duplicated])[ID].apply(lambda ids: ", ".join(map(str, ids)))
        )
        reject(
            duplicated,
            identity[duplicated].map(
                lambda key: f"duplicate sync key {key}: shared by Kandji records {groups[key]}"
            ),
        )

    rejected_mask = reasons.notna()
    rejected = pd.DataFrame(
        {
            ID: out.loc[rejected_mask, ID],
            LABEL: out.loc[rejected_mask, LABEL],
            "sync_key": identity[rejected_mask],
            "reason": reasons[rejected_mask],
        }
    )
    return MappedRecords(records=out.loc[~rejected_mask], rejected=rejected)


def _identity(sync_key: list[str], row: Iterable[Any]) -> str | None:
    """The value Oomnitza matches on: the first non-empty sync key field, in priority order."""
    for name, value in zip(sync_key, row, strict=True):
        if not is_empty(value):
            return f"{name}={value!r}"
    return None


def to_oomnitza(
    records: pd.DataFrame, integration: Integration, extra_columns: Iterable[str] = ()
) -> Iterator[dict[str, Any]]:
    """Records as Oomnitza payloads, one at a time (the caller attaches each record's app list, and a
    fleet's worth of those must not be held at once): empty values are left out unless the field
    clears when empty."""
    clearing = {t for t in integration.mappings if integration.mappings[t].clear_when_empty}
    fields = [*integration.mappings, *extra_columns]
    for row in records[fields].itertuples(index=False):
        record = {}
        for name, value in zip(fields, row, strict=True):
            value = plain(value)
            if value is None or (isinstance(value, str) and not value.strip()):
                if name in clearing:
                    record[name] = None
                continue
            record[name] = value
        yield record
