"""The demo news server, run as its own process on 127.0.0.1."""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import feedparser
import pytest

from newsradar.cli.demo.server import load_catalog
from tests.conftest import wait_for


@pytest.fixture()
def demo_server(tmp_path):
    port_file = tmp_path / "port"
    # speed 60: the whole four-minute schedule plays in about four seconds.
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsradar.cli.demo.server", "--port", "0", "--speed", "60", "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for(port_file.exists, 20, "the demo server to write its port")
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_catalog_has_every_language_and_both_kinds():
    catalog = load_catalog()
    assert {i.lang for i in catalog.items} == {"en", "ru", "uk"}
    assert {i.kind for i in catalog.items} == {"rss", "atom", "telegram"}
    assert len({i.key for i in catalog.items}) == len(catalog.items)
    # New items keep appearing over the first minutes, not all at once.
    assert sum(1 for i in catalog.items if i.at == 0) < len(catalog.items) / 3
    assert max(i.at for i in catalog.items) >= 120


def test_items_appear_over_time_and_feeds_parse(demo_server):
    status, _, body = get(f"{demo_server}/demo/items.json")
    first = json.loads(body)
    appeared_first = sum(i["appeared"] for i in first["items"])
    assert 0 < appeared_first < len(first["items"])
    wait_for(
        lambda: all(i["appeared"] for i in json.loads(get(f"{demo_server}/demo/items.json")[2])["items"]),
        30, "every demo item to appear",
    )
    catalog = load_catalog()
    for feed_id in catalog.feeds:
        status, headers, body = get(f"{demo_server}/feeds/{feed_id}.xml")
        assert status == 200
        parsed = feedparser.parse(body, response_headers={"content-type": headers["Content-Type"]})
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert len(parsed.entries) == sum(1 for i in catalog.items if i.source == feed_id)
    status, _, page = get(f"{demo_server}/s/demo_families")
    assert status == 200 and page.count(b'class="tgme_widget_message_text') == 3
    status, _, older = get(f"{demo_server}/s/demo_families?before=102")
    assert older.count(b"data-post=") == 1


def test_conditional_get_answers_304(demo_server):
    wait_for(lambda: all(i["appeared"] for i in json.loads(get(f"{demo_server}/demo/items.json")[2])["items"]), 30,
             "every demo item to appear")
    status, headers, _ = get(f"{demo_server}/feeds/demo-wire-en.xml")
    assert status == 200
    again, _, body = get(f"{demo_server}/feeds/demo-wire-en.xml", {"If-None-Match": headers["ETag"]})
    assert again == 304 and body == b""
    since, _, _ = get(f"{demo_server}/feeds/demo-wire-en.xml", {"If-Modified-Since": headers["Last-Modified"]})
    assert since == 304
    assert get(f"{demo_server}/feeds/nope.xml")[0] == 404


def test_held_schedule_serves_only_the_backlog_until_started(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsradar.cli.demo.server", "--port", "0", "--speed", "60", "--port-file", str(port_file),
         "--hold"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for(port_file.exists, 20, "the demo server to write its port")
        base = f"http://127.0.0.1:{port_file.read_text()}"
        held = json.loads(get(f"{base}/demo/items.json")[2])
        backlog = [i for i in held["items"] if i["appeared"]]
        assert held["start"] is None and backlog and all(i["appears_at"] is not None for i in backlog)
        assert all(i["appears_at"] is None for i in held["items"] if not i["appeared"])
        req = urllib.request.Request(f"{base}/demo/start", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            started = json.load(resp)["start"]
        wait_for(lambda: all(i["appeared"] for i in json.loads(get(f"{base}/demo/items.json")[2])["items"]), 30,
                 "every demo item to appear after the start")
        after = json.loads(get(f"{base}/demo/items.json")[2])
        assert after["start"] == started and min(i["appears_at"] for i in after["items"] if i["key"] not in
                                                  {b["key"] for b in backlog}) >= started
    finally:
        proc.terminate()
        proc.wait(timeout=10)
