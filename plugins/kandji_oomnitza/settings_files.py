"""Every kind of settings file (integration files, workflow files, and the next kind) read the same way:
safely, validated completely, listed the same way, reported the same way, and checked by one command.

- **Safe YAML**: only regular files, at most ``MAX_FILE_BYTES`` read, YAML's safe loader (libyaml's when
  PyYAML has it) without aliases (a few hundred bytes of ``*name`` can expand to gigabytes).
- **One validated loader** (``validated_file``): a pydantic model with unknown keys forbidden; every
  problem is one line naming the file, the field and the fix, quoting at most a short prefix of a value.
- **One file listing** (``settings_files``) and **one scanner** (``scan``): each file validated on its own,
  so one broken file hides no other; ``raise_for_invalid_files`` is what the file-error DAG files call.
- **One grammar**: durations read the same in every file (``30s``, ``5m``, ``12h``, ``7d``), and every
  Oomnitza field is named by its external id (``FIELD_PATTERN``).
- **One command**: ``python -m kandji_oomnitza.settings_files FILE...`` checks any of them before deploying
  (the kind is told by the folder a file is in, else by its content).

A kind names its loader by import path, so this module, below the features, imports none of them.
"""

from __future__ import annotations

import importlib
import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from kandji_oomnitza import names
from kandji_oomnitza.exceptions import IntegrationFileError, SettingsFileError, WorkflowFileError

MAX_FILE_BYTES = 256 * 1024  # a settings file is a page of settings; anything larger is a mistake
MESSAGE_LIMIT = 300  # characters of any one validation message (they may quote the file's values)
FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,99}$"  # an Oomnitza field's external id: lower snake_case
DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CONFIG_SECTION = "kandji_oomnitza"


def setting(option: str) -> str | None:
    """An option of Airflow's ``[kandji_oomnitza]`` section (``AIRFLOW__KANDJI_OOMNITZA__<OPTION>``)."""
    from airflow.configuration import conf

    return conf.get(CONFIG_SECTION, option, fallback=None) or None


def project_root() -> Path:
    """Where dags/ and include/ live side by side: the parent of Airflow's DAGs folder."""
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).expanduser().resolve().parent


ModelT = TypeVar("ModelT", bound=BaseModel)


