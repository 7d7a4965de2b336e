"""Analyst feedback (issue 16, item 4): `newsradar feedback` appends verdicts to a JSON-lines
file next to the watchlist; the quality benchmark and the backtest (text and HTML) show the
precision per organization alias and per topic term from it; bad input is one line, exit 2."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import pytest

from newsradar import feedback
from pipelines import backtest
from tests.conftest import FIXTURES, REPO, newsradar_cmd

WATCHLIST = REPO / "config" / "watchlist.yaml"
ARTICLES = str(FIXTURES / "tag" / "articles.jsonl")


def run(*args):
    return subprocess.run(newsradar_cmd("feedback", *args), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def alerts():
    """The alerts the shipped watchlist raises on the tag fixture, by kind."""
    from newsradar.cli.history import read_files
    from tests.pipelines.test_backtest import NOW, backtest_result

    assert read_files([ARTICLES], NOW)
    result = backtest_result(str(WATCHLIST), ARTICLES)
    by_kind: dict[str, list] = {}
    for a in result.alerts:
        by_kind.setdefault(a.alert.kind, []).append(a.alert)
    assert by_kind.get("new_mention") and by_kind.get("topic"), sorted(by_kind)
    return by_kind


def test_feedback_round_trip_cli_file_quality_and_backtest(alerts, tmp_path):
    watchlist = tmp_path / "watchlist.yaml"
    shutil.copy(WATCHLIST, watchlist)
    mention, topic = alerts["new_mention"][0], alerts["topic"][0]
    procs = [
        run(mention.alert_id, "--tp", "--watchlist", str(watchlist), "--alias", "Совет матерей и жён",
            "--note", "the council's picket"),
        run(topic.alert_id, "--fp", "--watchlist", str(watchlist), "--term", "пикет", "--term", "повестки",
            "--org", topic.org_id),
        # the analyst changes their mind about the first: the last verdict counts
        run(mention.alert_id, "--fp", "--watchlist", str(watchlist), "--alias", "Совет матерей и жён"),
        run(mention.alert_id, "--tp", "--watchlist", str(watchlist), "--alias", "Совет матерей и жён"),
    ]
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
    path = tmp_path / "feedback.jsonl"
    assert procs[0].stdout.strip().endswith(f"-> {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    first = json.loads(lines[0])
    assert first == {"v": 1, "alert_id": mention.alert_id, "verdict": "tp", "kind": "new_mention",
                     "org_id": mention.org_id, "aliases": ["Совет матерей и жён"], "note": "the council's picket",
                     "at": first["at"]}
    assert list(first) == sorted(first), "keys sorted: a stable, diffable line"
    verdicts = feedback.load(path)
    alias = feedback.by_alias(verdicts)[(mention.org_id, "Совет матерей и жён")]
    assert (alias.tp, alias.fp) == (1, 0)
    terms = feedback.by_term(verdicts)
    assert {k: (p.tp, p.fp) for k, p in terms.items()} == {(topic.topic_id, "пикет"): (0, 1),
                                                           (topic.topic_id, "повестки"): (0, 1)}

    quality = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality.py"), "--json", "--feedback",
                              str(path)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert quality.returncode == 0, quality.stderr
    shown = json.loads(quality.stdout)["feedback"]
    assert shown["aliases"][mention.org_id]["Совет матерей и жён"] == {"tp": 1, "fp": 0, "precision": 1.0}
    assert shown["terms"][topic.topic_id]["пикет"] == {"tp": 0, "fp": 1, "precision": 0.0}

    out, err = io.StringIO(), io.StringIO()
    report = tmp_path / "report.html"
    from newsradar.cli.history import read_files
    from tests.pipelines.test_backtest import NOW

    code = backtest.main(lambda: read_files([ARTICLES], NOW), str(watchlist), None, str(report), out=out, err=err,
                         feedback_file=str(path))
    assert code == 0
    text = out.getvalue()
    assert "analyst feedback: 2 alerts judged (1 true, 1 false positives)" in text
    assert f"{topic.topic_id}  пикет" in text and "raised 2 of the judged alerts (1 true, 1 false positives)" in text
    html = report.read_text(encoding="utf-8")
    assert "<h2>Analyst feedback</h2>" in html and "<td>Совет матерей и жён</td><td>1</td><td>0</td><td>1.00</td>" in html


def test_bad_feedback_is_one_line_and_exit_2(alerts, tmp_path):
    good = alerts["new_mention"][0].alert_id
    path = str(tmp_path / "f.jsonl")
    for args, says in (
        (("not-an-id", "--tp", "--file", path), "newsradar: feedback: 'not-an-id' is not an alert id"),
        ((good, "--file", path), "newsradar: feedback: give --tp"),
        ((good, "--tp"), "newsradar: feedback: give --file PATH, or --watchlist FILE"),
        (("new_mention:nobody-watched:0123456789abcdef0123", "--tp", "--file", path, "--watchlist", str(WATCHLIST)),
         "newsradar: feedback: organization 'nobody-watched' is not in"),
    ):
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("newsradar:")]
        assert len(lines) == 1 and lines[0].startswith(says), (args, proc.stderr)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"v": 1, "alert_id": "x"}\n', encoding="utf-8")
    with pytest.raises(feedback.FeedbackError, match=r"broken.jsonl:1: not a verdict: missing verdict, kind, at"):
        feedback.load(broken)


def test_a_topic_its_learned_classifier_decided_counts_under_its_own_term():
    from newsradar.records import Evidence, RawArticle, TaggedArticle, TopicTag

    raw = RawArticle(article_id="rss:1", source_id="s", source_kind="rss", url="https://example.org/1", title="",
                     text="Women stood outside with photographs.", published_at="2026-03-02T10:00:00Z",
                     fetched_at="2026-03-02T10:00:00Z")
    rules = TopicTag("protest", 3.0, (Evidence("picket", 0, 6), Evidence("rally", 7, 12)))
    learned = TopicTag("mobilization", 1.0, (Evidence("Women", 0, 5),), learned=0.81)
    tagged = TaggedArticle(article=raw, lang="en", story_id="rss:1", topics=(rules, learned))
    assert feedback.topic_terms(tagged, "protest") == ["picket", "rally"]
    assert feedback.topic_terms(tagged, "mobilization") == [feedback.LEARNED_TERM]
    assert feedback.topic_terms(tagged, "other") == []
