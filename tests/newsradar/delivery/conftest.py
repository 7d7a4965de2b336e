"""The real Alertmanager on 127.0.0.1, for the sink tests and deliver's end-to-end tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest

from tests.conftest import free_port, wait_for


@pytest.fixture()
def alertmanager(tmp_path):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: run deploy/prometheus/install.sh (`make deps` does)")
    port, cluster = free_port(), free_port()
    config = tmp_path / "am.yml"
    config.write_text("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n", encoding="utf-8")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--cluster.listen-address=127.0.0.1:{cluster}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, 30, "alertmanager to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def list_alerts(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as r:
        return json.loads(r.read())