class Strict(BaseModel):
    """A settings section: unknown keys are mistakes, values never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


def parse_duration(value: Any) -> float:
    """Seconds from ``30s``, ``5m``, ``12h``, ``7d`` (or a number of seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = DURATION.fullmatch(str(value))
    if not match:
        raise ValueError(f"{short(repr(value), 40)} is not a duration like '30s', '5m', '12h' or '7d'")
    return float(match[1]) * UNIT_SECONDS[match[2]]


def duration_words(seconds: float) -> str:
    """A duration as a person reads it: "15 seconds", "1 day", "1 hour 30 minutes" (never 0:00:15)."""
    import pendulum

    return pendulum.duration(seconds=seconds).in_words(locale="en") if seconds > 0 else "0 seconds"


def days_words(days: float) -> str:
    """A number of days as written in a settings file: "7 days", "1 day", "0.5 days"."""
    return f"{days:g} day{'' if days == 1 else 's'}"


def short(text: Any, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- reading a file safely -----------------------------------------------------------------------------
# libyaml's loader when PyYAML was built with it: the pure-Python scanner costs ~10 ms per commented
# file, on every parse of the DAG folder.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_without_aliases(text: str) -> Any:
    """YAML's safe loader without aliases: ``*name`` would let a few hundred bytes expand into gigabytes
    (an "alias bomb"), and a settings file has no need to repeat a value by reference. The events are
    checked before anything is built from them."""
    for event in yaml.parse(text, Loader=_SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: aliases (*name) are not allowed in settings files; "
                "write the value out"
            )
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader


def read_bounded(path: Path, what: str, error: type[SettingsFileError] = SettingsFileError) -> bytes:
    """The bytes of a regular file (a link to one is followed), at most ``MAX_FILE_BYTES``. Anything
    else in a settings folder (a directory, a device such as /dev/zero, a pipe) is that entry's own
    error. The limit is enforced on the bytes read, not on what ``stat`` says: a device reports size 0."""
    try:
        # Non-blocking, so opening a named pipe cannot hang the DAG processor; checked on the open file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(f"Invalid {what} {path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(
            f"Invalid {what} {path}: not a regular file (a directory, a device or a link to one); "
            "remove it from the folder or rename it to start with _"
        )
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise error(f"Invalid {what} {path}: more than the {MAX_FILE_BYTES} bytes an {what} may have")
    return data


# `make run` runs switched-on copies of the shipped workflow files; each ends with this line, so an error
# names the file the person edits (the copy keeps the source's line numbers: the mark is the last line).
COPY_MARK = re.compile(rb"\n# kandji-oomnitza sandbox copy of: ([^\n]{1,500})\n?\Z")


def edited_file(path: Path, data: bytes) -> str:
    """How an error names a settings file: the file itself, or, for a sandbox copy, the file it copies."""
    mark = COPY_MARK.search(data[-600:])
    if mark is None:
        return str(path)
    return f"{mark[1].decode(errors='replace')} (the sandbox runs its copy {path}: restart make run after editing)"


def read_yaml_file(path: Path, what: str, error: type[SettingsFileError] = SettingsFileError) -> Any:
    """A small YAML file, safely: no code runs from it, no alias expands, and its size is bounded."""
    return _parsed(path, read_bounded(path, what, error), what, error)


def _parsed(path: Path, data: bytes, what: str, error: type[SettingsFileError]) -> Any:
    try:
        return _load_without_aliases(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"Invalid {what} {edited_file(path, data)}: not valid YAML: {short(exc, 400)}") from None


def _format_validation_error(path: Path | str, exc: ValidationError, what: str) -> str:
    """One line per problem: where, what, and the fix. Values are quoted short, never whole."""
    lines = [f"Invalid {what} {path}:"]
    for problem in exc.errors(include_url=False)[:20]:
        location = ".".join(str(p) for p in problem["loc"] if p not in ("function-after",))
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        elif problem["type"] == "missing":
            message = "is required"
        elif problem["type"] in ("enum", "literal_error"):
            message = f"{message} (got {short(repr(problem.get('input')), 60)})"
        lines.append(f"  - {short(location or '(top level)', 80)}: {short(message, MESSAGE_LIMIT)}")
    return "\n".join(lines)


def validated_file(
    path: Path, model: type[ModelT], what: str, error: type[SettingsFileError] = SettingsFileError
) -> ModelT:
    """One settings file read safely and validated as ``model``; ``error`` names the file, each field
    and the fix."""
    raw = read_bounded(path, what, error)
    data, shown = _parsed(path, raw, what, error), edited_file(path, raw)
    if not isinstance(data, dict):
        raise error(f"Invalid {what} {shown}: expected a mapping of settings at the top level")
    try:
        return model.model_validate(data)
    except (ValidationError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            raise error(f"Invalid {what} {shown}: nested too deeply") from None
        raise error(_format_validation_error(shown, exc, what)) from None


# -- kinds of settings file ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """One kind of settings file: what it is called, where its files live, how each becomes a DAG."""

    noun: str  # "integration": what one file of this kind sets up
    what: str  # "integration file": how messages name a file
    folder_env: str  # the environment variable naming its folder (a contract: deployments set it)
    config_option: str  # the same in Airflow's configuration, [kandji_oomnitza] section
    default_folder: str  # under include/
    dag_id: Callable[[str], str]  # the DAG a file becomes, from its name
    loader: str  # "module:function" that reads and validates one file (the feature's own)
    error: type[SettingsFileError]
    marker: str  # a top-level key only this kind has (tells a file's kind from its content)

    def folder(self) -> Path:
        """The folder of this kind: its environment variable, else the Airflow option
        ``[kandji_oomnitza] <config_option>``, else ``include/<default_folder>`` beside the DAGs folder
        (the Astro layout; in this repository, its own ``include/``)."""
        configured = os.environ.get(self.folder_env) or setting(self.config_option)
        return Path(configured) if configured else project_root() / "include" / self.default_folder

    def load(self, path: Path) -> Any:
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)(path)


INTEGRATIONS = Kind(
    noun="integration",
    what="integration file",
    folder_env="KANDJI_OOMNITZA_INTEGRATIONS_DIR",
    config_option="integrations_folder",
    default_folder="integrations",
    dag_id=names.integration_dag_id,
    loader="kandji_oomnitza.integrations.config:load_integration",
    error=IntegrationFileError,
    marker="mappings",
)
WORKFLOWS = Kind(
    noun="workflow",
    what="workflow file",
    folder_env="KANDJI_OOMNITZA_WORKFLOWS_DIR",
    config_option="workflows_folder",
    default_folder="workflows",
    dag_id=names.workflow_dag_id,
    loader="kandji_oomnitza.workflows.config:load_workflow",
    error=WorkflowFileError,
    marker="trigger",
)
KINDS = (INTEGRATIONS, WORKFLOWS)


def settings_files(folder: Path) -> list[Path]:
    """The settings files in ``folder``: ``*.yaml`` and ``*.yml``, not starting with ``_`` (a draft)."""
    return sorted(
        p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml") and not p.name.startswith("_")
    )


@dataclass(frozen=True)
class SettingsFile:
    """One file of a settings folder: its model, or the validation error that stops it."""

    dag_id: str
    path: Path
    model: Any | None
    error: str | None


def scan(kind: Kind, folder: Path | None = None) -> list[SettingsFile]:
    """Every file of ``kind`` in ``folder`` (its configured one by default), each validated on its own, so
    one bad file cannot hide the others."""
    entries = []
    for path in settings_files(folder or kind.folder()):
        dag_id = kind.dag_id(path.stem)
        try:
            entries.append(SettingsFile(dag_id, path, kind.load(path), None))
        except SettingsFileError as exc:
            entries.append(SettingsFile(dag_id, path, None, str(exc)))
    return entries


def raise_for_invalid_files(kind: Kind, folder: Path | None = None) -> None:
    """Raise one error naming every invalid file of ``kind``, its fields and the fix: Airflow shows it as
    the import error of the DAG file that calls this, while every valid file keeps its DAG."""
    problems = [entry.error for entry in scan(kind, folder) if entry.error]
    if problems:
        raise kind.error(
            f"{len(problems)} {kind.what}(s) are invalid; their DAGs are not loaded until they are fixed "
            f"(every other {kind.noun} runs as usual).\n" + "\n".join(problems)
        )


def kind_of(path: Path) -> Kind:
    """The kind of a file given on the command line: by the folder it is in, else by its content."""
    for kind in KINDS:
        if path.resolve().parent == kind.folder().resolve() or path.parent.name == kind.default_folder:
            return kind
    try:
        data = read_yaml_file(path, "settings file")
    except SettingsFileError:
        return INTEGRATIONS  # its loader names the problem
    return next((k for k in KINDS if isinstance(data, dict) and k.marker in data), INTEGRATIONS)


def main(argv: list[str], kinds: tuple[Kind, ...] = KINDS) -> int:
    """Check settings files (every file of ``kinds`` in their folders when none is named); print one line
    per valid file and every problem of the others; exit 1 when any is invalid."""
    paths = [Path(arg) for arg in argv] or [p for kind in kinds for p in settings_files(kind.folder())]
    failed = 0
    for path in paths:
        if len(kinds) == 1:
            kind = kinds[0]
        else:
            kind = kind_of(path) if argv else next(k for k in kinds if path.parent == k.folder())
        try:
            kind.load(path)
            print(f"ok  {path} ({kind.what}, DAG {kind.dag_id(path.stem)})")
        except SettingsFileError as exc:
            failed += 1
            print(exc)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
