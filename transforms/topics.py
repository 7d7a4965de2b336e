"""Topic tagging: weighted terms and phrases per language, matched on lemmas, with negative
terms and a threshold (the EMM / GDELT-theme style of rule, which an analyst can read and
tune).

Scoring, per topic, over one keyed Doc:

1. Every term is matched in every inflected form (PhraseMatcher on the match key). A ``*``
   in a phrase stands for at most one word there, never punctuation ("мобилизовать * ресурсы"
   is also «мобилизовать все ресурсы», "lodge * protest" "lodged a protest"): the parts
   between the stars are matched like phrases and joined when they are close enough (spaCy's
   token Matcher would do it too, at ten times the cost of all the other terms together).
2. A negative match cancels every positive match of the same topic that it overlaps
   ("protest song" is not evidence of a protest), and each distinct negative term found
   subtracts its weight once ("retailer" makes "mobilizing staff" less likely to be
   military).
3. Of overlapping positive matches only the longest counts ("partial mobilization" counts
   once, not also as "mobilization").
4. Each distinct term adds its weight; a term seen two or more times adds half its weight
   again (repetition is evidence, but not unbounded evidence).
   Background terms (``background: true``: "army", "front", "war") are words of the
   setting, not of the event: they count only when some other term of the topic counts (or
   a shape is found),
   and all of them together add at most the topic's ``max_background`` — so a war story
   full of soldiers is not about call-ups until a call-up word is in it.
5. Shapes (``shapes:``) are combinations of words that are evidence only together ("women"
   + "gathered outside" + "with portraits"): a shape is found where one match of each of its
   parts lies within its window of words (in order if ``ordered``, each part on words of its
   own), and then adds its weight once, beside the terms (no overlap rule between a shape and
   a term). A negative term cancels the part matches it overlaps, as it does terms. A found
   negative shape ("bonds rallied", "МЧС мобилизовало") cancels every positive match, term or
   shape part, that overlaps one of its found part matches, and subtracts its weight once.
6. The article carries the topic when the score reaches the topic's threshold. Evidence is
   the text and offsets of every counted match and found shape part (at most
   :data:`MAX_EVIDENCE`).
7. A topic with a learned classifier (``learned:``, :mod:`newsradar.topic_model`) that the
   rules did not decide, and where they found none of its negative terms or shapes (the
   senses the watchlist names as not the topic), is scored by it on :func:`key_features`; at
   its threshold the article carries the topic with ``learned`` set to the probability, the
   rules' score kept as ``score``, and as evidence the words of the :data:`LEARNED_EVIDENCE`
   features that raised the probability most (stop words alone left out), in text order.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from spacy.attrs import IS_PUNCT, IS_SPACE, LEMMA
from spacy.matcher import PhraseMatcher
from spacy.strings import hash_string
from spacy.tokens import Doc

from newsradar import topic_model
from newsradar.config.watchlist import Topic
from newsradar.records import Evidence, TopicTag

from .nlp import Pipelines

log = logging.getLogger(__name__)
MAX_EVIDENCE = 10
# Steps of one shape's search in one article (a step: one partial choice of part matches).
# Real text needs a few per occurrence; text stuffed with a shape's words could need billions,
# so the search stops here, keeps the occurrences found so far and logs it.
MAX_SHAPE_STEPS = 20_000
REPEAT_BONUS = 0.5
# The features of a learned classifier's verdict shown as its evidence.
LEARNED_EVIDENCE = 5
# In a term, a word that stands for at most one word of the text (newsradar/config/watchlist.py).
GAP = "*"


@dataclass(frozen=True, slots=True)
class _TermLabel:
    topic: int
    term: int
    weight: float
    negative: bool
    background: bool = False


@dataclass(frozen=True, slots=True)
class _ShapeLabel:
    """One shape of a topic: its index among the topic's shapes (or negative shapes), its
    weight, its window (None: the article), whether its parts keep their order, how many parts."""

    topic: int
    shape: int
    weight: float
    negative: bool
    window: int | None
    ordered: bool
    parts: int


@dataclass(frozen=True, slots=True)
class _GappedTerm:
    """A term with GAP words: its label, and before each part after the first the most words
    that may stand between it and the part before it (the number of stars there)."""

    label: _TermLabel
    gaps: tuple[int, ...]


class TopicMatcher:
    """The topics of a watchlist for documents of one language (built once per worker)."""

    def __init__(self, topics: Sequence[Topic], pipelines: Pipelines, lang: str):
        self.lang = lang
        self.topics = tuple(topics)
        nlp = pipelines.nlp[lang]
        strings = nlp.vocab.strings
        self._matcher = PhraseMatcher(nlp.vocab, attr="LEMMA")
        self._labels: dict[int, _TermLabel] = {}
        # A part of a term with GAP words: match id -> (the term, which part).
        self._parts: dict[int, tuple[_GappedTerm, int]] = {}
        # A part of a shape: match id -> (the shape, which part).
        self._shape_parts: dict[int, tuple[_ShapeLabel, int]] = {}
        self.pattern_count = 0
        for ti, topic in enumerate(self.topics):
            for negative, terms in ((False, topic.terms.get(lang, ())), (True, topic.negative.get(lang, ()))):
                # Two terms can key alike ("мобилизованный" and "мобилизовать" both key to
                # the verb): the key sequence belongs to the heavier term.
                best: dict[tuple[str, ...], tuple[int, float]] = {}
                for k, term in enumerate(terms):
                    if GAP in term.term.split():
                        parts, gaps = _split_at_gaps(term.term)
                        gapped = _GappedTerm(_TermLabel(ti, k, term.weight, negative, term.background), gaps)
                        for j, part in enumerate(parts):
                            key = f"{ti}:{'n' if negative else 'p'}:{k}:{j}"
                            self._parts[strings.add(key)] = (gapped, j)
                            seqs = pipelines.phrase_variants(part, lang)
                            self._matcher.add(key, [[strings.add(k) for k in q] for q in seqs])
                            self.pattern_count += len(seqs)
                        continue
                    for seq in pipelines.phrase_variants(term.term, lang):
                        if seq not in best or term.weight > best[seq][1]:
                            best[seq] = (k, term.weight)
                by_term: dict[int, list[tuple[str, ...]]] = {}
                for seq, (k, _w) in best.items():
                    by_term.setdefault(k, []).append(seq)
                for k, seqs in by_term.items():
                    key = f"{ti}:{'n' if negative else 'p'}:{k}"
                    self._labels[strings.add(key)] = _TermLabel(ti, k, terms[k].weight, negative, terms[k].background)
                    self._matcher.add(key, [[strings.add(k) for k in q] for q in seqs])
                    self.pattern_count += len(seqs)
            for negative, shapes in ((False, topic.shapes.get(lang, ())),
                                     (True, topic.negative_shapes.get(lang, ()))):
                for k, shape in enumerate(shapes):
                    label = _ShapeLabel(ti, k, shape.weight, negative, shape.window, shape.ordered, len(shape.parts))
                    for j, phrases in enumerate(shape.parts):
                        key = f"{ti}:{'sn' if negative else 'sp'}:{k}:{j}"
                        self._shape_parts[strings.add(key)] = (label, j)
                        seqs = sorted({seq for phrase in phrases for seq in pipelines.phrase_variants(phrase, lang)})
                        self._matcher.add(key, [[strings.add(k) for k in q] for q in seqs])
                        self.pattern_count += len(seqs)
        # spaCy's stop words of the language (is_stop is not set on these pipelines' tokens)
        self._stop_words = frozenset(nlp.Defaults.stop_words)
        # topic index -> (classifier, the probability it decides at)
        self._learned: dict[int, tuple[topic_model.Classifier, float]] = {}
        for ti, topic in enumerate(self.topics):
            if topic.learned is not None:
                classifier = topic_model.load().classifiers[topic.learned.model]
                self._learned[ti] = (_rekeyed(classifier), topic.learned.threshold or classifier.threshold)

    def __call__(self, doc: Doc, offset: int = 0) -> list[TopicTag]:
        """The topics ``doc`` carries, in watchlist order, with score and evidence."""
        positives, negatives, shapes = self._matches(doc)
        tags = []
        scores = {}
        for ti in sorted(set(positives) | set(shapes)):
            topic = self.topics[ti]
            score, evidence = _score(positives.get(ti, []), negatives.get(ti, []), topic.max_background,
                                     shapes.get(ti, {}))
            scores[ti] = score
            if score >= topic.threshold:
                tags.append(TopicTag(id=topic.id, score=round(score, 2),
                                     evidence=_evidence(doc, evidence[:MAX_EVIDENCE], offset)))
        decided = {tag.id for tag in tags}
        features = None
        for ti, (classifier, threshold) in self._learned.items():
            if self.topics[ti].id in decided or _false_sense(negatives.get(ti), shapes.get(ti, {})):
                continue
            if features is None:
                features = key_features(doc)
            probability = classifier.probability(features, self.lang)
            if probability >= threshold:
                verdict = classifier.score(features, self.lang)
                spans = _merged(_shown(doc, key_spans(doc), verdict, self._stop_words))
                tags.append(TopicTag(id=self.topics[ti].id, score=round(max(float(scores.get(ti, 0.0)), 0.0), 2),
                                     evidence=_evidence(doc, spans, offset),
                                     learned=round(probability, 3)))
        order = [t.id for t in self.topics]
        tags.sort(key=lambda tag: order.index(tag.id))
        return tags

    def learned_scores(self, doc: Doc) -> dict[str, float]:
        """Each learned classifier's probability on ``doc``, whatever the rules decided."""
        features = key_features(doc) if self._learned else set()
        return {self.topics[ti].id: classifier.probability(features, self.lang)
                for ti, (classifier, _t) in self._learned.items()}

    def explain(self, doc: Doc) -> dict[str, float]:
        """Every topic's score on ``doc``, tagged or not (for `watchlist check` reports)."""
        positives, negatives, shapes = self._matches(doc)
        return {t.id: round(_score(positives.get(i, []), negatives.get(i, []), t.max_background,
                                   shapes.get(i, {}))[0], 2)
                for i, t in enumerate(self.topics)}

    def counted_terms(self, doc: Doc) -> dict[str, set[str]]:
        """Per topic, the terms (as written in the watchlist) that count towards its score on
        ``doc``, whether or not it reaches the threshold (for per-term quality figures); a found
        shape is there as its name in brackets ("[group at a place, holding signs]")."""
        positives, negatives, shapes = self._matches(doc)
        out = {}
        for ti, topic in enumerate(self.topics):
            _score_, counted, found = _count(positives.get(ti, []), negatives.get(ti, []), topic.max_background,
                                             shapes.get(ti, {}))
            terms = topic.terms.get(self.lang, ())
            named = topic.shapes.get(self.lang, ())
            out[topic.id] = ({terms[label.term].term for _s, _e, label in counted}
                             | {f"[{named[label.shape].name}]" for label in found if not label.negative})
        return out

    def _matches(self, doc: Doc) -> tuple[dict[int, list], dict[int, list], dict[int, dict]]:
        """Per topic index, the positive and the negative (start, end, label) term matches in
        ``doc``, and per shape label the (start, end) matches of each of its parts."""
        positives: dict[int, list] = {}
        negatives: dict[int, list] = {}
        shapes: dict[int, dict[_ShapeLabel, list[list[tuple[int, int]]]]] = {}
        found = []
        parts: dict[_GappedTerm, list[list[tuple[int, int]]]] = {}
        for match_id, start, end in self._matcher(doc):
            part = self._parts.get(match_id)
            shape_part = self._shape_parts.get(match_id)
            if shape_part is not None:
                label, j = shape_part
                shapes.setdefault(label.topic, {}).setdefault(label, [[] for _ in range(label.parts)])[j].append(
                    (start, end))
            elif part is None:
                found.append((start, end, self._labels[match_id]))
            else:
                gapped, j = part
                parts.setdefault(gapped, [[] for _ in range(len(gapped.gaps) + 1)])[j].append((start, end))
        for gapped, spans in parts.items():
            found.extend((start, end, gapped.label) for start, end in _join_parts(doc, spans, gapped.gaps))
        for start, end, label in found:
            (negatives if label.negative else positives).setdefault(label.topic, []).append((start, end, label))
        return positives, negatives, shapes


