"""The Kandji emulator's fleet: Kandji's official keys, deterministic and fast to build."""

from __future__ import annotations

from pathlib import Path

from helpers.kandji_examples import EXAMPLES, example


# -- the emulator matches Kandji's own examples ---------------------------------------------------
def test_emulator_records_have_the_official_keys():
    from dev.emulators.kandji_fleet import Fleet

    fleet = Fleet(seed=1, device_count=60)
    official_device = example("list_devices_list_devices")[0]
    mac = next(d for d in fleet.devices if d["platform"] == "Mac")
    public = {k for k in mac if not k.startswith("_")}
    assert set(official_device) <= public
    official_app = example("get_device_apps_mac_apps")["apps"][0]
    assert set(official_app) == set(fleet.device_apps_payload(mac)[0])
    official_row = example("applications_success")["data"][0]
    emulated_row = fleet.prism_app_rows(0, 1)[0]
    assert set(emulated_row) <= set(official_row)
    assert set(official_row) & set(emulated_row) >= {"device_id", "serial_number", "name", "version", "path"}
    iphone = next(d for d in fleet.devices if d["platform"] == "iPhone")
    assert iphone["user"] == ""


def test_fleets_are_deterministic_and_large_ones_are_fast():
    import time

    from dev.emulators.kandji_fleet import Fleet

    a, b = Fleet(seed=5, device_count=50), Fleet(seed=5, device_count=50)
    assert [d["serial_number"] for d in a.devices] == [d["serial_number"] for d in b.devices]
    assert a.apps(a.devices[0]["device_id"]) == b.apps(b.devices[0]["device_id"])
    started = time.perf_counter()
    big = Fleet(seed=1, device_count=20_000)
    elapsed = time.perf_counter() - started
    print(f"\n[fleet] 20,000 devices generated in {elapsed:.2f}s")
    platforms = {d["platform"] for d in big.devices}
    assert platforms == {"Mac", "iPhone", "iPad", "AppleTV", "Windows", "Android"}
    assert any(u["archived"] for u in big.users) and any(u["device_count"] == 0 for u in big.users)


def test_examples_folder_is_where_the_tests_expect_it():
    assert len(list(Path(EXAMPLES).glob("*.json"))) > 50


def test_the_export_file_is_what_csv_writer_writes_for_its_rows():
    import csv
    import io

    from dev.emulators.kandji_fleet import Fleet

    fleet = Fleet(seed=3, device_count=80)
    expected = io.StringIO()
    csv.writer(expected).writerows(
        ("" if v is None else v for v in row) for row in fleet.prism_app_export_rows()
    )
    assert "".join(fleet.prism_app_export_csv()) == expected.getvalue()
    assert "".join(fleet.prism_app_export_csv({"Mac"})).count("\r\n") == sum(
        1 for _ in fleet.prism_app_export_rows({"Mac"})
    )
