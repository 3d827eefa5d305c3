"""Check settings files of every kind before deploying them: ``python -m kandji_oomnitza.check FILE...``
(every file of the configured folders when none is named). One line per valid file, every problem of the
others (the file, the field and the fix); exit 1 when any file is invalid, 2 when a named file does not
exist. The kind of a file is told by the folder it is in, else by its content.

Above the features, as the DAG files are: it knows every kind of settings file, each declared by its feature.
"""

from __future__ import annotations

import sys

from kandji_oomnitza.integrations.config import INTEGRATIONS
from kandji_oomnitza.settings_files import Kind, main
from kandji_oomnitza.workflows.config import WORKFLOWS

KINDS: tuple[Kind, ...] = (INTEGRATIONS, WORKFLOWS)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], KINDS))
