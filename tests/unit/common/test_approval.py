"""common/approval.py: what a resumed task reads from Airflow's records before it acts."""

from __future__ import annotations

from types import SimpleNamespace

from kandji_oomnitza.common.approval import not_running_any_more


def task_instance(states, map_index: int = 0, fails: bool = False):
    """An object shaped as the Task SDK's RuntimeTaskInstance is for this call: its ``get_task_states``
    answers as Airflow's Execution API does (``{run_id: {task_id or task_id_<map index>: state}}``)."""

    def get_task_states(**query):
        if fails:
            raise RuntimeError("the API server did not answer")
        assert query == {
            "dag_id": "d",
            "task_ids": ["per_device.run_action"],
            "run_ids": ["r"],
            "map_index": map_index,
        }
        return states

    return SimpleNamespace(
        dag_id="d", task_id="per_device.run_action", run_id="r", map_index=map_index, get_task_states=get_task_states
    )  # fmt: skip


def test_a_resumed_task_acts_only_while_airflow_counts_it_running():
    running = {"r": {"per_device.run_action_0": "running"}}
    assert not_running_any_more({"ti": task_instance(running)}) is None
    failed = {"r": {"per_device.run_action_0": "failed"}}  # the scheduler's "state mismatch" (Airflow 3.3.2)
    assert not_running_any_more({"ti": task_instance(failed)}) == "failed"
    unmapped = {"r": {"per_device.run_action": "up_for_retry"}}
    assert not_running_any_more({"ti": task_instance(unmapped, map_index=-1)}) == "up_for_retry"
    # Nothing to go on (an API that does not answer, a task it does not list): the answer's own checks decide.
    assert not_running_any_more({"ti": task_instance({}, fails=True)}) is None
    assert not_running_any_more({"ti": task_instance({"r": {}})}) is None
