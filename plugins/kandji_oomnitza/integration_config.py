"""``python -m kandji_oomnitza.integration_config FILE...``, kept because deployments and scripts run it: checks
integration files as ``python -m kandji_oomnitza.check`` checks every kind of settings file."""

import sys

from kandji_oomnitza.integrations.config import INTEGRATIONS
from kandji_oomnitza.settings_files import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], (INTEGRATIONS,)))
