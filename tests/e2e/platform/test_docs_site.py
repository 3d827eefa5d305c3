"""`make docs`, as the README names it: the documentation site served on the address given."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import requests
from helpers.harness import ROOT, free_port
from helpers.waiting import deadline_seconds


def test_make_docs_serves_the_site_with_every_page():
    port = free_port()
    process = subprocess.Popen(
        ["make", "docs", f"DOCS_ADDRESS=127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        until = time.monotonic() + deadline_seconds(60)
        home = None
        while time.monotonic() < until and process.poll() is None:
            try:
                home = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                if home.status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert home is not None and home.status_code == 200, (
            f"make docs served nothing on port {port} in time (exit {process.poll()})"
        )
        assert "kandji-oomnitza-airflow" in home.text
        reference = requests.get(f"http://127.0.0.1:{port}/settings-reference/", timeout=10)
        assert reference.status_code == 200 and "confirm_within" in reference.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
