"""`newsradar tag` and `newsradar watchlist check`: the commands as users run them."""

import io
import json
import subprocess

import pytest
import yaml
from prometheus_client import REGISTRY

from newsradar.identity import alert_id
from newsradar.records import decode_alert
from pipelines.tag import main as tag_main
from tests.conftest import FIXTURES, REPO, newsradar_cmd
from transforms.tagging import Tagger

WATCHLIST = str(REPO / "config" / "watchlist.yaml")
TAG = FIXTURES / "tag"


def run(*args, stdin=None):
    return subprocess.run(newsradar_cmd(*args), capture_output=True, text=True, input=stdin, timeout=300)


@pytest.mark.slow
def test_tag_jsonl_with_alerts_in_input_order(tmp_path):
    alerts_file = tmp_path / "alerts.jsonl"
    result = run("tag", "--watchlist", WATCHLIST, "--alerts", str(alerts_file), str(TAG / "articles.jsonl"))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["t1", "t2", "t3", "t4", "t5"]
    for o in out:
        assert set(o) >= {"id", "lang", "topics", "mentions", "story_id"}
        assert all(set(t) == {"id", "score"} for t in o["topics"])
        assert all(set(m) == {"org_id", "text", "start", "end", "match"} for m in o["mentions"])
    t1, t2, t3, t4, t5 = out
    assert t1["lang"] == "ru" and {t["id"] for t in t1["topics"]} == {"mobilization", "protest"}
    assert t1["mentions"][0] == {"org_id": "council-of-mothers-and-wives", "text": "Совет матерей и жён",
                                 "start": 26, "end": 45, "match": "exact"}
    # t2 is a rewritten copy of t1: same story, found by the pipeline's Dedupe.
    assert t2["story_id"] == "t1" and t2["duplicate_of"] == "t1"
    assert t3["topics"] == [] and t3["lang"] == "en"  # a retailer "mobilizing" staff
    assert [m["match"] for m in t4["mentions"]] == ["lemma", "exact"]
    assert t4["lang"] == "uk" and t4["topics"] == [{"id": "protest", "score": 5.0}]
    assert t5["mentions"][0]["match"] == "fuzzy"

    alerts = [decode_alert(line) for line in alerts_file.read_text(encoding="utf-8").splitlines()]
    cmw = "council-of-mothers-and-wives"
    assert [(a.kind, a.article_id) for a in alerts] == [
        ("new_mention", "t1"), ("topic", "t1"), ("topic", "t1"),  # t2: the same story, nothing
        ("new_mention", "t4"), ("topic", "t4"),
        ("new_mention", "t4"), ("topic", "t4"),
        ("new_mention", "t5"), ("first_in_window", "t5"), ("topic", "t5"),
    ]
    assert alerts[0].alert_id == alert_id("new_mention", cmw, "t1")
    assert alerts[8].alert_id == alert_id("first_in_window", cmw, "t5")
    assert "after 9.0 days" in alerts[8].why


def test_tag_rss_file_in_process():
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(TAG / "feed.xml"), None, out=out, err=err) == 0
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [m["org_id"] for m in first["mentions"]] == ["verstka", "verstka"]
    assert {t["id"] for t in first["topics"]} == {"mobilization"}
    assert second["mentions"] == []  # "верстка" the page layout


def test_bad_lines_are_reported_in_place_and_exit_2(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"title": "A", "text": "The UCSMR said."}\n'
        "not json\n"
        '{"title": "B"}\n'
        '[1, 2]\n'
        '{"title": "C", "text": "x", "published_at": "yesterday"}\n',
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(path), None, out=out, err=err) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 5
    assert lines[0]["mentions"][0]["org_id"] == "soldiers-mothers-union"
    assert [line.get("line") for line in lines[1:]] == [2, 3, 4, 5]
    assert "not JSON" in lines[1]["error"] and "text" in lines[2]["error"] and "published_at" in lines[4]["error"]
    assert f"{path}:2:" in err.getvalue() and "4 of 5 input items could not be read" in err.getvalue()


