"""The soak run's result (benchmarks/soak.py): figures from what was sampled and read back, the
properties that must hold even in a short run (:func:`problems`), and the markdown tables.
Plain functions over plain data, so the checks are tested without running a soak."""

from __future__ import annotations

import base64
import math
from collections import Counter
from datetime import datetime

MIB = 1024 * 1024
STACK = ("broker", "connectors", "pipeline", "deliver")
# A short run has no real warm-up; this bound only catches a leak, the 10 % target is reported.
MEMORY_BOUND = 2.0
FLAT_TARGET = 0.10


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _day_of(t: float, t0: float, day_seconds: float, days: int) -> int:
    return min(days - 1, max(0, int((t - t0) // day_seconds)))


def memory_summary(memory: list[dict], day_ends: list[float]) -> dict:
    """Per process (MiB): the first sample, the end of day 0 (after warm-up), the middle day's
    and the last day's end, the maximum, the growth from after warm-up to the end, and over the
    second half (middle to end: a JVM sizes its heap to the working set over days, not one)."""
    names = sorted({k for s in memory for k in s if k != "t"})
    out = {}
    for name in names:
        series = [(s["t"], s[name]) for s in memory if s.get(name)]
        if not series:
            out[name] = {"samples": 0}
            continue

        warm, middle, end = (_at(series, day_ends[0]), _at(series, day_ends[len(day_ends) // 2]),
                             _at(series, day_ends[-1]))
        out[name] = {"samples": len(series), "first_mib": round(series[0][1] / MIB, 1),
                     "after_warmup_mib": round(warm, 1), "middle_mib": round(middle, 1), "end_mib": round(end, 1),
                     "max_mib": round(max(v for _, v in series) / MIB, 1),
                     "growth_after_warmup": round(end / warm - 1, 3) if warm else None,
                     "growth_second_half": round(end / middle - 1, 3) if middle else None}
    return out


def _at(series: list[tuple[float, int]], t: float) -> float:
    """The last sample at or before ``t`` (the first if none), in MiB."""
    before = [v for ts, v in series if ts <= t]
    return (before[-1] if before else series[0][1]) / MIB


def _original_bytes(letter) -> bytes:
    return base64.b64decode(letter.original) if letter.encoding == "base64" else letter.original.encode("utf-8")


def summarize(*, world, days, t0, day_seconds, memory, lag, restarts, received, raw, alerts, dlq, hostile,
              replay, dead, sampler_errors, feed_status) -> dict:
    from newsradar.records import RecordError, decode_alert, decode_dead_letter, decode_raw

    n = len(days)
    day_ends = [d["end"] for d in days]

    articles, undecodable = {}, 0
    on_raw: dict[str, float] = {}  # article id -> Kafka timestamp of its first record
    raw_per_day = Counter()
    for rec in raw:
        try:
            a = decode_raw(rec.value)
        except RecordError:
            undecodable += 1
            continue
        articles.setdefault(a.article_id, a)
        on_raw[a.article_id] = min(rec.timestamp / 1000, on_raw.get(a.article_id, math.inf))
        raw_per_day[_day_of(rec.timestamp / 1000, t0, day_seconds, n)] += 1

    stream = [decode_alert(r.value) for r in alerts]
    stream_ids = {a.alert_id: a.kind for a in stream}
    stream_articles = {a.alert_id: a.article_id for a in stream}
    got = [r for r in received if "alert_id" in r]
    got_ids = {r["alert_id"] for r in got}
    replay_ids = {a["alert_id"]: a["kind"] for a in replay["alerts"]}

    hostile_set = Counter(hostile)
    matched, unexpected = Counter(), []
    dlq_per_day = Counter()
    for rec in dlq:
        letter = decode_dead_letter(rec.value)
        original = _original_bytes(letter)
        dlq_per_day[_day_of(rec.timestamp / 1000, t0, day_seconds, n)] += 1
        if original in hostile_set:
            matched[original] += 1
        else:
            unexpected.append({"step": letter.step, "error": letter.error[:200], "source": letter.source})

    per_day = []
    first_receipt: dict[str, float] = {}
    for r in got:
        first_receipt.setdefault(r["alert_id"], r["received"])
    latency_by_day: dict[int, list[float]] = {}
    from_raw: list[float] = []  # article on news.raw -> its alert at the webhook
    for r in got:
        if first_receipt[r["alert_id"]] == r["received"]:
            if r["created_at"] is not None:  # an update's follow-up carries no created_at
                latency_by_day.setdefault(_day_of(r["received"], t0, day_seconds, n), []).append(
                    r["received"] - _epoch(r["created_at"]))
            article = stream_articles.get(r["alert_id"])
            if article in on_raw:
                from_raw.append(r["received"] - on_raw[article])
    published_before = 0
    for d in days:
        i = d["day"]
        lo, hi = t0 + i * day_seconds, d["end"]
        lags = [s["lag"] for s in lag if lo <= s["t"] < hi]
        lat = latency_by_day.get(i, [])
        restart = next((r for r in restarts if r["day"] == i), None)
        mem = {name: round(max((s[name] for s in memory if lo <= s["t"] < hi and s.get(name)), default=0) / MIB, 1)
               for name in STACK}
        per_day.append({
            "day": i, "published": d["published"] - published_before, "raw_records": raw_per_day[i],
            "lag_max": max(lags, default=None), "lag_end": lags[-1] if lags else None,
            "restart": restart, "alerts_received": len(lat),
            "latency_p50_s": _round(percentile(lat, 0.5)), "latency_p95_s": _round(percentile(lat, 0.95)),
            "latency_max_s": _round(max(lat, default=None)), "dlq_entries": dlq_per_day[i], "max_rss_mib": mem,
        })
        published_before = d["published"]

    all_latency = [v for vs in latency_by_day.values() for v in vs]
    # An alert only the stream raised, for an article whose story had an earlier item on
    # news.raw before a restart this article came after: the restarted pipeline's dedupe
    # memory had not seen the story (the restart issue).
    story_of, first = story_first_arrivals(world, articles, on_raw)
    across = 0
    for a in stream:
        if a.alert_id in replay_ids or a.article_id not in story_of:
            continue
        began, arrived = first[story_of[a.article_id]], on_raw[a.article_id]
        across += any(began < r["at"] < arrived for r in restarts)
    result = {
        "world": {"sources": len(world.sources), "items": len(world.items),
                  "originals": sum(1 for i in world.items if i.copy == 0),
                  "copies": sum(1 for i in world.items if i.copy), "naming_an_org": sum(1 for i in world.items if i.org),
                  "feed_responses": feed_status.get("served")},
        "raw": {"records": len(raw), "articles": len(articles), "undecodable": undecodable,
                "hostile_produced": len(hostile), "items_not_on_raw": max(0, len(world.items) - len(articles))},
        "memory": memory_summary(memory, day_ends),
        "days": per_day,
        "restarts": restarts,
        "latency": {"alerts": len(all_latency), "p50_s": _round(percentile(all_latency, 0.5)),
                    "p95_s": _round(percentile(all_latency, 0.95)), "max_s": _round(max(all_latency, default=None)),
                    "from_raw_p50_s": _round(percentile(from_raw, 0.5)),
                    "from_raw_p95_s": _round(percentile(from_raw, 0.95))},
        "alerts": {
            "stream_records": len(stream), "stream_distinct": len(stream_ids),
            "stream_by_kind": dict(Counter(stream_ids.values())),
            "webhook_posts": len(got), "webhook_distinct": len(got_ids), "webhook_unreadable": len(received) - len(got),
            "webhook_not_on_stream": len(got_ids - set(stream_ids)),
            "stream_not_received": len(set(stream_ids) - got_ids),
            "replay_distinct": len(replay_ids), "replay_by_kind": dict(Counter(replay_ids.values())),
            "replay_exit_code": replay["exit_code"], "replay_articles": replay["articles"],
            "replay_seconds": replay["seconds"],
            "only_stream": len(set(stream_ids) - set(replay_ids)), "only_replay": len(set(replay_ids) - set(stream_ids)),
            "only_stream_by_kind": dict(Counter(k for i, k in stream_ids.items() if i not in replay_ids)),
            "only_stream_story_crossed_a_restart": across,
            "only_replay_by_kind": dict(Counter(k for i, k in replay_ids.items() if i not in stream_ids)),
        },
        "dlq": {"entries": len(dlq), "hostile_produced": len(hostile),
                "hostile_dead_lettered": sum(matched.values()),
                "hostile_more_than_once": sum(1 for v in matched.values() if v > 1),
                "hostile_missing": sum(1 for p in hostile_set if p not in matched), "unexpected": unexpected[:20],
                "unexpected_count": len(unexpected)},
        "dead_processes": dead,
        "sampler_errors": sampler_errors[:20],
    }
    return result


def _item_key(url: str) -> tuple[str, int] | None:
    """(source id, item number) from a generated item's link ``https://<source>.soak.example/<n>``."""
    host, _, n = url.removeprefix("https://").partition("/")
    return (host.removesuffix(".soak.example"), int(n)) if n.isdigit() else None


def story_first_arrivals(world, articles: dict, on_raw: dict) -> tuple[dict, dict]:
    """(article id -> story, story -> when its first item reached news.raw)."""
    items = {(world.sources[i.source].id, i.n): i.story for i in world.items}
    story_of, first = {}, {}
    for article_id, article in articles.items():
        story = items.get(_item_key(article.url))
        if story is None or article_id not in on_raw:
            continue
        story_of[article_id] = story
        first[story] = min(on_raw[article_id], first.get(story, math.inf))
    return story_of, first


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def problems(result: dict) -> list[str]:
    """What must hold even in a short soak; each broken property is one sentence."""
    out = []
    if result["dead_processes"]:
        out.append(f"processes not alive at the end: {', '.join(result['dead_processes'])}")
    for r in result["restarts"]:
        if r["exit_code"] != 0:
            out.append(f"day {r['day']}: the pipeline's stop exited {r['exit_code']}, not 0")
        if r["drained_s"] is None:
            out.append(f"day {r['day']}: after the restart the pipeline never committed what news.raw held when it was ready")
    days = [d["day"] for d in result["days"]]
    if len(result["restarts"]) != len(days):
        out.append(f"{len(result['restarts'])} pipeline restarts for {len(days)} simulated days")
    if result["settle"]["lag"] != 0:
        out.append(f"the pipeline's lag on news.raw is {result['settle']['lag']} at the end, not 0")
    if result["raw"]["items_not_on_raw"]:
        out.append(f"{result['raw']['items_not_on_raw']} published items never reached news.raw")
    d = result["dlq"]
    if d["unexpected_count"]:
        out.append(f"{d['unexpected_count']} dead letters that are not hostile records, e.g. {d['unexpected'][0]}")
    if d["hostile_missing"] or d["hostile_more_than_once"]:
        out.append(f"hostile records: {d['hostile_missing']} never dead-lettered, "
                   f"{d['hostile_more_than_once']} dead-lettered more than once (of {d['hostile_produced']})")
    for name in STACK:
        m = result["memory"].get(name) or {}
        if not m.get("samples"):
            out.append(f"no memory samples of {name}")
        elif m["end_mib"] > MEMORY_BOUND * m["after_warmup_mib"]:
            out.append(f"{name} grew from {m['after_warmup_mib']} MiB after warm-up to {m['end_mib']} MiB "
                       f"(bound: x{MEMORY_BOUND:g})")
    a = result["alerts"]
    if not a["webhook_distinct"]:
        out.append("no alert reached the webhook")
    if a["webhook_not_on_stream"]:
        out.append(f"{a['webhook_not_on_stream']} alerts at the webhook are not on news.alerts")
    if a["stream_not_received"]:
        out.append(f"{a['stream_not_received']} alerts on news.alerts never reached the webhook")
    return out


def _mib(m: dict, key: str) -> str:
    return "" if m.get(key) is None else f"{m[key]:g}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1%}"


def memory_table(memory: dict) -> list[str]:
    """The memory summary as a markdown table, one row per process."""
    lines = ["| process | first sample | after warm-up (end of day 0) | middle | end | max | growth after warm-up "
             "| middle to end |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in memory.items():
        growth = m.get("growth_after_warmup")
        flag = "" if growth is None else (" (flat)" if abs(growth) <= FLAT_TARGET else " (over 10 %)")
        lines.append(f"| {name} | {_mib(m, 'first_mib')} | {_mib(m, 'after_warmup_mib')} | {_mib(m, 'middle_mib')} "
                     f"| {_mib(m, 'end_mib')} | {_mib(m, 'max_mib')} | {_pct(growth)}{flag} "
                     f"| {_pct(m.get('growth_second_half'))} |")
    return lines


def markdown(result: dict) -> str:
    p = result["params"]
    lines = [
        f"# Soak run: {p['days']} simulated days, {p['sources']} sources, {p['minutes_per_day']:g} min per day",
        "",
        f"Command: `{result['command']}`; wall time {result.get('wall_s')} s after a stack start of "
        f"{result.get('stack_start_s')} s; acceleration x{p['accel']:g}; simulated from {p['simulated_start']}.",
        "",
        f"World: {result['world']['items']} items ({result['world']['copies']} story copies, "
        f"{result['world']['naming_an_org']} naming a watched organization); news.raw: {result['raw']['articles']} "
        f"articles, {result['raw']['hostile_produced']} hostile records, {result['raw']['items_not_on_raw']} items missing.",
        "",
        "## Memory (RSS of each process tree, MiB)",
        "",
        *memory_table(result["memory"]),
    ]
    lines += ["", "## Per simulated day", "",
              "| day | published | on news.raw | lag max | lag at day end | restart: stop / start / drained (s) "
              "| alerts at webhook | latency p50 / p95 / max (s) | DLQ |",
              "|---|---|---|---|---|---|---|---|---|"]
    for d in result["days"]:
        r = d["restart"]
        restart = "" if r is None else f"{r['stop_s']} / {r['start_s']} / {r['drained_s']} (exit {r['exit_code']})"
        lines.append(f"| {d['day']} | {d['published']} | {d['raw_records']} | {d['lag_max']} | {d['lag_end']} "
                     f"| {restart} | {d['alerts_received']} | {d['latency_p50_s']} / {d['latency_p95_s']} / "
                     f"{d['latency_max_s']} | {d['dlq_entries']} |")
    a = result["alerts"]
    lines += ["", "## Alerts", "",
              f"- on news.alerts: {a['stream_distinct']} distinct ids ({a['stream_records']} records), by kind "
              f"{a['stream_by_kind']}",
              f"- at the webhook: {a['webhook_distinct']} distinct ({a['webhook_posts']} posts); latency over the run "
              f"p50 {result['latency']['p50_s']} s, p95 {result['latency']['p95_s']} s, max {result['latency']['max_s']} s "
              f"from the alert's created_at; from its article's arrival on news.raw p50 "
              f"{result['latency']['from_raw_p50_s']} s, p95 {result['latency']['from_raw_p95_s']} s",
              f"- uninterrupted `newsradar tag` replay of the same {a['replay_articles']} articles: "
              f"{a['replay_distinct']} distinct ids, by kind {a['replay_by_kind']} (exit {a['replay_exit_code']}, "
              f"{a['replay_seconds']} s)",
              f"- only on the stream: {a['only_stream']} {a['only_stream_by_kind']} ({a['only_stream_story_crossed_a_restart']} "
              f"of them for an article whose story had an earlier item on news.raw before a pipeline restart it "
              f"came after); only in the replay: "
              f"{a['only_replay']} {a['only_replay_by_kind']}",
              "", "## DLQ", "",
              f"{result['dlq']['entries']} entries: {result['dlq']['hostile_dead_lettered']} of "
              f"{result['dlq']['hostile_produced']} hostile records, {result['dlq']['unexpected_count']} others.",
              "", "## Problems", ""]
    lines += [f"- {p}" for p in result["problems"]] or ["none"]
    return "\n".join(lines) + "\n"
