"""`newsradar deliver` against local receivers: the fault run, notifications/s per sink type, and
alert -> delivered p95 per sink type.

1. **Fault run** (issue 14): ``--alerts`` alerts (1,000; stories of 1-4 alerts) to a signed
   webhook taking 0.3 s per request (concurrency 4) and a file sink, `deliver` SIGKILLed three
   times mid-stream and restarted (tests/newsradar/delivery/fault.py, the same run the suite
   makes with fewer alerts: it checks every guarantee and stops at the first broken one).
2. **Throughput**: the same alerts, already on news.alerts, to one sink at a time (a webhook
   receiver answering at once, the real Alertmanager, a file, an SMTP server (aiosmtpd,
   STARTTLS and AUTH, one session per message), the Telegram Bot API stand-in with the sink's
   rate limit lifted), ``--group-window 0s`` so the window does not count: notifications/s from
   the first acknowledged to the last. ``--kinds`` picks the sinks.
3. **Latency**: a steady stream (``--rate`` alerts/s for ``--seconds``) to all three sinks at
   once and, next to them, a dead webhook (accepts connections, never answers), the default
   grouping window (5 s): alert -> delivered, from the producer's acknowledgement to the
   receiver answering / the line in the file / the alert listed by Alertmanager (polled every
   0.1 s), p50 and p95 per healthy sink.

    .venv/bin/python benchmarks/delivery.py [--alerts 1000] [--rate 20] [--seconds 20] [--bootstrap-servers H:P]
        [--kinds webhook,alertmanager,file,email,telegram] [--skip-fault] [--skip-throughput] [--skip-latency]

Without --bootstrap-servers a broker is started with `newsradar kafka start` in a temporary
directory and stopped at the end. Needs prometheus-alertmanager (`make deps`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsradar.kafka import ensure_topics  # noqa: E402
from tests.conftest import free_port, wait_for  # noqa: E402
from tests.newsradar.delivery.chatservers import TelegramApi  # noqa: E402
from tests.newsradar.delivery.fault import (  # noqa: E402
    Deliver,
    fault_run,
    file_notes,
    hook,
    produce,
    stories,
    write_watchlist,
)
from tests.newsradar.delivery.mailserver import MailServer  # noqa: E402
from tests.newsradar.delivery.receiver import Receiver  # noqa: E402

KINDS = ("webhook", "alertmanager", "file", "email", "telegram")
SMTP_USER, SMTP_PASSWORD, SMTP_PASSWORD_ENV = "bench", "bench-password", "NEWSRADAR_BENCH_SMTP_PASSWORD"
TG_TOKEN, TG_TOKEN_ENV, TG_CHAT = "4242:bench-token", "NEWSRADAR_BENCH_TG_TOKEN", "-1001234567890"


def topics(bootstrap: str) -> str:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    ensure_topics(bootstrap, partitions=2, topics=[prefix + t for t in ("news.alerts", "news.dlq")])
    return prefix


def start_alertmanager(tmp: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        sys.exit("prometheus-alertmanager is not installed (make deps)")
    port, cluster = free_port(), free_port()
    config = tmp / "am.yml"
    config.write_text("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n", encoding="utf-8")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--cluster.listen-address=127.0.0.1:{cluster}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(ready, 30, "alertmanager to be ready")
    return proc, url


def am_stories(url: str) -> dict[str, dict]:
    from tests.newsradar.delivery.conftest import list_alerts

    return {a["annotations"]["story_id"]: a for a in list_alerts(url)}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, int(q * len(values) + 0.5) - 1)]


class Poller:
    """Notes when each story first shows up in the file / in Alertmanager."""

    def __init__(self, read):
        self.read = read
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            now = time.time()
            for story in self.read():
                self.seen.setdefault(story, now)
            time.sleep(0.1)


def throughput_of(bootstrap: str, run_dir: Path, batch, kind: str, am_url: str) -> float:
    """Seconds from the first notification acknowledged by a ``kind`` sink to the last."""
    prefix = topics(bootstrap)
    run_dir.mkdir()
    os.environ["NEWSRADAR_HOME"] = str(run_dir / "home")  # a ledger of its own: the same alert ids
    produce(bootstrap, prefix + "news.alerts", batch)
    wanted = {a.story_id for a in batch}
    path = run_dir / "n.jsonl"
    os.environ[SMTP_PASSWORD_ENV], os.environ[TG_TOKEN_ENV] = SMTP_PASSWORD, TG_TOKEN
    with Receiver() as rx, MailServer(run_dir, users={SMTP_USER: SMTP_PASSWORD}) as mail, \
            TelegramApi(TG_TOKEN, chats=(TG_CHAT,)) as tg:
        sink = {"webhook": hook(rx.url, concurrency=8),
                "alertmanager": {"kind": "alertmanager", "url": am_url, "allow_private_networks": True},
                "file": {"kind": "file", "path": str(path)},
                "email": {"kind": "email", "host": "127.0.0.1", "port": mail.port, "ca_file": str(mail.cert),
                          "username": SMTP_USER, "password_env": SMTP_PASSWORD_ENV, "from": "bench@example.org",
                          "to": ["desk@example.org"], "allow_private_networks": True, "concurrency": 4},
                "telegram": {"kind": "telegram", "chat_id": TG_CHAT, "token_env": TG_TOKEN_ENV, "api_url": tg.url,
                             "allow_private_networks": True, "concurrency": 4, "rate_limit": 10_000}}[kind]
        counts = {"webhook": lambda: len(set(rx.ok)), "file": lambda: len(file_notes(path)),
                  "alertmanager": lambda: len(wanted & set(am_stories(am_url))),
                  "email": lambda: len(mail.messages), "telegram": lambda: len(tg.messages)}
        count = counts[kind]
        deliver = Deliver(run_dir, bootstrap, prefix, write_watchlist(run_dir / "w.yaml", [sink]),
                          "--group-window", "0s").start()
        try:
            wait_for(lambda: deliver.check() or count() >= 1, 120, f"the first {kind} notification", interval=0.05)
            first = time.monotonic()
            wait_for(lambda: deliver.check() or count() >= len(wanted), 300, f"all {kind} notifications",
                     interval=0.05)
            return time.monotonic() - first
        finally:
            deliver.stop()


def throughput(bootstrap: str, tmp: Path, alerts: int, am_url: str, kinds=KINDS) -> None:
    batch = stories(alerts)
    n = len({a.story_id for a in batch})
    for kind in kinds:
        elapsed = throughput_of(bootstrap, tmp / f"tp-{kind}", batch, kind, am_url)
        print(f"throughput {kind}: {n} notifications ({alerts} alerts), "
              f"{(n - 1) / elapsed:,.0f} notifications/s from the first to the last ({elapsed:.2f} s)", flush=True)


def latency(bootstrap: str, tmp: Path, rate: float, seconds: float, am_url: str) -> None:
    prefix = topics(bootstrap)
    run_dir = tmp / "latency"
    run_dir.mkdir()
    path = run_dir / "n.jsonl"
    batch = stories(int(rate * seconds), first=500_000)
    story_of = {a.alert_id: a.story_id for a in batch}
    dead = socket.socket()  # takes connections, never answers
    dead.bind(("127.0.0.1", 0))
    dead.listen(1024)
    with Receiver() as rx:
        sinks = [hook(rx.url), {"kind": "file", "path": str(path)},
                 {"kind": "alertmanager", "url": am_url, "allow_private_networks": True},
                 hook(f"http://127.0.0.1:{dead.getsockname()[1]}/dead", timeout="2s")]
        deliver = Deliver(run_dir, bootstrap, prefix, write_watchlist(run_dir / "w.yaml", sinks)).start()
        file_poll = Poller(lambda: [n["story_id"] for n in file_notes(path)])
        am_poll = Poller(lambda: list(am_stories(am_url)))
        try:
            wait_for(lambda: deliver.check() or "deliver: reading" in deliver.log_path.read_text(), 60,
                     "deliver to start reading")
            file_poll.thread.start()
            am_poll.thread.start()
            acked: dict[str, float] = {}
            step = 10
            for i in range(0, len(batch), step):
                acked.update(produce(bootstrap, prefix + "news.alerts", batch[i:i + step]))
                time.sleep(max(0.0, step / rate - 0.01))
            stories_all = set(story_of.values())
            wait_for(lambda: deliver.check() or (len(rx.alerts) >= len(batch) and stories_all <= set(file_poll.seen)
                                                 and stories_all <= set(am_poll.seen)),
                     120, "every alert at every sink")
        finally:
            file_poll.stop.set()
            am_poll.stop.set()
            deliver.stop()
            dead.close()
    rows = {
        "webhook": [rx.first_ok_at[a] - t for a, t in acked.items()],
        "file": [file_poll.seen[story_of[a]] - t for a, t in acked.items()],
        "alertmanager": [am_poll.seen[story_of[a]] - t for a, t in acked.items()],
    }
    print(f"latency: {len(batch)} alerts in {len(set(story_of.values()))} stories at {rate:.0f} alerts/s, "
          f"grouping window 5 s, all three sinks at once next to a dead webhook")
    for kind, values in rows.items():
        print(f"  {kind}: alert -> delivered p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
              f"max {max(values):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--skip-fault", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--kinds", default=",".join(KINDS), help="the sinks of the throughput run, comma-separated")
    opts = parser.parse_args()
    kinds = [k for k in opts.kinds.split(",") if k]
    if set(kinds) - set(KINDS):
        parser.error(f"unknown --kinds {sorted(set(kinds) - set(KINDS))}; known: {', '.join(KINDS)}")
    with tempfile.TemporaryDirectory(prefix="nr-deliver-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["NEWSRADAR_HOME"] = str(tmp / "home")  # deliver's ledger, for every run below
        os.environ.setdefault("NEWSRADAR_CACHE", str(Path.home() / ".newsradar" / "cache"))
        bootstrap = opts.bootstrap_servers
        broker = None
        if not bootstrap:
            port = str(free_port())
            broker = [sys.executable, "-m", "newsradar.cli", "kafka"], ["--port", port, "--data-dir", f"{tmp}/kafka"]
            subprocess.run(broker[0] + ["start"] + broker[1], check=True, capture_output=True)
            bootstrap = f"localhost:{port}"
        am, am_url = start_alertmanager(tmp)
        try:
            if not opts.skip_fault:
                run_dir = tmp / "fault"
                run_dir.mkdir()
                os.environ["NEWSRADAR_HOME"] = str(run_dir / "home")
                run = fault_run(bootstrap, topics(bootstrap), run_dir, alerts=opts.alerts, kills=3, delay=0.3)
                print(f"fault run: {run.alerts} alerts = {run.notifications} notifications, webhook at 0.3 s per "
                      f"request (concurrency 4) + file sink, {run.kills} SIGKILLs: all delivered in "
                      f"{run.elapsed:.0f} s, {run.dlq} on news.dlq, {run.repeats} repeats at the webhook "
                      f"(in flight at the receiver at the kills: {run.in_flight_at_kills}), "
                      f"{run.file_lines} file lines (each notification once)", flush=True)
            if not opts.skip_throughput:
                throughput(bootstrap, tmp, opts.alerts, am_url, kinds)
            if not opts.skip_latency:
                os.environ["NEWSRADAR_HOME"] = str(tmp / "home-latency")
                latency(bootstrap, tmp, opts.rate, opts.seconds, am_url)
        finally:
            am.terminate()
            am.wait(10)
            if broker:
                subprocess.run(broker[0] + ["stop"] + broker[1], capture_output=True)


if __name__ == "__main__":
    main()
