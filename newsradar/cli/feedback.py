"""`newsradar feedback`: an analyst's verdict on one alert, appended to the feedback file
(:mod:`newsradar.feedback`), with the alias and terms that matched when they are given or
looked up on Kafka (``--lookup``: the alert on news.alerts, then its article on news.tagged,
read from an hour before the alert was made)."""

from __future__ import annotations

import sys
import time

import click

from newsradar.records import TOPIC_ALERTS, TOPIC_TAGGED, RecordError, decode_alert, decode_tagged, parse_time

from .commands import EXIT_BAD_INPUT, EXIT_FAILURE, _fail, handles_errors


class NotFound(LookupError):
    pass


def lookup(bootstrap_servers: str, alert_id: str, prefix: str = "", timeout: float = 60.0):
    """(org_id, aliases, terms) of an alert: its organization's mentions and its topic's
    evidence in the tagged record of the article that raised it."""
    from kafka import TopicPartition

    from newsradar import feedback as fb
    from newsradar.kafka import make_consumer, read_topic

    alert = None
    for rec in read_topic(bootstrap_servers, prefix + TOPIC_ALERTS, timeout=timeout):
        if rec.key == alert_id.encode("utf-8") and rec.value is not None:
            try:
                alert = decode_alert(rec.value)
            except RecordError:
                continue
    if alert is None:
        raise NotFound(f"alert {alert_id} is not on {prefix + TOPIC_ALERTS} at {bootstrap_servers}")
    topic = prefix + TOPIC_TAGGED
    since_ms = int(parse_time(alert.created_at).timestamp() * 1000) - 3600_000
    consumer = make_consumer(bootstrap_servers, enable_auto_commit=False, client_id="newsradar-feedback")
    found = None
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        starts = consumer.offsets_for_times({tp: since_ms for tp in parts})
        for tp in parts:
            consumer.seek(tp, starts[tp].offset if starts.get(tp) is not None else ends[tp])
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f}s")
            for records in consumer.poll(timeout_ms=200).values():
                for rec in records:
                    if rec.key == alert.article_id.encode("utf-8") and rec.value is not None:
                        try:
                            found = decode_tagged(rec.value)
                        except RecordError:
                            continue
    finally:
        consumer.close()
    if found is None:
        raise NotFound(f"the article {alert.article_id} of alert {alert_id} is not on {topic} after the alert's time")
    aliases = [m.text for m in found.mentions if m.org_id == alert.org_id]
    return alert.org_id, aliases, fb.topic_terms(found, alert.topic_id)


@click.command()
@click.argument("alert_id")
@click.option("--tp", "verdict", flag_value="tp", help="The alert was right (a true positive).")
@click.option("--fp", "verdict", flag_value="fp", help="The alert was wrong (a false positive).")
@click.option("--note", help="Why, in a few words (kept in the file).")
@click.option("--file", "path", type=click.Path(dir_okay=False),
              help="The feedback file (JSON lines, appended) [default: feedback.jsonl next to --watchlist].")
@click.option("--watchlist", "watchlist_file", type=click.Path(dir_okay=False),
              help="The watchlist the alert came from: the default file's place, and the organization is checked.")
@click.option("--alias", "aliases", multiple=True, help="The organization's name as the article wrote it (repeatable).")
@click.option("--term", "terms", multiple=True, help="A topic term that counted (repeatable; topic alerts).")
@click.option("--org", "org_id", help="The organization of a topic alert (its id does not say).")
@click.option("--lookup", "look_up", is_flag=True, help="Take the alias, the terms and the organization from Kafka: the alert on "
                                             "news.alerts, its article on news.tagged.")
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True, help="With --lookup.")
@click.option("--topic-prefix", default="", help="With --lookup: prefix of the topic names.")
@handles_errors
def feedback(alert_id: str, verdict: str | None, note: str | None, path: str | None, watchlist_file: str | None,
             aliases: tuple[str, ...], terms: tuple[str, ...], org_id: str | None, look_up: bool,
             bootstrap_servers: str, topic_prefix: str) -> None:
    """Record whether an alert was right: one line appended to the feedback file.

    The alert id (`newsradar alerts tail`) says the alert's kind and its organization (the
    topic, for topic alerts); the alias and terms that matched are given with --alias/--term
    or looked up with --lookup. `benchmarks/quality.py --feedback FILE` and `newsradar
    backtest --feedback FILE` show the precision per organization alias and per topic term
    (docs/tagging.md, "Analyst feedback"). Exit 2: no --tp/--fp, a bad alert id, an unknown
    organization, no file to write to."""
    from newsradar import feedback as fb

    if verdict is None:
        _fail("feedback: give --tp (the alert was right) or --fp (it was wrong)", EXIT_BAD_INPUT)
    if path is None and watchlist_file is None:
        _fail("feedback: give --file PATH, or --watchlist FILE to use feedback.jsonl next to it", EXIT_BAD_INPUT)
    try:
        fb.parse_alert_id(alert_id)
    except fb.FeedbackError as exc:
        _fail(f"feedback: {exc}", EXIT_BAD_INPUT)
    if look_up:
        from kafka.errors import KafkaError

        from newsradar.kafka import broker_answers

        if not broker_answers(bootstrap_servers, timeout=10):
            _fail(f"feedback: no Kafka broker answers at {bootstrap_servers}", EXIT_FAILURE)
        try:
            found_org, found_aliases, found_terms = lookup(bootstrap_servers, alert_id, topic_prefix)
        except NotFound as exc:
            _fail(f"feedback: {exc}", EXIT_BAD_INPUT)
        except (TimeoutError, KafkaError) as exc:
            _fail(f"feedback: {exc}", EXIT_FAILURE)
        aliases, terms, org_id = (*aliases, *found_aliases), (*terms, *found_terms), org_id or found_org
    v = fb.verdict_for(alert_id, verdict, aliases=aliases, terms=terms, note=note, org_id=org_id)
    if watchlist_file is not None:
        from newsradar.config import load_watchlist

        wl = load_watchlist(watchlist_file)
        known = {o.id for o in wl.organizations}
        if v.org_id is not None and v.org_id not in known:
            _fail(f"feedback: organization {v.org_id!r} is not in {watchlist_file}", EXIT_BAD_INPUT)
        if v.topic_id is not None and v.topic_id not in {t.id for t in wl.topics}:
            _fail(f"feedback: topic {v.topic_id!r} is not in {watchlist_file}", EXIT_BAD_INPUT)
    target = path or fb.default_path(watchlist_file)
    try:
        fb.append(target, v)
    except OSError as exc:
        _fail(f"feedback: {target}: cannot write: {exc.strerror or exc}", EXIT_BAD_INPUT)
    said = f" alias {', '.join(v.aliases)}" if v.aliases else ""
    said += f" terms {', '.join(v.terms)}" if v.terms else ""
    click.echo(f"feedback: {v.verdict} for {alert_id}{said} -> {target}")
    sys.stdout.flush()
