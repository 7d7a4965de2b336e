"""Language pipelines for tagging: ``spacy.blank`` for en, ru and uk plus one component that
writes a *match key* into every token's ``LEMMA``.

The match key of a token is its lemma, lower-cased, with ``ё`` folded to ``е`` and every
apostrophe folded to ``'``. Topic terms and organization aliases are turned into patterns by
the same pipeline (:meth:`Pipelines.keys`), so a pattern and a text agree on every word form
whatever the lemmatizer decides, and PhraseMatcher can run on ``attr="LEMMA"``.

Lemmas come from data that ships in packages, never from a model download: English from the
lookup table of spacy-lookups-data, Russian and Ukrainian from pymorphy3 and its dictionaries
(first analysis, which is the most probable one). pymorphy3 costs ~25 µs per new word form,
so keys are cached per lower-case form (:class:`KeyCache`): once warm, the cache answers most
tokens with one dict lookup and Russian is no longer the bottleneck (docs/benchmarks.md).

Guarantees:

* A :class:`Pipelines` is built once per worker (in ``DoFn.setup``), never at import time.
* Memory is bounded: the key cache is capped (:data:`DEFAULT_MAX_CACHE` forms, cleared in
  one go when full) and :meth:`Pipelines.grown` tells the owner when spaCy's string store
  has grown past a limit, so it can build a fresh set of pipelines. Inside
  :meth:`Pipelines.memory_zone` (the batch path's workers, once warm) spaCy forgets the
  lexemes and strings first seen in a zone at its end; what stays is one key string per new
  form the key cache learned (re-added for good, :meth:`KeyCache.keep_zone_keys`), bounded by
  ``max_strings`` and the rebuild.
* The same text in the same language always gets the same keys, inside a memory zone
  (:meth:`Pipelines.memory_zone`) or not.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator

import numpy as np
import spacy
from spacy.attrs import IS_PUNCT, IS_SPACE, LEMMA, LOWER
from spacy.language import Language
from spacy.tokens import Doc

from newsradar.vocab import LANGUAGES

LANGS = LANGUAGES
COMPONENT = "newsradar_match_keys"

# Lower-case word forms kept per language; ~100 bytes each, so the default is ~50 MB at most.
DEFAULT_MAX_CACHE = 500_000
# spaCy's StringStore only grows; past this many strings the owner rebuilds the pipelines.
DEFAULT_MAX_STRINGS = 3_000_000
# spaCy's default tokenizer cache (10k chunks) is too small for news; a larger one makes the
# English tokenizer ~1.5x faster (docs/design.md, "Measured facts"). It stops growing when full.
TOKENIZER_CACHE = 1_000_000
# Texts keyed outside memory zones before :meth:`Pipelines.memory_zone` opens them: the
# vocabulary (lexemes, strings, tokenizer cache) of these stays, later texts' new words are
# freed at each zone's end. Inside a zone spaCy adds nothing to the tokenizer cache, and a
# word not in the vocabulary is looked up anew in every zone: warming first keeps that to
# the rare words (docs/benchmarks.md, "The bounded batch path").
WARM_TEXTS = 10_000

_LEXEME_ATTRS = frozenset({LOWER, IS_SPACE, IS_PUNCT})

_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'", "´": "'"})
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_UKRAINIAN_ONLY = re.compile(r"[іїєґІЇЄҐ]")
_RUSSIAN_ONLY = re.compile(r"[ыэъёЫЭЪЁ]")
_LATIN = re.compile(r"[A-Za-z]")
_WORDLIKE = re.compile(r"^[\w'\-]+$")
# Parts of speech whose forms (case, number, gender) occur inside names and terms; verbs are
# left out: their lexemes are large and a verb's forms key to its infinitive anyway.
_INFLECTED_POS = frozenset({"NOUN", "ADJF", "ADJS", "PRTF", "NUMR", "NPRO"})
# Forms looked at per analysis (an adjective has ~30, a participle more).
MAX_FORMS = 60
# Distinct keys kept per word; more than four means the word is too ambiguous to help.
MAX_KEYS_PER_WORD = 4


def fold(text: str) -> str:
    """Case-fold, ``ё``→``е`` and one apostrophe: the normal form keys and aliases are compared in."""
    return text.translate(_APOSTROPHES).casefold().replace("ё", "е")


def analysis_text(title: str, text: str) -> str:
    """The text tagging runs over: the title, a blank line, the body.

    Every offset newsradar reports (topic evidence, mention ``start``/``end``) is a Python
    string index into this text, so ``analysis_text(t, b)[m.start:m.end] == m.text``."""
    title = (title or "").strip()
    text = text or ""
    if not title:
        return text
    if not text:
        return title
    return f"{title}\n\n{text}"


def title_chars(title: str, text: str) -> int:
    """Where the headline ends in :func:`analysis_text` of the same two, or 0 when there is
    no headline apart from a body (only a title, or only a text)."""
    title = (title or "").strip()
    return len(title) if title and text else 0


def guess_lang(text: str) -> str:
    """A script-based fallback when no detector has named the language: Ukrainian when the
    text uses letters only Ukrainian has, Russian for other Cyrillic, else English."""
    sample = text[:4000]
    cyr = len(_CYRILLIC.findall(sample))
    lat = len(_LATIN.findall(sample))
    if cyr > lat:
        uk = len(_UKRAINIAN_ONLY.findall(sample))
        ru = len(_RUSSIAN_ONLY.findall(sample))
        return "uk" if uk > ru else "ru"
    return "en"


# ---------------------------------------------------------------------------
# lemmatizers: lower-case word form -> lemma (already lower-case)


class EnglishLemmas:
    """spacy-lookups-data's English lemma table, read by the hash of the lower-case form."""

    def __init__(self) -> None:
        from spacy.lookups import load_lookups

        self._table = load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")

    def __call__(self, form: str) -> str:
        if form in ("'s", "'"):
            # The table maps "'s" to "have" (contractions); as a possessive it is the
            # same mark as a bare apostrophe ("soldier's" ~ "soldiers'").
            return "'"
        lemma = self._table.get(form)
        return lemma.lower() if isinstance(lemma, str) else form


