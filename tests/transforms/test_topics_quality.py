"""Quality floors on the labeled evaluation set (tests/fixtures/eval, benchmarks/quality.py).

The floors sit a little under what the shipped watchlist measures (docs/benchmarks.md), so
a change that makes tagging clearly worse fails here, while one relabeled item does not.
They are set per topic on all items, on the holdout and fresh splits and per language, and
per organization. "All items" means the floored splits: dev, holdout, fresh, fresh2, fresh3,
fresh4, fresh5 and fresh6. The ``fresh`` split (45 items) and the ``fresh2`` to ``fresh6`` splits
(120 items each), each written and measured before any tuning, were tuned on afterwards, so they
are floored like the others and no longer honest held-out figures; a new held-out split goes in
``UNFLOORED_SPLITS`` until it is tuned or trained on (it may be declared before its items exist),
as ``fresh9`` is (measured once, neither tuned nor trained on); ``fresh7`` and ``fresh8``, measured
once and then trained on by the learned classifiers, are ``TRAINED_SPLITS``.

The floors are the rules' (the watchlist without its learned classifiers): the classifiers were
trained on the floored splits, so there they would pass whatever the rules did. The classifiers
are checked where they were not trained, on the splits their model file leaves out.
"""

import io
import json
from dataclasses import replace

import pytest

from benchmarks.learned_topics import items_digest
from benchmarks.quality import evaluate, load_items, main, print_report
from newsradar import topic_model
from newsradar.config import load_watchlist
from transforms.tagging import Tagger

WATCHLIST = "config/watchlist.yaml"

# (topic, scope) -> (precision floor, recall floor); measured values in docs/benchmarks.md
TOPIC_FLOORS = {
    ("mobilization", "all"): (0.98, 0.96),
    ("mobilization", "holdout"): (0.95, 0.88),
    ("mobilization", "fresh"): (0.92, 0.92),
    ("mobilization", "fresh2"): (0.95, 0.95),
    ("mobilization", "fresh3"): (0.95, 0.95),
    ("mobilization", "fresh4"): (0.95, 0.95),
    ("mobilization", "fresh5"): (0.95, 0.95),
    ("mobilization", "fresh6"): (0.95, 0.95),
    ("mobilization", "en"): (0.97, 0.9),
    ("mobilization", "ru"): (0.97, 0.97),
    ("mobilization", "uk"): (0.97, 0.95),
    ("protest", "all"): (0.96, 0.96),
    ("protest", "holdout"): (0.88, 0.92),
    ("protest", "fresh"): (0.85, 0.85),
    ("protest", "fresh2"): (0.95, 0.95),
    ("protest", "fresh3"): (0.95, 0.95),
    ("protest", "fresh4"): (0.95, 0.95),
    ("protest", "fresh5"): (0.95, 0.95),
    ("protest", "fresh6"): (0.95, 0.95),
    ("protest", "en"): (0.92, 0.97),
    ("protest", "ru"): (0.97, 0.97),
    ("protest", "uk"): (0.97, 0.95),
}
# Every watched organization, all items; the Russian ministry (the measure) higher.
ORG_RECALL_FLOOR = 0.8
ORG_RECALL_FLOORS = {"russian-ministry-of-defence": 0.97, "ukrainian-ministry-of-defence": 0.95}
ORG_PRECISION_FLOOR = 0.95  # micro-averaged over organizations
ORG_MICRO_RECALL_FLOOR = 0.98


FLOORED_SPLITS = ("dev", "holdout", "fresh", "fresh2", "fresh3", "fresh4", "fresh5", "fresh6")
# Held-out splits not tuned on yet: reported by benchmarks/quality.py, floored only once tuned
# on. fresh6 (by a fifth writer) was measured once (session 7) and then tuned on. fresh9 and
# fresh10 (by an eighth and a ninth writer, session 8) were measured once on the rules and the
# learned classifiers, and neither was tuned or trained on them.
UNFLOORED_SPLITS: tuple[str, ...] = ("fresh9", "fresh10")
# Measured once each (fresh7 by a sixth writer in session 7, fresh8 by a seventh in session 8),
# then trained on by the learned classifiers, not tuned on by the rules (but for one country
# cue from a fresh8 miss): neither floored for the rules nor held out any more.
TRAINED_SPLITS: tuple[str, ...] = ("fresh7", "fresh8")


# The learned classifiers (rules OR classifier, the shipped watchlist) on the splits neither they
# nor the rules were trained or tuned on, each measured once (docs/benchmarks.md, "Learned
# classifiers shipped"), floored a little under: fresh9 1.00/0.92 and 0.94/0.94 (the rules alone
# 1.00/0.73 and 0.94/0.81), fresh10 0.94/0.90 and 0.90/0.97 (the rules alone 0.97/0.75, 0.88/0.78).
LEARNED_FLOORS = {
    "fresh9": {"mobilization": (0.95, 0.9), "protest": (0.9, 0.9)},
    "fresh10": {"mobilization": (0.9, 0.86), "protest": (0.85, 0.92)},
}


