"""`newsradar candidates --input`: the list best first, JSON lines with stubs that load, and
bad input as one line with exit 2. (`--since` on the real broker: test_candidates_kafka.py.)"""

from __future__ import annotations

import json
import subprocess

from newsradar.config import load_watchlist
from tests.conftest import REPO, newsradar_cmd
from tests.transforms.test_candidates import STORIES

WATCHLIST = str(REPO / "config" / "watchlist.yaml")


def write_stories(path) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        for i, (lang, title, text) in enumerate(STORIES):
            fh.write(json.dumps({"id": f"c{i}", "lang": lang, "title": title, "text": text,
                                 "url": f"https://example.org/{i}", "published_at": f"2026-05-0{i + 1}T10:00:00Z"},
                                ensure_ascii=False) + "\n")
    return str(path)


def run(*args):
    return subprocess.run(newsradar_cmd("candidates", *args), capture_output=True, text=True, timeout=300)


def test_candidates_from_files_best_first_with_stubs_that_load(tmp_path):
    stories = write_stories(tmp_path / "stories.jsonl")
    proc = run("--watchlist", WATCHLIST, "--input", stories, "--no-ner")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split("  [")[0].split(". ", 1)[1] for line in lines] == [
        "Голос запаса", "Совет семей запасников", "Зелёный сад"]
    assert "stories 4" in lines[0] and "topic share 1.00" in lines[0] and "Голоса запаса" in lines[0]
    assert "candidates: 3 from 7 articles (5 with a watched topic, NER off)" in proc.stderr

    proc = run("--watchlist", WATCHLIST, "--input", stories, "--no-ner", "--json", "--min-stories", "3")
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["name"] for o in objs] == ["Голос запаса", "Зелёный сад"]
    assert objs[0]["stub"]["aliases"]["ru"][1] == {"text": "Голоса запаса", "case": "proper"}

    proc = run("--watchlist", WATCHLIST, "--input", stories, "--no-ner", "--stub")
    stub = proc.stdout.split("# paste under organizations: in the watchlist\n", 1)[1]
    path = tmp_path / "w.yaml"
    path.write_text("organizations:\n" + stub, encoding="utf-8")
    assert [o.id for o in load_watchlist(path).organizations] == ["golos-zapasa", "sovet-semey-zapasnikov",
                                                                   "zelyonyy-sad"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    missing = str(tmp_path / "missing.jsonl")
    for args, starts in (
        (("--input", missing), f"newsradar: candidates: {missing}: cannot read: "),
        (("--since", "yesterday"), "newsradar: candidates: --since: expected a duration before now"),
        ((), "newsradar: candidates: give the articles as --input FILE"),
        (("--input", missing, "--since", "7d"), "newsradar: candidates: give the articles as --input FILE"),
    ):
        proc = run("--watchlist", WATCHLIST, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("newsradar:")]
        assert len(errors) == 1 and errors[0].startswith(starts), (args, proc.stderr)


def test_every_input_format_backtest_reads(tmp_path):
    """RSS/Atom, gzipped JSONL and a Telegram Desktop export, through the same readers as backtest."""
    import gzip
    import io
    from datetime import UTC, datetime

    from newsradar.cli.history import read_files
    from pipelines.candidates import main
    from tests.conftest import FIXTURES

    stories = write_stories(tmp_path / "stories.jsonl")
    packed = tmp_path / "stories.jsonl.gz"
    packed.write_bytes(gzip.compress(open(stories, "rb").read()))
    export = str(FIXTURES / "telegram" / "export" / "result.json")
    feed = str(FIXTURES / "tag" / "feed.xml")
    now = datetime(2026, 5, 10, tzinfo=UTC)
    out, err = io.StringIO(), io.StringIO()
    code = main(lambda: read_files([str(packed), export, feed], now), WATCHLIST, from_topic=False, out=out, err=err,
                ner=False, as_lines="json")
    assert code == 0, err.getvalue()
    assert [json.loads(line)["name"] for line in out.getvalue().splitlines()][:2] == ["Голос запаса",
                                                                                      "Совет семей запасников"]
    articles = int(err.getvalue().split("candidates: ")[1].split(" from ")[1].split(" articles")[0].replace(",", ""))
    assert articles > len(STORIES), err.getvalue()  # the export's and the feed's articles were read too
