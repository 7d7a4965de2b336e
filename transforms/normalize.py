"""Normalize: clean text, Unicode NFC, and the article's language (en, ru, uk or other).

Guarantees: the title and text that leave this step contain no markup, are NFC with spaces
collapsed (:func:`newsradar.text.html_to_text`), are at most :data:`MAX_TITLE_CHARS` and
:data:`MAX_TEXT_CHARS` long (cut and flagged beyond), and ``lang`` is one of :data:`LANGS`. The
raw HTML is not carried further (it stays on ``news.raw``): downstream steps work on text.

Language comes from lingua, whose models ship inside the wheel (nothing is downloaded at run
time). The detector knows, besides en/ru/uk, the languages most often confused with them
(other Cyrillic and major Latin-script languages), so that German is "other" rather than a
poor guess at English. A connector's ``lang_hint`` (a feed's <language>, a channel's
setting) decides only when the text itself is not conclusive: feeds mislabel their language
often enough that a confident detection wins.

Clear cases are decided before lingua by :func:`plain_language`: a sample written only in
the Russian alphabet with letters no other detector language combines (ы or э, with и, щ or
ъ), only in the Ukrainian one with і, ї, є or ґ and и, or in plain ASCII with English function
words making up a quarter of its words. Lingua's call costs ~0.4 ms per news text; these
cases are most Russian and Ukrainian news and much English news, and lingua gives them the
same label with confidence ≥ 0.79 whatever the hint (benchmarks/language_sample.py measures
the agreement on every text at hand; tests/transforms/test_normalize.py checks it on the
fixtures and the real-world pages).
"""

from __future__ import annotations

import functools
import re

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.metrics import pipeline_metrics
from newsradar.records import RawArticle, TaggedArticle, with_flag, with_text
from newsradar.text import blank_long_words, html_to_text, looks_like_html, normalize_text
from newsradar.vocab import DETECTED_LANGUAGES, LANGUAGES