@pytest.fixture(scope="module")
def report():
    rules = Tagger(load_watchlist(WATCHLIST).without_learned())
    return evaluate(items=[i for i in load_items() if i.split in FLOORED_SPLITS], tagger=rules)


def test_the_shipped_classifiers_were_trained_on_the_set_as_it_is():
    # A changed item or label in a training split needs a retrain (benchmarks/learned_topics.py
    # --write, docs/tagging.md): the model file records a hash of what it was trained on.
    trained = topic_model.load().trained
    items = [i for i in load_items() if i.split not in trained["excluded"]]
    assert items_digest(items) == trained["sha256"], "retrain: the evaluation set changed since"
    assert sorted({i.split for i in items}) == trained["splits"]
    assert set(UNFLOORED_SPLITS) <= set(trained["excluded"]), "trained on a held-out split"


@pytest.mark.parametrize("split", sorted(LEARNED_FLOORS))
def test_learned_classifiers_lift_recall_where_they_were_not_trained(split):
    assert split in topic_model.load().trained["excluded"], \
        f"the classifiers are trained on {split} now: check them on a split they leave out"
    items = [i for i in load_items() if i.split == split]
    both = evaluate(items=items, tagger=Tagger(load_watchlist(WATCHLIST)))
    rules = evaluate(items=items, tagger=Tagger(load_watchlist(WATCHLIST).without_learned()))
    for topic, (precision, recall) in LEARNED_FLOORS[split].items():
        counts = both.topics[split][topic]
        assert counts.precision >= precision and counts.recall >= recall, (topic, counts.errors)
        assert counts.recall > rules.topics[split][topic].recall, topic


def test_every_item_is_in_a_floored_split_or_a_declared_held_out_one():
    splits = {i.split for i in load_items()}
    assert splits <= {*FLOORED_SPLITS, *TRAINED_SPLITS, *UNFLOORED_SPLITS}, "an undeclared split"
    # Every floored split has items; a declared held-out split may have none yet.
    assert set(FLOORED_SPLITS) <= splits


def test_the_set_is_large_and_mixed():
    items = load_items()
    assert len(items) >= 300
    assert {i.lang for i in items} == {"en", "ru", "uk"}
    assert min(sum(1 for i in items if i.lang == lang) for lang in ("en", "ru", "uk")) >= 100
    negatives = [i for i in items if not i.topics and not i.orgs]
    assert len(negatives) >= 100, "hard negatives"
    assert sum(1 for i in items if i.split == "holdout") >= 120
    assert len({i.id for i in items}) == len(items)


@pytest.mark.parametrize("topic, scope", sorted(TOPIC_FLOORS))
def test_topic_precision_and_recall_floors(report, topic, scope):
    counts = report.topics[scope][topic]
    precision, recall = TOPIC_FLOORS[(topic, scope)]
    assert counts.precision >= precision, counts.errors
    assert counts.recall >= recall, counts.errors


def test_every_watched_organization_is_found(report):
    for org, counts in report.orgs["all"].items():
        assert counts.recall >= ORG_RECALL_FLOORS.get(org, ORG_RECALL_FLOOR), (org, counts.errors)
    tp = sum(c.tp for c in report.orgs["all"].values())
    fp = sum(c.fp for c in report.orgs["all"].values())
    fn = sum(c.fn for c in report.orgs["all"].values())
    assert tp / (tp + fp) >= ORG_PRECISION_FLOOR
    assert tp / (tp + fn) >= ORG_MICRO_RECALL_FLOOR


def test_per_term_figures_name_the_terms_a_topic_rests_on(report):
    # The Russian "мобилизованный" counts on several labeled items and on nothing else.
    key = ("mobilization", "ru", "мобилизованный")
    assert report.terms[key].on_labeled >= 5 and report.terms[key].precision == 1.0
    for c in report.terms.values():
        assert c.on_labeled + c.on_other > 0
        assert 0.0 <= c.precision <= 1.0 and 0.0 <= c.recall <= 1.0
    assert set(report.as_dict()["terms"]) == {"mobilization", "protest"}


def test_every_split_is_reported_and_one_split_can_be_measured_alone(capsys):
    items = load_items()
    # A split of any name gets its own rows, between "all" and the languages.
    renamed = ([i for i in items if i.split == "dev"][:10]
               + [replace(i, split="fresh") for i in items if i.split == "holdout"][:10])
    out = io.StringIO()
    print_report(evaluate(items=renamed), out=out)
    scopes = [line.split()[1] for line in out.getvalue().splitlines() if line.startswith("mobilization ")]
    assert scopes[:3] == ["all", "dev", "fresh"] and set(scopes[3:]) <= {"en", "ru", "uk"}
    # --split: every figure (and the item count) is that split's alone.
    assert main(["--split", "holdout", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["items"] == sum(1 for i in items if i.split == "holdout")
    assert set(shown["topics"]) == {"all", "holdout", "en", "ru", "uk"}
    assert main(["--split", "no-such-split"]) == 2
