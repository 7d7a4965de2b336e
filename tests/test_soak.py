"""The soak run (benchmarks/soak.py), short: the whole local stack through three simulated days.

The end-to-end test runs the real script (its own broker, connectors against the generated
feeds, the pipeline restarted once a day, deliver to a webhook receiver) and asserts what must
hold even in a short run: every process alive at the end, the lag back to zero after each
restart and at the end, no dead letter but the hostile records (each exactly once), memory
within a generous bound, alerts received. The checks themselves (`soak_report.problems`) and
the generated world are tested without a broker below.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from benchmarks import soak_report
from benchmarks.soak_world import FEED_WINDOW, Params, World, activity, hostile_records
from newsradar.records import RecordError, decode_raw
from tests.conftest import REPO

SHORT = ["--days", "3", "--sources", "300", "--minutes-per-day", "0.4", "--seed", "7"]


@pytest.mark.kafka
@pytest.mark.slow
def test_short_soak_keeps_every_property(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), *SHORT, "--out", str(out)],
                         capture_output=True, text=True, timeout=540, cwd=REPO)
    assert out.exists(), f"no result (exit {run.returncode}):\n{run.stderr[-4000:]}"
    result = json.loads(out.read_text(encoding="utf-8"))
    report = out.with_suffix(".md").read_text(encoding="utf-8")
    assert result["problems"] == [] and run.returncode == 0, f"{result['problems']}\n{report}\n{run.stderr[-3000:]}"

    # The same properties, read directly, so a checker that says nothing cannot pass this test.
    assert result["dead_processes"] == []
    assert [r["day"] for r in result["restarts"]] == [0, 1, 2]
    for restart in result["restarts"]:
        assert restart["exit_code"] == 0 and restart["drained_s"] is not None, restart
    assert result["settle"]["lag"] == 0
    assert result["raw"]["items_not_on_raw"] == 0 and result["raw"]["articles"] == result["world"]["items"]
    dlq = result["dlq"]
    assert dlq["hostile_produced"] == 9 and dlq["hostile_dead_lettered"] == 9 and dlq["entries"] == 9
    for name in soak_report.STACK:
        m = result["memory"][name]
        assert m["samples"] >= 10 and m["end_mib"] <= soak_report.MEMORY_BOUND * m["after_warmup_mib"], (name, m)
    alerts = result["alerts"]
    assert alerts["webhook_distinct"] > 0 and alerts["webhook_distinct"] == alerts["stream_distinct"]
    assert alerts["replay_distinct"] > 0
    assert all(d["latency_p95_s"] is not None for d in result["days"])


# -- the checks, on a result that passes and on the same result with one property broken ---------


def healthy() -> dict:
    memory = {name: {"samples": 20, "first_mib": 100.0, "after_warmup_mib": 110.0, "middle_mib": 111.0,
                     "end_mib": 112.0, "max_mib": 115.0, "growth_after_warmup": 0.018} for name in soak_report.STACK}
    return {
        "dead_processes": [],
        "restarts": [{"day": d, "exit_code": 0, "drained_s": 3.0} for d in range(3)],
        "days": [{"day": d} for d in range(3)],
        "settle": {"lag": 0},
        "raw": {"items_not_on_raw": 0},
        "dlq": {"unexpected_count": 0, "unexpected": [], "hostile_missing": 0, "hostile_more_than_once": 0,
                "hostile_produced": 9},
        "memory": memory,
        "alerts": {"webhook_distinct": 40, "webhook_not_on_stream": 0, "stream_not_received": 0},
    }


BROKEN = {
    "a process died": (lambda r: r["dead_processes"].append("deliver"), "not alive"),
    "an unclean stop": (lambda r: r["restarts"][1].update(exit_code=1), "exited 1"),
    "a restart that never caught up": (lambda r: r["restarts"][2].update(drained_s=None), "never committed"),
    "a day without its restart": (lambda r: r["restarts"].pop(), "2 pipeline restarts for 3"),
    "lag left at the end": (lambda r: r["settle"].update(lag=4), "lag on news.raw is 4"),
    "items lost by the connectors": (lambda r: r["raw"].update(items_not_on_raw=2), "never reached news.raw"),
    "a dead letter that is not hostile": (
        lambda r: r["dlq"].update(unexpected_count=1, unexpected=[{"step": "tag"}]), "not hostile"),
    "a hostile record not dead-lettered": (lambda r: r["dlq"].update(hostile_missing=1), "1 never dead-lettered"),
    "a hostile record dead-lettered twice": (lambda r: r["dlq"].update(hostile_more_than_once=1), "more than once"),
    "memory grown past the bound": (lambda r: r["memory"]["connectors"].update(end_mib=230.0), "connectors grew"),
    "a process never sampled": (lambda r: r["memory"].pop("broker"), "no memory samples of broker"),
    "no alert received": (lambda r: r["alerts"].update(webhook_distinct=0), "no alert reached"),
    "an alert lost on the way": (lambda r: r["alerts"].update(stream_not_received=3), "never reached the webhook"),
}


def test_a_healthy_result_has_no_problems():
    assert soak_report.problems(healthy()) == []


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_each_broken_property_is_named(what):
    result = copy.deepcopy(healthy())
    breaks, says = BROKEN[what]
    breaks(result)
    found = soak_report.problems(result)
    assert len(found) == 1 and says in found[0], found


def test_memory_summary_compares_the_end_with_the_end_of_day_zero():
    mib = soak_report.MIB
    samples = [{"t": t, "pipeline": v * mib} for t, v in [(1, 50), (9, 100), (15, 105), (29, 120)]]
    m = soak_report.memory_summary(samples, day_ends=[10, 20, 30])["pipeline"]
    assert (m["first_mib"], m["after_warmup_mib"], m["middle_mib"], m["end_mib"], m["max_mib"]) == (50, 100, 105, 120, 120)
    assert m["growth_after_warmup"] == 0.2 and m["growth_second_half"] == round(120 / 105 - 1, 3)
    assert soak_report.memory_table({"pipeline": m})[-1] == "| pipeline | 50 | 100 | 105 | 120 | 120 | +20.0% (over 10 %) | +14.3% |"


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert soak_report.percentile(values, 0.95) == 95 and soak_report.percentile(values, 0.5) == 50
    assert soak_report.percentile([], 0.95) is None


# -- the generated world --------------------------------------------------------------------------

PARAMS = Params(seed=3, sources=60, days=3, items_per_source_day=3.0, start=1_780_012_800.0)


def test_the_world_is_a_function_of_its_parameters():
    a, b = World(PARAMS), World(PARAMS)
    assert a.items == b.items and [s.lang for s in a.sources] == [s.lang for s in b.sources]
    assert World(Params(**{**PARAMS.__dict__, "seed": 4})).items != a.items
    assert a.feed(5, a.end) == b.feed(5, a.end)


def test_copies_are_other_sources_of_the_same_language_within_hours():
    world = World(PARAMS)
    originals = {i.story: i for i in world.items if i.copy == 0}
    copies = [i for i in world.items if i.copy]
    assert copies, "no story copies generated"
    for c in copies:
        o = originals[c.story]
        assert c.source != o.source and world.sources[c.source].lang == world.sources[o.source].lang
        assert 0 < c.at - o.at <= 6 * 3600 and c.org == o.org
        assert world.text(c) != world.text(o)
    assert any(i.org for i in world.items), "no item names a watched organization"


def test_a_feed_shows_what_was_published_by_now_and_its_etag_moves_with_it():
    world = World(PARAMS)
    source = max(world.by_source, key=lambda s: len(world.by_source[s]))
    items = world.by_source[source]
    assert world.visible(source, items[0].at - 1) == []
    shown = world.visible(source, items[5].at)
    assert [i.n for i in shown] == [5, 4, 3, 2, 1, 0]
    assert len(world.visible(source, world.end)) == min(FEED_WINDOW, len(items))
    assert world.feed(source, items[5].at)[0] == world.feed(source, items[6].at - 0.001)[0]
    assert world.feed(source, items[5].at)[0] != world.feed(source, items[6].at)[0]
    assert f"<guid isPermaLink=\"false\">{world.sources[source].id}-5</guid>".encode() in world.feed(source, items[5].at)[1]


def test_publishing_follows_the_day():
    noon_utc3, night_utc3 = PARAMS.start + 9 * 3600, PARAMS.start + 23 * 3600 + 1800  # 12:00 and 02:30 in UTC+3
    assert activity(noon_utc3) > 4 * activity(night_utc3)


def test_hostile_records_are_not_news_raw_records():
    for payload in hostile_records(0):
        with pytest.raises(RecordError):
            decode_raw(payload)
