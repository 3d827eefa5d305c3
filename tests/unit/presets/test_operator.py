"""presets/operator.py: what the trigger form cannot check is checked before any call to Kandji."""

from __future__ import annotations

import pytest

from kandji_oomnitza.exceptions import PresetInputError
from kandji_oomnitza.presets.operator import KandjiDeviceActionOperator, validate_inputs
from kandji_oomnitza.presets.registry import PRESETS

BY_KEY = {p.key: p for p in PRESETS}


def test_the_erase_confirmation_must_repeat_the_serial_and_no_input_may_carry_stray_spaces():
    erase = BY_KEY["erase_device"]
    with pytest.raises(PresetInputError, match="Nothing was erased"):
        validate_inputs(erase, {"serial_number": "C02X", "confirm_serial_number": "C02Y"})
    ok = validate_inputs(erase, {"serial_number": "c02x", "confirm_serial_number": "c02x"})
    assert ok["serial_number"] == "C02X"
    # A serial pasted with spaces around it is trimmed; other inputs are refused with one sentence.
    assert validate_inputs(BY_KEY["lock_device"], {"serial_number": " c02x\t"})["serial_number"] == "C02X"
    trimmed = validate_inputs(erase, {"serial_number": "C02X ", "confirm_serial_number": " C02X"})
    assert trimmed["confirm_serial_number"] == "C02X"
    with pytest.raises(PresetInputError, match="message has spaces"):
        validate_inputs(BY_KEY["lock_device"], {"serial_number": "C02X", "message": " hi"})


def test_the_trigger_form_accepts_a_pasted_space_and_refuses_anything_else_with_its_description():
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    from kandji_oomnitza.presets.registry import SERIAL_PARAM

    assert Param(**SERIAL_PARAM).resolve(" C02ABC123XYZ ") == " C02ABC123XYZ "
    with pytest.raises(ParamValidationError):
        Param(**SERIAL_PARAM).resolve("C02-ABC")


def test_get_asset_details_cannot_be_built_without_a_mapping():
    with pytest.raises(ValueError, match="needs asset_record"):
        KandjiDeviceActionOperator(task_id="t", preset=BY_KEY["get_asset_details"])