class MorphLemmas:
    """pymorphy3's most probable normal form for Cyrillic words; anything else is itself."""

    def __init__(self, lang: str) -> None:
        import pymorphy3

        self._morph = pymorphy3.MorphAnalyzer(lang=lang)

    @property
    def morph(self):
        return self._morph

    def __call__(self, form: str) -> str:
        if not _CYRILLIC.search(form) or not _WORDLIKE.match(form):
            return form
        return self._morph.parse(form)[0].normal_form


def lemmatizer_for(lang: str):
    if lang == "en":
        return EnglishLemmas()
    if lang in ("ru", "uk"):
        return MorphLemmas(lang)
    raise ValueError(f"no lemmatizer for language {lang!r}; expected one of {', '.join(LANGS)}")


class KeyCache(dict):
    """Hash of a lower-case form -> hash of its match key, filled on first sight.

    A dict subclass so that the hot loop is a C-level lookup; ``__missing__`` runs only for
    forms not seen since the last clear. Bounded: when it holds ``max_size`` forms it is
    cleared in one go (cheaper than LRU bookkeeping on every hit, and refills in seconds).
    """

    def __init__(self, strings, lemmatize, max_size: int = DEFAULT_MAX_CACHE):
        super().__init__()
        self._strings = strings
        self._lemmatize = lemmatize
        self.max_size = max_size
        self.misses = 0
        # Keys first added inside the open memory zone (None: no zone). spaCy frees them at
        # its end, while this cache keeps their hashes: :meth:`keep_zone_keys` adds them back.
        self.zone_keys: list[str] | None = None

    def keep_zone_keys(self) -> None:
        """After a memory zone: the keys added in it, added again for good, so a cached hash
        still reads back as its key (``token.lemma_``) in later zones."""
        for text in self.zone_keys or ():
            self._strings.add(text, allow_transient=False)
        self.zone_keys = None

    def key_of(self, form: str) -> str:
        form = fold(form)
        return fold(self._lemmatize(form))

    def __missing__(self, lower_hash: int) -> int:
        self.misses += 1
        text = self.key_of(self._strings[lower_hash])
        key = self._strings.add(text)
        if self.zone_keys is not None:
            self.zone_keys.append(text)
        if len(self) >= self.max_size:
            self.clear()
        self[lower_hash] = key
        return key


