"""`make docs`, as the README names it: the documentation site served on the address given."""

from __future__ import annotations

import os
import signal
import subprocess

import requests
from helpers.harness import ROOT, free_port
from helpers.waiting import wait_until


def test_make_docs_serves_the_site_with_every_page():
    port = free_port()
    process = subprocess.Popen(
        ["make", "docs", f"DOCS_ADDRESS=127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:

        def served() -> requests.Response | None:
            assert process.poll() is None, f"make docs exited ({process.returncode}) before serving"
            try:
                home = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
            except requests.ConnectionError:
                return None
            return home if home.status_code == 200 else None

        home = wait_until(f"make docs to serve the site on port {port}", served, 60, every=0.5)
        assert "kandji-oomnitza-airflow" in home.text
        reference = requests.get(f"http://127.0.0.1:{port}/settings-reference/", timeout=10)
        assert reference.status_code == 200 and "confirm_within" in reference.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
