"""integrations/operator.py: the software frame's way through XCom, in parts."""

from __future__ import annotations

import json

from kandji_oomnitza.integrations.mapping import ID
from kandji_oomnitza.integrations.operator import pull_software, push_software
from kandji_oomnitza.integrations.software import Applications, SoftwareResult


def apple_app(name, version, path=None):
    return {"app_name": name, "version": version, "path": path}


class SerialisingTaskInstance:
    """Stores XComs the way Airflow does: through its serde, as JSON text."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}

    def xcom_push(self, key, value):
        from airflow.sdk.serde import serialize

        self.stored[key] = json.dumps(serialize(value))

    def xcom_pull(self, task_ids, key):
        from airflow.sdk.serde import deserialize

        return deserialize(json.loads(self.stored[key])) if key in self.stored else None


def test_the_frame_travels_in_parts_and_comes_back_whole():
    result = SoftwareResult(route="per_device")
    for n in range(30):
        result.add(f"device-{n:02}", [apple_app(f"App {k}", str(k)) for k in range(n % 4)])
    frame = result.frame()
    ti = SerialisingTaskInstance()
    push_software(ti, frame, rows_per_part=10)
    assert json.loads(ti.stored["software"])  # the head says how many parts
    parts = sorted(k for k in ti.stored if k.startswith("software."))
    assert len(parts) == -(-len(frame) // 10) > 1
    back = pull_software(ti)
    before, after = Applications(frame), Applications(back)
    assert all(before.get(f"device-{n:02}") == after.get(f"device-{n:02}") for n in range(30))
    assert after.get("device-03") == [{"name": f"App {k}", "version": str(k), "path": None} for k in range(3)]
    assert pull_software(SerialisingTaskInstance()) is None


def test_a_part_carries_only_its_own_devices():
    result = SoftwareResult(route="per_device")
    for n in range(100):
        result.add(f"device-{n:03}", [apple_app("Slack", "4")])
    ti = SerialisingTaskInstance()
    push_software(ti, result.frame(), rows_per_part=10)
    from airflow.sdk.serde import deserialize

    first = deserialize(json.loads(ti.stored["software.0"]))
    assert len(first[ID].cat.categories) == 10
