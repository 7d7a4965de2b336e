"""Organizations nobody is watching yet: organization-like names in tagged articles that are
not on the watchlist, counted per name across articles and stories, ranked.

Three ways a name is found in an article (:class:`Finder`), over the same keyed Doc the
tagger uses (:mod:`transforms.nlp`):

* ``quotes``: a short capitalised name in quotation marks («Голос запаса», "Way Home",
  „…“); a one-word one only right after an organization word (движение «Весна»); never right
  after a word that says it is a film, a cinema or a memorial (:data:`transforms.orgs.OTHER_HEADS`);
  never a quoted sentence (a comma or a full stop inside).
* ``head``: a capitalised name built on an organization word (:data:`HEADS`): in English a
  run of capitalised words and "of", "and", "for" around one ("Council of Reservists'
  Families"); in Russian and Ukrainian the capitalised head with the genitive words after it
  (and one capitalised adjective before it): "Совет семей запасников", "Рада матерів".
* ``ner``: ORG entities of slovnet's Russian news model (:mod:`transforms.ner`), only when
  asked and only on Russian articles that carry a watched topic (it costs ~100x the rest).

Guarantees:

* A watched name is never a candidate: a span that overlaps one of the article's mentions,
  contains a full alias or acronym of a watched organization in any form the matcher knows
  (inflections, transliterations, synonym swaps: :meth:`transforms.orgs.OrgMatcher.names_in`),
  or is exactly one of its generic aliases, is dropped.
* Inflected forms are one candidate: names are grouped by their match keys (the lemmas the
  tagger compares aliases in), so «Совета семей запасников» and «Совет семей запасников» count
  together, and every form seen is kept (:attr:`Ranked.forms`, the stub's aliases).
* Stop-names are dropped: a name whose words are all organization words and places (the
  countries' cues of the watchlist and :data:`STOP_WORDS`: "the Ministry", "Совет Европы",
  "Министерство России").
* Everything is a pure function of the articles and the watchlist: the same input gives the
  same candidates in the same order.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import yaml
from spacy.attrs import LEMMA, ORTH
from spacy.tokens import Doc

from newsradar.config.watchlist import Watchlist
from newsradar.records import TaggedArticle
from newsradar.text import blank_long_words

from . import translit
from .nlp import Pipelines, analysis_text, fold, guess_lang, is_cyrillic
from .orgs import OTHER_HEADS, OrgMatcher

# Words that head an organization's name, per language (any inflection).
HEADS: dict[str, tuple[str, ...]] = {
    "en": ("council", "committee", "union", "movement", "ministry", "party", "foundation", "fund",
           "association", "league", "alliance", "coalition", "society", "organization", "organisation"),
    "ru": ("совет", "комитет", "союз", "движение", "министерство", "партия", "фонд", "ассоциация",
           "объединение", "организация", "лига", "альянс", "коалиция", "общество"),
    "uk": ("рада", "комітет", "спілка", "рух", "міністерство", "партія", "фонд", "союз", "асоціація",
           "об'єднання", "організація", "ліга", "альянс", "коаліція", "товариство"),
}
# Places and bodies that are not candidates on their own, besides the watchlist's country cues.
STOP_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("russia", "russian", "ukraine", "ukrainian", "moscow", "kyiv", "kiev", "europe", "european",
           "america", "american", "us", "usa", "uk", "eu", "nato", "un", "united", "nations", "state",
           "national", "federal", "government", "kremlin", "security", "defence", "defense", "the"),
    "ru": ("россия", "российский", "украина", "украинский", "москва", "киев", "европа", "европейский",
           "сша", "ес", "нато", "оон", "федерация", "государственный", "правительство", "кремль",
           "рф", "безопасность", "оборона", "федеральный", "национальный"),
    "uk": ("росія", "російський", "україна", "український", "москва", "київ", "європа", "європейський",
           "сша", "єс", "нато", "оон", "федерація", "державний", "уряд", "кремль", "безпека", "оборона",
           "національний"),
}
_EN_LINKS = frozenset({"of", "and", "for", "on", "the", "'s", "'", "’s", "’"})
_CONJUNCTIONS = frozenset({"и", "та", "і", "й"})
_QUOTES_OPEN = frozenset("«\"“„")
_QUOTES_CLOSE = frozenset("»\"”“")
_INSIDE_STOPS = frozenset({",", ".", "!", "?", "…", ":", ";", "—", "–"})
MAX_NAME_WORDS = 6
# Characters of text on each side of a name in an example snippet.
SNIPPET_SIDE = 90
MAX_EXAMPLES = 3
# Story ids remembered per candidate (a name in more stories than this counts this many).
MAX_STORIES = 1000

_PREFERENCE = {"quotes": 0, "head": 1, "ner": 2}
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Found:
    """One name in one article."""

    key: str  # the name's match keys, space-separated: what groups its inflected forms
    text: str  # as written
    start: int  # offsets into the analyzed text (as mentions' are)
    end: int
    via: str  # quotes, head or ner
    head: str | None = None  # the organization word right before a quoted name, in its dictionary form


class Finder:
    """Finds candidate names in tagged articles; built once per worker (it compiles the
    watchlist's name patterns, as the tagger does). ``ner=True`` adds slovnet's ORG
    entities on Russian articles with a topic (the model loads on first use)."""

    def __init__(self, watchlist: Watchlist, pipelines: Pipelines | None = None, ner: bool = False):
        self.watchlist = watchlist
        self.pipelines = pipelines if pipelines is not None else Pipelines()
        self.ner = ner
        p = self.pipelines
        self._matchers = {lang: OrgMatcher(watchlist.organizations, p, lang) for lang in p.langs}
        self._heads = {lang: self._keys_of(HEADS.get(lang, ()), lang) for lang in p.langs}
        self._other_heads = {lang: self._keys_of(OTHER_HEADS.get(lang, ()), lang) for lang in p.langs}
        self._stop_words: dict[str, frozenset[str]] = {}
        self._stop_phrases: dict[str, frozenset[str]] = {}
        for lang in p.langs:
            words, phrases = set(self._keys_of(STOP_WORDS.get(lang, ()), lang)), set()
            for country in watchlist.countries:
                for cue in country.cues.get(lang, ()):
                    keys = p.keys(cue.term, lang)
                    (words.update(keys) if len(keys) == 1 else phrases.add(" ".join(keys)))
            self._stop_words[lang], self._stop_phrases[lang] = frozenset(words), frozenset(phrases)
        self._genitive = functools.lru_cache(maxsize=100_000)(self._is_genitive)
        strings = {lang: p.nlp[lang].vocab.strings for lang in p.langs}
        self._head_hashes = {lang: np.array(sorted(strings[lang].add(k) for k in self._heads[lang]), dtype=np.uint64)
                             for lang in p.langs}
        # Where a name can start, as one regex over the text (a superset, for Latin and Cyrillic
        # capitals): an opening quote before a capital, or a capital and the first three letters
        # of an organization word ("Сою" for every form of "Союз").
        self._might_hold_a_name = {
            lang: re.compile("|".join([r"[«„“\"]\s*[A-ZА-ЯЁІЇЄҐ]", *sorted(
                {re.escape(w[:3].capitalize()) for w in HEADS.get(lang, ())})]))
            for lang in p.langs}
        first = p.langs[0]
        self._quote_hashes = np.array(sorted(strings[first].add(q) for q in _QUOTES_OPEN), dtype=np.uint64)

    def _keys_of(self, words: Iterable[str], lang: str) -> frozenset[str]:
        out: set[str] = set()
        for word in words:
            out.update(self.pipelines.inflection_keys(word, lang) if lang in ("ru", "uk")
                       else (self.pipelines.key_of_word(word, lang),))
        return frozenset(out)

    def pipeline_lang(self, lang: str | None, text: str) -> str:
        if lang in self.pipelines.nlp:
            return lang
        guessed = guess_lang(text)
        return guessed if guessed in self.pipelines.nlp else self.pipelines.langs[0]

    # -- finding -----------------------------------------------------------

    def find(self, tagged: TaggedArticle, max_chars: int = 200_000) -> tuple[str, list[Found]]:
        """The article's analysis language and its candidate names, in text order (one per
        span: overlapping finds keep the longest)."""
        raw = tagged.article
        full = analysis_text(raw.title, raw.text)[:max_chars]
        lang = self.pipeline_lang(tagged.lang, full)
        use_ner = self.ner and lang == "ru" and bool(tagged.topics)
        if not use_ner and not self._might_hold_a_name[lang].search(full):
            return lang, []  # no capitalised word after a quote or like an organization word: nothing to tokenize
        doc = self.pipelines(blank_long_words(full), lang)
        spans: list[tuple[int, int, str, str | None]] = []  # token start, end, via, head
        # Only tokens at an opening quote or an organization word start a name: find those
        # in the Doc's arrays, and make Token objects only around them (most of the cost).
        lemmas, orths = doc.to_array(LEMMA), doc.to_array(ORTH)
        heads_at = np.flatnonzero(np.isin(lemmas, self._head_hashes[lang])).tolist()
        spans.extend(self._quoted(doc, lang, np.flatnonzero(np.isin(orths, self._quote_hashes)).tolist()))
        spans.extend(self._headed(doc, lang, heads_at))
        if use_ner:
            spans.extend(self._entities(doc, full))
        if not spans:
            return lang, []
        watched = self._matchers[lang].names_in(doc)
        mentioned = [(m.start, m.end) for m in tagged.mentions]
        found = []
        for start, end, via, head in _longest_first(spans):
            content = [t for t in doc[start:end] if not (t.is_punct or t.is_space)]
            if not content:
                continue
            char_start, char_end = doc[start].idx, doc[end - 1].idx + len(doc[end - 1].text)
            if any(s < char_end and char_start < e for s, e in mentioned):
                continue
            if _is_watched(start, end, watched):
                continue
            keys = [t.lemma_ for t in content]
            if self._is_stop(keys, lang):
                continue
            found.append(Found(" ".join(keys), full[char_start:char_end], char_start, char_end, via, head))
        found.sort(key=lambda f: f.start)
        return lang, found

    def _quoted(self, doc: Doc, lang: str, positions: list[int]):
        heads, others = self._heads[lang], self._other_heads[lang]
        n = len(doc)
        for i in positions:
            token = doc[i]
            if token.text not in _QUOTES_OPEN or (token.text == '"' and token.whitespace_):
                continue
            j = i + 1
            while j < n and j - i <= MAX_NAME_WORDS + 1 and doc[j].text not in _QUOTES_CLOSE:
                if doc[j].text in _INSIDE_STOPS or doc[j].is_space or "\n" in doc[j].whitespace_:
                    break
                j += 1
            if j >= n or doc[j].text not in _QUOTES_CLOSE or j == i + 1 or j - i - 1 > MAX_NAME_WORDS:
                continue
            first = doc[i + 1].text
            if not first[:1].isupper():
                continue
            before = _word_before(doc, i)
            if before is not None and doc[before].lemma_ in others:
                continue
            head = self._normal(doc[before].text, lang) if before is not None and doc[before].lemma_ in heads else None
            if j - i - 1 == 1 and head is None:
                continue
            yield i + 1, j, "quotes", head

    def _headed(self, doc: Doc, lang: str, positions: list[int]):
        n = len(doc)
        for i in positions:
            token = doc[i]
            if not token.text[:1].isupper():
                continue
            if lang == "en":
                start, end = i, i + 1
                while start > 0 and i - start < 4 and (_capitalised(doc[start - 1]) or doc[start - 1].lower_ in ("'", "’", "'s", "’s")):
                    start -= 1
                while end < n and end - start < MAX_NAME_WORDS + 3 and (_capitalised(doc[end]) or doc[end].lower_ in _EN_LINKS):
                    end += 1
                while end > i + 1 and doc[end - 1].lower_ in _EN_LINKS:
                    end -= 1
                while start < i and doc[start].lower_ in _EN_LINKS | {"the"}:
                    start += 1
                words = [t for t in doc[start:end] if t.lower_ not in _EN_LINKS and not t.is_punct]
                if len(words) >= 2:
                    yield start, end, "head", None
                continue
            if i + 1 < n and doc[i + 1].text in _QUOTES_OPEN:
                continue  # движение «…»: the quoted name is the name
            start, end = i, i + 1
            if i > 0 and _capitalised(doc[i - 1]) and self._is_adjective(doc[i - 1].text, lang):
                start = i - 1
            words = 0
            while end < n and words < MAX_NAME_WORDS:
                t = doc[end]
                if self._genitive(t.text, lang):
                    end += 1
                elif t.lower_ in _CONJUNCTIONS and end + 1 < n and self._genitive(doc[end + 1].text, lang):
                    end += 2
                else:
                    break
                words += 1
            if end - start >= 2:
                yield start, end, "head", None

    def _entities(self, doc: Doc, text: str):
        from .ner import organizations

        for char_start, char_stop in organizations(text):
            span = doc.char_span(char_start, char_stop, alignment_mode="expand")
            if span is None:
                continue
            start, end = span.start, span.end
            for k in range(start, end):  # a name does not run across lines (a title and its text)
                if doc[k].is_space or "\n" in doc[k].whitespace_:
                    end = k + (0 if doc[k].is_space else 1)
                    break
            while end > start and doc[end - 1].is_punct and doc[end - 1].text not in _QUOTES_CLOSE:
                end -= 1
            words = [t for t in doc[start:end] if not (t.is_punct or t.is_space)]
            # One word alone is a name only as an acronym ("ФАС"); the model also tags a
            # capitalised title word ("Пикет") as ORG.
            if len(words) == 1 and not (words[0].text.isupper() and len(words[0].text) >= 2):
                continue
            if words and any(_capitalised(t) for t in words):
                yield start, end, "ner", None

    def _is_genitive(self, word: str, lang: str) -> bool:
        morph = self.pipelines.morph(lang)
        if morph is None or not is_cyrillic(word) or not word.isalpha():
            return False
        return any("gent" in parse.tag for parse in morph.parse(word.lower())[:3])

    def _normal(self, word: str, lang: str) -> str:
        """A word's dictionary form ("движения" -> "движение"), for the stub's ``heads``."""
        morph = self.pipelines.morph(lang)
        if morph is None or not is_cyrillic(word):
            return fold(word)
        return morph.parse(word.lower())[0].normal_form

    def _is_adjective(self, word: str, lang: str) -> bool:
        morph = self.pipelines.morph(lang)
        return morph is not None and is_cyrillic(word) and morph.parse(word.lower())[0].tag.POS == "ADJF"

    def _is_stop(self, keys: list[str], lang: str) -> bool:
        if " ".join(keys) in self._stop_phrases[lang]:
            return True
        ordinary = self._stop_words[lang] | self._heads[lang]
        return all(k in ordinary or k in _EN_LINKS or k in _CONJUNCTIONS for k in keys)


def _capitalised(token) -> bool:
    return token.text[:1].isupper() and token.text.isalpha()


def _word_before(doc: Doc, i: int) -> int | None:
    j = i - 1
    while j >= 0 and (doc[j].is_punct or doc[j].is_space):
        j -= 1
    return j if j >= 0 and i - j <= 2 else None


def _is_watched(start: int, end: int, watched: list[tuple[str, int, int, int]]) -> bool:
    """A full name of a watched organization inside the span, or exactly one of its
    generic names ("Минобороны" alone is watched; "Министерство обороны Беларуси" is not)."""
    for _org, s, e, generic in watched:
        if generic == 0 and start <= s and e <= end:
            return True
        if s <= start and end <= e:
            return True
    return False


def _longest_first(spans):
    """Spans without overlaps: quotes before head before ner (a quoted name is the name:
    the model's «Движение «Голос запаса»» and "Активистки «Голоса запаса»" are «Голос запаса»),
    then the longest."""
    ordered = sorted(spans, key=lambda s: (_PREFERENCE[s[2]], -(s[1] - s[0]), s[0]))
    kept: list[tuple[int, int, str, str | None]] = []
    for span in ordered:
        if all(span[1] <= k[0] or k[1] <= span[0] for k in kept):
            kept.append(span)
    return kept


def snippet(text: str, start: int, end: int, side: int = SNIPPET_SIDE) -> str:
    lo, hi = max(0, start - side), min(len(text), end + side)
    out = _SPACES.sub(" ", text[lo:hi]).strip()
    return ("…" if lo else "") + out + ("…" if hi < len(text) else "")


# ---------------------------------------------------------------------------
# counting and ranking


@dataclass(frozen=True, slots=True)
class Example:
    article_id: str
    url: str
    snippet: str


@dataclass
class Tally:
    """What is known about one candidate name so far; :meth:`merge` is associative, so
    tallies of parts of the input (workers, bundles) add up to the tally of the whole."""

    key: str
    lang: str
    forms: Counter = field(default_factory=Counter)
    heads: Counter = field(default_factory=Counter)
    found_by: Counter = field(default_factory=Counter)
    stories: set = field(default_factory=set)
    articles: int = 0
    topic_articles: int = 0
    topics: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)  # from articles with a topic, first seen first

    def add(self, tagged: TaggedArticle, found: list[Found]) -> None:
        """One article's finds of this name (at least one)."""
        self.articles += 1
        if len(self.stories) < MAX_STORIES:
            self.stories.add(tagged.story_id)
        for f in found:
            self.forms[f.text] += 1
            self.found_by[f.via] += 1
            if f.head:
                self.heads[fold(f.head)] += 1
        if tagged.topics:
            self.topic_articles += 1
            self.topics.update(t.id for t in tagged.topics)
            if len(self.examples) < MAX_EXAMPLES:
                raw = tagged.article
                text = analysis_text(raw.title, raw.text)
                self.examples.append(Example(raw.article_id, raw.url, snippet(text, found[0].start, found[0].end)))

    def merge(self, other: Tally) -> Tally:
        self.forms.update(other.forms)
        self.heads.update(other.heads)
        self.found_by.update(other.found_by)
        room = MAX_STORIES - len(self.stories)
        new = other.stories - self.stories
        self.stories |= new if len(new) <= room else set(sorted(new)[:max(0, room)])
        self.articles += other.articles
        self.topic_articles += other.topic_articles
        self.topics.update(other.topics)
        self.examples = (self.examples + [e for e in other.examples if e not in self.examples])[:MAX_EXAMPLES]
        return self

    @property
    def topic_share(self) -> float:
        return self.topic_articles / self.articles if self.articles else 0.0

    @property
    def score(self) -> float:
        """Distinct stories weighted by topic share: the ranking."""
        return len(self.stories) * self.topic_share


def tally(articles: Iterable[TaggedArticle], finder: Finder, tallies: dict | None = None) -> dict[tuple[str, str], Tally]:
    """Every candidate name of ``articles``, by (language, key)."""
    tallies = {} if tallies is None else tallies
    for tagged in articles:
        add_article(tallies, finder, tagged)
    return tallies


def add_article(tallies: dict, finder: Finder, tagged: TaggedArticle) -> None:
    """One article's names into ``tallies``. A later version of an article (``is_update``)
    adds nothing: the article was counted at its first version."""
    if tagged.is_update:
        return
    lang, found = finder.find(tagged)
    by_key: dict[str, list[Found]] = {}
    for f in found:
        by_key.setdefault(f.key, []).append(f)
    for key, finds in by_key.items():
        t = tallies.get((lang, key))
        if t is None:
            t = tallies[(lang, key)] = Tally(key, lang)
        t.add(tagged, finds)


@dataclass(frozen=True)
class Ranked:
    key: str
    lang: str
    name: str
    forms: tuple[str, ...]  # every form seen, most frequent first
    stories: int
    articles: int
    topic_share: float
    topics: tuple[str, ...]  # the watched topics it appeared with, most frequent first
    found_by: tuple[str, ...]
    heads: tuple[str, ...]
    examples: tuple[Example, ...]
    score: float


def rank(tallies: Iterable[Tally], min_stories: int = 1, limit: int | None = None) -> list[Ranked]:
    """Candidates seen with a watched topic in at least ``min_stories`` stories, best first:
    by distinct stories times topic share, then stories, then name."""
    chosen = [t for t in tallies if t.topic_articles and len(t.stories) >= min_stories]
    chosen.sort(key=lambda t: (-t.score, -len(t.stories), t.lang, t.key))
    out = []
    for t in chosen[:limit]:
        forms = tuple(f for f, _ in sorted(t.forms.items(), key=lambda kv: (-kv[1], kv[0])))
        out.append(Ranked(
            key=t.key, lang=t.lang, name=_display_name(forms, t.key), forms=forms, stories=len(t.stories),
            articles=t.articles, topic_share=round(t.topic_share, 3),
            topics=tuple(k for k, _ in sorted(t.topics.items(), key=lambda kv: (-kv[1], kv[0]))),
            found_by=tuple(sorted(t.found_by)), heads=tuple(h for h, _ in t.heads.most_common()),
            examples=tuple(t.examples), score=round(t.score, 3)))
    return out


def _display_name(forms: tuple[str, ...], key: str) -> str:
    """The form whose first word is its own lemma (the nominative), else the most frequent."""
    first_key = key.split(" ", 1)[0]
    for form in forms:
        words = form.split()
        if words and fold(words[0]) == first_key:
            return form
    return forms[0]


# ---------------------------------------------------------------------------
# the watchlist stub


def stub(candidate: Ranked, taken: Iterable[str] = ()) -> dict:
    """A watchlist ``organizations:`` entry for the candidate: an id not in ``taken``, its
    name, its forms as aliases; a name found in quotes after an organization word gets
    ``case: proper`` and those words as ``heads`` (so the film of the same name stays out)."""
    base = _slug(candidate.name, candidate.lang) or "candidate"
    taken = set(taken)
    oid, n = base, 2
    while oid in taken:
        oid, n = f"{base[:60]}-{n}", n + 1
    proper = bool(candidate.heads)
    aliases = [{"text": f, "case": "proper"} if proper else f for f in candidate.forms]
    entry: dict = {"id": oid, "name": candidate.name, "aliases": {candidate.lang: aliases}}
    if proper:
        entry["heads"] = {candidate.lang: list(candidate.heads)}
    return entry


def stub_yaml(candidate: Ranked, taken: Iterable[str] = ()) -> str:
    """:func:`stub` as YAML, a list item to paste under ``organizations:``."""
    text = yaml.safe_dump([stub(candidate, taken)], allow_unicode=True, sort_keys=False, default_flow_style=None,
                          width=120)
    return "".join("  " + line + "\n" for line in text.splitlines())


def _slug(name: str, lang: str) -> str:
    latin = translit.to_latin(name, lang)[0] if is_cyrillic(name) else name
    slug = re.sub(r"[^a-z0-9]+", "-", latin.lower()).strip("-")
    return slug[:64].rstrip("-")
