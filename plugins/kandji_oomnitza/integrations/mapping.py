"""The mapping engine: Kandji records → Oomnitza records, column by column (vectorised with pandas).

Input is a frame whose columns are the Kandji paths the mappings read (built by ``source_frame``);
output is the mapped records plus every record that cannot be loaded, with its reason: a missing or
invalid Kandji id, a problem met while reading it, a value a converter cannot read, an empty sync key,
or a sync key that two Kandji records share. The vocabulary (standard fields, converters) is in
``fields.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kandji_oomnitza.common.kandji_values import is_empty, valid_id
from kandji_oomnitza.integrations.config import Integration, ResolvedMapping
from kandji_oomnitza.integrations.fields import CONVERTERS, ConversionResult, as_object, plain

ID = "_kandji_id"
LABEL = "_label"
PROBLEM = "_problem"  # why a record could not be read completely from Kandji (set during extract)


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


class SourceColumns:
    """The columns of a source frame, filled a page at a time: of each record only the values the
    mappings read are kept, so a fleet's worth of whole Kandji records (a few KB each) is never held."""

    def __init__(self, paths: Iterable[str], *, id_path: str, label_path: str) -> None:
        self.paths = {ID: id_path, LABEL: label_path, **{p: p for p in dict.fromkeys(paths)}}
        self.columns: dict[str, list[Any]] = {name: [] for name in (*self.paths, PROBLEM)}

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            for name, path in self.paths.items():
                self.columns[name].append(dig(record, path))
            self.columns[PROBLEM].append(record.get(PROBLEM))

    def __len__(self) -> int:
        return len(self.columns[ID])

    def frame(self) -> pd.DataFrame:
        """One column per path (plus the record's id, a human label and any problem met while reading
        it), XCom-safe."""
        columns = {ID: self.columns[ID], LABEL: self.columns[LABEL], PROBLEM: self.columns[PROBLEM]}
        columns |= {p: v for p, v in self.columns.items() if p not in columns}
        return xcom_safe(pd.DataFrame(columns))


def source_frame(
    records: list[dict[str, Any]], paths: Iterable[str], *, id_path: str, label_path: str
) -> pd.DataFrame:
    """A frame with one column per path (plus the record's id, a human label and any problem met while
    reading it), XCom-safe."""
    columns = SourceColumns(paths, id_path=id_path, label_path=label_path)
    columns.add(records)
    return columns.frame()


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


def convert(name: str, columns: pd.DataFrame, options: dict[str, Any] | None = None) -> ConversionResult:
    """Run the converter registered as ``name`` (``fields.CONVERTERS``) over ``columns``."""
    return CONVERTERS[name].function(columns, options or {})


@dataclass
class MappedRecords:
    records: pd.DataFrame  # mapped Oomnitza fields, plus ID and LABEL
    rejected: pd.DataFrame  # ID, LABEL, sync_key, reason


class Rejections:
    """Why each row is rejected: the first reason given for a row is the one it keeps."""

    def __init__(self, index: pd.Index) -> None:
        self.reasons = pd.Series([None] * len(index), index=index, dtype=object)

    def add(self, mask: pd.Series, reason: pd.Series | str) -> None:
        fresh = mask & self.reasons.isna()
        self.reasons = self.reasons.where(~fresh, reason)

    @property
    def mask(self) -> pd.Series:
        return self.reasons.notna()


def apply_mappings(frame: pd.DataFrame, integration: Integration, sync_time: str) -> MappedRecords:
    out = pd.DataFrame({ID: frame[ID], LABEL: frame[LABEL]}, index=frame.index)
    rejections = Rejections(frame.index)
    _reject_unreadable_records(frame, rejections)
    for target in integration.mappings:
        spec = integration.resolved(target)
        result = _map_column(frame, spec, sync_time)
        out[target] = result.values
        if result.errors.any():
            raw = frame[list(spec.paths)].iloc[:, 0]
            prefix = f"{target} ← {spec.label}: {spec.converter.name if spec.converter else 'the value'}"
            rejections.add(result.errors, raw.map(lambda v, p=prefix: f"{p} cannot read {v!r}"))
    identity = _reject_bad_sync_keys(out, integration, rejections)
    rejected_mask = rejections.mask
    rejected = pd.DataFrame(
        {
            ID: out.loc[rejected_mask, ID],
            LABEL: out.loc[rejected_mask, LABEL],
            "sync_key": identity[rejected_mask],
            "reason": rejections.reasons[rejected_mask],
        }
    )
    return MappedRecords(records=out.loc[~rejected_mask], rejected=rejected)


