"""``python -m kandji_oomnitza.workflow_config FILE...``, kept because deployments and scripts run it: checks
workflow files as ``python -m kandji_oomnitza.settings_files`` checks every kind of settings file."""

import sys

from kandji_oomnitza.settings_files import WORKFLOWS, main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], kinds=(WORKFLOWS,)))
