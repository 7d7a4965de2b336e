"""Watchlist changes without a restart: a good version is taken, a bad one refused and
counted, the old one stays in force."""

import shutil

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config import ConfigError
from newsradar.metrics import PipelineMetrics
from tests.conftest import REPO
from transforms.reload import Reloader, WatchlistSource
from transforms.tagging import Tagger, require_examples_pass

GOOD = """\
version: 1
organizations:
  - id: cmw
    name: Council of Mothers and Wives
    aliases: {en: [Council of Mothers and Wives]}
examples:
  - {lang: en, text: The Council of Mothers and Wives spoke., orgs: [cmw]}
"""


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture()
def setup(tmp_path):
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    clock = Clock()
    results = []
    metrics = PipelineMetrics(CollectorRegistry())

    def on_result(result, detail):
        results.append((result, detail))
        metrics.watchlist_reloads.labels(result=result).inc()

    source = WatchlistSource.from_file(path, poll_interval=30)
    reloader = Reloader(source, compile=lambda wl: Tagger(wl, langs=("en",)), check=require_examples_pass,
                        on_result=on_result, clock=clock)
    return path, clock, reloader, results, metrics


def orgs(reloader, text):
    return [m.org_id for m in reloader.get().analyze("", text, "en").mentions]


def test_a_good_edit_is_taken_after_the_poll_interval(setup):
    path, clock, reloader, results, metrics = setup
    assert orgs(reloader, "The Union of Poets said.") == []
    path.write_text(GOOD.replace("organizations:", """organizations:
  - id: poets
    name: Union of Poets
    aliases: {en: [Union of Poets]}"""), encoding="utf-8")
    clock.t += 10
    assert orgs(reloader, "The Union of Poets said.") == []  # not polled yet
    clock.t += 25
    assert orgs(reloader, "The Union of Poets said.") == ["poets"]
    assert results == [("ok", "")] and reloader.version == 2
    assert metrics.watchlist_reloads.labels(result="ok")._value.get() == 1


@pytest.mark.parametrize(
    "content, reason",
    [
        ("version: 1\norganizations: [\n", "YAML syntax error"),
        (GOOD.replace("aliases: {en: [Council of Mothers and Wives]}", "aliases: {en: Council}"), "aliases.en"),
        (GOOD.replace("orgs: [cmw]", "orgs: [nobody]"), "unknown organization id"),
        (GOOD.replace("The Council of Mothers and Wives spoke.", "Nobody spoke."), "inline example"),
    ],
)
def test_a_bad_edit_is_refused_counted_and_the_old_version_stays(setup, content, reason):
    path, clock, reloader, results, metrics = setup
    before = reloader.get()
    path.write_text(content, encoding="utf-8")
    clock.t += 31
    assert reloader.get() is before
    assert orgs(reloader, "The Council of Mothers and Wives spoke.") == ["cmw"]
    assert len(results) == 1 and results[0][0] == "failed" and reason in results[0][1]
    assert metrics.watchlist_reloads.labels(result="failed")._value.get() == 1
    # The same bad bytes are not retried (or counted) on every poll ...
    clock.t += 31
    reloader.get()
    assert len(results) == 1
    # ... and fixing the file is picked up.
    path.write_text(GOOD.replace("spoke.", "spoke again."), encoding="utf-8")
    clock.t += 31
    assert reloader.get() is not before and results[-1] == ("ok", "")


def test_a_deleted_file_is_refused_and_the_old_version_stays(setup):
    path, clock, reloader, results, _ = setup
    before = reloader.get()
    path.unlink()
    clock.t += 31
    assert reloader.get() is before
    assert results[0][0] == "failed" and "cannot read" in results[0][1]


def test_rewriting_the_same_bytes_does_not_recompile(setup):
    path, clock, reloader, results, _ = setup
    before = reloader.get()
    path.write_text(GOOD, encoding="utf-8")
    clock.t += 31
    assert reloader.get() is before and results == []


def test_from_file_validates_at_launch(tmp_path):
    bad = tmp_path / "w.yaml"
    bad.write_text("version: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        WatchlistSource.from_file(bad)


def test_the_shipped_watchlist_passes_its_own_examples(tmp_path):
    path = tmp_path / "watchlist.yaml"
    shutil.copy(REPO / "config" / "watchlist.yaml", path)
    source = WatchlistSource.from_file(path)
    require_examples_pass(source.initial, Tagger(source.initial))
