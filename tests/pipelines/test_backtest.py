"""`newsradar backtest` over files: the same results as `newsradar tag`, the --against diff,
the HTML report, and bad input. The topic replay on the real broker is in test_backtest_kafka.py."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import subprocess
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from newsradar.cli.history import read_files
from newsradar.records import decode_alert
from pipelines import backtest
from pipelines.backtest_report import render
from pipelines.tag import main as tag_main
from tests.conftest import FIXTURES, REPO, newsradar_cmd
from transforms.reload import WatchlistSource

WATCHLIST = str(REPO / "config" / "watchlist.yaml")
ARTICLES = str(FIXTURES / "tag" / "articles.jsonl")
NEW = str(FIXTURES / "backtest" / "new.yaml")
CURRENT = str(FIXTURES / "backtest" / "current.yaml")
SHARED = str(FIXTURES / "backtest" / "shared.jsonl")  # an article on OVD-Info, watched alike by both
EXPORT = str(FIXTURES / "telegram" / "export" / "result.json")
NOW = datetime(2026, 4, 1, tzinfo=UTC)


def run(*args):
    return subprocess.run(newsradar_cmd("backtest", *args), capture_output=True, text=True, timeout=300)


def tag_run(watchlist: str, path: str, tmp_path, *more: str) -> tuple[list[dict], list]:
    """`newsradar tag` on the same input (``more`` files appended to ``path``): its output objects and alerts."""
    n = len(list(tmp_path.iterdir()))
    alerts = tmp_path / f"tag-alerts-{n}.jsonl"
    if more:
        joined = tmp_path / f"tag-input-{n}.jsonl"
        joined.write_bytes(b"".join(open(p, "rb").read() for p in (path, *more)))
        path = str(joined)
    out = io.StringIO()
    assert tag_main(watchlist, path, str(alerts), out=out, err=io.StringIO(), now=NOW) == 0
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    return objs, [decode_alert(line) for line in alerts.read_text(encoding="utf-8").splitlines()]


def backtest_result(watchlist: str, *paths: str) -> backtest.Result:
    history = read_files(list(paths), NOW)
    return backtest.run(history, WatchlistSource.fixed(_load(watchlist)), watchlist)


def _load(path):
    from newsradar.config import load_watchlist

    return load_watchlist(path)


@pytest.mark.parametrize("path", [ARTICLES, str(FIXTURES / "tag" / "feed.xml")], ids=["jsonl", "rss"])
def test_the_same_alerts_and_mentions_as_tag_on_the_same_file(path, tmp_path):
    objs, tag_alerts = tag_run(WATCHLIST, path, tmp_path)
    result = backtest_result(WATCHLIST, path)
    assert [a.alert.alert_id for a in result.alerts] == [a.alert_id for a in tag_alerts]
    mentions = Counter(m["org_id"] for o in objs for m in o["mentions"])
    assert {org: c.mentions for org, c in result.per_org.items()} == dict(mentions)
    assert result.articles == len(objs)
    topics = Counter(t["id"] for o in objs for t in o["topics"])
    assert {t: c.articles for t, c in result.per_topic.items()} == dict(topics)


def test_counts_per_day_come_from_the_event_times():
    result = backtest_result(WATCHLIST, ARTICLES)
    # articles.jsonl: three articles on 2026-03-02, one on 03-03, one on 03-12
    assert {d: c.articles for d, c in result.per_day.items()} == {"2026-03-02": 3, "2026-03-03": 1, "2026-03-12": 1}
    assert sum(c.alerts for c in result.per_day.values()) == len(result.alerts) > 0
    assert {a.day for a in result.alerts if a.alert.article_id == "t5"} == {"2026-03-12"}


def test_a_gzipped_file_gives_what_the_plain_one_gives(tmp_path):
    packed = tmp_path / "articles.jsonl.gz"
    packed.write_bytes(gzip.compress((FIXTURES / "tag" / "articles.jsonl").read_bytes()))
    plain, gz = backtest_result(WATCHLIST, ARTICLES), backtest_result(WATCHLIST, str(packed))
    assert [a.alert.alert_id for a in gz.alerts] == [a.alert.alert_id for a in plain.alerts]


def test_a_telegram_export_is_read_by_the_export_connector():
    history = read_files([EXPORT], NOW)
    assert history.records and all(r.where.startswith(f"{EXPORT}: message ") for r in history.records)
    result = backtest.run(history, WatchlistSource.fixed(_load(WATCHLIST)), WATCHLIST)
    assert result.articles == len(history.records)


@pytest.mark.slow
def test_against_lists_the_alerts_of_the_added_and_the_dropped_organization(tmp_path):
    report = tmp_path / "report.html"
    result = run("--watchlist", NEW, "--against", CURRENT, "--input", ARTICLES, "--input", SHARED,
                 "--report", str(report))
    assert result.returncode == 0, result.stderr
    _, new_alerts = tag_run(NEW, ARTICLES, tmp_path, SHARED)
    _, current_alerts = tag_run(CURRENT, ARTICLES, tmp_path, SHARED)
    added = [a for a in new_alerts if a.alert_id not in {c.alert_id for c in current_alerts}]
    dropped = [a for a in current_alerts if a.alert_id not in {n.alert_id for n in new_alerts}]
    # the fixtures: new.yaml adds the Ministry of Defence and drops the Council
    assert {a.org_id for a in added} == {"russian-ministry-of-defence"}
    assert {a.org_id for a in dropped} == {"council-of-mothers-and-wives"}
    shared = [a for a in new_alerts if a.org_id == "ovd-info"]
    assert shared and all(a.alert_id in {c.alert_id for c in current_alerts} for a in shared)
    out = result.stdout
    added_part = out.split("alerts added by", 1)[1].split("alerts dropped by", 1)[0]
    dropped_part = out.split("alerts dropped by", 1)[1]
    assert f"({len(added)}):" in added_part and f"({len(dropped)}):" in dropped_part
    for part, alerts in ((added_part, added), (dropped_part, dropped)):
        for a in alerts:
            assert f"why: {a.why}" in part and f"snippet: {a.snippet}" in part
    assert "ovd-info" not in added_part and "ovd-info" not in dropped_part
    org_lines = {line.split()[0]: line.split()[1:] for line in out.split("per organization", 1)[1].split("\n\n")[0]
                 .splitlines()[1:]}
    assert org_lines["russian-ministry-of-defence"][-1].startswith("+")
    assert org_lines["council-of-mothers-and-wives"][-1].startswith("-")
    assert org_lines["ovd-info"][-1] == "0"
    # new.yaml has a file sink: a backtest notifies nobody
    home = tmp_path / "newsradar-home"
    assert not (home / "backtest-must-not-write.jsonl").exists()
    html = report.read_text(encoding="utf-8")
    for a in added + dropped:
        assert _escaped(a.why) in html
    assert html.count('class="alert"') == len(added) and html.count('class="alert dropped"') == len(dropped)


def _escaped(text: str) -> str:
    from html import escape

    return escape(text)


class _Resources(HTMLParser):
    """Everything in a document that a browser would load or run."""

    def __init__(self):
        super().__init__()
        self.tags: Counter = Counter()
        self.references: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster", "xlink:href") and value:
                self.references.append(f"{tag} {name}={value}")
            if name == "style" and value and "url(" in value:
                self.references.append(f"{tag} style={value}")
            if name.startswith("on"):
                self.references.append(f"{tag} {name} handler")

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def test_the_html_report_is_self_contained_and_escapes_what_it_shows():
    history = read_files([ARTICLES], NOW)
    new = backtest.run(history, WatchlistSource.fixed(_load(NEW)), "new.yaml")
    current = backtest.run(history, WatchlistSource.fixed(_load(CURRENT)), "current.yaml")
    changes = backtest.diff(new, current)
    # a hostile title and why-sentence: must come out as text, not markup
    first, *rest = changes.added
    hostile = dataclasses.replace(first.alert, title='<script src="https://evil.example/x.js"></script><img src=x>')
    added = backtest.AlertLog()
    for a in [backtest.DatedAlert(hostile, first.day), *rest]:
        added.append(a)
    changes = backtest.Diff(added=added, dropped=changes.dropped)
    html = render(history, new, current, changes)
    parser = _Resources()
    parser.feed(html)
    parser.close()
    assert parser.tags["script"] == 0 and parser.tags["img"] == 0 and parser.tags["link"] == 0
    assert parser.tags["iframe"] == parser.tags["object"] == parser.tags["embed"] == 0
    assert parser.references == []
    assert all("url(" not in s and "@import" not in s for s in parser.styles)
    assert "&lt;script src=&quot;https://evil.example/x.js&quot;&gt;" in html
    # one chart for all alerts, one per organization and topic with alerts in either version
    subjects = {a.subject for a in [*new.alerts, *current.alerts]}
    assert parser.tags["svg"] - 2 == 1 + len(subjects)  # minus the two legend swatches
    assert parser.tags["rect"] > 0
    assert html.count('class="alert"') == len(changes.added)
    assert html.count('class="alert dropped"') == len(changes.dropped)


def test_an_unreadable_file_is_one_line_and_exit_2(tmp_path):
    result = run("--watchlist", WATCHLIST, "--input", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"newsradar: backtest: {tmp_path / 'missing.jsonl'}: cannot read: No such file or directory"
    assert result.stdout == ""


def test_a_broken_gzip_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "x.jsonl.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    result = run("--watchlist", WATCHLIST, "--input", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{bad}: not a readable gzip file" in result.stderr


def test_a_malformed_line_is_counted_and_reported_and_the_rest_processed(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = (FIXTURES / "tag" / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], "not json", lines[3], '{"title": "no text"}']) + "\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert backtest.main(lambda: read_files([str(path)], NOW), WATCHLIST, None, None, out=out, err=err) == 0
    assert f"newsradar: {path}:2: not JSON" in err.getvalue()
    assert f"newsradar: {path}:4: text: required string field is missing" in err.getvalue()
    assert "2 malformed input records counted and left out" in err.getvalue()
    assert "2 articles tagged" in out.getvalue() and "2 malformed" in out.getvalue()


def test_a_bad_watchlist_stops_before_the_history_is_read(tmp_path):
    read = []
    with pytest.raises(Exception, match="bad-type.yaml"):
        backtest.main(lambda: read.append(1), str(FIXTURES / "config" / "bad-type.yaml"), None, None,
                      out=io.StringIO(), err=io.StringIO())
    assert read == []


def test_a_report_that_would_overwrite_an_input_is_refused_before_the_work(tmp_path):
    copy = tmp_path / "in.jsonl"
    copy.write_bytes((FIXTURES / "tag" / "articles.jsonl").read_bytes())
    result = run("--watchlist", WATCHLIST, "--input", str(copy), "--report", str(copy))
    assert result.returncode == 2
    assert result.stderr.strip() == f"newsradar: config error: {copy}: --report would overwrite {copy}, an input of this run"
    assert copy.read_bytes() == (FIXTURES / "tag" / "articles.jsonl").read_bytes()


def test_input_and_topic_are_exclusive():
    result = run("--watchlist", WATCHLIST, "--input", ARTICLES, "--topic", "news.raw", "--since", "1d")
    assert result.returncode == 2 and "--input FILE" in result.stderr


def test_a_topic_history_is_put_in_time_order_on_disk_and_read_again_on_every_pass():
    from newsradar.cli.history import SortedRecords

    records = SortedRecords("news.raw")
    arrivals = [(3000, 0, 5, b"c"), (1000, 1, 2, b"a"), (2000, 0, 4, b"b2"), (2000, 0, 3, b"b1"), (1000, 0, 9, b"a0")]
    for ts, partition, offset, value in arrivals:
        records.add(ts, partition, offset, value)
    history = records.done()
    try:
        expected = [b"a0", b"a", b"b1", b"b2", b"c"]
        for _ in range(2):  # a second watchlist's run reads them again, in the same order
            got = list(history)
            assert [r.payload for r in got] == expected
        assert [r.where for r in got][:2] == ["news.raw/0:9", "news.raw/1:2"]
        assert got[0].at == 1.0 and len(history) == 5 and history.size_hint() == 5
    finally:
        history.close()


def test_the_alert_log_keeps_the_order_raised_and_answers_per_day_and_top_as_the_lists_did():
    """The alerts live on disk (AlertLog); what the reports ask of them is what sorting and
    counting the list in memory gave."""
    from newsradar.vocab import SEVERITIES

    result = backtest_result(WATCHLIST, ARTICLES)
    alerts = list(result.alerts)
    assert len(alerts) == len(result.alerts) > 3
    assert len({a.day for a in alerts}) > 1 and len({a.alert.severity for a in alerts}) > 1
    assert [a.alert.alert_id for a in result.alerts] == [a.alert.alert_id for a in alerts]  # read again, same order
    subject = alerts[0].subject
    assert result.alerts.per_day(subject) == Counter(a.day for a in alerts if a.subject == subject)
    assert result.alerts.per_day() == Counter(a.day for a in alerts)
    by_urgency = sorted(alerts, key=lambda a: (-SEVERITIES.index(a.alert.severity), a.day))
    assert [a.alert.alert_id for a in result.alerts.top(3)] == [a.alert.alert_id for a in by_urgency[:3]]
    assert result.alerts.ids() == {a.alert.alert_id for a in alerts}
