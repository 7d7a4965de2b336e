"""What Prism 2.77 does with bundle finalizers: the reason the Kafka commit is not in one.

Prism calls a splittable DoFn's bundle finalizer, but as soon as the bundle's output is
stored in Prism's memory, before the next stage (here a stateful step, which cannot be fused
with the read) has processed that output. A commit of Kafka offsets in the finalizer would
therefore mark records done that are still in flight, and a crash would lose them. The
pipeline commits after its Kafka writes instead (transforms/kafkaio.py, docs/pipeline.md).
"""

from __future__ import annotations

import threading

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import userstate
from apache_beam.transforms.core import RestrictionProvider

from pipelines.run import prism_binary

pytestmark = pytest.mark.slow

ELEMENTS = 3
# Workers run in this process (LOOPBACK), so the steps can talk through these.
FINALIZED = {i: threading.Event() for i in range(ELEMENTS)}
SEEN: dict[int, str] = {}


class _Range(RestrictionProvider):
    def initial_restriction(self, element):
        return OffsetRange(0, ELEMENTS)

    def create_tracker(self, restriction):
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element, restriction):
        return restriction.size()


class _EmitOnePerBundle(beam.DoFn):
    # The finalizer argument comes before the tracker (the other order fails in Beam 2.77).
    def process(self, element, finalizer=beam.DoFn.BundleFinalizerParam,
                tracker=beam.DoFn.RestrictionParam(_Range())):
        position = tracker.current_restriction().start
        if tracker.try_claim(position):
            finalizer.register(FINALIZED[position].set)
            yield (str(position % 2), position)
            tracker.defer_remainder()


class _WaitForFinalizer(beam.DoFn):
    STATE = userstate.ReadModifyWriteStateSpec("unused", beam.coders.VarIntCoder())

    def process(self, keyed, state=beam.DoFn.StateParam(STATE)):
        _, position = keyed
        # If Prism finalized only after this step had processed the element, this would wait
        # in vain: the finalizer of the read bundle must already have run, or run meanwhile.
        SEEN[position] = "finalized first" if FINALIZED[position].wait(60) else "not finalized"
        yield position


def test_prism_finalizes_before_the_next_stage_has_the_output():
    options = PipelineOptions([
        "--runner=PrismRunner", f"--prism_location={prism_binary()}", "--environment_type=LOOPBACK",
        "--streaming", "--prism_log_level=warn",
        # Beam shares one Prism job server per process; an earlier DirectRunner test may have
        # left one that knows no --prism_location (and would try to download Prism).
        "--experiments=disable_prism_server_singleton",
    ])
    with beam.Pipeline(options=options) as pipeline:
        (
            pipeline
            | beam.Create(["go"])
            | "Read" >> beam.ParDo(_EmitOnePerBundle())
            | "Stateful" >> beam.ParDo(_WaitForFinalizer())
        )
    assert SEEN == dict.fromkeys(range(ELEMENTS), "finalized first")