def _reject_unreadable_records(frame: pd.DataFrame, rejections: Rejections) -> None:
    """A record without a usable id cannot be told apart from others, nor its software or details read;
    a record the extract could not read completely is not loaded half-read."""
    ids = frame[ID]
    rejections.add(
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
        rejections.add(frame[PROBLEM].notna(), frame[PROBLEM])


def _map_column(frame: pd.DataFrame, spec: ResolvedMapping, sync_time: str) -> ConversionResult:
    """One Oomnitza field's values for every record, and which records held a value it could not read."""
    no_errors = pd.Series(False, index=frame.index)
    if spec.special == "sync_time":
        return ConversionResult(pd.Series(sync_time, index=frame.index, dtype=object), no_errors)
    if spec.constant is not None:
        return ConversionResult(
            pd.Series([spec.constant] * len(frame), index=frame.index, dtype=object), no_errors
        )
    columns = frame[list(spec.paths)]
    if spec.template is not None:
        return ConversionResult(_render(spec.template, spec.paths, columns), no_errors)
    if spec.converter is not None:
        return convert(spec.converter.name, columns, spec.converter.options)
    values = as_object(columns.iloc[:, 0]).map(lambda v: None if is_empty(v) else v)
    return ConversionResult(values, no_errors)


def _render(template: str, paths: tuple[str, ...], columns: pd.DataFrame) -> pd.Series:
    """``template`` with each ``{path}`` replaced, per record; None when every path is empty."""
    rendered = []
    for row in columns.itertuples(index=False):
        values = ["" if is_empty(v) else str(v) for v in row]
        text = template
        for path, value in zip(paths, values, strict=True):
            text = text.replace("{" + path + "}", value)
        rendered.append(text if any(values) else None)
    return pd.Series(rendered, index=columns.index, dtype=object)


def _reject_bad_sync_keys(out: pd.DataFrame, integration: Integration, rejections: Rejections) -> pd.Series:
    """Reject records whose sync key is empty, or shared by another record; return each record's identity."""
    sync_key = integration.sync_key
    # Column by column (a fleet is 100,000 rows): each record's identity is its first non-empty key field.
    identity = pd.Series([None] * len(out), index=out.index, dtype=object)
    for name in reversed(sync_key):
        values = out[name]
        present = ~values.map(is_empty).astype(bool)
        identity = identity.where(~present, values.map(lambda v, n=name: f"{n}={v!r}"))
    key_empty = identity.isna()
    sources = ", ".join(integration.resolved(k).label for k in sync_key)
    rejections.add(key_empty, f"sync key {', '.join(sync_key)} is empty (Kandji {sources} has no value)")
    valid = ~rejections.mask
    duplicated = identity.where(valid).duplicated(keep=False) & valid & identity.notna()
    if duplicated.any():
        groups = (
            out.loc[duplicated].groupby(identity[duplicated])[ID].apply(lambda ids: ", ".join(map(str, ids)))
        )
        rejections.add(
            duplicated,
            identity[duplicated].map(
                lambda key: f"duplicate sync key {key}: shared by Kandji records {groups[key]}"
            ),
        )
    return identity


def to_oomnitza(
    records: pd.DataFrame, integration: Integration, extra_columns: Iterable[str] = ()
) -> Iterator[dict[str, Any]]:
    """Records as Oomnitza payloads, one at a time (the caller attaches each record's app list, and a
    fleet's worth of those must not be held at once): empty values are left out unless the field
    clears when empty."""
    clearing = {t for t in integration.mappings if integration.mappings[t].clear_when_empty}
    fields = [*integration.mappings, *extra_columns]
    # Column by column into plain values (EMPTY where nothing is sent), then record by record.
    columns = [[_sendable(v) for v in records[name].tolist()] for name in fields]
    for row in zip(*columns, strict=True):
        record: dict[str, Any] = {}
        for name, value in zip(fields, row, strict=True):
            if value is EMPTY:
                if name in clearing:
                    record[name] = None
                continue
            record[name] = value
        yield record


EMPTY = object()  # a value that is not sent (or sent as null, where the mapping clears)


def _sendable(value: Any) -> Any:
    if type(value) is str:  # the common case, first
        return value if value.strip() else EMPTY
    value = plain(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return EMPTY
    return value
