"""The newsradar pipeline, assembled in one place: :func:`build`.

The same ``build()`` runs on a stream (Kafka, attached in :mod:`pipelines.run`) and on a
bounded input (files, a replay of a topic). It knows nothing about where its input comes
from or where its outputs go.

Elements between the steps are the record dataclasses of :mod:`newsradar.records`
(RawArticle, then TaggedArticle; DeadLetter and Alert on the side outputs): frozen, slotted,
validated once at the edge, picklable by reference to an installed module, and directly
encodable by the Kafka sink. Dicts would be as light but would let a step add or drop a field
that the record format does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam

from newsradar.config import Watchlist
from transforms.dedupe import Dedupe, DedupeInOrder, DedupeSettings
from transforms.normalize import Normalize
from transforms.parse import ParseRaw
from transforms.raise_alerts import RaiseAlerts, RaiseAlertsInOrder
from transforms.rank_candidates import RankCandidates
from transforms.reload import WatchlistSource
from transforms.tagging import TagArticles


@dataclass(frozen=True)
class Outputs:
    """What a pipeline run produces (each a PCollection). In ordered mode every element is
    keyed by the input it came from: see :func:`build`."""

    tagged: beam.PCollection  # TaggedArticle → news.tagged
    alerts: beam.PCollection  # Alert → news.alerts
    dlq: beam.PCollection  # DeadLetter → news.dlq
    # NoveltySummary → news.novelty (streaming only; None in ordered mode)
    summaries: beam.PCollection | None = None
    candidates: beam.PCollection | None = None  # Candidate → news.candidates, once a day (streaming only)


def build(articles: beam.PCollection, watchlist: Watchlist | WatchlistSource, *,
          dedupe: DedupeSettings | None = None, ordered: bool = False, seed=None) -> Outputs:
    """Assemble the pipeline over ``articles`` (raw ``news.raw`` payloads: bytes, or records
    with ``value`` and ``source`` such as :class:`transforms.kafkaio.KafkaRecord`).

    Steps, each a composite PTransform with a stable label::

        ParseRaw ──(bad)──────────────────────────────────────────────► dlq
           └► Normalize ─► Dedupe ─► TagArticles ─► tagged         (each ─(failed on)─► dlq)
                                           ├► RaiseAlerts ─► alerts   (─(failed on)─► dlq)
                                           │       └─(pruned)─► summaries
                                           └► RankCandidates ─► candidates, per UTC day (not ordered)

    Guarantees: every input element ends up in ``dlq`` (with the error and step, and the
    original bytes or, past ParseRaw, the article as a news.raw record) or, once per article
    id (edits marked ``is_update``), in ``tagged`` with ``lang``, ``story_id`` and
    ``duplicate_of``. Element timestamps are kept: a step must not hold an element in state
    and emit it later without holding the watermark (a timer with an output timestamp),
    because the streaming entry commits Kafka offsets when the watermark after the Kafka writes
    passes a record's time.

    ``ordered=True`` is the mode for bounded inputs whose order matters (`newsradar tag`,
    backtests): the input elements are (seq, payload) pairs, ``seq`` any sortable number
    giving the input order, stamped with their event time. The same steps run under the same
    labels, but the stateful ones (Dedupe, RaiseAlerts) are swapped for their in-input-order
    variants, so story ids and alerts are those a stream in that order would give, on every
    run. Every output keeps the key of the input it came from: ``tagged`` (seq,
    TaggedArticle), ``dlq`` (seq, DeadLetter), ``alerts`` ((seq, rank, n), Alert) — sort by
    the key for input order.

    No step calls an alert sink: the alerts' only way out is ``alerts`` (news.alerts), which
    ``newsradar deliver`` reads in a process of its own (:mod:`newsradar.delivery`), so a slow
    or dead sink costs the pipeline nothing, and a replay notifies nobody.

    ``watchlist`` is a :class:`transforms.reload.WatchlistSource` (the file is polled and a
    good new version taken into use while running) or a fixed Watchlist.

    ``seed`` (streaming only): the state rebuilt from news.tagged and news.alerts at start, a
    :class:`transforms.rebuild.SeedBlob`; Dedupe and RaiseAlerts fill empty state from it.
    """
    source = watchlist if isinstance(watchlist, WatchlistSource) else WatchlistSource.fixed(watchlist)
    parsed = articles | "ParseRaw" >> ParseRaw(keyed=ordered)
    normalized = parsed.articles | "Normalize" >> Normalize(keyed=ordered)
    deduped = normalized.articles | "Dedupe" >> (DedupeInOrder(dedupe) if ordered else Dedupe(dedupe, seed))
    # Tagging (issue 6): topics and organizations in one pass, then novelty per organization.
    # docs/tagging.md, docs/alerts.md.
    tagged = deduped.articles | "TagArticles" >> TagArticles(source, keyed=ordered)
    raised = tagged.articles | "RaiseAlerts" >> (RaiseAlertsInOrder(source) if ordered else RaiseAlerts(source, seed=seed))
    alerts = raised.alerts
    dead = [parsed.dlq, normalized.dlq, deduped.dlq, tagged.dlq, raised.dlq]
    candidates = None
    if not ordered:
        # Names nobody watches yet, ranked once a day (issue 16): cheap, no NER; docs/tagging.md.
        candidates, candidates_dlq = tagged.articles | "RankCandidates" >> RankCandidates(source)
        dead.append(candidates_dlq)
    dlq = dead | "MergeDeadLetters" >> beam.Flatten()
    return Outputs(tagged=tagged.articles, alerts=alerts, dlq=dlq, summaries=raised.summaries, candidates=candidates)
