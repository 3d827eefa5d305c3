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
- **One command**: ``python -m kandji_oomnitza.check FILE...`` checks any of them before deploying (the
  kind is told by the folder a file is in, else by its content); ``python -m
  kandji_oomnitza.settings_files`` and each feature's ``python -m kandji_oomnitza.<feature>.config`` are
  the same check, by their older names.

Each feature declares its kind (a ``Kind`` with its loader) next to its model; this module, below the
features, imports none of them. ``kandji_oomnitza.check`` is the all-kinds checker, above them.
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.exceptions import SettingsFileError

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


def parse_duration(value: Any, bare: str = "s") -> float:
    """Seconds from ``30s``, ``5m``, ``12h``, ``7d``, or a bare number in the unit ``bare`` (seconds unless
    the setting says otherwise). Never infinite or not a number (``1e400`` is infinite)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration like '30s', '5m', '12h' or '7d'")
    if isinstance(value, (int, float)):
        seconds = float(value) * UNIT_SECONDS[bare]
    else:
        match = DURATION.fullmatch(str(value))
        if not match:
            raise ValueError(f"{shorten(repr(value), 40)} is not a duration like '30s', '5m', '12h' or '7d'")
        seconds = float(match[1]) * UNIT_SECONDS[match[2]]
    if not math.isfinite(seconds):
        raise ValueError(f"{shorten(repr(value), 40)} is not a finite duration")
    return seconds


def duration_text(value: timedelta) -> str:
    """A duration as a settings file writes it, in its largest whole unit: ``7d``, ``90m``, ``30s``."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds >= UNIT_SECONDS[unit] and seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds / UNIT_SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _airflow_user_ids(value: list[str]) -> list[str]:
    for user in value:
        if not user.strip() or len(user) > 256:
            raise ValueError(f"{user!r} is not an Airflow user id")
    return value


# Who may answer a human-in-the-loop question (a workflow's approvers, an integration's confirmers).
AirflowUserIds = Annotated[list[str], AfterValidator(_airflow_user_ids)]


PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


def is_field_name(name: str) -> bool:
    """An Oomnitza field's external id (``FIELD_PATTERN``: lower snake_case, at most 100 characters)."""
    return re.fullmatch(FIELD_PATTERN, name) is not None


class Percent(float):
    """A share of something, written ``5%`` (more than 0, at most 100): parsed once from the file's text,
    shown and dumped as written (``str`` and ``format`` give ``5%``)."""

    @classmethod
    def parse(cls, value: Any) -> Percent:
        if isinstance(value, Percent):
            return value
        match = PERCENT.fullmatch(value) if isinstance(value, str) else None
        if not match or not 0 < float(match[1]) <= 100:
            raise ValueError(
                f"{shorten(repr(value), 40)} is not a percentage like '5%' (more than 0, at most 100)"
            )
        return cls(float(match[1]))

    def __str__(self) -> str:
        return f"{float(self):g}%"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else float.__format__(self, spec)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


@dataclass(frozen=True)
class Duration:
    """A setting's duration, as ``Annotated[timedelta, Duration(...)]``: text such as ``30s``, ``5m``,
    ``12h``, ``7d`` (or a bare number in ``bare`` units), parsed once into a ``timedelta`` between
    ``at_least`` and ``at_most``; ``why`` says, in the error, what the bounds protect. Dumped as text
    (``7d``), which reads back the same."""

    at_least: str
    at_most: str
    why: str
    bare: str = "s"

    def parse(self, value: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        seconds = parse_duration(value, self.bare)
        if not parse_duration(self.at_least) <= seconds <= parse_duration(self.at_most):
            raise ValueError(
                f"{shorten(repr(value), 40)} is not between {self.at_least} and {self.at_most}: {self.why}"
            )
        return timedelta(seconds=seconds)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(
            self.parse,
            core_schema.timedelta_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                duration_text, return_schema=core_schema.str_schema()
            ),
        )


def duration_words(value: float | timedelta) -> str:
    """A duration as a person reads it: "15 seconds", "1 day", "1 hour 30 minutes" (never 0:00:15)."""
    import pendulum

    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return pendulum.duration(seconds=seconds).in_words(locale="en") if seconds > 0 else "0 seconds"


def days_words(days: float | timedelta) -> str:
    """A number of days as written in a settings file: "7 days", "1 day", "0.5 days"."""
    days = days.total_seconds() / 86400 if isinstance(days, timedelta) else days
    return f"{days:g} day{'' if days == 1 else 's'}"


