"""Write docs/settings-reference.md from the settings models: every option of an integration file and of a
workflow file, with its type, its default and its description, read from the pydantic models the files
are validated with, so the page cannot drift from the code.

Usage: python scripts/settings_reference.py [--check]
  --check: exit 1 (saying so) when the page on disk is not what the models say (make lint runs this).
"""

from __future__ import annotations

import argparse
import enum
import sys
import types
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from kandji_oomnitza.integrations.config import Integration  # noqa: E402
from kandji_oomnitza.settings_files import Duration, Percent, duration_text  # noqa: E402
from kandji_oomnitza.workflows.config import Workflow  # noqa: E402

PAGE = ROOT / "docs" / "settings-reference.md"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds (a model, Optional[model], list/dict of models)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def type_words(annotation: Any, metadata: list[Any]) -> str:
    """A field's type as a person writing the file reads it."""
    words = _type_words(annotation)
    bounds = []
    for item in metadata:
        if isinstance(item, Duration):
            words = f"duration ({item.at_least} to {item.at_most})"
        bounds += [
            f"{name} {getattr(item, attr)}"
            for attr, name in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
            if getattr(item, attr, None) is not None
        ]
    return f"{words} ({', '.join(bounds)})" if bounds else words


def _type_words(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_words(args[0], list(args[1:]))
    if origin in (typing.Union, types.UnionType):
        shown = [_type_words(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(shown)) + (" (or null)" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_words(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_words(args[0])} to {_type_words(args[1])}" if args else "map"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"`{annotation.__name__}` (below)"
    if annotation is timedelta:
        return "duration"
    if annotation is Percent:
        return "percentage (e.g. `5%`)"
    if annotation is typing.Any:
        return "any value"
    return getattr(annotation, "__name__", str(annotation))


def default_words(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, timedelta):
        return f"`{duration_text(value)}`"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ([], {}, ""):
        return "empty"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def model_section(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    doc = " ".join((model.__doc__ or "").split())
    lines = [f"### `{model.__name__}`", ""]
    if doc and model.__doc__ is not BaseModel.__doc__:
        lines += [doc, ""]
    lines += ["| option | type | default | description |", "|---|---|---|---|"]
    nested: list[type[BaseModel]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        description = field.description or ""
        lines.append(
            f"| `{key}` | {_cell(type_words(field.annotation, list(field.metadata)))} | "
            f"{_cell(default_words(field))} | {_cell(description)} |"
        )
        nested += [m for m in _models_in(field.annotation) if m not in seen and m not in nested]
    lines.append("")
    for sub in nested:
        seen.add(sub)
    for sub in nested:
        lines += model_section(sub, seen)
    return lines


def page() -> str:
    lines = [
        "# Settings reference",
        "",
        "Every option of both kinds of settings file, generated from the models the files are validated",
        "with (`scripts/settings_reference.py`; `make lint` fails when this page is out of date). How to use",
        "them: [Integration files](integration-files.md), [Workflows](workflows.md). A duration is text such",
        "as `30s`, `15m`, `12h` or `7d`.",
        "",
    ]
    for title, model in (("An integration file", Integration), ("A workflow file", Workflow)):
        lines += [f"## {title}", ""]
        lines += model_section(model, {model})
    return "\n".join(lines).rstrip() + "\n"


def missing_descriptions() -> list[str]:
    """Options without a description (a test keeps this empty: the reference describes every option)."""
    found, todo, seen = [], [Integration, Workflow], set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                found.append(f"{model.__name__}.{name}")
            todo += _models_in(field.annotation)
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = page()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run `python scripts/settings_reference.py`")
            return 1
        return 0
    PAGE.write_text(text)
    print(f"written: {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
