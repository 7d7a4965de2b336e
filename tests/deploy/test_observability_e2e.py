"""End to end: real connector and pipeline, real Kafka, real Prometheus, shipped dashboards.

A local HTTP server serves fixture feeds; `newsradar connect` polls them into the session's
Kafka broker and `newsradar pipeline` tags them and raises alerts. A real Prometheus scrapes
both every second with the shipped recording and alerting rules loaded. Then every PromQL
expression of every panel of every shipped dashboard is evaluated through Prometheus' HTTP API
(template variables as "All", i.e. `.*`) and must parse and return data; histogram quantiles
must be numbers, and every dashboard variable must list values.

The feeds start quiet (one item that matches nothing) so both processes are scraped at zero
before the interesting items arrive: rates and quantiles then see real increases.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
import uuid
from contextlib import ExitStack
from email.utils import formatdate
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, REPO, free_port, newsradar_cmd, wait_for
from tests.connectors.feedserver import FeedServer
from tests.deploy.prometheus_server import Prometheus
from tests.deploy.shipped import panel_queries, recorded_names, substitute, variable_queries

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OBS = FIXTURES / "observability"


def feed(name: str) -> bytes:
    return (OBS / name).read_text(encoding="utf-8").replace("@NOW@", formatdate(time.time(), usegmt=True)).encode()


class Process:
    """A newsradar command in the background, its output in a log file; stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check(self) -> None:
        if not self.alive():
            pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        # The pipeline starts Prism in a session of its own; if the pipeline has to be killed,
        # Prism would outlive it, so note the children first and end those left over.
        children = _children(self.proc.pid)
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc), so they can be ended after their parent."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def write_sources(path: Path, server: FeedServer, metrics_port: int, run: str) -> list[str]:
    """Sources covering every outcome the sources dashboard shows; returns the source ids."""
    sources = [
        {"id": f"{run}-en", "kind": "rss", "url": server.url(f"/mutable/{run}-en"), "lang": "en"},
        {"id": f"{run}-ru", "kind": "rss", "url": server.url(f"/mutable/{run}-ru"), "lang": "ru"},
        # unchanged between polls: 304s
        {"id": f"{run}-static", "kind": "rss", "url": server.url("/feeds/rss20.xml")},
        # told to wait on every poll
        {"id": f"{run}-limited", "kind": "rss", "url": server.url("/status/429?retry_after=1")},
        # fails on every poll
        {"id": f"{run}-broken", "kind": "rss", "url": server.url("/status/500")},
    ]
    doc = {
        "allow_private_networks": True,
        "defaults": {"interval": "1s", "min_interval": "1s", "max_interval": "2s", "backoff_step": "1s",
                     "backoff_max": "2s", "timeout": "5s"},
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "sources": sources,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return [s["id"] for s in sources]


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def write_watchlist(path: Path, alerts_file: Path) -> None:
    """The shipped watchlist, with a file sink so that `newsradar deliver` counts deliveries too."""
    doc = yaml.safe_load((REPO / "config" / "watchlist.yaml").read_text(encoding="utf-8"))
    doc.setdefault("alerts", {})["sinks"] = [{"kind": "file", "path": str(alerts_file)}]
    path.write_text(yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, allow_unicode=True))


def produce_malformed_record(bootstrap: str, run: str) -> None:
    from newsradar.kafka import make_producer
    from newsradar.records import TOPIC_RAW

    producer = make_producer(bootstrap, client_id=f"{run}-bad-record")
    try:
        producer.send(TOPIC_RAW, key=f"{run}-bad".encode(), value=b"{this is not json").get(timeout=30)
    finally:
        producer.close(10)


