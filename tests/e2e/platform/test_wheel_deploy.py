"""Deploying the package as an administrator would into an Airflow they already run: the wheel built from
this checkout, installed into a fresh virtual environment that holds only Airflow (and what the wheel
declares), with only the drop-in DAG files and the shipped settings files copied into a fresh
AIRFLOW_HOME. Never this checkout on the path.

Checked: every DAG parses with no import error; the provider and its connection types are listed; the
plugin (the Integrations page) is loaded, once; one ``airflow dags test`` of the devices integration loads
the Kandji emulator's fleet into the Oomnitza emulator. Run for the pinned Airflow and the lowest minor
version the package declares (``apache-airflow>=3.3.1``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, ROOT

from scripts.build_wheel import build as build_wheel

pytestmark = pytest.mark.e2e
PINNED = next(
    line.split("==")[1].split()[0]
    for line in (ROOT / "requirements.txt").read_text().splitlines()
    if line.startswith("apache-airflow==")
)
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")
# The lowest version pyproject.toml declares (apache-airflow>=X): the test keeps the declaration honest.
LOWEST = next(
    dependency.split(">=")[1].split(",")[0]
    for dependency in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if dependency.startswith("apache-airflow>=")
)


def run(
    command: list[str], env: dict[str, str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as `make wheel` builds it (`python -m build` on a copy of the sources)."""
    built = build_wheel(tmp_path_factory.mktemp("dist"))
    with zipfile.ZipFile(built) as archive:
        shipped = set(archive.namelist())
    static = {
        f"kandji_oomnitza/ui/page/static/{name}" for name in ("index.html", "page.js", "page.css", "icon.svg")
    }
    assert static <= shipped, f"the wheel lacks the page's files: {static - shipped}"
    return built


def fresh_airflow(tmp_path: Path, airflow_version: str, *packages: str) -> tuple[str, dict[str, str]]:
    """A new virtual environment with Airflow ``airflow_version`` and ``packages``, the rest of the stack
    at requirements.txt's pins (as constraints: Airflow's own constraints file needs the network); its
    python and an environment that knows nothing of this checkout. Installed with uv from its shared
    package cache (as `make install` does), so a fresh Airflow costs seconds, not minutes; the venv is
    seeded with pip, which the Dockerfile's own install step runs."""
    venv = tmp_path / "venv"
    uv = str(Path(sys.executable).parent / "uv")
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "KANDJI_OOMNITZA"))
    }
    run([uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)], clean, tmp_path)
    python = str(venv / "bin" / "python")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "\n".join(
            line
            for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line and not line.startswith(("#", "apache-airflow=="))
        )
    )
    clean["PATH"] = f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}"
    run(
        [uv, "pip", "install", "--quiet", "--python", python,
         f"apache-airflow=={airflow_version}", *packages, "--constraint", str(constraints)],
        clean,
        tmp_path,
    )  # fmt: skip
    return python, clean