def test_tag_reads_stdin_and_bad_watchlist_is_exit_2(tmp_path):
    result = run("tag", "--watchlist", WATCHLIST, stdin='{"title": "", "text": "Минобороны России заявило."}\n')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mentions"][0]["org_id"] == "russian-ministry-of-defence"
    bad = tmp_path / "w.yaml"
    bad.write_text("version: 1\norganizations: [{id: X, name: y, aliases: {}}]\n", encoding="utf-8")
    result = run("tag", "--watchlist", str(bad), str(TAG / "articles.jsonl"))
    assert result.returncode == 2 and "organizations[0].id" in result.stderr


def test_watchlist_check_runs_the_inline_examples(tmp_path):
    result = run("watchlist", "check", WATCHLIST)
    assert result.returncode == 0, result.stderr
    examples = len(yaml.safe_load((REPO / "config" / "watchlist.yaml").read_text(encoding="utf-8"))["examples"])
    assert examples >= 30 and f"{examples} examples" in result.stdout
    broken = tmp_path / "w.yaml"
    text = (REPO / "config" / "watchlist.yaml").read_text(encoding="utf-8")
    broken.write_text(text.replace("    not_topics: [mobilization]\n    note: a retailer", "    topics: [mobilization]\n    note: a retailer"),
                      encoding="utf-8")
    result = run("watchlist", "check", str(broken))
    assert result.returncode == 2
    assert "examples[1] (en) 'The retailer is mobilizing extra staff" in result.stderr
    assert "expected topic mobilization (score" in result.stderr
    assert f"1 of {examples} inline examples fail" in result.stderr


def _count(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_tag_runs_through_build_and_its_dead_letters_land_in_place(tmp_path, monkeypatch):
    # The pipeline's own steps do the work: ParseRaw refuses a record over the news.raw cap,
    # the tagger's failure on one article is its dead letter, Normalize counts languages.
    path = tmp_path / "in.jsonl"
    huge = "слово " * 400_000  # 4.4 MB as a record: over the 2 MiB cap of news.raw
    rows = [
        {"id": "a", "title": "", "text": "The UCSMR said."},
        {"id": "big", "title": "Big", "text": huge},
        {"id": "b", "title": "", "text": "Минобороны России заявило."},
        {"id": "boom", "title": "", "text": "The UCSMR said again."},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    real_tag = Tagger.tag

    def tag_or_fail(self, article):
        if article.article.article_id == "boom":
            raise IndexError("injected fault for boom")
        return real_tag(self, article)

    monkeypatch.setattr(Tagger, "tag", tag_or_fail)
    langs_before = {lang: _count("newsradar_articles_total", {"lang": lang}) for lang in ("en", "ru")}
    dlq_before = {step: _count("newsradar_dlq_records_total", {"step": step}) for step in ("parse", "tag")}
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(path), None, out=out, err=err) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("id") or line["line"] for line in lines] == ["a", 2, "b", 4]
    assert lines[1]["error"].startswith("parse: record of") and "cap" in lines[1]["error"]
    assert lines[3]["error"] == "tag: IndexError: injected fault for boom"
    assert f"{path}:2: parse: record of" in err.getvalue() and f"{path}:4: tag: IndexError" in err.getvalue()
    assert {lang: _count("newsradar_articles_total", {"lang": lang}) - langs_before[lang] for lang in ("en", "ru")} == {
        "en": 2, "ru": 1,
    }
    assert {step: _count("newsradar_dlq_records_total", {"step": step}) - dlq_before[step] for step in dlq_before} == {
        "parse": 1, "tag": 1,
    }


