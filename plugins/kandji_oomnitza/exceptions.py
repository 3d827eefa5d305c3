"""The project's own errors, in one place: what a settings file, a connection, an input or a run can be
told to be wrong with. Errors of an HTTP answer (``ApiError`` and its kinds) live with the hooks that
raise them (``hooks/base.py``).

An ``AirflowFailException`` ends a task at once, without Airflow's retries: each of these is something a
retry cannot fix.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException


class SettingsFileDeprecation(UserWarning):
    """A settings file uses an option that does nothing any more: the file still loads, and the warning
    (shown beside the DAG in Airflow, and by the checker) says what to change."""


class SettingsFileError(ValueError):
    """A settings file is invalid; the message names the file, each field and the fix."""


class IntegrationFileError(SettingsFileError):
    """An integration file (``include/integrations/*.yaml``) is invalid."""


class WorkflowFileError(SettingsFileError):
    """A workflow file (``include/workflows/*.yaml``) is invalid."""


class ConfigurationError(AirflowFailException):
    """A connection or input is invalid; the message names it and says how to fix it."""


class PresetInputError(AirflowFailException):
    """A trigger input is invalid; raised before any call to Kandji."""


class FieldCheckError(AirflowFailException):
    """A mapped field does not exist in the Oomnitza instance (a retry cannot fix that)."""


class TooManyFailures(AirflowFailException):
    """More records than the integration allows were not loaded (a retry would load them again, and
    fail them again)."""


class RunIncomplete(AirflowFailException):
    """A step before the report failed; the report has accounted for every record it could."""


class SafeguardStopped(AirflowFailException):
    """A safeguard against mass changes stopped a step (integrations/safeguard.py): retrying would stop
    again; a person confirms with the trigger param the message names."""
