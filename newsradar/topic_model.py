"""Learned topic classifiers: what a watchlist topic's ``learned:`` names.

A classifier is an L2-regularized logistic regression over an article's match keys (the
lemmas the tagger matches terms on, :func:`transforms.topics.key_features`): unigrams and
bigrams, binary, the vector scaled to unit length, plus one weight per language. It is
trained by the team on the evaluation set (``benchmarks/learned_topics.py --write``) and ships
with the build as :data:`SHIPPED` (a JSON file, one weight a line, so a retrain is a readable
diff). It decides a topic only where the topic's rules did not: an article carries the topic
when its rules reach their threshold *or* the classifier's probability reaches the topic's
learned threshold (docs/tagging.md, "Learned classifiers").

Guarantees: :func:`load` either returns every classifier of a file, fully checked, or raises
:class:`ModelError` naming the file and the field; :meth:`Classifier.score` is a pure function
of the features and the language.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

FORMAT = "newsradar-topic-model/1"
# The feature set a file's weights are over; a new one is a new name (and a retrain).
FEATURES = "keys-1"
SHIPPED = Path(__file__).resolve().parent / "models" / "topics.json"


class ModelError(ValueError):
    """A model file that cannot be used, with where in it."""

    def __init__(self, path: str | os.PathLike, field: str, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{path}: {field}: {problem}" if field else f"{path}: {problem}")


@dataclass(frozen=True, slots=True)
class Score:
    """A classifier's verdict on one article: the probability, and each present feature's
    share of the log-odds (its weight over the vector's length), largest first."""

    probability: float
    contributions: tuple[tuple[Hashable, float], ...]

    def top(self, n: int) -> list[Hashable]:
        """The ``n`` features that raised the probability most (positive shares only)."""
        return [f for f, c in self.contributions[:n] if c > 0]


@dataclass(frozen=True, slots=True)
class Classifier:
    name: str
    bias: float
    # The probability at which it decides, chosen when it was trained (a topic may override).
    threshold: float
    weights: Mapping[Hashable, float]
    languages: Mapping[str, float]
    # The features it has a weight for, as a set: an article's features are intersected with it.
    known: frozenset = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", frozenset(self.weights))

    def probability(self, features: Collection[Hashable], lang: str) -> float:
        """``features``: every distinct feature of the article, known to the classifier or not
        (the vector's length counts them all, as in training)."""
        weights = self.weights
        total = sum(map(weights.__getitem__, self.known.intersection(features)))
        return _sigmoid(self.bias + self.languages.get(lang, 0.0) + total / math.sqrt(max(len(features), 1)))

    def score(self, features: Collection[Hashable], lang: str) -> Score:
        """:meth:`probability` with each known feature's share of the log-odds, largest first."""
        scale = 1.0 / math.sqrt(max(len(features), 1))
        shares = [(f, self.weights[f] * scale) for f in features if f in self.weights]
        shares.sort(key=lambda fc: (-fc[1], str(fc[0])))
        return Score(self.probability(features, lang), tuple(shares))

    def rekeyed(self, key: Callable[[str], Hashable]) -> Classifier:
        """The same classifier over features named by ``key(name)`` instead of their names
        (the tagger's are spaCy string hashes, so no feature string is built per article)."""
        return dataclasses.replace(self, weights={key(f): w for f, w in self.weights.items()})


def _sigmoid(z: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * z))


@dataclass(frozen=True, slots=True)
class ModelFile:
    path: str
    features: str
    trained: Mapping[str, object]
    classifiers: Mapping[str, Classifier]


def _number(path, field: str, value, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(path, field, f"expected a finite number, got {value!r}")
    if (lo is not None and value <= lo) or (hi is not None and value >= hi):
        raise ModelError(path, field, f"expected a number between {lo} and {hi} (exclusive), got {value!r}")
    return float(value)


def _weights(path, field: str, value) -> Mapping[str, float]:
    if not isinstance(value, dict):
        raise ModelError(path, field, "expected a mapping of feature to weight")
    out = {}
    for key, weight in value.items():
        if not key:
            raise ModelError(path, field, "an empty feature name")
        out[key] = _number(path, f"{field}[{key!r}]", weight)
    return MappingProxyType(out)


def parse(data: object, path: str | os.PathLike = "<model>") -> ModelFile:
    """A decoded model file, checked field by field."""
    if not isinstance(data, dict):
        raise ModelError(path, "", "expected a JSON object at the top level")
    if data.get("format") != FORMAT:
        raise ModelError(path, "format", f"expected {FORMAT!r}, got {data.get('format')!r}")
    if data.get("features") != FEATURES:
        raise ModelError(path, "features", f"this build computes {FEATURES!r}, the file has {data.get('features')!r}")
    trained = data.get("trained", {})
    if not isinstance(trained, dict):
        raise ModelError(path, "trained", "expected an object")
    raw = data.get("classifiers")
    if not isinstance(raw, dict) or not raw:
        raise ModelError(path, "classifiers", "expected a non-empty object of name to classifier")
    classifiers = {}
    for name, body in raw.items():
        p = f"classifiers.{name}"
        if not isinstance(body, dict):
            raise ModelError(path, p, "expected an object")
        classifiers[name] = Classifier(
            name=name,
            bias=_number(path, f"{p}.bias", body.get("bias")),
            threshold=_number(path, f"{p}.threshold", body.get("threshold"), 0.0, 1.0),
            weights=_weights(path, f"{p}.weights", body.get("weights")),
            languages=_weights(path, f"{p}.languages", body.get("languages", {})),
        )
    return ModelFile(str(path), FEATURES, MappingProxyType(dict(trained)), MappingProxyType(classifiers))


@functools.lru_cache(maxsize=4)
def load(path: str | os.PathLike = SHIPPED) -> ModelFile:
    """The classifiers of a model file (cached per path: a file is read once per process)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(path, "", f"cannot read the model file: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(path, "", f"not JSON: {exc}") from exc
    return parse(data, path)


def dump(model: dict) -> str:
    """A model file's text: keys sorted, one weight a line, weights to 6 significant digits,
    so the same model always has the same bytes and a retrain diffs line by line."""
    return json.dumps(_rounded(model), ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


__all__ = ["FEATURES", "FORMAT", "SHIPPED", "Classifier", "ModelError", "ModelFile", "Score", "dump", "load", "parse"]
