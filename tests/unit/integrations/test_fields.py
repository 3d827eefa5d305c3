"""integrations/fields.py: the standard fields and converters the mappings use."""

from __future__ import annotations

import pandas as pd
import pytest

from kandji_oomnitza.integrations.fields import CONVERTERS
from kandji_oomnitza.integrations.mapping import convert


def one(name: str, value, **options):
    result = convert(name, pd.DataFrame({"v": [value]}), options)
    return result.values.iloc[0], bool(result.errors.iloc[0])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-07-23T14:11:37.150080Z", "2024-07-23T14:11:37Z"),
        ("2024-01-26 16:15:36.087016+00:00", "2024-01-26T16:15:36Z"),
        ("2024-07-23 12:43:15.675470+00:00", "2024-07-23T12:43:15Z"),
        ("2024-05-13 20:09:23 +0000", "2024-05-13T20:09:23Z"),
        ("2024-07-23T16:11:37+02:00", "2024-07-23T14:11:37Z"),
        ("2024-06-17 11:32:35+00:00", "2024-06-17T11:32:35Z"),
        ("2024-06-17T11:32:35", "2024-06-17T11:32:35Z"),  # naive: taken as UTC
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_the_date_converter_reads_every_kandji_timestamp_format(value, expected):
    assert one("date", value) == (expected, False)


def test_a_value_the_date_converter_cannot_read_is_an_error_not_a_guess():
    assert one("date", "last tuesday-ish") == (None, True)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("boolean", "True", True),
        ("boolean", "No", False),
        ("boolean", "maybe", None),
        ("lower", "MacBook", "macbook"),
        ("upper", "m1", "M1"),
        ("strip", "  x  ", "x"),
        ("string", 12, "12"),
        ("string", "", None),
    ],
)
def test_single_value_converters(name, value, expected):
    value_out, error = one(name, value)
    assert value_out == expected
    assert error is (name == "boolean" and value == "maybe")


def test_converters_over_several_paths():
    columns = pd.DataFrame({"asset_tag": ["", "TAG-1", None], "serial": ["S1", "S2", None]})
    first = convert("first_non_empty", columns)
    assert list(first.values) == ["S1", "TAG-1", None] and not first.errors.any()
    tags = pd.DataFrame({"tags": [["a", "b"], [], None], "extra": ["c", "", None]})
    joined = convert("join", tags, {"separator": "; "})
    assert list(joined.values) == ["a; b; c", None, None]


def test_the_registry_says_how_many_paths_each_converter_reads():
    assert CONVERTERS["first_non_empty"].paths == "many" and CONVERTERS["join"].paths == "any"
    assert {name for name, spec in CONVERTERS.items() if spec.paths == "one"} == {
        "date", "boolean", "lower", "upper", "string", "strip"
    }  # fmt: skip
