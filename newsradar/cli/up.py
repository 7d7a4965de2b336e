"""`newsradar up`: the whole local stack in one command, supervised.

Start order, each step waiting until the part is ready before the next begins:

1. the local Kafka broker (unless ``--bootstrap-servers`` names a cluster) and the topics;
2. with ``--demo``, the demo news server and a sources file pointing at it;
3. the connectors (``newsradar connect``), ready when their ``/metrics`` answers;
4. the streaming pipeline (``newsradar pipeline`` on Prism), ready when its ``/metrics`` answers;
5. alert delivery (``newsradar deliver``: news.alerts to the watchlist's sinks), ready when its
   ``/metrics`` answers.

Guarantees: every part runs as a child in its own process group with its own log file; a
part that exits is reported at once with the tail of its log, everything else is stopped and
``up`` exits 1. SIGINT/SIGTERM stop the parts in reverse order (SIGTERM, then SIGKILL after a
grace period), process group by process group, so no grandchild (the Prism binary, Beam
workers) outlives ``up``. Children also get SIGTERM from the kernel if ``up`` itself is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from newsradar import paths
from newsradar.kafka import broker_answers, ensure_topics, missing_topics
from newsradar.procs import die_with_parent, signal_group
from newsradar.records import ALL_TOPICS

from . import broker as broker_mod
from .broker import Broker, tail

STOP_GRACE = 20.0
READY_TIMEOUT = 180.0


class PartFailed(RuntimeError):
    """A part of the stack could not start or died; the message carries its log tail."""


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL we built
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Part:
    """One supervised child process."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    where: str = ""
    proc: subprocess.Popen | None = None

    def start(self, env: dict) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent, env=env,
            )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def failure(self, what: str) -> PartFailed:
        return PartFailed(f"{self.name} {what}; log {self.log_path}:\n{tail(self.log_path, 25)}")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.exited()
            if code is not None:
                raise self.failure(f"exited with code {code} while starting")
            if self.ready():
                return
            time.sleep(0.25)
        raise self.failure(f"was not ready after {timeout:.0f}s")

    def stop(self, grace: float = STOP_GRACE) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # its own session: the group id is its pid
        signal_group(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Grandchildren that ignored SIGTERM (or were slow) go with the group.
        signal_group(pgid, signal.SIGKILL)


@dataclass
class Options:
    demo: bool = False
    sources_file: str | None = None
    watchlist_file: str | None = None
    bootstrap_servers: str | None = None
    kafka_port: int = 9092
    demo_speed: float = 1.0
    poll_interval: float = 5.0
    connect_metrics_port: int = 9464
    pipeline_metrics_port: int = 9465
    deliver_metrics_port: int = 9466
    live: bool = True
    # Extra `newsradar pipeline` options (Beam style, --name=value); the soak run scales the
    # dedupe windows with them (benchmarks/soak.py).
    pipeline_args: tuple[str, ...] = ()


@dataclass
class Stack:
    opts: Options
    home: Path = field(default_factory=paths.home)
    say: Callable[[str], None] = print
    parts: list[Part] = field(default_factory=list)
    broker: Broker | None = None
    started_broker: bool = False
    bootstrap: str = ""

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def _env(self) -> dict:
        env = dict(os.environ)
        env["NEWSRADAR_HOME"] = str(self.home)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "newsradar.cli", *args]

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._start_kafka()
        sources_file = self._start_demo() if self.opts.demo else self.opts.sources_file
        watchlist_file = self.opts.watchlist_file or str(paths.REPO_ROOT / "config" / "watchlist.yaml")
        if not sources_file:
            raise PartFailed("no sources: give --sources FILE or --demo")
        self._start_connectors(sources_file)
        self._start_pipeline(watchlist_file)
        self._start_deliver(watchlist_file)
        if self.opts.demo:
            self._start_demo_clock()

    def _start_kafka(self) -> None:
        if self.opts.bootstrap_servers:
            self.bootstrap = self.opts.bootstrap_servers
            if not broker_answers(self.bootstrap, timeout=10):
                raise PartFailed(f"no Kafka broker answers at {self.bootstrap}")
            # On a cluster we did not start, topic layout (partitions, replication) is the
            # operator's decision: we check, we do not create with single-broker defaults.
            missing = missing_topics(self.bootstrap)
            if missing:
                raise PartFailed(
                    f"topics {', '.join(missing)} do not exist on {self.bootstrap}; create them with "
                    f"`newsradar kafka topics --bootstrap-servers {self.bootstrap} --partitions N --replication-factor R`"
                )
            self.say(f"kafka        {self.bootstrap} (existing cluster)")
            self.say(f"topics       {' '.join(ALL_TOPICS)} (exist)")
            return
        self.broker = Broker(data_dir=paths.kafka_data_dir(), port=self.opts.kafka_port)
        self.started_broker = broker_mod.start(self.broker, progress=lambda m: None, die_with_parent=True)
        self.bootstrap = self.broker.bootstrap
        self.say(f"kafka        {self.bootstrap}   data {self.broker.data_dir}   log {self.broker.log_path}")
        created = ensure_topics(self.bootstrap)
        self.say(f"topics       {' '.join(ALL_TOPICS)}" + (f" (created {len(created)})" if created else ""))

    def _start_demo(self) -> str:
        port_file = self.home / "demo" / "server.port"
        port_file.parent.mkdir(parents=True, exist_ok=True)
        port_file.unlink(missing_ok=True)
        part = Part(
            "demo server",
            [sys.executable, "-m", "newsradar.cli.demo.server", "--port", "0", "--speed", str(self.opts.demo_speed),
             "--port-file", str(port_file), "--hold"],
            self.log_dir / "demo-server.log",
            ready=lambda: port_file.exists() and http_ok(f"http://127.0.0.1:{port_file.read_text()}/healthz"),
        )
        self._launch(part)
        base = f"http://127.0.0.1:{port_file.read_text()}"
        part.where = base
        self.say(f"demo server  {base}   log {part.log_path}")
        path = self.home / "demo" / "sources.yaml"
        path.write_text(yaml.safe_dump(demo_sources(base, self.opts), sort_keys=False, allow_unicode=True))
        return str(path)

    def _start_demo_clock(self) -> None:
        demo = next(p for p in self.parts if p.name == "demo server")
        request = urllib.request.Request(f"{demo.where}/demo/start", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback URL we built
                pass
        except (urllib.error.URLError, OSError) as exc:
            raise demo.failure(f"did not start its schedule ({exc})") from None
        self.say("demo         new items start appearing now (about every 15s for 4 minutes at --demo-speed 1)")

    def _start_connectors(self, sources_file: str) -> None:
        from newsradar.config import load_sources

        state_dir = self.home / "state"
        # The connectors serve /metrics where their sources file says (the demo file says
        # --connect-metrics-port); readiness is checked there.
        endpoint = load_sources(sources_file).metrics
        host = "127.0.0.1" if endpoint.host in ("0.0.0.0", "::", "") else endpoint.host
        url = f"http://{host}:{endpoint.port}/metrics"
        part = self._launch_served(
            "connectors", url, "connect.log",
            "connect", "--sources", sources_file, "--state-dir", str(state_dir),
            "--bootstrap-servers", self.bootstrap, *(["--allow-private-networks"] if self.opts.demo else []),
        )
        self.say(f"connectors   metrics {url}   log {part.log_path}   state {state_dir}")

    def _start_pipeline(self, watchlist_file: str) -> None:
        port = self.opts.pipeline_metrics_port
        url = f"http://127.0.0.1:{port}/metrics"
        part = self._launch_served(
            "pipeline", url, "pipeline.log",
            "pipeline", "--watchlist", watchlist_file, "--bootstrap-servers", self.bootstrap, f"--metrics_port={port}",
            *self.opts.pipeline_args,
        )
        self.say(f"pipeline     metrics {url}   log {part.log_path}   runner PrismRunner")

    def _start_deliver(self, watchlist_file: str) -> None:
        port = self.opts.deliver_metrics_port
        url = f"http://127.0.0.1:{port}/metrics"
        part = self._launch_served(
            "deliver", url, "deliver.log",
            "deliver", "--watchlist", watchlist_file, "--bootstrap-servers", self.bootstrap,
            "--metrics-port", str(port), *(["--allow-private-networks"] if self.opts.demo else []),
        )
        self.say(f"deliver      metrics {url}   log {part.log_path}   ledger {self.home / 'deliver' / 'ledger.sqlite'}")

    def _launch_served(self, name: str, metrics_url: str, log_name: str, *args: str) -> Part:
        """Start a ``newsradar`` command that is ready once its /metrics answers."""
        part = Part(name, self._cli(*args), self.log_dir / log_name,
                    ready=lambda: http_ok(metrics_url), where=metrics_url)
        self._launch(part)
        return part

    def _launch(self, part: Part) -> None:
        self.parts.append(part)
        part.start(self._env())
        part.wait_ready(READY_TIMEOUT)

    # -- run ------------------------------------------------------------------

    def check(self) -> None:
        """Raise PartFailed when any part has exited."""
        for part in self.parts:
            code = part.exited()
            if code is not None:
                raise part.failure(f"exited with code {code}")
        if self.broker is not None and self.started_broker and self.broker.pid() is None:
            raise PartFailed(f"the Kafka broker died; log {self.broker.log_path}:\n{tail(self.broker.log_path, 25)}")

    def metrics_urls(self) -> dict[str, str]:
        return {p.name: p.where for p in self.parts if p.where.endswith("/metrics")}

    # -- stop -----------------------------------------------------------------

    def stop(self) -> None:
        for part in reversed(self.parts):
            if part.exited() is None:
                self.say(f"stopping {part.name} ...")
            part.stop()
        if self.broker is not None and self.started_broker:
            self.say("stopping kafka ...")
            broker_mod.stop(self.broker, progress=lambda m: None)


def demo_sources(base: str, opts: Options) -> dict:
    from .demo.server import load_catalog

    catalog = load_catalog()
    interval = f"{opts.poll_interval:g}s"
    sources = [
        {"id": feed_id, "kind": "rss", "url": f"{base}/feeds/{feed_id}.xml", "interval": interval, "lang": feed["lang"]}
        for feed_id, feed in catalog.feeds.items()
    ]
    sources += [
        {"id": f"tg-{name}".replace("_", "-"), "kind": "telegram", "mode": "web", "channel": name, "base_url": base,
         "interval": interval, "lang": channel["lang"], "backfill_pages": 2}
        for name, channel in catalog.channels.items()
    ]
    return {
        "allow_private_networks": True,
        "defaults": {"interval": interval, "min_interval": "1s", "timeout": "10s"},
        "metrics": {"host": "127.0.0.1", "port": opts.connect_metrics_port},
        "sources": sources,
    }


def run(opts: Options, say: Callable[[str], None] = print) -> int:
    """Start the stack, supervise it until a signal or a failure, stop it. Returns the exit code."""
    stack = Stack(opts, say=say)
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        say("newsradar up: starting (Ctrl-C stops everything)")
        stack.start()
        say("newsradar is up. Alerts: `newsradar alerts tail --bootstrap-servers " + stack.bootstrap + "`")
        from .liveview import LiveView

        view = LiveView(stack.bootstrap, stack.metrics_urls(), say=say, live=opts.live)
        with view:
            while True:
                stack.check()
                view.refresh()
                time.sleep(1.0)
    except KeyboardInterrupt:
        say("newsradar up: stopping ...")
    except PartFailed as exc:
        say(f"newsradar up: {exc}")
        code = 1
    except broker_mod.BrokerError as exc:
        say(f"newsradar up: kafka: {exc}")
        code = 1
    finally:
        # Stop even if a second signal arrives while stopping.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        stack.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    say("newsradar up: stopped")
    return code