# -- reading a file safely -----------------------------------------------------------------------------
# libyaml's loader when PyYAML was built with it: the pure-Python scanner costs ~10 ms per commented
# file, on every parse of the DAG folder.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeysLoader(_SAFE_LOADER):  # type: ignore[misc, valid-type]
    """YAML's safe loader, refusing a key written twice in one mapping: YAML lets the later one win
    silently, so a second ``approval:`` further down would undo the first without a word."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                earlier = first_line.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base loader names that problem
                continue
            if earlier != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {shorten(repr(key), 60)} is written twice, on line {earlier} and on line "
                    f"{key_node.start_mark.line + 1}: keep one (YAML would silently use the last)",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


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
    return yaml.load(text, Loader=_UniqueKeysLoader)  # noqa: S506 - a safe loader


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
        raise error(
            f"Invalid {what} {edited_file(path, data)}: not valid YAML: {shorten(exc, 400)}"
        ) from None


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
            message = f"{message} (got {shorten(repr(problem.get('input')), 60)})"
        lines.append(f"  - {shorten(location or '(top level)', 80)}: {shorten(message, MESSAGE_LIMIT)}")
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
    """One kind of settings file: what it is called, where its files live, how each becomes a DAG. Each
    feature declares its own kind next to its model (``integrations.config.INTEGRATIONS``,
    ``workflows.config.WORKFLOWS``); this module knows none of them."""

    noun: str  # "integration": what one file of this kind sets up
    what: str  # "integration file": how messages name a file
    folder_env: str  # the environment variable naming its folder (a contract: deployments set it)
    config_option: str  # the same in Airflow's configuration, [kandji_oomnitza] section
    default_folder: str  # under include/
    dag_id: Callable[[str], str]  # the DAG a file becomes, from its name
    load: Callable[[Path], Any]  # reads and validates one file (the feature's own loader)
    error: type[SettingsFileError]
    marker: str  # a top-level key only this kind has (tells a file's kind from its content)

    def folder(self) -> Path:
        """The folder of this kind: its environment variable, else the Airflow option
        ``[kandji_oomnitza] <config_option>``, else ``include/<default_folder>`` beside the DAGs folder
        (the Astro layout; in this repository, its own ``include/``)."""
        configured = os.environ.get(self.folder_env) or setting(self.config_option)
        return Path(configured) if configured else project_root() / "include" / self.default_folder


def settings_files(folder: Path) -> list[Path]:
    """The settings files in ``folder``: ``*.yaml`` and ``*.yml``, not starting with ``_`` (a draft)."""
    return sorted(
        p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml") and not p.name.startswith("_")
    )


@dataclass(frozen=True)
class SettingsFile:
    """One file of a settings folder: its model, or the error that stops it (invalid, or its DAG could not
    be built)."""

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


Build = Callable[..., Any]  # (entry, register: bool) -> the DAG


def build_each(
    kind: Kind, entries: list[SettingsFile], build: Build, register: bool = True
) -> tuple[dict[str, Any], list[SettingsFile]]:
    """A DAG per valid entry, built on its own as each was validated on its own: a file whose DAG cannot
    be built (whatever the reason) loses only its own DAG, and becomes that file's error. Returns the
    DAGs by id and the entries, with the build errors. ``register=False``: built only to see that they
    can be (Airflow does not take them for DAGs of the file building them)."""
    dags: dict[str, Any] = {}
    checked = []
    for entry in entries:
        if entry.model is not None:
            try:
                dags[entry.dag_id] = build(entry, register=register)
            except Exception as exc:
                reason = shorten(f"{type(exc).__name__}: {exc}", MESSAGE_LIMIT)
                entry = SettingsFile(
                    entry.dag_id,
                    entry.path,
                    None,
                    f"Invalid {kind.what} {entry.path}: it validates, but its DAG could not be built ({reason}); "
                    "check the values it names, or report it as a bug",
                )
        checked.append(entry)
    return dags, checked


def raise_for_invalid_files(kind: Kind, folder: Path | None = None, build: Build | None = None) -> None:
    """Raise one error naming every invalid file of ``kind``, its fields and the fix (and, with ``build``,
    every file whose DAG cannot be built): Airflow shows it as the import error of the DAG file that calls
    this, while every valid file keeps its DAG."""
    entries = scan(kind, folder)
    if build is not None:
        _, entries = build_each(kind, entries, build, register=False)
    problems = [entry.error for entry in entries if entry.error]
    if problems:
        raise kind.error(
            f"{len(problems)} {kind.what}(s) are invalid; their DAGs are not loaded until they are fixed "
            f"(every other {kind.noun} runs as usual).\n" + "\n".join(problems)
        )


def kind_of(path: Path, kinds: tuple[Kind, ...]) -> Kind:
    """The kind of a file given on the command line: by the folder it is in, else by its content."""
    for kind in kinds:
        if path.resolve().parent == kind.folder().resolve() or path.parent.name == kind.default_folder:
            return kind
    try:
        data = read_yaml_file(path, "settings file")
    except SettingsFileError:
        return kinds[0]  # its loader names the problem
    return next((k for k in kinds if isinstance(data, dict) and k.marker in data), kinds[0])


def main(argv: list[str], kinds: tuple[Kind, ...]) -> int:
    """Check settings files of ``kinds`` (every file of their folders when none is named); print one line
    per valid file and every problem of the others; exit 1 when any is invalid, 2 when a named file
    does not exist."""
    paths = [Path(arg) for arg in argv] or [p for kind in kinds for p in settings_files(kind.folder())]
    if missing := [str(p) for p in paths if not p.exists()]:
        print(f"No such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not paths:
        print(f"No {' or '.join(k.what for k in kinds)}s in {', '.join(str(k.folder()) for k in kinds)}")
        return 0
    failed = 0
    for path in paths:
        kind = kinds[0] if len(kinds) == 1 else kind_of(path, kinds)
        try:
            kind.load(path)
            print(f"ok  {path} ({kind.what}, DAG {kind.dag_id(path.stem)})")
        except SettingsFileError as exc:
            failed += 1
            print(exc)
    return 1 if failed else 0


if __name__ == "__main__":  # the all-kinds checker's first name, kept as an alias (kandji_oomnitza.check)
    from kandji_oomnitza.check import KINDS

    sys.exit(main(sys.argv[1:], KINDS))
