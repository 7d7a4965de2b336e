"""Pipeline options of newsradar's own, next to Beam's (``newsradar pipeline ... --name=value``).

Durations take the config syntax (``90s``, ``10m``, ``2h``, ``3d``). Everything is turned into
plain settings objects once, here, so transforms never read options themselves.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from newsradar.config import parse_duration
from transforms.dedupe import DedupeSettings
from transforms.kafkaio import ReadSettings

DEFAULT_METRICS_PORT = 9465  # deploy/prometheus/prometheus.yml scrapes the pipeline here


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class NewsradarOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--group_id", default="newsradar-pipeline",
                            help="Kafka consumer group whose committed offsets say where reading resumes.")
        parser.add_argument("--topic_prefix", default="",
                            help="Prefix of every topic name (tests and side-by-side deployments).")
        parser.add_argument("--metrics_port", type=int, default=DEFAULT_METRICS_PORT,
                            help="Port of the pipeline's Prometheus /metrics (0: any free port).")
        parser.add_argument("--metrics_host", default="127.0.0.1", help="Address /metrics binds to.")
        parser.add_argument("--repeat_window", type=_duration, default=3 * 86400.0,
                            help="How long an article id is remembered to drop repeats (default 3d).")
        parser.add_argument("--story_window", type=_duration, default=86400.0,
                            help="How long an article can be the original of a near-duplicate (default 1d).")
        parser.add_argument("--story_similarity", type=float, default=DedupeSettings.similarity,
                            help="Estimated Jaccard similarity of word bigrams that makes two texts one story.")
        parser.add_argument("--idle_lag", type=_duration, default=5.0,
                            help="An idle partition's watermark follows wall clock minus this (default 5s).")
        parser.add_argument("--partition_discovery", type=_duration, default=30.0,
                            help="How often news.raw is checked for new partitions (default 30s).")
        parser.add_argument("--seed_location", default="",
                            help="Where the state rebuilt at start is written for the workers when it is over "
                                 "1 MiB (smaller, it travels inside the pipeline). Every worker must read it: "
                                 "with remote workers a shared path (a volume they all mount, gs://...). "
                                 "Default: $NEWSRADAR_HOME/state/seeds when the workers run on this machine "
                                 "(Prism started here, LOOPBACK), else inside the pipeline whatever its size.")
        parser.add_argument("--watchlist_poll", type=_duration, default=30.0,
                            help="How often every worker checks the watchlist file for an edit (default 30s).")
        parser.add_argument("--stop_timeout", type=_duration, default=60.0,
                            help="On SIGTERM/SIGINT, how long to wait for what was read to be committed.")


def dedupe_settings(options: PipelineOptions) -> DedupeSettings:
    o = options.view_as(NewsradarOptions)
    if not 0 < o.story_similarity <= 1:
        raise ValueError(f"--story_similarity must be in (0, 1], got {o.story_similarity}")
    return DedupeSettings(
        repeat_window_seconds=o.repeat_window,
        story_window_seconds=o.story_window,
        similarity=o.story_similarity,
        # Expired story entries go at most every hour, or every 24th of a shorter window (tests,
        # the soak's accelerated days): a window of minutes pruned hourly would keep them all.
        prune_interval_seconds=min(DedupeSettings.prune_interval_seconds, o.story_window / 24),
    )


def read_settings(options: PipelineOptions, bootstrap_servers: str, bounded: bool) -> ReadSettings:
    o = options.view_as(NewsradarOptions)
    return ReadSettings(
        bootstrap_servers=bootstrap_servers,
        group_id=o.group_id,
        stop_at_end=bounded,
        idle_lag_seconds=o.idle_lag,
        partition_discovery_seconds=o.partition_discovery,
    )


def topic(options: PipelineOptions, name: str) -> str:
    return options.view_as(NewsradarOptions).topic_prefix + name