def _evidence(doc: Doc, spans, offset: int) -> tuple[Evidence, ...]:
    return tuple(Evidence(doc[s:e].text, doc[s:e].start_char + offset, doc[s:e].end_char + offset)
                 for s, e in spans)


# id of a loaded classifier -> (it, it over hashed features); the model file is loaded once
# per process (topic_model.load), so each classifier is rekeyed once, not per TopicMatcher.
_REKEYED: dict[int, tuple[topic_model.Classifier, topic_model.Classifier]] = {}


def _rekeyed(classifier: topic_model.Classifier) -> topic_model.Classifier:
    """A shipped classifier over :func:`key_features`' hashed features."""
    cached = _REKEYED.get(id(classifier))
    if cached is None or cached[0] is not classifier:
        cached = _REKEYED[id(classifier)] = (classifier, classifier.rekeyed(feature_key))
    return cached[1]


def _false_sense(negatives: list | None, shapes: dict) -> bool:
    """Whether the rules found one of the topic's negative terms or shapes: a sense the
    watchlist names as not the topic ("protest song", fans with placards at a stadium), which
    a learned classifier must not override."""
    if negatives:
        return True
    return any(label.negative and shape_matches(parts, label.window, label.ordered)
               for label, parts in shapes.items())


def _shown(doc: Doc, features: dict, verdict: topic_model.Score,
           stop_words: frozenset[str]) -> list[tuple[int, int]]:
    """The spans of the :data:`LEARNED_EVIDENCE` features that raised the probability most,
    leaving out those of stop words alone ("in", "have", «на»): they weigh, but tell a reader
    nothing."""
    out = []
    for feature, share in verdict.contributions:
        if share <= 0 or len(out) == LEARNED_EVIDENCE:
            break
        start, end = features[feature]
        if not all(t.lower_ in stop_words or t.lemma_ in stop_words for t in doc[start:end]):
            out.append((start, end))
    return out