from .deadletters import DLQ, RecordStep

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
# Detection looks at the start of the text (title first): ~45 words decide a news text, and
# lingua's cost grows with the length (~0.5 ms at 300 characters, ~1 ms at 600 here). At 300
# instead of 600, 5 of 4,139 labels changed (benchmarks/language_sample.py: real-world feeds
# and Telegram pages, the fixtures, the benchmark mix), all on mixed ru/en posts, Latin
# placeholder text or the mix's generated words; none on the fixtures.
SAMPLE_CHARS = 300
# Below this confidence the text is inconclusive and a target-language hint decides.
CONFIDENT = 0.6
_LETTER = re.compile(r"[^\W\d_]")
# plain_language: the alphabets (lower case), and the letters that make a sample Russian
# (ы, э: not Bulgarian, Serbian, Macedonian or Ukrainian; with и, щ or ъ: not Belarusian) or
# Ukrainian (і, ї, є, ґ: not Russian or Bulgarian; with и: not Belarusian).
_RUSSIAN = frozenset("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
_UKRAINIAN = frozenset("абвгґдеєжзиіїйклмнопрстуфхцчшщьюяʼ")
_RUSSIAN_MARKS, _NOT_BELARUSIAN = frozenset("ыэ"), frozenset("ищъ")
_UKRAINIAN_MARKS = frozenset("іїєґ")
_ENGLISH_WORDS = frozenset(
    "the and of to in is was were that with for said has have from by on a an it its at as be are this "
    "after will who".split())
_ASCII_WORD = re.compile(r"[a-z']+")
# Below these a sample goes to lingua (a short text may be inconclusive there, and the hint
# decide): letters in the sample; English function words, in all and distinct.
PLAIN_MIN_LETTERS = 40
PLAIN_MIN_ENGLISH, PLAIN_MIN_ENGLISH_DISTINCT = 8, 5
# Bounds of what leaves Normalize (the tagger analyses at most 200,000 characters too,
# transforms.tagging.MAX_ANALYZED_CHARS): longer records are cut and flagged.
MAX_TEXT_CHARS = 200_000
MAX_TITLE_CHARS = 2_000
_MARKUP_FACTOR = 4


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


def detect_language(text: str, hint: str | None, detector, plain: bool = True) -> str:
    """One of en, ru, uk, other for ``text`` (title and body), using ``hint`` only when the
    text is not conclusive (see module docstring). ``plain`` False: lingua decides every
    text (to measure :func:`plain_language` against it)."""
    hint = normalize_hint(hint)
    sample = blank_long_words(text[:SAMPLE_CHARS])
    if not _LETTER.search(sample):
        return hint or "other"
    found = plain_language(sample) if plain else None
    if found is not None:
        return found
    values = detector.compute_language_confidence_values(sample)
    if not values or values[0].value <= 0:
        return hint or "other"
    best = values[0]
    best_code = best.language.iso_code_639_1.name.lower()
    if best.value < CONFIDENT and hint is not None:
        return hint
    return best_code if best_code in TARGET_LANGS else "other"


def plain_language(sample: str) -> str | None:
    """ru, uk or en when the alphabet and the words of ``sample`` leave no doubt (see the
    module docstring), else None: lingua decides."""
    lower = sample.lower()
    letters = [c for c in lower if c.isalpha()]
    if len(letters) < PLAIN_MIN_LETTERS:
        return None
    kinds = set(letters)
    if kinds <= _RUSSIAN:
        return "ru" if kinds & _RUSSIAN_MARKS and kinds & _NOT_BELARUSIAN else None
    if kinds <= _UKRAINIAN:
        return "uk" if kinds & _UKRAINIAN_MARKS and "и" in kinds else None
    if lower.isascii():
        words = _ASCII_WORD.findall(lower)
        function = [w for w in words if w in _ENGLISH_WORDS]
        if ("the" in function and len(function) >= PLAIN_MIN_ENGLISH
                and len(set(function)) >= PLAIN_MIN_ENGLISH_DISTINCT and 4 * len(function) >= len(words)):
            return "en"
    return None


def clean_article(article: RawArticle) -> RawArticle:
    """The article with markup-free NFC title and text; the text comes from ``html`` when the
    connector sent only HTML. Each is cut to its bound (:data:`MAX_TEXT_CHARS`,
    :data:`MAX_TITLE_CHARS`) before and after cleaning, flagged ``text_cut``/``title_cut``, so
    the work of every later step is bounded whatever a record holds."""
    body = article.text
    if not body.strip() and article.html:
        body = article.html
    flags = article.flags
    text, cut = _bounded(body, MAX_TEXT_CHARS)
    title, title_cut = _bounded(article.title, MAX_TITLE_CHARS)
    if cut:
        flags = with_flag(flags, "text_cut")
    if title_cut:
        flags = with_flag(flags, "title_cut")
    return with_text(article, title, text, flags)


def _bounded(raw: str, limit: int) -> tuple[str, bool]:
    """``raw`` cleaned (markup removed if it looks like HTML, else normalized) and cut to
    ``limit`` characters; whether anything was cut. Markup is cut at a generous multiple of
    the bound first: the text of a page is shorter than its markup."""
    source = raw[: limit * _MARKUP_FACTOR]
    clean = html_to_text(source) if looks_like_html(source) else normalize_text(source)
    if len(clean) > limit:
        return clean[:limit].rstrip(), True
    return clean, len(source) < len(raw)


def normalize(article: RawArticle, detector) -> TaggedArticle:
    """Clean the article and detect its language. Until Dedupe says otherwise an article is
    its own story (``story_id`` = its ``article_id``)."""
    clean = clean_article(article)
    lang = detect_language(f"{clean.title}\n{clean.text}", clean.lang_hint, detector)
    return TaggedArticle(article=clean, lang=lang, story_id=clean.article_id)


class _Normalize(RecordStep):
    STEP = STEP
    NAMESPACE = "Normalize"

    def __init__(self, keyed: bool = False):
        super().__init__(keyed)
        self._by_lang = {lang: Metrics.counter("Normalize", f"articles_{lang}") for lang in LANGS}

    def setup(self):
        super().setup()
        self._detector = shared_detector()
        metrics = pipeline_metrics()
        self._metric = {lang: metrics.articles.labels(lang) for lang in LANGS}

    def apply(self, article: RawArticle) -> TaggedArticle:
        return normalize(article, self._detector)

    def emitted(self, result: TaggedArticle) -> None:
        self._by_lang[result.lang].inc()
        self._metric[result.lang].inc()


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
