"""Watchlist changes without a restart: a good version is taken, a bad one refused and
counted, the old one stays in force."""

import dataclasses
import hashlib
import shutil
import time

import pytest
from prometheus_client import CollectorRegistry

from newsradar.config import ConfigError
from newsradar.metrics import PipelineMetrics
from tests.conftest import REPO
from transforms import tagging
from transforms.nlp import LANGS
from transforms.raise_alerts import _ApplyNoveltyRulesFn
from transforms.reload import LastGood, Reloader, WatchlistSource
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
def test_novelty_takes_and_refuses_the_versions_tagging_does(tmp_path, made, monkeypatch):
    # Novelty needs only the plain watchlist, but a version tagging refuses (its examples
    # fail) must not reach novelty either, or the two steps run different watchlists.
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path, poll_interval=0)  # every get() polls
    bad = POETS.replace("The Council of Mothers and Wives spoke.", "Nobody spoke.")
    for content, org_ids in ((bad, ["cmw"]), (POETS, ["poets", "cmw"])):
        monkeypatch.setattr(tagging, "_SHARED", {})  # a new worker process
        steps = [_TagFn(source, keyed=False), _ApplyNoveltyRulesFn(source)]
        if made == "before the edit":
            for step in steps:
                step.setup()
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(content, encoding="utf-8")
            for step in steps:
                step.setup()
        tag, novelty = steps
        assert [o.id for o in tag._tagger_in_force().watchlist.organizations] == org_ids
        assert [o.id for o in novelty._reloader.get().organizations] == org_ids


def test_tagging_and_novelty_share_one_reloader_per_process_and_switch_together(tmp_path, monkeypatch):
    monkeypatch.setattr(tagging, "_SHARED", {})
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path, poll_interval=30)
    clock = Clock()
    shared = tagging.watchlist_reloader(source, clock=clock)
    steps = [_TagFn(source, keyed=False), _TagFn(source, keyed=False), _ApplyNoveltyRulesFn(source)]
    for step in steps:
        step.setup()
    assert all(step._reloader is shared for step in steps)
    path.write_text(POETS, encoding="utf-8")
    clock.t += 31
    # The first step to ask polls; every other step sees the new version at once, not after
    # its own interval: a new organization's mentions are never dropped as not watched.
    tag, other_tag, novelty = steps
    assert [o.id for o in tag._tagger_in_force().watchlist.organizations] == ["poets", "cmw"]
    assert [o.id for o in novelty._rules._watchlist().organizations] == ["poets", "cmw"]
    assert [o.id for o in other_tag._tagger_in_force().watchlist.organizations] == ["poets", "cmw"]
    assert shared.version == 2


def test_a_reload_compiles_the_matchers_once_for_the_check_and_the_first_tagging_step(tmp_path, monkeypatch):
    monkeypatch.setattr(tagging, "_SHARED", {})
    monkeypatch.setattr(tagging, "_SPARE", tagging._Spare())
    built = []
    real_init = Tagger.__init__

    def counting_init(self, *args, **kwargs):
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Tagger, "__init__", counting_init)
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path)
    clock = Clock()
    tagging.watchlist_reloader(source, clock=clock)
    first, second = _TagFn(source, keyed=False), _TagFn(source, keyed=False)
    first.setup()
    second.setup()
    first._tagger_in_force()
    second._tagger_in_force()
    assert len(built) == 2  # the launch version (checked by the launcher): one per step
    path.write_text(POETS.replace("spoke.", "spoke at last."), encoding="utf-8")  # content no other test judged
    clock.t += 31
    new = first._tagger_in_force()
    assert len(built) == 3 and new is built[2]  # the check's Tagger, handed to the first step
    assert second._tagger_in_force() is not new and len(built) == 4  # its own: not shared between threads


# ---------------------------------------------------------------------------
# across restarts: the last good version under $NEWSRADAR_HOME


NO_CMW = """\
version: 1
organizations:
  - id: poets
    name: Union of Poets
    aliases: {en: [Union of Poets]}
examples:
  - {lang: en, text: The Union of Poets spoke., orgs: [poets]}
"""
BAD = "version: 1\norganizations:\n  - id: cmw\n    name: Council\n    aliases: {en: Council}\n"


