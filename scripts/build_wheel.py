"""Build the package's sdist and wheel (``python -m build``: the sdist, then the wheel from it) into a
folder, from a copy of its sources: a build in the checkout would leave ``plugins/*.egg-info`` behind,
a second copy of the package's metadata beside Airflow's plugins folder, and Airflow would then load the
plugin's entry point twice ("already registered").

    python scripts/build_wheel.py [OUT_DIR]     # default dist/; prints the wheel's path
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "plugins/kandji_oomnitza")


def build(out: Path) -> Path:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kandji-oomnitza-build-") as tmp:
        copy = Path(tmp)
        for name in SOURCES:
            source, target = ROOT / name, copy / name
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
        subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(copy)], check=True, cwd=copy)
    from kandji_oomnitza import __version__

    return out / f"kandji_oomnitza_airflow-{__version__}-py3-none-any.whl"


if __name__ == "__main__":
    wheel = build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist")
    if not wheel.is_file():
        sys.exit(f"no wheel at {wheel}: see the build's output above")
    print(wheel)
