"""provider.py: what the package tells Airflow it provides."""

from __future__ import annotations

from kandji_oomnitza.provider import get_provider_info


def test_the_provider_lists_both_connection_types_and_their_hooks():
    info = get_provider_info()
    types = {c["connection-type"]: c["hook-class-name"] for c in info["connection-types"]}
    assert types == {
        "kandji": "kandji_oomnitza.hooks.kandji.KandjiHook",
        "oomnitza": "kandji_oomnitza.hooks.oomnitza.OomnitzaHook",
    }
    assert info["package-name"] == "kandji-oomnitza-airflow"