def start_group_at_end(bootstrap: str, group: str, topic: str) -> None:
    """Commit the current end of every partition for ``group``, so a pipeline in that group
    reads only what is produced from now on (not the whole session's news.raw)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"{topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in partitions})
    finally:
        consumer.close()


def _has_data(body: dict) -> bool:
    return body.get("status") == "success" and bool(body["data"]["result"])


def _finite(body: dict) -> bool:
    values = [s["value"][1] for s in body["data"]["result"]] if body["data"]["resultType"] == "vector" else []
    return any(math.isfinite(float(v)) for v in values)


def test_every_dashboard_expression_returns_data_from_a_real_stack(kafka, tmp_path):
    run = f"obs{uuid.uuid4().hex[:8]}"
    connect_port, pipeline_port, deliver_port = free_port(), free_port(), free_port()
    alerts_file = tmp_path / "alerts.jsonl"
    sources_file, watchlist_file = tmp_path / "sources.yaml", tmp_path / "watchlist.yaml"
    queries = panel_queries()
    assert len(queries) > 30

    with ExitStack() as stack:
        server = FeedServer().start()
        stack.callback(server.stop)
        server.set_body(f"{run}-en", feed("quiet.xml.in"))
        server.set_body(f"{run}-ru", feed("quiet.xml.in"))
        source_ids = write_sources(sources_file, server, connect_port, run)
        write_watchlist(watchlist_file, alerts_file)
        check = subprocess.run(newsradar_cmd("watchlist", "check", str(watchlist_file)), capture_output=True,
                               text=True, timeout=120)
        assert check.returncode == 0, check.stderr

        prometheus = Prometheus(tmp_path / "prometheus", {
            "newsradar-connector": [f"127.0.0.1:{connect_port}"],
            "newsradar-pipeline": [f"127.0.0.1:{pipeline_port}"],
            "newsradar-deliver": [f"127.0.0.1:{deliver_port}"],
        }).start()
        stack.callback(prometheus.stop)

        from newsradar.records import TOPIC_RAW

        start_group_at_end(kafka.bootstrap, run, TOPIC_RAW)
        connector = Process("connect", newsradar_cmd(
            "connect", "--sources", str(sources_file), "--state-dir", str(tmp_path / "state"),
            "--bootstrap-servers", kafka.bootstrap), tmp_path)
        stack.callback(connector.stop)
        pipeline = Process("pipeline", newsradar_cmd(
            "pipeline", "--watchlist", str(watchlist_file), "--bootstrap-servers", kafka.bootstrap,
            f"--metrics_port={pipeline_port}", f"--group_id={run}", "--stop_timeout=20s"), tmp_path)
        stack.callback(pipeline.stop)
        deliver = Process("deliver", newsradar_cmd(
            "deliver", "--watchlist", str(watchlist_file), "--bootstrap-servers", kafka.bootstrap,
            "--metrics-port", str(deliver_port), "--group-id", f"{run}-deliver", "--start-window", "1m"), tmp_path)
        stack.callback(deliver.stop)

        def scraped_and_flowing() -> bool:
            connector.check()
            pipeline.check()
            deliver.check()
            return (prometheus.value('min(up{job=~"newsradar-.*"})') == 1
                    and (prometheus.value("sum(newsradar_articles_total)") or 0) > 0)

        # Phase 1: both processes scraped, the quiet item read by the pipeline, nothing alerted.
        wait_for(scraped_and_flowing, 240, "Prometheus to scrape both processes and see an article read")

        # Phase 2: the interesting items, and one record the pipeline must dead-letter.
        server.set_body(f"{run}-en", feed("news-en.xml.in"))
        server.set_body(f"{run}-ru", feed("news-ru.xml.in"))
        produce_malformed_record(kafka.bootstrap, run)

        # What the fixtures must have caused, beyond series existing: each outcome the
        # dashboards distinguish happened at least once.
        expected = {
            f'sum(newsradar_fetches_total{{source="{run}-static", outcome="not_modified"}})': "304s",
            f'sum(newsradar_rate_limit_waits_total{{source="{run}-limited"}})': "rate-limit waits",
            f'sum(newsradar_fetches_total{{source="{run}-broken", outcome="http_error"}})': "HTTP errors",
            f'sum(newsradar_items_produced_total{{source=~"{run}-(en|ru)"}})': "items produced",
            "sum(newsradar_dlq_records_total)": "the malformed record dead-lettered",
            "sum(newsradar_mentions_total)": "mentions",
            "sum(newsradar_tags_total)": "tags",
            "sum(newsradar_alerts_total)": "alerts",
            "sum(newsradar_fetched_to_alert_seconds_count)": "fetched-to-alert latencies",
            "sum(newsradar_alert_sink_deliveries_total)": "sink deliveries",
        }
        pending: dict[str, dict] = {}

        def every_expression_has_data() -> bool:
            connector.check()
            pipeline.check()
            deliver.check()
            pending.clear()
            for expr, what in expected.items():
                if not (prometheus.value(expr) or 0) > 0:
                    pending[f"expected {what}: {expr}"] = prometheus.query(expr)
            for q in queries:
                body = prometheus.query(substitute(q.expr))
                assert body.get("status") == "success" or body.get("errorType") != "bad_data", (
                    f"{q}: Prometheus cannot parse {q.expr!r}: {body.get('error')}"
                )
                if not _has_data(body) or ("histogram_quantile" in q.expr and not _finite(body)):
                    pending[str(q)] = body
            return not pending

        try:
            wait_for(every_expression_has_data, 180, "every dashboard expression to return data")
        except pytest.fail.Exception:
            detail = "\n".join(f"  {name}: {body}" for name, body in pending.items())
            pytest.fail(f"expressions without data, or expected events that never happened:\n{detail}\n--- connect log:\n{connector.log_tail()}\n"
                        f"--- pipeline log:\n{pipeline.log_tail()}\n--- deliver log:\n{deliver.log_tail()}")

        # The variables list values, and the sources' include ours.
        for var in variable_queries():
            values = prometheus.api(f"label/{var.label}/values", **{"match[]": var.metric})["data"]
            assert values, f"{var.dashboard}: ${var.name} lists no values"
            if var.label == "source":
                assert set(source_ids) <= set(values)

        # Prometheus evaluated the shipped rules on this data without errors, and every
        # recorded series exists.
        groups = prometheus.api("rules")["data"]["groups"]
        broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] == "err"]
        assert not broken
        missing = [name for name in recorded_names() if not _has_data(prometheus.query(name))]
        assert not missing, f"recorded series with no data: {missing}"
        assert alerts_file.exists() and alerts_file.read_text().strip(), "the file sink received no alert"
