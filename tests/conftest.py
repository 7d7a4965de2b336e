"""Shared fixtures: a real local Kafka broker for the session, isolated NEWSRADAR_HOME.

The broker is started with the project's own command (``newsradar kafka start``) on a free
port with a throw-away data directory, only when a test asks for it, and stopped at the end
of the session whether the tests passed or not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Download caches stay where `make` put them; everything else a test writes is temporary.
_REAL_HOME = Path(os.environ.get("NEWSRADAR_HOME") or Path.home() / ".newsradar").expanduser()
os.environ.setdefault("NEWSRADAR_CACHE", str(_REAL_HOME / "cache"))


def newsradar_cmd(*args: str) -> list[str]:
    """The installed console script, run with the interpreter of this test session."""
    return [sys.executable, "-m", "newsradar.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, detail=None):
    """Poll ``predicate`` until it returns a truthy value; fail saying what never happened
    (and ``detail()``, e.g. a log's tail, when given)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    more = f":\n{detail()}" if detail is not None else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r}){more}")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSRADAR_HOME", str(tmp_path / "newsradar-home"))


class LocalKafka:
    def __init__(self, port: int, data_dir: Path):
        self.port = port
        self.data_dir = data_dir
        self.bootstrap = f"localhost:{port}"

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            newsradar_cmd("kafka", *args, "--port", str(self.port), "--data-dir", str(self.data_dir)),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> None:
        result = self.run("start")
        if result.returncode != 0:
            raise RuntimeError(f"newsradar kafka start failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def stop(self) -> None:
        self.run("stop", timeout=60)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> LocalKafka:
    """A real single-node Kafka broker for the whole session (started on first use)."""
    broker = LocalKafka(free_port(), tmp_path_factory.mktemp("kafka-session"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture()
def topic_prefix() -> str:
    """A unique prefix so tests sharing the session broker never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}"
