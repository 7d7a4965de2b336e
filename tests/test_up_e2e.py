"""End to end: `newsradar up --demo` as a user runs it, checked from the outside.

From a clean NEWSRADAR_HOME: the whole stack starts (its own broker, the demo server, the
connectors, the pipeline on Prism, alert delivery); an alert for a watched organization reaches
news.alerts with the org, story and a readable why, and `newsradar deliver` writes it to the
watchlist's file sink; every demo article is on news.tagged exactly once; the
metrics endpoints count articles, tags and alerts; SIGTERM leaves no process behind; and a
second `up` finds the first run's data in the broker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from newsradar.cli.liveview import scrape
from newsradar.delivery.notification import Notification
from newsradar.kafka import read_topic
from newsradar.records import TOPIC_ALERTS, TOPIC_TAGGED, decode_alert, decode_tagged
from tests.conftest import REPO, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

DEMO_SPEED = "8"  # the four-minute demo schedule plays in about 30 s


def watchlist_with_file_sink(path: Path, alerts_file: Path) -> Path:
    """The shipped watchlist, with a file sink for `newsradar deliver` to write to."""
    doc = yaml.safe_load((REPO / "config" / "watchlist.yaml").read_text(encoding="utf-8"))
    doc.setdefault("alerts", {})["sinks"] = [{"kind": "file", "path": str(alerts_file)}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


class UpProcess:
    def __init__(self, home: Path, kafka_port: int, watchlist: Path):
        self.lines: list[str] = []
        self.connect_port = free_port()
        self.pipeline_port = free_port()
        self.deliver_port = free_port()
        env = dict(os.environ, NEWSRADAR_HOME=str(home))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsradar.cli", "up", "--demo", "--no-live", "--demo-speed", DEMO_SPEED, "--poll-interval", "2",
             "--kafka-port", str(kafka_port), "--connect-metrics-port", str(self.connect_port),
             "--pipeline-metrics-port", str(self.pipeline_port), "--deliver-metrics-port", str(self.deliver_port),
             "--watchlist", str(watchlist)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_up(self, timeout: float = 240) -> None:
        def up_or_dead():
            if self.proc.poll() is not None:
                pytest.fail(f"newsradar up exited with {self.proc.returncode}:\n{self.output()}")
            return any(line.startswith("newsradar is up") for line in self.lines)

        wait_for(up_or_dead, timeout, "`newsradar up` to report that it is up")

    def descendants(self) -> set[int]:
        """Every process below `up` (children in their own sessions, and their children)."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        found, frontier = set(), {self.proc.pid}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
            found |= frontier
        return found

    def terminate(self, timeout: float = 120) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def demo_items(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/demo/items.json", timeout=5) as resp:
        return json.load(resp)


def item_url(base: str, item: dict) -> str:
    if item["kind"] == "telegram":
        return f"https://t.me/{item['source']}/{item['message_id']}"
    return f"{base}/articles/{item['key']}"


def test_up_demo_end_to_end(tmp_path):
    home = tmp_path / "home"
    kafka_port = free_port()
    bootstrap = f"localhost:{kafka_port}"
    alerts_file = tmp_path / "delivered.jsonl"
    watchlist = watchlist_with_file_sink(tmp_path / "watchlist.yaml", alerts_file)
    up = UpProcess(home, kafka_port, watchlist)
    try:
        up.wait_up()
        out = up.output()
        base = re.search(r"demo server\s+(http://127\.0\.0\.1:\d+)", out).group(1)
        for url in (f"http://127.0.0.1:{up.connect_port}/metrics", f"http://127.0.0.1:{up.pipeline_port}/metrics",
                    f"http://127.0.0.1:{up.deliver_port}/metrics"):
            assert url in out, f"up must print every metrics endpoint as a URL:\n{out}"
        assert str(home / "logs") in out and str(home / "state") in out

        # 1. an alert for a watched organization, with its story and a readable why
        def org_alert():
            return [a for a in map(lambda r: decode_alert(r.value), read_topic(bootstrap, TOPIC_ALERTS))
                    if a.kind == "new_mention" and a.org_id == "soldiers-mothers-union"]

        alerts = wait_for(org_alert, 180, "a new_mention alert for soldiers-mothers-union on news.alerts", interval=2)
        alert = alerts[0]
        assert "Union of Committees of Soldiers' Mothers" in alert.why and alert.snippet

        # ... and `deliver`, started by `up`, hands it to the watchlist's sink, in its story's notification
        def delivered():
            lines = alerts_file.read_text(encoding="utf-8").splitlines() if alerts_file.exists() else []
            return {a for line in lines for a in Notification.decode(line).alert_ids}

        wait_for(lambda: alert.alert_id in delivered(), 60, "the alert in the file sink", interval=1)

        # 2. every demo article on news.tagged exactly once (after the schedule has played)
        items = demo_items(base)["items"]
        wanted = {item_url(base, i): i["key"] for i in items}

        def all_tagged():
            tagged = [decode_tagged(r.value) for r in read_topic(bootstrap, TOPIC_TAGGED)]
            return tagged if wanted.keys() <= {t.article.url for t in tagged} else None

        tagged = wait_for(all_tagged, 180, f"all {len(wanted)} demo articles on news.tagged", interval=3)
        per_url = Counter(t.article.url for t in tagged)
        assert {url: n for url, n in per_url.items() if n != 1} == {}, "each demo article exactly once"
        assert set(per_url) == set(wanted), "nothing on news.tagged that the demo did not serve"
        by_id = {t.article.article_id: t for t in tagged}
        source = by_id[alert.article_id]
        assert alert.story_id == source.story_id
        assert "soldiers-mothers-union" in {m.org_id for m in source.mentions}
        # A rewritten copy of a wire story joins the original's story rather than starting one.
        echo = next(t for t in tagged if t.article.url == f"{base}/articles/demo-echo-en-7")
        wire = next(t for t in tagged if t.article.url == f"{base}/articles/demo-wire-en-6")
        assert echo.story_id == wire.story_id
        # One new_mention for the story, whichever copy reached novelty first: the two feeds are
        # polled apart and their records can share a bundle, where Beam keeps no order.
        story_alerts = [a for a in org_alert() if a.story_id == echo.story_id]
        assert len(story_alerts) == 1 and story_alerts[0].article_id in {echo.article.article_id,
                                                                       wire.article.article_id}, story_alerts

        # 3. the metrics endpoints count what happened
        totals = scrape(f"http://127.0.0.1:{up.pipeline_port}/metrics")
        for name in ("newsradar_articles_total", "newsradar_tags_total", "newsradar_alerts_total"):
            assert totals.get(name, 0) > 0, name
        assert scrape(f"http://127.0.0.1:{up.connect_port}/metrics").get("newsradar_items_produced_total", 0) > 0

        # 4. SIGTERM stops everything, with no process left behind
        children = up.descendants()
        assert len(children) >= 5, f"expected broker, demo server, connectors, pipeline (+Prism), deliver: {children}"
        first_alert_ids = {decode_alert(r.value).alert_id for r in read_topic(bootstrap, TOPIC_ALERTS)}
        assert up.terminate() == 0, up.output()
        wait_for(lambda: not [p for p in children if alive(p)], 30, "every child of `up` to be gone")
        assert "newsradar up: stopped" in up.output()
    finally:
        if up.proc.poll() is None:
            up.terminate()

    # 5. a second `up` on the same home finds the broker's data
    again = UpProcess(home, kafka_port, watchlist)
    try:
        again.wait_up()
        kept = {decode_alert(r.value).alert_id for r in read_topic(bootstrap, TOPIC_ALERTS)}
        assert first_alert_ids <= kept
        assert again.terminate() == 0, again.output()
    finally:
        if again.proc.poll() is None:
            again.terminate()


def test_up_with_own_sources_on_an_existing_cluster(kafka, tmp_path):
    """`up --sources --watchlist --bootstrap-servers`: no broker of its own, readiness on the
    metrics port the sources file names, clean SIGTERM."""
    from newsradar.kafka import missing_topics
    from tests.connectors.feedserver import FeedServer

    assert missing_topics(kafka.bootstrap, ["news.raw", "no.such.topic"]) == ["no.such.topic"]
    server = FeedServer().start()
    try:
        port = free_port()
        sources = tmp_path / "sources.yaml"
        sources.write_text(
            "allow_private_networks: true\n"
            f"metrics: {{port: {port}}}\n"
            f"sources:\n  - {{id: e2e-own-feed, kind: rss, url: \"{server.url('/feeds/rss20.xml')}\"}}\n"
        )
        env = dict(os.environ, NEWSRADAR_HOME=str(tmp_path / "home"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsradar.cli", "up", "--no-live", "--sources", str(sources),
             "--bootstrap-servers", kafka.bootstrap, "--pipeline-metrics-port", str(free_port()),
             "--deliver-metrics-port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(ln.rstrip() for ln in proc.stdout), daemon=True).start()
        try:
            wait_for(lambda: proc.poll() is not None or any(ln.startswith("newsradar is up") for ln in lines), 240,
                     "`newsradar up --sources` to come up")
            out = "\n".join(lines)
            assert proc.poll() is None, out
            assert f"connectors   metrics http://127.0.0.1:{port}/metrics" in out
            assert "(existing cluster)" in out and "kafka: started" not in out
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        assert code == 0, "\n".join(lines)
    finally:
        server.stop()


def test_up_refuses_a_cluster_that_does_not_answer(tmp_path):
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {id: a, kind: rss, url: \"https://example.org/feed.xml\"}\n")
    result = subprocess.run(
        [sys.executable, "-m", "newsradar.cli", "up", "--no-live", "--sources", str(sources),
         "--bootstrap-servers", f"localhost:{free_port()}"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, NEWSRADAR_HOME=str(tmp_path / "h")),
    )
    assert result.returncode == 1
    assert "no Kafka broker answers" in result.stdout