def test_a_repeated_article_gets_the_version_in_force(tmp_path):
    path = tmp_path / "in.jsonl"
    line = json.dumps({"id": "r", "title": "", "text": "The UCSMR said."})
    other = json.dumps({"id": "r", "title": "", "text": "Another text under the same id."})
    path.write_text(f"{line}\n{line}\n{other}\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(path), None, out=out, err=err) == 0, err.getvalue()
    first, again, stale = [json.loads(x) for x in out.getvalue().splitlines()]
    # Dedupe drops repeats as in the stream (an unedited version under a known id is stale);
    # each line still gets an object: the one of the version in force, saying so.
    assert first["mentions"][0]["org_id"] == "soldiers-mothers-union" and "repeat_of_line" not in first
    assert again == {**first, "repeat_of_line": 1} and stale == {**first, "repeat_of_line": 1}


@pytest.mark.parametrize("where, words", [
    ("no/such/dir/alerts.jsonl", "--alerts: cannot write: No such file or directory"),
    ("input", "--alerts would overwrite"),
])
def test_an_unwritable_alerts_file_is_refused_before_the_work(tmp_path, monkeypatch, where, words):
    import pipelines.tag as tag_mod
    from newsradar.config import ConfigError

    def no_work(*args, **kwargs):
        raise AssertionError("the pipeline ran although its output could not be written")

    monkeypatch.setattr(tag_mod, "run_items", no_work)
    articles = tmp_path / "in.jsonl"
    articles.write_text('{"title": "t", "text": "x"}\n', encoding="utf-8")
    alerts = articles if where == "input" else tmp_path / where
    with pytest.raises(ConfigError, match=words):
        tag_main(WATCHLIST, str(articles), str(alerts), out=io.StringIO(), err=io.StringIO())
    assert articles.read_text(encoding="utf-8") == '{"title": "t", "text": "x"}\n'


def test_an_unwritable_alerts_file_is_one_line_and_exit_2():
    result = run("tag", "--watchlist", WATCHLIST, "--alerts", "/no/such/dir/x.jsonl", str(TAG / "articles.jsonl"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "newsradar: config error: /no/such/dir/x.jsonl: --alerts: cannot write: No such file or directory")
    assert result.stdout == ""



def test_title_is_optional_and_unknown_fields_are_named_not_silently_dropped(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "The UCSMR said.", "topics": ["x"], "split": "dev"}\n'
                    '{"title": 5, "text": "x"}\n{"text": 7}\n', encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(path), None, out=out, err=err) == 2
    first, bad_title, bad_text = [json.loads(x) for x in out.getvalue().splitlines()]
    assert first["title"] == "" and first["mentions"][0]["org_id"] == "soldiers-mothers-union"
    assert bad_title == {"line": 2, "error": "title: expected a string, got int"}
    assert bad_text == {"line": 3, "error": "text: expected a string, got int"}
    assert f"newsradar: note: {path}: fields ignored (not input fields of tag) on 1 lines: split, topics" in err.getvalue()


def test_edited_at_makes_a_later_version_an_edit_and_an_older_one_stale(tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [
        {"id": "e", "text": "The UCSMR said.", "edited_at": "2026-03-02T10:00:00Z"},
        {"id": "e", "text": "Минобороны России заявило.", "edited_at": "2026-03-02T11:00:00Z"},
        {"id": "e", "text": "An old draft.", "edited_at": "2026-03-02T09:00:00Z"},
        {"id": "f", "text": "x", "edited_at": "later"},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(path), None, out=out, err=err) == 2
    first, edit, old, bad = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [m["org_id"] for m in first["mentions"]] == ["soldiers-mothers-union"]
    # Without edited_at the second line would be a stale version under a known id (dropped).
    assert [m["org_id"] for m in edit["mentions"]] == ["russian-ministry-of-defence"] and "repeat_of_line" not in edit
    assert old == {**edit, "repeat_of_line": 2}
    assert bad["line"] == 4 and bad["error"].startswith("edited_at: ")


def test_rss_input_keeps_url_and_title_and_explain_gives_evidence():
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(TAG / "feed.xml"), None, out=out, err=err, explain=True) == 0
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    for obj in (first, second):
        assert obj["url"].startswith("http") and obj["title"]
    assert (TAG / "feed.xml").read_text(encoding="utf-8").count(first["url"]) >= 1
    [topic] = first["topics"]
    assert topic["id"] == "mobilization" and topic["evidence"]
    for e in topic["evidence"]:
        assert set(e) == {"text", "start", "end"} and e["end"] > e["start"]
    plain = io.StringIO()
    tag_main(WATCHLIST, str(TAG / "feed.xml"), None, out=plain, err=io.StringIO())
    assert "evidence" not in plain.getvalue()


def test_progress_of_reading_and_of_the_batch_run_goes_to_stderr(monkeypatch):
    import pipelines.tag

    monkeypatch.setattr(pipelines.tag, "PROGRESS_EVERY", 0.0)
    out, err = io.StringIO(), io.StringIO()
    assert tag_main(WATCHLIST, str(TAG / "articles.jsonl"), None, out=out, err=err) == 0
    lines = err.getvalue().splitlines()
    name = str(TAG / "articles.jsonl")
    # Lines are counted up front and tagged as a stream: a percentage, a rate and an ETA.
    assert f"newsradar: tagging {name}: 5/5 lines (100%)" in "\n".join(lines)
    assert any(line.startswith(f"newsradar: tagging {name}: ") and "ETA" in line for line in lines), lines
    assert lines[-1].startswith(f"newsradar: tagging {name}: 5/5 lines (100%)") and "done in" in lines[-1]
    assert len(out.getvalue().splitlines()) == 5  # stdout is the output alone


def test_tag_shows_how_a_short_name_was_resolved():
    text = "Жёны мобилизованных провели пикет у Минобороны в Москве."
    result = run("tag", "--watchlist", WATCHLIST, stdin=json.dumps({"text": text, "lang": "ru"}) + "\n")
    assert result.returncode == 0, result.stderr
    [mention] = json.loads(result.stdout)["mentions"]
    assert mention["match"] == "contextual" and mention["resolved_by"] == "Russia's: Москве"


def test_versions_in_force_replace_forget_and_keep_tagged_apart_from_failed():
    from pipelines.tag import VersionsInForce

    kept = VersionsInForce()
    kept.COMMIT_EVERY = 2  # commits in between too: reads see every write either way
    kept.keep("tagged", "a", 1, '{"id": "a"}')
    kept.keep("failed", "a", 3, "tag: boom")
    kept.keep("tagged", "a", 5, '{"id": "a", "v": 2}')  # a newer version replaces the older
    kept.keep("tagged", "b", 2, '{"id": "b"}')
    assert kept.get("tagged", "a") == (5, '{"id": "a", "v": 2}')
    assert kept.get("failed", "a") == (3, "tag: boom")
    kept.forget(["a"])
    assert kept.get("tagged", "a") is None and kept.get("failed", "a") is None
    assert kept.get("tagged", "b") == (2, '{"id": "b"}')
    kept.close()


def test_a_topic_a_learned_classifier_decided_says_so_in_the_output(tmp_path):
    # the shipped watchlist, a report its rules fall short of (tests/transforms/test_topics.py)
    text = ("Dozens of women stood for an hour outside the regional administration in Barnaul, holding "
            "photographs of their husbands and asking officials to bring the men home.")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "w1", "lang": "en", "text": text}) + "\n", encoding="utf-8")
    out = io.StringIO()
    assert tag_main(str(REPO / "config" / "watchlist.yaml"), str(src), None, out=out, err=io.StringIO(),
                    explain=True) == 0
    (topic,) = json.loads(out.getvalue())["topics"]
    assert topic["id"] == "protest" and 0.5 < topic["learned"] <= 1 and topic["score"] < 3
    assert all(text[e["start"]:e["end"]] == e["text"] for e in topic["evidence"])