def watchlist_reloader(source, clock, wall=None, results=None):
    on_result = (lambda result, detail: results.append((result, detail))) if results is not None else None
    return Reloader(source, compile=lambda wl: wl, check=require_examples_pass, on_result=on_result, clock=clock,
                    wall=wall or (lambda: 5000.0))


def org_ids(watchlist):
    return [o.id for o in watchlist.organizations]


def test_a_worker_set_up_while_the_file_holds_a_refused_edit_runs_the_last_good_version(tmp_path):
    path, store = tmp_path / "watchlist.yaml", tmp_path / "home" / "watchlist"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path, poll_interval=30, store=store)
    clock = Clock()
    running = watchlist_reloader(source, clock)
    path.write_text(POETS, encoding="utf-8")  # a good edit, taken and kept
    clock.t += 31
    assert org_ids(running.get()) == ["poets", "cmw"]
    path.write_text(BAD, encoding="utf-8")  # a bad edit, refused
    clock.t += 31
    assert org_ids(running.get()) == ["poets", "cmw"]
    results = []
    late = watchlist_reloader(source, clock, results=results)  # e.g. a worker restarted now
    assert org_ids(late.get()) == ["poets", "cmw"], "runs the launch version, not the last good one"
    assert results[0][0] == "failed" and "aliases.en" in results[0][1]
    # Without a store it is the launch version, as before.
    alone = watchlist_reloader(dataclasses.replace(source, store=None), clock)
    assert org_ids(alone.get()) == ["cmw"]


def test_a_damaged_last_good_copy_is_not_used(tmp_path, caplog):
    path, store = tmp_path / "watchlist.yaml", tmp_path / "store"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path, store=store)
    clock = Clock()
    running = watchlist_reloader(source, clock)
    path.write_text(POETS, encoding="utf-8")
    clock.t += 31
    running.get()
    saved = LastGood(store, str(path)).load()
    assert saved is not None and saved.digest == hashlib.sha256(POETS.encode()).hexdigest()
    with open(saved.path, "a", encoding="utf-8") as fh:
        fh.write("# changed on disk\n")
    assert LastGood(store, str(path)).load() is None
    assert "does not match its hash" in caplog.text
    path.write_text(BAD, encoding="utf-8")
    assert org_ids(watchlist_reloader(source, clock).get()) == ["cmw"]  # the launch version


def test_a_bad_file_at_start_runs_the_last_good_version_with_an_error_count_and_a_log_line(tmp_path, caplog):
    path, store = tmp_path / "watchlist.yaml", tmp_path / "store"
    path.write_text(POETS, encoding="utf-8")
    WatchlistSource.from_file(path, store=store)  # the previous start kept it
    path.write_text(BAD, encoding="utf-8")
    results = []
    source = WatchlistSource.from_file(path, store=store, check=require_examples_pass,
                                       on_result=lambda r, d: results.append((r, d)))
    assert org_ids(source.initial) == ["poets", "cmw"]
    assert source.initial_hash == hashlib.sha256(POETS.encode()).hexdigest()
    assert results and results[0][0] == "failed" and "aliases.en" in results[0][1]
    assert "refused at start, running its last good version" in caplog.text and str(path) in caplog.text
    # Its workers run it too, and take the file once it is fixed.
    clock = Clock()
    worker = watchlist_reloader(source, clock)
    assert org_ids(worker.get()) == ["poets", "cmw"] and worker.version == 1
    path.write_text(GOOD, encoding="utf-8")
    clock.t += 31
    assert org_ids(worker.get()) == ["cmw"]


