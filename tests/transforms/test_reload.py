"""Watchlist changes without a restart: a good version is taken, a bad one refused and
counted, the old one stays in force."""

import dataclasses
import hashlib
import shutil

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config import ConfigError
from newsradar.metrics import PipelineMetrics
from tests.conftest import REPO
from transforms.nlp import LANGS
from transforms.raise_alerts import _ApplyNoveltyRulesFn
from transforms.reload import Reloader, WatchlistSource
from transforms.tagging import Tagger, _TagFn, require_examples_pass

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


POETS = GOOD.replace("organizations:", """organizations:
  - id: poets
    name: Union of Poets
    aliases: {en: [Union of Poets]}""")


def tagging_reloader(source, clock, results=None, langs=("en",)):
    on_result = (lambda result, detail: results.append(result)) if results is not None else None
    return Reloader(source, compile=lambda wl: Tagger(wl, langs=langs), check=require_examples_pass,
                    on_result=on_result, clock=clock)


def test_the_source_remembers_the_hash_of_the_launch_bytes(tmp_path):
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert WatchlistSource.from_file(path).initial_hash == hashlib.sha256(GOOD.encode()).hexdigest()


def test_instances_made_before_and_after_an_edit_all_run_the_file_s_current_version(tmp_path):
    # A worker (or DoFn instance) set up after an edit must not run the launch version
    # until the next edit: every instance converges on what the file holds.
    path = tmp_path / "watchlist.yaml"
    shutil.copy(REPO / "config" / "watchlist.yaml", path)
    source = WatchlistSource.from_file(path, poll_interval=30)
    clock = Clock()
    before = tagging_reloader(source, clock, langs=LANGS)
    path.write_text(path.read_text(encoding="utf-8").replace("organizations:", """organizations:
  - id: poets
    name: Union of Poets
    aliases: {en: [Union of Poets]}""", 1), encoding="utf-8")
    after = [tagging_reloader(source, clock, langs=LANGS) for _ in range(2)]
    zero = tagging_reloader(dataclasses.replace(source, poll_interval=0), clock, langs=LANGS)
    for reloader in [*after, zero]:
        assert reloader.version == 2 and orgs(reloader, "The Union of Poets said.") == ["poets"]
        assert reloader.poll() is False  # nothing newer; the edit stays in force
        assert orgs(reloader, "The Union of Poets said.") == ["poets"]
    assert orgs(before, "The Union of Poets said.") == []  # until its poll interval passes
    clock.t += 31
    assert orgs(before, "The Union of Poets said.") == ["poets"]
    # Back to the launch bytes: old and new instances alike run the launch version again.
    shutil.copy(REPO / "config" / "watchlist.yaml", path)
    late = tagging_reloader(source, clock, langs=LANGS)
    assert late.version == 1 and orgs(late, "The Union of Poets said.") == []
    clock.t += 31
    assert all(orgs(r, "The Union of Poets said.") == [] for r in [before, *after, zero])


def test_an_instance_made_after_a_bad_edit_keeps_the_launch_version_and_counts_it(tmp_path):
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path, poll_interval=30)
    path.write_text(POETS.replace("The Council of Mothers and Wives spoke.", "Nobody spoke."), encoding="utf-8")
    clock, results = Clock(), []
    reloader = tagging_reloader(source, clock, results)
    assert results == ["failed"] and reloader.version == 1
    assert orgs(reloader, "The Council of Mothers and Wives spoke.") == ["cmw"]
    path.write_text(POETS, encoding="utf-8")
    clock.t += 31
    assert orgs(reloader, "The Union of Poets said.") == ["poets"] and results == ["failed", "ok"]


@pytest.mark.parametrize("made", ["before the edit", "after the edit"])
def test_novelty_takes_and_refuses_the_versions_tagging_does(tmp_path, made):
    # Novelty needs only the plain watchlist, but a version tagging refuses (its examples
    # fail) must not reach novelty either, or the two steps run different watchlists.
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path, poll_interval=0)  # every get() polls
    bad = POETS.replace("The Council of Mothers and Wives spoke.", "Nobody spoke.")
    for content, org_ids in ((bad, ["cmw"]), (POETS, ["poets", "cmw"])):
        steps = [_TagFn(source, keyed=False), _ApplyNoveltyRulesFn(source)]
        if made == "before the edit":
            for step in steps:
                step.setup()
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(content, encoding="utf-8")
            for step in steps:
                step.setup()
        tagging, novelty = (step._reloader for step in steps)
        assert [o.id for o in tagging.get().watchlist.organizations] == org_ids
        assert [o.id for o in novelty.get().organizations] == org_ids


def test_a_load_that_hangs_is_abandoned_within_its_bound_and_the_old_version_stays(tmp_path, monkeypatch):
    # A loader bug that spins forever (issue 19: an unknown language key once did) must cost
    # the step at most load_timeout, once, and never a thread per poll.
    import threading
    import time as wallclock

    import transforms.reload as reload_mod

    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = dataclasses.replace(WatchlistSource.from_file(path, poll_interval=30), load_timeout=0.3)
    clock, results = Clock(), []
    reloader = Reloader(source, compile=lambda wl: Tagger(wl, langs=("en",)), check=require_examples_pass,
                        on_result=lambda result, detail: results.append((result, detail)), clock=clock)
    before = reloader.get()
    release = threading.Event()
    real_load = reload_mod.load_watchlist
    calls = []

    def hanging_load(p):
        calls.append(p)
        if not release.wait(timeout=30):
            raise AssertionError("the test never released the hanging load")
        return real_load(p)

    monkeypatch.setattr(reload_mod, "load_watchlist", hanging_load)
    path.write_text(POETS, encoding="utf-8")
    clock.t += 31
    started = wallclock.monotonic()
    assert reloader.get() is before
    assert wallclock.monotonic() - started < 2
    assert results == [("failed", results[0][1])] and "did not finish within 0.3s" in results[0][1]
    # While the stuck load runs, polls neither wait nor start another load.
    path.write_text(POETS.replace("spoke.", "spoke again."), encoding="utf-8")
    clock.t += 31
    started = wallclock.monotonic()
    assert reloader.get() is before and wallclock.monotonic() - started < 0.2
    assert len(calls) == 1 and len(results) == 1
    # Once it ends, the next poll takes the file's current version.
    release.set()
    deadline = wallclock.monotonic() + 10
    while any(t.name.startswith("watchlist-load") for t in threading.enumerate()):
        assert wallclock.monotonic() < deadline, "the released load never ended"
        wallclock.sleep(0.01)
    clock.t += 31
    assert orgs(reloader, "The Union of Poets said.") == ["poets"] and results[-1] == ("ok", "")