class MatchKeys:
    """The pipeline component: sets ``token.lemma`` to the token's match key."""

    def __init__(self, vocab, lang: str, max_cache: int = DEFAULT_MAX_CACHE):
        self.lang = lang
        self.cache = KeyCache(vocab.strings, lemmatizer_for(lang), max_cache)

    def __call__(self, doc: Doc) -> Doc:
        n = len(doc)
        if not n:
            return doc
        cache = self.cache
        lowers = doc.to_array(LOWER).tolist()
        keys = np.fromiter((cache[h] for h in lowers), dtype=np.uint64, count=n)
        doc.from_array([LEMMA], keys.reshape(n, 1))
        return doc


@Language.factory(COMPONENT, default_config={"max_cache": DEFAULT_MAX_CACHE})
def make_match_keys(nlp: Language, name: str, max_cache: int) -> MatchKeys:
    return MatchKeys(nlp.vocab, nlp.lang, max_cache)


def blank_pipeline(lang: str, max_cache: int = DEFAULT_MAX_CACHE) -> Language:
    """``spacy.blank(lang)`` with a large tokenizer cache and the match-key component."""
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {', '.join(LANGS)}")
    nlp = spacy.blank(lang)
    nlp.tokenizer.max_cache_size = TOKENIZER_CACHE
    # spaCy computes ~23 attributes in Python for every word form it has not seen (20 µs);
    # news brings new forms all the time and nothing here reads more than these (8 µs).
    # Attributes left out (is_alpha, like_num, shape, ...) read as 0 on these pipelines.
    getters = nlp.vocab.lex_attr_getters
    nlp.vocab.lex_attr_getters = {k: v for k, v in getters.items() if k in _LEXEME_ATTRS}
    nlp.add_pipe(COMPONENT, config={"max_cache": max_cache})
    return nlp