def _merged(spans) -> list[tuple[int, int]]:
    """Token spans in text order, overlapping ones joined ("жён" and "жён мобилизованных": one)."""
    out: list[list[int]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


# A pair of neighbouring keys is one 64-bit number, (first · PAIR_MIX + second) mod 2⁶⁴: a set of
# plain ints is cheaper to build and look up than one of tuples (PAIR_MIX: an odd 64-bit
# constant, 2⁶⁴ over the golden ratio, so the pairs spread over the hashes).
PAIR_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def key_features(doc: Doc) -> set[int]:
    """The features learned classifiers are over (``keys-1``, :data:`newsradar.topic_model.FEATURES`):
    the match key of every word (spaces and punctuation left out) and every pair of neighbouring
    ones. A feature is a number, the key's string hash or a pair's (:data:`PAIR_MIX`), so none is
    spelled out per article: :func:`feature_key` gives a model file's name its number, and
    :func:`key_spans` says where each feature is."""
    if not len(doc):
        return set()
    rows = doc.to_array([LEMMA, IS_PUNCT, IS_SPACE])
    keys = rows[(rows[:, 1] == 0) & (rows[:, 2] == 0), 0]
    pairs = keys[:-1] * np.uint64(PAIR_MIX) + keys[1:]  # uint64 arithmetic wraps: mod 2⁶⁴
    return set(keys.tolist()) | set(pairs.tolist())


def key_spans(doc: Doc) -> dict[int, tuple[int, int]]:
    """Every feature of :func:`key_features` with the token span of its first occurrence."""
    rows = doc.to_array([LEMMA, IS_PUNCT, IS_SPACE]).tolist() if len(doc) else []
    out: dict[int, tuple[int, int]] = {}
    previous = None
    for i, (key, punct, space) in enumerate(rows):
        if punct or space:
            continue
        if key not in out:
            out[key] = (i, i + 1)
        if previous is not None:
            pair = (rows[previous][0] * PAIR_MIX + key) & _MASK
            if pair not in out:
                out[pair] = (previous, i + 1)
        previous = i
    return out


def feature_names(doc: Doc) -> set[str]:
    """The features of :func:`key_features` as a model file names them: the key, or the two keys
    of a pair with a space between ("жена мобилизованный")."""
    keys = [t.lemma_ for t in doc if not t.is_punct and not t.is_space]
    return set(keys) | {f"{a} {b}" for a, b in zip(keys, keys[1:], strict=False)}


def feature_key(name: str) -> int:
    """A model file's feature name as :func:`key_features` numbers it."""
    first, space, second = name.partition(" ")
    if not space:
        return hash_string(name)
    return (hash_string(first) * PAIR_MIX + hash_string(second)) & _MASK


def _split_at_gaps(term: str) -> tuple[list[str], tuple[int, ...]]:
    """The parts of ``term`` between its GAP words, and how many GAP words stand before each
    part after the first: «мобилизовать * * ресурсы» -> (["мобилизовать", "ресурсы"], (2,))."""
    parts: list[list[str]] = [[]]
    gaps: list[int] = []
    for word in term.split():
        if word == GAP:
            if parts[-1]:
                parts.append([])
                gaps.append(0)
            gaps[-1] += 1
        else:
            parts[-1].append(word)
    return [" ".join(p) for p in parts], tuple(gaps)


def _join_parts(doc: Doc, spans: list[list[tuple[int, int]]], gaps: tuple[int, ...]) -> set[tuple[int, int]]:
    """Whole matches of a term with GAP words, from the matches of its parts: each part starts
    at most its gap's words after the end of the one before, and no punctuation (nor the blank
    line after the title) is between."""
    chains = {(start, end) for start, end in spans[0]}
    for part, gap in zip(spans[1:], gaps, strict=True):
        chains = {
            (first, end)
            for first, last in chains
            for start, end in part
            if last <= start <= last + gap
            and not any(doc[t].is_punct or doc[t].is_space for t in range(last, start))
        }
        if not chains:
            break
    return chains


def _score(positives: list, negatives: list, max_background: float = 1.0,
           shapes: dict | None = None) -> tuple[float, list[tuple[int, int]]]:
    """The rule in the module docstring; returns (score, counted spans in text order)."""
    score, counted, found = _count(positives, negatives, max_background, shapes or {})
    spans = {(s, e) for s, e, _ in counted} | {span for label, matches in found.items() if not label.negative
                                                for span in matches}
    return score, sorted(spans)


def shape_matches(parts: list[list[tuple[int, int]]], window: int | None, ordered: bool) -> set[tuple[int, int]]:
    """The matches (of any part) that belong to an occurrence of a shape: a choice of one match
    per part, no two of them overlapping, all within ``window`` tokens from the first start to
    the last end (None: anywhere), and in part order when ``ordered``. Empty when the shape is
    not found."""
    if not all(parts):
        return set()
    parts = [sorted(set(part)) for part in parts]
    starts = [[s for s, _e in part] for part in parts]
    out: set[tuple[int, int]] = set()
    budget = [MAX_SHAPE_STEPS]
    try:
        for j, matches in enumerate(parts):
            for m in matches:
                if m not in out and _fits(m, j, parts, starts, window, ordered, out, budget):
                    out.add(m)
    except _SearchCut:
        log.warning("shape search cut after %d steps (%s matches per part): the occurrences found "
                    "so far count", MAX_SHAPE_STEPS, [len(part) for part in parts])
    return out


class _SearchCut(Exception):
    """The shape search ran out of steps (:data:`MAX_SHAPE_STEPS`)."""


def _fits(m: tuple[int, int], j: int, parts: list[list[tuple[int, int]]], starts: list[list[int]],
          window: int | None, ordered: bool, found: set[tuple[int, int]], budget: list[int]) -> bool:
    """Whether match ``m`` of part ``j`` has one match of every other part beside it that
    makes an occurrence (``shape_matches``); the matches of the occurrence found are added to
    ``found``. Only the matches that start within the window are tried (by bisection), and,
    when ``ordered``, only those on the right side of every part chosen so far. Each step
    spends one of ``budget``; at none left it raises :class:`_SearchCut`."""
    others = [k for k in range(len(parts)) if k != j]

    def search(chosen: dict[int, tuple[int, int]], i: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0:
            raise _SearchCut
        if i == len(others):
            found.update(chosen.values())
            return True
        k = others[i]
        lo = min(s for s, _e in chosen.values())
        hi = max(e for _s, e in chosen.values())
        candidates = parts[k]
        if window is not None:
            candidates = candidates[bisect_left(starts[k], hi - window):bisect_right(starts[k], lo + window)]
        for s, e in candidates:
            if any(s < ce and cs < e for cs, ce in chosen.values()):
                continue
            if ordered and not all(ce <= s if c < k else e <= cs for c, (cs, ce) in chosen.items()):
                continue
            if window is not None and max(hi, e) - min(lo, s) > window:
                continue
            if search({**chosen, k: (s, e)}, i + 1):
                return True
        return False

    return search({j: m}, 0)


def _covered(spans) -> set[int]:
    """The token indices inside any of ``spans`` ((start, end, ...) tuples)."""
    return {t for span in spans for t in range(span[0], span[1])}


def _count(positives: list, negatives: list, max_background: float,
           shapes: dict | None = None) -> tuple[float, list, dict]:
    """(score, counted (start, end, label) matches in text order, found shapes: label -> the
    part matches of its occurrences)."""
    shapes = shapes or {}
    found: dict[_ShapeLabel, set[tuple[int, int]]] = {}
    for label, parts in shapes.items():
        if label.negative:
            matches = shape_matches(parts, label.window, label.ordered)
            if matches:
                found[label] = matches
    blocked = _covered([*negatives, *(m for ms in found.values() for m in ms)])

    def free(m) -> bool:
        return not any(t in blocked for t in range(m[0], m[1]))

    for label, parts in shapes.items():
        if not label.negative:
            matches = shape_matches([[m for m in part if free(m)] for part in parts], label.window, label.ordered)
            if matches:
                found[label] = matches
    kept = [m for m in positives if free(m)]
    # Longest first; a match overlapping one already kept is dropped.
    kept.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
    counted: list[tuple[int, int, _TermLabel]] = []
    for m in kept:
        if not any(m[0] < c[1] and c[0] < m[1] for c in counted):
            counted.append(m)
    has_shape = any(not label.negative for label in found)
    if not has_shape and not any(not label.background for _s, _e, label in counted):
        counted = []  # the setting alone is no evidence
    seen: dict[int, int] = {}
    weights: dict[int, float] = {}
    background: set[int] = set()
    for _s, _e, label in counted:
        seen[label.term] = seen.get(label.term, 0) + 1
        weights[label.term] = label.weight
        if label.background:
            background.add(label.term)
    gained = {t: w * (1 + REPEAT_BONUS if seen[t] > 1 else 1) for t, w in weights.items()}
    score = sum(g for t, g in gained.items() if t not in background)
    score += min(max_background, sum(g for t, g in gained.items() if t in background))
    score -= sum({label.term: label.weight for _s, _e, label in negatives}.values())
    score += sum(label.weight for label in found if not label.negative)
    score -= sum(label.weight for label in found if label.negative)
    counted.sort(key=lambda m: m[0])
    return score, counted, found
