"""The mapping vocabulary: Oomnitza's standard Kandji fields, and the converters a mapping can name.

One registry each. Adding a converter is one function below, decorated with ``@converter``: the
integration-file validation reads the registry's names and rules, and the mapping engine
(``mapping.py``) calls the function. This module is read when DAG files are parsed, so pandas is
imported inside the converters, never here.

A converter takes the columns its mapping reads (one column per path; several only for converters that
take several paths) and the mapping's converter options, and returns the converted values and which
rows held a value it could not read (those records are rejected, with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kandji_oomnitza.common.kandji_values import TIMESTAMP_FORMAT, is_empty, parse_bool

if TYPE_CHECKING:
    import pandas as pd

# Oomnitza's standard Kandji fields (its wizard's lists) and where each comes from in Kandji.
# "sync_time" is the time this run read Kandji (Oomnitza's "Connector Sync Time").
STANDARD_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "assets": {
        "Asset Tag": {"path": "asset_tag"},
        "Blueprint ID": {"path": "blueprint_id"},
        "Connector Sync Time": {"special": "sync_time"},
        "Device ID": {"path": "device_id"},
        "Device Name": {"path": "device_name"},
        "Last Check-In": {"path": "last_check_in", "converter": "date"},
        "Model": {"path": "model"},
        "OS Version": {"path": "os_version"},
        "Platform": {"path": "platform"},
        "Serial Number": {"path": "serial_number"},
        "User": {"path": "user.email"},
    },
    "users": {
        "Connector Sync Time": {"special": "sync_time"},
        "User Email": {"path": "email"},
        "User ID": {"path": "id"},
        "User Name": {"path": "name"},
        "User Is Archived": {"path": "archived", "converter": "boolean"},
    },
}


@dataclass
class ConversionResult:
    values: pd.Series
    errors: pd.Series  # bool: a non-empty value the converter could not read


@dataclass(frozen=True)
class ConverterSpec:
    function: Callable[[pd.DataFrame, dict[str, Any]], ConversionResult]
    paths: str  # "one": a single path; "many": a list of paths; "any": either


CONVERTERS: dict[str, ConverterSpec] = {}


def converter(name: str, *, paths: str = "one"):
    """Register a converter under ``name``; ``paths`` says whether its mapping reads one path, a list of
    paths ("many"), or either ("any")."""

    def register(function):
        CONVERTERS[name] = ConverterSpec(function, paths)
        return function

    return register


def _no_errors(columns: pd.DataFrame) -> pd.Series:
    import pandas as pd

    return pd.Series(False, index=columns.index)


def _empty_mask(series: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.isna()
    return series.map(is_empty).astype(bool)  # object and string columns: "" and [] are empty too


def as_object(series: pd.Series) -> pd.Series:
    """Object dtype with None (not NaN) for missing values, so records serialise to JSON cleanly."""
    out = series.astype(object)
    return out.where(~out.isna(), None)


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


@converter("date")
def to_date(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    """UTC ISO-8601 (``2024-07-23T14:11:37Z``) from any of Kandji's timestamp formats (``T`` or space,
    ``Z`` or an offset, with or without fractions); naive timestamps are taken as UTC."""
    import pandas as pd

    first = columns.iloc[:, 0]
    empty = _empty_mask(first)
    parsed = pd.to_datetime(first.where(~empty, None), utc=True, format="mixed", errors="coerce")
    return ConversionResult(as_object(parsed.dt.strftime(TIMESTAMP_FORMAT)), ~empty & parsed.isna())


@converter("boolean")
def to_boolean(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    """JSON booleans from booleans, ``"True"``/``"Yes"``/``"1"`` style strings and 0/1."""
    first = columns.iloc[:, 0]
    values = as_object(first.map(parse_bool))
    return ConversionResult(values, ~_empty_mask(first) & values.isna())


def _text(columns: pd.DataFrame, change: Callable[[str], str]) -> ConversionResult:
    first = columns.iloc[:, 0]
    values = as_object(first.map(lambda v: None if is_empty(v) else change(str(v))))
    return ConversionResult(values, _no_errors(columns))


@converter("string")
def to_string(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    return _text(columns, lambda text: text)


@converter("lower")
def to_lower(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    return _text(columns, str.lower)


@converter("upper")
def to_upper(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    return _text(columns, str.upper)


@converter("strip")
def to_stripped(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    return _text(columns, str.strip)


@converter("first_non_empty", paths="many")
def first_non_empty(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    """The first of the paths that holds a value, in the order given."""
    import pandas as pd

    result = pd.Series([None] * len(columns), index=columns.index, dtype=object)
    for column in columns.columns:
        candidate = columns[column]
        fill = result.map(is_empty).astype(bool) & ~_empty_mask(candidate)
        result = result.where(~fill, candidate)
    return ConversionResult(result, _no_errors(columns))


@converter("join", paths="any")
def join(columns: pd.DataFrame, options: dict[str, Any]) -> ConversionResult:
    """Every value of the paths (list values flattened) joined with ``separator`` (default ", ")."""
    import pandas as pd

    separator = options.get("separator", ", ")

    def join_row(row) -> str | None:
        parts: list[str] = []
        for value in row:
            value = plain(value)
            items = value if isinstance(value, list) else [value]
            parts.extend(str(v).strip() for v in items if not is_empty(v))
        return separator.join(parts) or None

    joined = pd.Series(
        [join_row(row) for row in columns.itertuples(index=False)], index=columns.index, dtype=object
    )
    return ConversionResult(joined, _no_errors(columns))