class Pipelines:
    """One blank pipeline per language, built once (per worker) and reused for every text."""

    def __init__(self, langs=LANGS, max_cache: int = DEFAULT_MAX_CACHE, max_strings: int = DEFAULT_MAX_STRINGS,
                 warm_texts: int | None = None):
        self.nlp = {lang: blank_pipeline(lang, max_cache) for lang in langs}
        self.max_strings = max_strings
        self.warm_texts = WARM_TEXTS if warm_texts is None else warm_texts
        self.texts = 0  # texts keyed so far
        self._inflections: dict[tuple[str, str], tuple[str, ...]] = {}

    @contextlib.contextmanager
    def memory_zone(self) -> Iterator[bool]:
        """A block after which spaCy forgets the words first seen in it (lexemes, strings),
        once :attr:`warm_texts` texts have been keyed (before that: no zone; yields whether
        one is open). No Doc, Token or Span of the block may be used after it: take plain
        values out. Patterns (a Tagger's matchers) must be built outside a zone."""
        if self.texts < self.warm_texts:
            yield False
            return
        caches = [nlp.get_pipe(COMPONENT).cache for nlp in self.nlp.values()]
        try:
            with contextlib.ExitStack() as zones:
                for nlp in self.nlp.values():
                    zones.enter_context(nlp.memory_zone())
                for cache in caches:
                    cache.zone_keys = []
                yield True
        finally:
            for cache in caches:
                cache.keep_zone_keys()

    @property
    def langs(self) -> tuple[str, ...]:
        return tuple(self.nlp)

    def __call__(self, text: str, lang: str) -> Doc:
        """Tokenize and key ``text`` with the pipeline of ``lang`` (which must be built)."""
        self.texts += 1
        return self.nlp[lang](text)

    def keys(self, phrase: str, lang: str) -> tuple[str, ...]:
        """The match keys of a phrase as the pipeline of ``lang`` sees it, spaces dropped."""
        return tuple(t.lemma_ for t in self.nlp[lang](phrase) if not t.is_space)

    def key_of_word(self, word: str, lang: str) -> str:
        return self.nlp[lang].get_pipe(COMPONENT).cache.key_of(word)

    def morph(self, lang: str):
        """The pymorphy3 analyzer behind ``lang`` (ru, uk), or None for English."""
        lemmatize = self.nlp[lang].get_pipe(COMPONENT).cache._lemmatize
        return lemmatize.morph if isinstance(lemmatize, MorphLemmas) else None

    def inflection_keys(self, word: str, lang: str) -> tuple[str, ...]:
        """The keys a word's case and number forms get, the word's own key first.

        pymorphy3's first analysis is not the same lexeme for every form of a word
        (Ukrainian "рада" -> "рад", "радою" -> "рада"), so a pattern built from one form
        can miss another. Inflecting the word into every case and number and keying each
        form with the same lemmatizer collects every key a form of it can get."""
        cached = self._inflections.get((lang, word))
        if cached is not None:
            return cached
        base = self.key_of_word(word, lang)
        morph = self.morph(lang)
        keys = [base]
        if morph is not None and is_cyrillic(word) and _WORDLIKE.match(word):
            seen_forms = set()
            for parse in morph.parse(fold(word))[:2]:
                if parse.tag.POS not in _INFLECTED_POS:
                    continue
                for form in parse.lexeme[:MAX_FORMS]:
                    if form.word in seen_forms:
                        continue
                    seen_forms.add(form.word)
                    key = self.key_of_word(form.word, lang)
                    if key not in keys:
                        keys.append(key)
        result = tuple(keys[:MAX_KEYS_PER_WORD])
        if len(self._inflections) >= DEFAULT_MAX_CACHE:
            self._inflections.clear()
        self._inflections[(lang, word)] = result
        return result

    def phrase_positions(self, phrase: str, lang: str) -> list[tuple[str, ...]]:
        """Per word of ``phrase`` (spaces dropped), the keys its forms can get, its own key first."""
        positions = []
        for token in self.nlp[lang](phrase):
            if token.is_space:
                continue
            if lang in ("ru", "uk") and is_cyrillic(token.text) and not token.is_punct:
                options = self.inflection_keys(token.text, lang)
                if token.lemma_ not in options:
                    options = (token.lemma_, *options)
            else:
                options = (token.lemma_,)
            positions.append(options)
        return positions

    def phrase_variants(self, phrase: str, lang: str, max_variants: int = 32) -> list[tuple[str, ...]]:
        """Key sequences that match ``phrase`` in any inflected form, its plain keys first.

        Each word contributes its :meth:`inflection_keys`; the sequences are the product,
        capped at ``max_variants`` (aliases with several ambiguous words are rare)."""
        positions = self.phrase_positions(phrase, lang)
        if not positions:
            return []
        out: list[tuple[str, ...]] = []
        for combo in itertools.product(*positions):
            out.append(combo)
            if len(out) >= max_variants:
                break
        return out

    def grown(self) -> bool:
        """True when some string store has grown past ``max_strings`` since the build."""
        return any(len(nlp.vocab.strings) > self.max_strings for nlp in self.nlp.values())

    def cache_stats(self) -> dict[str, tuple[int, int]]:
        """Per language: (cached forms, misses so far)."""
        out = {}
        for lang, nlp in self.nlp.items():
            cache = nlp.get_pipe(COMPONENT).cache
            out[lang] = (len(cache), cache.misses)
        return out


def is_cyrillic(text: str) -> bool:
    return bool(_CYRILLIC.search(text))

