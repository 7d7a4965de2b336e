"""The local single-node Apache Kafka broker (KRaft), started with plain ``java``.

The recipe lives in ``deploy/kafka/``: ``pom.xml`` pins the version and lists the jars,
``fetch-jars.sh`` resolves them from Maven Central with ``mvn`` into the cache,
``server.properties.in`` and ``log4j2.yaml`` configure the broker. This module renders the
config into the data directory, formats the storage once, starts and stops the process and
answers "is it up".

Guarantees:

* :func:`start` is idempotent: a broker already running from the same data directory is
  left alone. It returns only when the broker answers, or raises :class:`BrokerError` with
  the log path and the last lines of the log.
* Data survives stop/start: storage is formatted only when the data directory has never
  been formatted, and :func:`stop` asks for a controlled shutdown before it kills.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsradar import paths, procs
from newsradar.kafka import broker_answers

KAFKA_DIR = paths.DEPLOY_DIR / "kafka"
DEFAULT_PORT = 9092
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


class BrokerError(RuntimeError):
    """The broker could not be started or stopped; the message says why and where to look."""


def kafka_version() -> str:
    text = (KAFKA_DIR / "pom.xml").read_text()
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
    if not m:
        raise BrokerError(f"no <kafka.version> in {KAFKA_DIR / 'pom.xml'}")
    return m.group(1).strip()


def jar_dir() -> Path:
    return paths.cache_dir() / f"kafka-{kafka_version()}"


def fetch_jars(progress: Callable[[str], None] = print) -> Path:
    """Resolve the broker jars into the cache (no-op when already complete)."""
    dest = jar_dir()
    if (dest / ".complete").exists():
        return dest
    progress(f"fetching Apache Kafka {kafka_version()} from Maven Central (first run only) ...")
    result = subprocess.run(
        ["bash", str(KAFKA_DIR / "fetch-jars.sh"), str(dest)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BrokerError(
            "could not fetch the Kafka jars with mvn:\n" + (result.stderr or result.stdout)[-2000:]
        )
    return dest


@dataclass(frozen=True)
class Broker:
    """A local broker identified by its data directory."""

    data_dir: Path
    port: int = DEFAULT_PORT

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    @property
    def stdout_path(self) -> Path:
        return self.data_dir / "logs" / "kafka.out"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def meta_path(self) -> Path:
        return self.data_dir / "broker.json"

    def pid(self) -> int | None:
        """The pid of the broker started from this data directory, if it is still alive."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid) or not _is_kafka(pid):
            return None
        return pid

    def answers(self, timeout: float = 3.0) -> bool:
        return broker_answers(self.bootstrap, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _is_kafka(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # cannot tell; the pid file is ours, trust it
    return b"kafka.Kafka" in cmdline


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _render_config(broker: Broker, controller_port: int, partitions: int) -> Path:
    template = (KAFKA_DIR / "server.properties.in").read_text()
    rendered = (
        template.replace("@PORT@", str(broker.port))
        .replace("@CONTROLLER_PORT@", str(controller_port))
        .replace("@DATA_DIR@", str(broker.data_dir))
        .replace("@PARTITIONS@", str(partitions))
    )
    path = broker.data_dir / "server.properties"
    path.write_text(rendered)
    return path


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return "java"


def _classpath(jars: Path) -> str:
    return f"{jars}/*"


def start(
    broker: Broker,
    partitions: int = 2,
    timeout: float = START_TIMEOUT,
    progress: Callable[[str], None] = print,
    heap: str = "512m",
    die_with_parent: bool = False,
) -> bool:
    """Start the broker unless it already runs; wait until it answers.

    Returns True when this call started it, False when it was already running.
    ``die_with_parent`` ties the broker's life to the calling process (``newsradar up``);
    ``newsradar kafka start`` leaves it running on its own.
    """
    data_dir = broker.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)

    running = broker.pid()
    if running is not None:
        if broker.answers(timeout=5):
            progress(f"kafka: already running (pid {running}) at {broker.bootstrap}, data in {data_dir}")
            return False
        # Started but not answering yet (or stuck): wait for it like a fresh start.
        _wait_ready(broker, running, timeout)
        return False

    if procs.port_open(broker.port):
        raise BrokerError(
            f"port {broker.port} is already in use by another process; choose another with --port "
            f"(a broker of this data directory would have its pid in {broker.pid_path})"
        )

    jars = fetch_jars(progress)
    meta = _read_meta(broker)
    controller_port = meta.get("controller_port")
    if not controller_port or procs.port_open(controller_port) or controller_port == broker.port:
        controller_port = procs.free_port()
    config = _render_config(broker, controller_port, partitions)

    if not (data_dir / "log" / "meta.properties").exists():
        cluster_id = meta.get("cluster_id") or _random_cluster_id(jars)
        progress(f"kafka: formatting storage in {data_dir / 'log'} (cluster {cluster_id})")
        fmt = subprocess.run(
            [_java(), "-cp", _classpath(jars), f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}",
             f"-Dkafka.logs.dir={data_dir / 'logs'}",
             "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), "--ignore-formatted"],
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{(fmt.stderr or fmt.stdout)[-2000:]}")
        meta["cluster_id"] = cluster_id
    meta.update(controller_port=controller_port, port=broker.port, kafka_version=kafka_version())
    broker.meta_path.write_text(json.dumps(meta, indent=2))

    with open(broker.stdout_path, "ab") as out:
        proc = subprocess.Popen(
            [
                _java(), f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}",
                f"-Dkafka.logs.dir={data_dir / 'logs'}",
                "-cp", _classpath(jars), "kafka.Kafka", str(config),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C in the terminal that ran `kafka start` does not reach it.
            start_new_session=True,
            preexec_fn=procs.die_with_parent if die_with_parent else None,
            cwd=str(data_dir),
        )
    broker.pid_path.write_text(str(proc.pid))
    progress(f"kafka: started pid {proc.pid} on {broker.bootstrap}; log {broker.log_path}")
    _wait_ready(broker, proc.pid, timeout, proc)
    return True


def _wait_ready(broker: Broker, pid: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(
                f"the Kafka broker exited with code {proc.returncode} during start-up; "
                f"log: {broker.log_path}\n{tail(broker.log_path) or tail(broker.stdout_path)}"
            )
        if proc is None and not _alive(pid):
            raise BrokerError(f"the Kafka broker (pid {pid}) died; log: {broker.log_path}\n{tail(broker.log_path)}")
        if procs.port_open(broker.port) and broker.answers(timeout=3):
            return
        time.sleep(0.5)
    raise BrokerError(
        f"the Kafka broker did not answer at {broker.bootstrap} within {timeout:.0f}s; "
        f"it is still running as pid {pid} (stop it with `newsradar kafka stop`); "
        f"log: {broker.log_path}\n{tail(broker.log_path)}"
    )


def _read_meta(broker: Broker) -> dict:
    try:
        return json.loads(broker.meta_path.read_text())
    except (OSError, ValueError):
        return {}


def _random_cluster_id(jars: Path) -> str:
    result = subprocess.run(
        [_java(), "-cp", _classpath(jars), f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}",
         "-Dkafka.logs.dir=/tmp", "kafka.tools.StorageTool", "random-uuid"],
        capture_output=True,
        text=True,
    )
    lines = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]
    if result.returncode != 0 or not lines:
        raise BrokerError(f"kafka-storage random-uuid failed:\n{result.stderr[-2000:]}")
    return lines[-1]


def stop(broker: Broker, timeout: float = STOP_TIMEOUT, progress: Callable[[str], None] = print) -> bool:
    """Stop the broker of this data directory. Returns False when it was not running."""
    pid = broker.pid()
    if pid is None:
        progress(f"kafka: not running (no live broker pid in {broker.pid_path})")
        return False
    progress(f"kafka: stopping pid {pid} (controlled shutdown) ...")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.25)
    else:
        progress(f"kafka: pid {pid} still running after {timeout:.0f}s; killing it")
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    _reap(pid)
    broker.pid_path.unlink(missing_ok=True)
    progress("kafka: stopped")
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
