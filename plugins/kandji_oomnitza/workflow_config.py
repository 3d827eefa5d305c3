"""``python -m kandji_oomnitza.workflow_config FILE...``, kept because deployments and scripts run it: checks
workflow files as ``python -m kandji_oomnitza.check`` checks every kind of settings file."""

import sys

from kandji_oomnitza.settings_files import main
from kandji_oomnitza.workflows.config import WORKFLOWS

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], (WORKFLOWS,)))
