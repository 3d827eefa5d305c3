"""Kandji's official example payloads (see the folder's README for their source), kept with the tests."""

from __future__ import annotations

import json
import re

from helpers.harness import ROOT

EXAMPLES = ROOT / "tests" / "fixtures" / "kandji_examples"


def example(name: str):
    path = EXAMPLES / f"{name}.json"
    body = json.loads(path.read_text())["body"]
    if not isinstance(body, str):
        return body
    # Kandji hand-edited some examples, eliding list items as "..." or "{...}".
    return json.loads(re.sub(r",\s*(\{\.\.\.\}|\.\.\.)\s*,?(\s*[\]}])", r"\2", body))
