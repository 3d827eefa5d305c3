"""names.py and exceptions.py: the ids others rely on, defined once, and which errors end a task at once."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from kandji_oomnitza import exceptions, names


def test_dag_ids_follow_the_contract():
    assert names.integration_dag_id("kandji_users") == "kandji_users"
    assert names.preset_dag_id("lock_device") == "kandji_preset_lock_device"
    assert names.workflow_dag_id("lost_device_lock") == "kandji_workflow_lost_device_lock"
    assert names.WORKFLOW_ACTION == "per_device.run_action" and names.KANDJI_POOL == "kandji_api"


def test_errors_a_retry_cannot_fix_end_the_task_at_once_and_settings_errors_do_not():
    for error in (exceptions.ConfigurationError, exceptions.PresetInputError, exceptions.FieldCheckError,
                  exceptions.TooManyFailures, exceptions.RunIncomplete):  # fmt: skip
        assert issubclass(error, AirflowFailException)
    assert issubclass(exceptions.WorkflowFileError, exceptions.SettingsFileError)
    assert not issubclass(exceptions.IntegrationFileError, AirflowFailException)  # an import error instead
