"""Normalize: clean text, Unicode NFC, and the article's language (en, ru, uk or other).

Guarantees: the title and text that leave this step contain no markup, are NFC with spaces
collapsed (:func:`newsradar.text.html_to_text`), and ``lang`` is one of :data:`LANGS`. The
raw HTML is not carried further (it stays on ``news.raw``): downstream steps work on text.

Language comes from lingua, whose models ship inside the wheel (nothing is downloaded at run
time). The detector knows, besides en/ru/uk, the languages most often confused with them
(other Cyrillic and major Latin-script languages), so that German is "other" rather than a
poor guess at English. A connector's ``lang_hint`` (a feed's <language>, a channel's
setting) decides only when the text itself is not conclusive: feeds mislabel their language
often enough that a confident detection wins.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.metrics import pipeline_metrics
from newsradar.records import RawArticle, TaggedArticle
from newsradar.text import html_to_text, looks_like_html, normalize_text
from newsradar.vocab import DETECTED_LANGUAGES, LANGUAGES

from .deadletters import DATA_ERRORS, DLQ, DeadLetters

STEP = "normalize"
LANGS = DETECTED_LANGUAGES
TARGET_LANGS = frozenset(LANGUAGES)

# Languages the detector chooses among. The non-target ones are there to be recognised as
# "other"; without them every Cyrillic text would be called ru or uk. Kazakh is left out on
# purpose: with it, lingua 2.x called a 480-character Ukrainian news text Kazakh with
# confidence 1.0 while calling each of its sentences Ukrainian (stories.jsonl, wire-uk-1).
DETECTOR_LANGUAGES = (
    "EN", "RU", "UK", "BE", "BG", "SR", "MK",
    "DE", "FR", "ES", "IT", "PT", "PL", "NL", "CS", "RO", "TR",
)
# Detection looks at the start of the text (title first): ~90 words decide a news text, and
# lingua's cost grows with the length (0.3 ms at 500 characters, 0.55 ms at 1,000 here).
SAMPLE_CHARS = 600
# Below this confidence the text is inconclusive and a target-language hint decides.
CONFIDENT = 0.6
_LETTER = re.compile(r"[^\W\d_]")


@functools.cache
def shared_detector():
    """The process-wide lingua detector, built on first use.

    High-accuracy mode: on the short-post fixture (tests/fixtures/pipeline/languages.jsonl)
    the low-accuracy trigram mode confused ru/uk on two-to-five-word posts, the full models
    did not. The models load lazily per script and cost a few hundred MB once per process
    (lingua shares them between detectors, so one instance is kept here).
    """
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, code) for code in DETECTOR_LANGUAGES]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def normalize_hint(hint: str | None) -> str | None:
    """``"en-US"``, ``"ru_RU"``, ``"UK"`` → ``"en"``, ``"ru"``, ``"uk"``; anything else → None."""
    if not hint:
        return None
    code = re.split(r"[-_]", hint.strip().lower(), maxsplit=1)[0]
    return code if code in TARGET_LANGS else None


def detect_language(text: str, hint: str | None, detector) -> str:
    """One of en, ru, uk, other for ``text`` (title and body), using ``hint`` only when the
    text is not conclusive (see module docstring)."""
    hint = normalize_hint(hint)
    sample = text[:SAMPLE_CHARS]
    if not _LETTER.search(sample):
        return hint or "other"
    values = detector.compute_language_confidence_values(sample)
    if not values or values[0].value <= 0:
        return hint or "other"
    best = values[0]
    best_code = best.language.iso_code_639_1.name.lower()
    if best.value < CONFIDENT and hint is not None:
        return hint
    return best_code if best_code in TARGET_LANGS else "other"


def clean_article(article: RawArticle) -> RawArticle:
    """The article with markup-free NFC title and text; the text comes from ``html`` when the
    connector sent only HTML."""
    body = article.text
    if not body.strip() and article.html:
        body = article.html
    text = html_to_text(body) if looks_like_html(body) else normalize_text(body)
    title = html_to_text(article.title) if looks_like_html(article.title) else normalize_text(article.title)
    return dataclasses.replace(article, title=title, text=text, html=None)


def normalize(article: RawArticle, detector) -> TaggedArticle:
    """Clean the article and detect its language. Until Dedupe says otherwise an article is
    its own story (``story_id`` = its ``article_id``)."""
    clean = clean_article(article)
    lang = detect_language(f"{clean.title}\n{clean.text}", clean.lang_hint, detector)
    return TaggedArticle(article=clean, lang=lang, story_id=clean.article_id)


class _Normalize(beam.DoFn):
    def __init__(self, keyed: bool = False):
        self._keyed = keyed
        self._by_lang = {lang: Metrics.counter("Normalize", f"articles_{lang}") for lang in LANGS}

    def setup(self):
        self._detector = shared_detector()
        metrics = pipeline_metrics()
        self._metric = {lang: metrics.articles.labels(lang) for lang in LANGS}
        self._dead = DeadLetters(STEP, "Normalize")

    def process(self, element):
        key, article = element if self._keyed else (None, element)
        try:
            result = normalize(article, self._detector)
        except DATA_ERRORS as exc:
            letter = self._dead.letter(article, exc)
            yield beam.pvalue.TaggedOutput(DLQ, (key, letter) if self._keyed else letter)
            return
        self._by_lang[result.lang].inc()
        self._metric[result.lang].inc()
        yield (key, result) if self._keyed else result


class Normalize(beam.PTransform):
    """RawArticle → TaggedArticle with clean text and ``lang`` (no story grouping yet) on
    ``articles``; an article the step's code fails on → DeadLetter on ``dlq`` (step
    ``normalize``, :mod:`transforms.deadletters`). With ``keyed=True`` the elements are
    (key, RawArticle) pairs and both outputs keep the key."""

    def __init__(self, keyed: bool = False, label: str | None = None):
        super().__init__(label)
        self._keyed = keyed

    def expand(self, articles):
        return articles | "CleanAndDetect" >> beam.ParDo(_Normalize(self._keyed)).with_outputs(DLQ, main="articles")