def test_a_bad_file_at_start_without_a_last_good_version_is_its_error(tmp_path):
    path = tmp_path / "watchlist.yaml"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        WatchlistSource.from_file(path, store=tmp_path / "store")
    assert err.value.file == str(path) and err.value.line == 5 and err.value.path == "organizations[0].aliases.en"
    path.write_text(GOOD.replace("The Council of Mothers and Wives spoke.", "Nobody spoke."), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        WatchlistSource.from_file(path, store=tmp_path / "store", check=require_examples_pass)
    assert err.value.path == "examples" and "expected a mention of cmw" in str(err.value)


def test_an_organization_removed_and_added_back_is_watched_since_it_came_back(tmp_path):
    path, store = tmp_path / "watchlist.yaml", tmp_path / "store"
    path.write_text(GOOD, encoding="utf-8")
    source = WatchlistSource.from_file(path, store=store)
    clock, wall = Clock(), [5000.0]
    running = watchlist_reloader(source, clock, wall=lambda: wall[0])
    assert running.watched_since("cmw") is None  # in every version so far
    path.write_text(NO_CMW, encoding="utf-8")
    clock.t += 31
    wall[0] = 6000.0
    running.get()
    path.write_text(POETS, encoding="utf-8")
    clock.t += 31
    wall[0] = 7000.0
    running.get()
    assert running.watched_since("cmw") == 7000.0 and running.watched_since("poets") == 6000.0
    # A restart knows it from the store (the same version: its times, not the restart's).
    again = watchlist_reloader(source, clock, wall=lambda: 9999.0)
    assert again.watched_since("cmw") == 7000.0


def test_an_organization_added_back_while_the_pipeline_was_down_is_watched_from_the_start(tmp_path):
    path, store = tmp_path / "watchlist.yaml", tmp_path / "store"
    path.write_text(NO_CMW, encoding="utf-8")
    WatchlistSource.from_file(path, store=store)  # the last run watched no cmw
    path.write_text(POETS, encoding="utf-8")
    before = time.time()
    source = WatchlistSource.from_file(path, store=store)
    worker = watchlist_reloader(source, Clock())
    assert worker.watched_since("cmw") >= before and worker.watched_since("poets") is None


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


def test_a_worker_whose_first_load_of_the_file_hangs_runs_the_last_good_version(tmp_path, monkeypatch):
    # Both guarantees at once: the bound on a load (issue 19) and the last good store (issue 13).
    import threading

    import transforms.reload as reload_mod

    path, store = tmp_path / "watchlist.yaml", tmp_path / "store"
    path.write_text(GOOD, encoding="utf-8")
    source = dataclasses.replace(WatchlistSource.from_file(path, poll_interval=30, store=store), load_timeout=0.3)
    clock = Clock()
    running = watchlist_reloader(source, clock)
    path.write_text(POETS, encoding="utf-8")  # a good edit, taken and kept
    clock.t += 31
    assert org_ids(running.get()) == ["poets", "cmw"]
    path.write_text(NO_CMW, encoding="utf-8")  # an edit whose load will hang
    release = threading.Event()
    real_load = reload_mod.load_watchlist

    def hanging_load(p):
        if str(p) == str(path) and not release.wait(timeout=30):
            raise AssertionError("the test never released the hanging load")
        return real_load(p)

    monkeypatch.setattr(reload_mod, "load_watchlist", hanging_load)
    results = []
    try:
        late = watchlist_reloader(source, clock, results=results)  # a worker set up now
        assert org_ids(late.get()) == ["poets", "cmw"], "not the last good version"
        assert results == [("failed", results[0][1])] and "did not finish within 0.3s" in results[0][1]
    finally:
        release.set()


def test_a_version_whose_memory_the_topics_cannot_hold_is_refused_while_running(tmp_path, monkeypatch):
    # The topics keep 21 days: a new organization with a 30-day window would make the next
    # start refuse (its state could not be rebuilt), so the running pipeline refuses it now.
    monkeypatch.setattr(tagging, "_SHARED", {})
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = dataclasses.replace(WatchlistSource.from_file(path, poll_interval=30), max_memory=21 * 86400.0)
    clock = Clock()
    results = []
    reloader = tagging.watchlist_reloader(source, on_result=lambda r, d: results.append((r, d)), clock=clock)
    longer = POETS.replace("    name: Union of Poets", "    name: Union of Poets\n    novelty_window: 30d")
    assert longer != POETS
    path.write_text(longer, encoding="utf-8")
    clock.t += 31
    assert [o.id for o in reloader.get().organizations] == ["cmw"]
    assert results[-1][0] == "failed" and "novelty memory is 30d" in results[-1][1] and "keep 21d" in results[-1][1]
    # Within the bound the same edit is taken.
    path.write_text(longer.replace("novelty_window: 30d", "novelty_window: 20d"), encoding="utf-8")
    clock.t += 31
    assert [o.id for o in reloader.get().organizations] == ["poets", "cmw"]
