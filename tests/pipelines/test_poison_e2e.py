"""The six poison records of the report, end to end: `newsradar pipeline` on Prism against the
real broker, each between good records. Every one of them used to fail its bundle, and every
retry of it, so the job never committed again. Now the good ones are tagged, the bad ones are
in news.dlq with their step and error (or tagged repaired and flagged), and the pipeline goes on
reading and committing."""

from __future__ import annotations

import subprocess

import pytest

from newsradar.kafka import ensure_topics, read_topic
from newsradar.records import decode_dead_letter, decode_tagged
from tests.conftest import REPO, newsradar_cmd, wait_for
from tests.pipelines import hostile
from tests.pipelines.support import committed, end_offsets, produce, stop_process

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_poison_records_reach_the_dlq_and_the_stream_goes_on(kafka, topic_prefix, tmp_path):
    prefix, bs = f"{topic_prefix}.", kafka.bootstrap
    raw = prefix + "news.raw"
    group = f"{topic_prefix}-poison"
    ensure_topics(bs, partitions=1, topics=[prefix + t for t in ("news.raw", "news.tagged", "news.alerts", "news.dlq")])
    six = hostile.six(1)
    # good, bad, good, bad, ...: a bad record that failed its bundle would hold back the next good one.
    messages = [(b"rss:fuzz:100", hostile.dumps(hostile.base(100)))]
    for k, (name, payload) in enumerate(six):
        messages += [(name.encode(), payload), (f"rss:fuzz:{101 + k}".encode(), hostile.dumps(hostile.base(101 + k)))]
    produce(bs, raw, messages)

    log_path = tmp_path / "pipeline.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            newsradar_cmd("pipeline", "--watchlist", str(REPO / "config" / "watchlist.yaml"), "--bootstrap-servers", bs,
                          f"--topic_prefix={prefix}", f"--group_id={group}", "--metrics_port=0",
                          "--idle_lag=1s", "--stop_timeout=60s"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        def tagged_ids():
            return {decode_tagged(r.value).article.article_id for r in read_topic(bs, prefix + "news.tagged")}

        good = {f"rss:fuzz:{n}" for n in range(100, 107)}
        # the repaired ones too: the "<a<a…" record takes long to tag on a loaded machine
        wait_for(lambda: good | {"rss:fuzz:4", "rss:fuzz:6"} <= tagged_ids(), 300,
                 "the seven good and the two repaired records in news.tagged")
        letters = wait_for(lambda: len(got := [decode_dead_letter(r.value) for r in read_topic(bs, prefix + "news.dlq")])
                           >= 4 and got, 120, "four dead letters")
        assert {letter.step for letter in letters} == {"parse"}, [(x.step, x.error) for x in letters]
        errors = " | ".join(letter.error for letter in letters)
        assert "nested too deeply" in errors and "digits" in errors and "Invalid control character" in errors
        assert "outside the years 1-9999" in errors  # the 9999-12-31T23:59:59-23:59 date
        control = next(x for x in letters if "control character" in x.error)
        assert control.original_size == len(six[4][1]) and len(control.encode()) < 4 * 1024 * 1024
        # Repaired, not refused: the lone surrogate and the "<a<a…" text.
        tagged = {t.article.article_id: t for t in (decode_tagged(r.value) for r in read_topic(bs, prefix + "news.tagged"))}
        assert "surrogates_replaced" in (tagged["rss:fuzz:4"].article.flags or ())
        assert "\ufffd" in tagged["rss:fuzz:4"].article.title
        assert tagged["rss:fuzz:6"].article.text.startswith("<a<a")
        # Everything read is committed, and a record produced afterwards still flows.
        wait_for(lambda: committed(bs, group, raw) == end_offsets(bs, raw), 120, "news.raw committed to its end")
        produce(bs, raw, [(b"rss:fuzz:200", hostile.dumps(hostile.base(200)))])
        wait_for(lambda: "rss:fuzz:200" in tagged_ids(), 120, "a record produced after the poison ones tagged")
        wait_for(lambda: committed(bs, group, raw) == end_offsets(bs, raw), 120, "the new record committed")
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
    finally:
        stop_process(proc)
