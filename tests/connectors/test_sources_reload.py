"""`newsradar connect` takes an edited sources file without a restart: added sources start,
removed ones stop, a changed one keeps its state, and a bad edit is refused while the running
version goes on (a subprocess, real Kafka, the fixture server)."""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.request
from collections import Counter

import pytest

from tests.conftest import free_port, newsradar_cmd, wait_for
from tests.connectors.test_connect_cli import mine, write_sources

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def sample(text: str, name: str, **labels) -> float | None:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    m = re.search(rf"^{name}\{{{re.escape(inner)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def fetches(text: str, source: str) -> float:
    """Every fetch of ``source``, whatever its outcome."""
    return sum(float(v) for v in re.findall(rf'^newsradar_fetches_total\{{outcome="[^"]+",source="{source}"\}} (\S+)$',
                                            text, re.M))


def test_an_edited_sources_file_is_applied_without_a_restart(kafka, feed_server, topic_prefix, tmp_path):
    port = free_port()
    ids = {k: f"{topic_prefix}-{k}" for k in ("a", "b", "c")}

    def source(key: str, items: int) -> dict:
        return {"id": ids[key], "kind": "rss", "url": feed_server.url(f"/gen/{topic_prefix}{key}.xml?items={items}")}

    def keys_of(key: str) -> Counter:
        return Counter(m.key.decode() for m in mine(kafka, ids[key]))

    file = write_sources(tmp_path / "sources.yaml", [source("a", 3), source("c", 2)], port=port,
                         interval="1s", min_interval="1s")
    log_path = tmp_path / "connect.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            newsradar_cmd("connect", "--sources", str(file), "--state-dir", str(tmp_path / "state"),
                          "--bootstrap-servers", kafka.bootstrap, "--reload-every", "0.5s"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        wait_for(lambda: sum(keys_of("a").values()) == 3 and sum(keys_of("c").values()) == 2, 90,
                 "the first version's items (3 from a, 2 from c)")

        # a removed, b added, c changed (its feed now has 4 items): c keeps what it delivered.
        write_sources(file, [source("b", 2), source("c", 4)], port=port, interval="1s", min_interval="1s")
        wait_for(lambda: sum(keys_of("b").values()) == 2 and len(keys_of("c")) == 4, 60,
                 "b's items and c's two new ones after the reload")
        assert set(keys_of("c").values()) == {1}, keys_of("c")  # nothing of c sent twice
        text = wait_for(lambda: (t := scrape(port)) and sample(t, "newsradar_connect_sources_reloads_total",
                                                                result="ok") == 1 and t, 30, "one good reload")
        fetches_a = fetches(text, ids["a"])
        assert fetches_a >= 1
        # A removed source is not polled again: c (same 1 s interval) is polled three more times
        # meanwhile, which is three of a's intervals measured by the poller's own clock.
        polls_before = fetches(text, ids["c"])
        text = wait_for(lambda: (t := scrape(port)) and fetches(t, ids["c"]) >= polls_before + 3 and t, 30,
                        "three more polls of c")
        assert fetches(text, ids["a"]) == fetches_a
        log_text = log_path.read_text(errors="replace")
        assert f"sources: {ids['a']} removed" in log_text and f"sources: {ids['b']} added" in log_text
        assert f"sources: {ids['c']} changed" in log_text

        # A bad edit: refused, counted, and the running version keeps polling.
        file.write_text(file.read_text() + "  - id: broken\n    kind: rss\n    url: 5\n")
        wait_for(lambda: sample(scrape(port), "newsradar_connect_sources_reloads_total", result="failed") == 1, 30,
                 "the bad edit counted as a failed reload")
        assert "sources: reload refused, the running version stays" in log_path.read_text(errors="replace")
        polls_c = fetches(scrape(port), ids["c"])
        wait_for(lambda: fetches(scrape(port), ids["c"]) > polls_c, 30, "c still polled after the refused edit")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