@pytest.mark.parametrize(
    "airflow_version", [PINNED, LOWEST], ids=[f"airflow-{PINNED}-pinned", f"airflow-{LOWEST}-lowest"]
)
def test_the_wheel_deploys_into_a_fresh_airflow(
    wheel,
    airflow_version,
    tmp_path,
    kandji_emulator,
    oomnitza_emulator,
    kandji_process,
    oomnitza_process,
    capsys,
):
    home = tmp_path / "airflow"
    python, clean = fresh_airflow(tmp_path, airflow_version, str(wheel))
    # A fresh AIRFLOW_HOME with only the drop-in DAG files and the shipped settings files: integration
    # files where they are found by default (include/ beside the DAGs folder), workflow files in a folder
    # named by the Airflow option.
    shutil.copytree(ROOT / "dags", home / "dags", ignore=CACHES)
    shutil.copytree(ROOT / "include" / "integrations", home / "include" / "integrations")
    shutil.copytree(ROOT / "include" / "workflows", home / "settings" / "workflow-files")
    env = {
        **clean,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__KANDJI_OOMNITZA__WORKFLOWS_FOLDER": str(home / "settings" / "workflow-files"),
        "AIRFLOW_CONN_KANDJI_DEFAULT": json.dumps(
            {"conn_type": "kandji", "host": kandji_process.url, "password": KANDJI_TOKEN}
        ),
        "AIRFLOW_CONN_OOMNITZA_DEFAULT": json.dumps(
            {"conn_type": "oomnitza", "host": oomnitza_process.url, "password": OOMNITZA_TOKEN}
        ),
    }
    airflow = [python, "-m", "airflow"]
    installed = run(
        [python, "-c", "import airflow, kandji_oomnitza as k; print(airflow.__version__, k.__file__)"],
        env,
        home,
    )
    version, location = installed.stdout.split()
    assert version == airflow_version and "site-packages" in location and str(ROOT) not in location
    run([*airflow, "db", "migrate"], env, home)
    run([*airflow, "pools", "set", "kandji_api", "4", "Kandji API"], env, home)

    parsed = run([python, "-c", PARSE], env, home)
    result = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert result["import_errors"] == {}, result["import_errors"]
    assert {"kandji_devices_and_software", "kandji_users", "kandji_preset_lock_device",
            "kandji_preset_get_asset_details", "kandji_workflow_lost_device_lock"} <= set(result["dags"])  # fmt: skip

    hooks = run([*airflow, "providers", "hooks", "-o", "json"], env, home).stdout
    by_type = {h["connection_type"]: h for h in json.loads(hooks[hooks.index("[") :])}
    assert by_type["kandji"]["class"] == "kandji_oomnitza.hooks.kandji.KandjiHook"
    assert by_type["oomnitza"]["class"] == "kandji_oomnitza.hooks.oomnitza.OomnitzaHook"
    providers = run([*airflow, "providers", "list", "-o", "json"], env, home).stdout
    assert any(
        p["package_name"] == "kandji-oomnitza-airflow" for p in json.loads(providers[providers.index("[") :])
    )
    plugins = run([*airflow, "plugins", "-o", "json"], env, home).stdout
    (plugin,) = json.loads(plugins[plugins.index("[") :])
    assert plugin["name"] == "kandji_oomnitza" and "Kandji → Oomnitza integrations" in str(plugin)

    run([*airflow, "dags", "test", "kandji_devices_and_software"], env, home, timeout=900)
    assets = oomnitza_emulator.get("state")["records"]["assets"]
    assert len(assets) == len(kandji_emulator.get("devices")) > 0
    with capsys.disabled():
        print(
            f"\n[wheel deploy] {wheel.name} into a fresh Airflow {version}: DAGs, provider, plugin, one sync: ok"
        )


def test_the_dockerfiles_install_step_leaves_one_copy_and_one_plugin(tmp_path, capsys):
    """The Astro layout as the Dockerfile leaves it, without the image (no container engine here): the
    project copied (as Astro's ONBUILD copies it to /usr/local/airflow), the Dockerfile's own RUN command
    run against that copy, then Airflow with the copy's dags/ and plugins/ folders: every DAG parses, the
    library imports from site-packages, the plugin is registered once and no plugin import error."""
    project = tmp_path / "usr-local-airflow"
    for name in ("dags", "include", "plugins"):
        shutil.copytree(ROOT / name, project / name, ignore=CACHES)
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, project / name)
    python, clean = fresh_airflow(tmp_path, PINNED)
    (step,) = [line for line in dockerfile_commands() if "pip install" in line]
    run(["bash", "-c", step.replace("/usr/local/airflow", str(project))], clean, project)
    assert not (project / "plugins" / "kandji_oomnitza").exists()
    assert not list((project / "plugins").glob("*.egg-info")), "a second copy of the package's metadata"
    env = {
        **clean,
        "AIRFLOW_HOME": str(project),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    run([python, "-m", "airflow", "db", "migrate"], env, project)
    checked = json.loads(run([python, "-c", ASTRO_CHECK], env, project).stdout.strip().splitlines()[-1])
    assert checked["import_errors"] == {} and checked["plugin_errors"] == {}, checked
    assert checked["plugins"].count("kandji_oomnitza") == 1, checked["plugins"]
    assert "site-packages" in checked["library"], checked["library"]
    assert "kandji_devices_and_software" in checked["dags"]
    with capsys.disabled():
        print(f"\n[wheel deploy] the Dockerfile's install step, Airflow {PINNED}: one copy, one plugin: ok")


def dockerfile_commands() -> list[str]:
    """The Dockerfile's RUN commands, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.removeprefix("RUN ").strip() for line in text.splitlines() if line.startswith("RUN ")]


PARSE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()
print(json.dumps({"dags": sorted(bag.dag_ids), "import_errors": {k: v[-500:] for k, v in bag.import_errors.items()}}))
"""

ASTRO_CHECK = """
import json
from airflow import plugins_manager
from airflow.dag_processing.dagbag import DagBag
import kandji_oomnitza
bag = DagBag()
plugins, plugin_errors = plugins_manager._get_plugins()
print(json.dumps({"dags": sorted(bag.dag_ids), "import_errors": {k: v[-500:] for k, v in bag.import_errors.items()},
                  "plugins": [p.name for p in plugins], "plugin_errors": plugin_errors,
                  "library": kandji_oomnitza.__file__}))
"""
