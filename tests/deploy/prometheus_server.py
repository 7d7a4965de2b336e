"""A real Prometheus (Debian's package) for tests: own config, own data dir, stopped on exit."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import free_port, wait_for
from tests.deploy.shipped import RULE_FILES, tool


class Prometheus:
    """Scrapes the given jobs every second and evaluates the shipped rules every second."""

    def __init__(self, workdir: Path, jobs: dict[str, list[str]], interval: str = "1s"):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
            ],
        }
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self._proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> Prometheus:
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 60, f"Prometheus to answer /-/ready at {self.url} (log {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self._proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self._proc.returncode}:\n{self.log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None
        self._log.close()

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path>; returns the decoded body whether the status is 200 or 400/422."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # bad_data / execution errors come with a JSON body
            return json.load(exc)

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def value(self, expr: str) -> float | None:
        """The single scalar an aggregate expression gives now, or None when it gives nothing."""
        body = self.query(expr)
        result = body.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None
