"""Find watched organizations in a keyed Doc: aliases in every inflected form, acronyms,
transliterations and synonym-swapped rewrites.

One :class:`OrgMatcher` per language holds two PhraseMatchers over that language's vocab:

* on ``LEMMA`` (the match key, :mod:`transforms.nlp`): the language's own aliases as the key
  sequences of all their inflected forms; the other languages' aliases as written (a
  Ukrainian text quoting a Russian name); transliterations (``translit``: Latin spellings of
  Cyrillic aliases in English text, a Cyrillic spelling of short Latin aliases in Russian and
  Ukrainian text); own aliases with up to two words swapped for a listed synonym (``fuzzy``,
  :mod:`transforms.synonyms`). Case-insensitive by construction.
* on ``ORTH``: acronyms, case-sensitive as written ("UCSMR", "МО РФ").

A mention's ``match`` is ``exact`` when its surface, case-folded, is one of the
organization's names as written, ``lemma`` when it is another form of one, ``translit`` or
``fuzzy`` as above (``fuzzy`` also covers coordinated words in the other order, "Council of
Wives and Mothers"). Names marked ``case: proper`` (names that are also ordinary words) count
only when written as a name and supported: see :meth:`OrgMatcher._name_like`. Aliases marked
``generic`` ("Минобороны", "the Defense Ministry") count only when the article resolves them
(:meth:`OrgMatcher._resolve_generic`); such a mention is ``contextual`` and says what
resolved it in ``resolved_by``.

Guarantees: offsets are indices into the analyzed text; overlapping candidates resolve to
the longest span (names before transliterations before fuzzy), two organizations on the
very same span both stay; at most :data:`MAX_MENTIONS` mentions per article.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from newsradar.config.watchlist import Country, Organization
from newsradar.records import Mention

from . import synonyms, translit
from .nlp import Pipelines, fold, is_cyrillic

# Kinds in order of preference when candidates overlap.
NAME, TRANSLIT, FUZZY = "name", "translit", "fuzzy"
_RANK = {NAME: 0, TRANSLIT: 1, FUZZY: 2}
MAX_MENTIONS = 50
# Words on either side of a ``case: proper`` name searched for a context word.
CONTEXT_WINDOW = 8
# Words on either side of a ``case: proper`` name searched for a head word ("движение").
HEAD_WINDOW = 3
# Evidence a generic alias needs: cue weight (country cues plus the organization's context
# words) of at least this, and more than any other country has.
MIN_RESOLVING_EVIDENCE = 1.0
# The article's language counts as this much of a cue for the countries that list it.
LANGUAGE_CUE = 0.5
# A country cue in the headline weighs this many times its weight: the headline says what
# the story is about ("Ukrainian MPs shelve bill ..." over a body that names nobody).
TITLE_CUE_FACTOR = 2.0
# Cue words named in ``resolved_by``.
MAX_NAMED_CUES = 4
# Distinct context words anywhere in the article that support a ``case: proper`` name as
# well as one near it does ("«Единая Россия» ... выборы в Госдуму").
ARTICLE_CONTEXT = 2
# Words right before a quoted or capitalised name that say it names something else: a film,
# a cinema, a memorial ("фильм «Путь домой»", "кинотеатр «Весна»"). They veto the name.
OTHER_HEADS: dict[str, tuple[str, ...]] = {
    "en": ("film", "movie", "series", "cinema", "book", "novel", "song", "album", "play", "restaurant", "cafe",
           "shop", "store", "memorial", "monument", "street", "hotel", "drama", "documentary", "titled", "entitled"),
    "ru": ("фильм", "сериал", "кинотеатр", "кинофестиваль", "книга", "роман", "песня", "альбом", "спектакль",
           "ресторан", "кафе", "магазин", "мемориал", "памятник", "улица", "санаторий", "гостиница", "отель",
           "драма", "картина"),
    "uk": ("фільм", "серіал", "кінотеатр", "книга", "роман", "пісня", "альбом", "вистава", "ресторан", "кафе",
           "магазин", "меморіал", "пам'ятник", "вулиця", "санаторій", "готель", "драма", "стрічка"),
}
# Words right before a generic name that make it another body: "the civil defence ministry"
# (an emergencies ministry) is no defence ministry. They veto the generic name.
GENERIC_VETO_BEFORE: dict[str, tuple[str, ...]] = {
    "en": ("civil",),
}
# Other countries, whose name beside a generic name makes it that country's body: "Poland's
# Defence Ministry", "the Polish Defence Ministry", "Минобороны Финляндии", "Міноборони
# Литви" (a story about a drone over Poland names Russia too, and the short name is not
# Russia's). English: the country's name before "'s" or its adjective right before the name, or
# "of" and the name right after it; Russian and Ukrainian: the name right after it (the
# genitive). Only countries that no `countries:` entry of the watchlist describes belong here.
OTHER_COUNTRIES: dict[str, tuple[str, ...]] = {
    "en": ("Poland", "Polish", "Finland", "Finnish", "Lithuania", "Lithuanian", "Latvia", "Latvian", "Estonia",
           "Estonian", "Germany", "German", "France", "French", "Britain", "British", "UK", "US", "U.S.",
           "America", "American", "Belarus", "Belarusian", "Moldova", "Moldovan", "Romania", "Romanian",
           "Georgia", "Georgian", "Kazakhstan", "Israel", "Israeli", "Turkey", "Turkish", "China", "Chinese",
           "Japan", "Japanese", "Norway", "Norwegian", "Sweden", "Swedish", "Denmark", "Danish", "Hungary",
           "Hungarian", "Slovakia", "Slovak", "Czech", "Italy", "Italian", "Spain", "Spanish", "Canada",
           "Canadian", "Australia", "Australian", "India", "Indian", "Iran", "Iranian", "Armenia", "Armenian",
           "Azerbaijan", "Azerbaijani", "Netherlands", "Dutch", "Bulgaria", "Bulgarian", "Serbia", "Serbian"),
    "ru": ("Польша", "Финляндия", "Литва", "Латвия", "Эстония", "Германия", "Франция", "Великобритания", "США",
           "Белоруссия", "Беларусь", "Молдавия", "Молдова", "Румыния", "Грузия", "Казахстан", "Израиль", "Турция",
           "Китай", "Япония", "Норвегия", "Швеция", "Дания", "Венгрия", "Словакия", "Чехия", "Италия", "Испания",
           "Канада", "Австралия", "Индия", "Иран", "Армения", "Азербайджан", "Нидерланды", "Болгария", "Сербия"),
    "uk": ("Польща", "Фінляндія", "Литва", "Латвія", "Естонія", "Німеччина", "Франція", "Велика Британія",
           "Британія", "США", "Білорусь", "Молдова", "Румунія", "Грузія", "Казахстан", "Ізраїль", "Туреччина",
           "Китай", "Японія", "Норвегія", "Швеція", "Данія", "Угорщина", "Словаччина", "Чехія", "Італія",
           "Іспанія", "Канада", "Австралія", "Індія", "Іран", "Вірменія", "Азербайджан", "Нідерланди",
           "Болгарія", "Сербія"),
}
# A generic name that says only "the ministry" (``generic: mention``) takes the last ministry
# named before it: a foreign ministry named after "Russia's Defence Ministry" ("... the foreign
# ministry summoned the envoy; the ministry said") is the antecedent, and the mention nobody's.
OTHER_MINISTRIES: dict[str, tuple[str, ...]] = {
    "en": ("foreign ministry", "ministry of foreign affairs", "foreign office"),
    "ru": ("МИД", "министерство иностранных дел"),
    "uk": ("МЗС", "міністерство закордонних справ"),
}
# Latin aliases of at most this many words also get a Cyrillic spelling; longer ones are
# translated, not transliterated, by Russian and Ukrainian writers.
MAX_WORDS_TO_CYRILLIC = 2
MAX_FUZZY_PER_ALIAS = 16

_QUOTES_OPEN = frozenset("«\"“„'‘‹")
_QUOTES_CLOSE = frozenset("»\"”“'’›")
_SENTENCE_END = frozenset({".", "!", "?", "…", "...", ":", ";"})


@dataclass(frozen=True, slots=True)
class _Label:
    org: int
    kind: str
    proper: bool
    generic: int = 0  # Alias.generic_level


@dataclass(frozen=True, slots=True)
class _Candidate:
    org: int
    start: int  # token indices
    end: int
    kind: str
    proper: bool = False
    generic: int = 0
    resolved_by: str | None = None


def _alias_texts(org: Organization, lang: str) -> list[tuple[str, bool, int, str]]:
    """(text, proper, generic level, alias language) for every alias, this language's first."""
    order = [lang] + [other for other in org.aliases if other != lang]
    out = []
    for alias_lang in order:
        for alias in org.aliases.get(alias_lang, ()):
            proper = alias.case == "proper"
            out.append((alias.text, proper, alias.generic_level, alias_lang))
            if "'" in alias.text or "’" in alias.text:
                # "Soldiers' Mothers" is also written without the apostrophe.
                bare = " ".join(alias.text.replace("’", "'").replace("'", " ").split())
                out.append((bare, proper, alias.generic_level, alias_lang))
    return out


def _words_around(doc: Doc, start: int, end: int, window: int) -> Iterator:
    """Up to ``window`` words (punctuation and spaces not counted) on each side of a span."""
    for positions in (range(start - 1, -1, -1), range(end, len(doc))):
        taken = 0
        for i in positions:
            if taken == window:
                break
            token = doc[i]
            if not (token.is_punct or token.is_space):
                taken += 1
                yield token


class OrgMatcher:
    """Watched organizations for documents of one language (built once per worker)."""

    def __init__(self, orgs: Sequence[Organization], pipelines: Pipelines, lang: str,
                 countries: Sequence[Country] = ()):
        self.lang = lang
        self.orgs = tuple(orgs)
        self.countries = tuple(countries)
        nlp = pipelines.nlp[lang]
        self.vocab = nlp.vocab
        self._strings = nlp.vocab.strings
        self._names = PhraseMatcher(self.vocab, attr="LEMMA")
        self._acronyms = PhraseMatcher(self.vocab, attr="ORTH")
        self._labels: dict[int, _Label] = {}
        # Folded names as written, per organization: the test for match kind "exact".
        self._written: list[frozenset[str]] = []
        self._context: list[frozenset[int]] = []
        self._heads: list[frozenset[int]] = []
        # Country cues: label hash -> (country index, cue weight).
        self._cues = PhraseMatcher(self.vocab, attr="LEMMA")
        self._cue_labels: dict[int, tuple[int, float]] = {}
        self._country_of = [self._country_index(o.country) for o in self.orgs]
        self._other_heads = frozenset(
            self._strings.add(pipelines.key_of_word(w, lang)) for w in OTHER_HEADS.get(lang, ()))
        self._generic_veto = frozenset(
            self._strings.add(pipelines.key_of_word(w, lang)) for w in GENERIC_VETO_BEFORE.get(lang, ()))
        self._other_countries = frozenset(
            self._strings.add(k) for w in OTHER_COUNTRIES.get(lang, ()) for k in pipelines.keys(w, lang))
        self._other_ministries = PhraseMatcher(self.vocab, attr="LEMMA")
        for k, phrase in enumerate(OTHER_MINISTRIES.get(lang, ())):
            self._other_ministries.add(f"other-ministry:{k}", [[self._strings.add(x) for x in seq]
                                                                for seq in pipelines.phrase_variants(phrase, lang)])
        self.pattern_count = 0
        self._build(pipelines)

    # -- building ----------------------------------------------------------

    def _build(self, pipelines: Pipelines) -> None:
        lang = self.lang
        synonym_keys = self._synonym_keys(pipelines) if any(o.fuzzy for o in self.orgs) else {}
        # First pass: names and transliterations (see _claim for who owns a key sequence).
        seqs: dict[tuple[int, tuple[str, ...]], list] = {}
        named: set[tuple[str, ...]] = set()
        own: set[tuple[int, tuple[str, ...]]] = set()  # from this language's aliases
        for oi, org in enumerate(self.orgs):
            written = set()
            for text, proper, generic, alias_lang in _alias_texts(org, lang):
                written.add(fold(text))
                # Another language's alias is matched as written: this language's
                # morphology would only invent forms for it.
                if alias_lang == lang:
                    variants = pipelines.phrase_variants(text, lang)
                else:
                    variants = [pipelines.keys(text, lang)]
                for seq in variants:
                    self._claim(seqs, oi, seq, NAME, proper, generic)
                    named.add(seq)
                    if alias_lang == lang:
                        own.add((oi, seq))
                if org.translit:
                    for variant in _translit_variants(text, alias_lang, lang):
                        written.add(fold(variant))
                        for seq in pipelines.phrase_variants(variant, lang):
                            self._claim(seqs, oi, seq, TRANSLIT, proper, generic)
                            named.add(seq)
            for acronym in org.acronyms:
                written.add(fold(acronym.text))
            self._written.append(frozenset(written))
            self._context.append(self._word_keys(pipelines, org.context))
            self._heads.append(self._word_keys(pipelines, org.heads))
        # Second pass: synonym swaps and coordinated words in the other order of this
        # language's names, unless some organization already has the result as a name.
        conjunctions = {pipelines.key_of_word(w, lang) for w in synonyms.CONJUNCTIONS.get(lang, ())}
        # A generic alias gets none: it is weak evidence already, and its rewrites name other
        # bodies ("Defence Ministry" -> "civil defence department").
        for (oi, seq), (kind, proper, generic) in list(seqs.items()):
            if kind != NAME or generic or (oi, seq) not in own or not self.orgs[oi].fuzzy:
                continue
            variants = list(_swaps(seq, synonym_keys)) if synonym_keys else []
            for base in (seq, *variants):
                reordered = _reorder(base, conjunctions)
                if reordered is not None:
                    variants.append(reordered)
            for variant in variants:
                if variant not in named:
                    self._claim(seqs, oi, variant, FUZZY, proper, generic)
        # Patterns go in as hash sequences, not Docs: a Doc per pattern costs ~5 KB, which
        # for 10,000 organizations is gigabytes (docs/benchmarks.md).
        strings = self._strings
        groups: dict[_Label, list[list[int]]] = {}
        for (oi, seq), (kind, proper, generic) in seqs.items():
            groups.setdefault(_Label(oi, kind, proper, generic), []).append([strings.add(k) for k in seq])
        for label, patterns in groups.items():
            key = f"{label.org}:{label.kind}:{int(label.proper)}:{int(label.generic)}"
            self._labels[strings.add(key)] = label
            self._names.add(key, patterns)
            self.pattern_count += len(patterns)
        tokenize = pipelines.nlp[lang].make_doc
        for oi, org in enumerate(self.orgs):
            for proper in (False, True):
                chosen = [a.text for a in org.acronyms if (a.case == "proper") == proper]
                if chosen:
                    key = f"{oi}:acronym:{int(proper)}"
                    self._labels[strings.add(key)] = _Label(oi, NAME, proper)
                    self._acronyms.add(key, [[t.orth for t in tokenize(a)] for a in chosen])
                    self.pattern_count += len(chosen)
        for ci, country in enumerate(self.countries):
            for cue_lang, cues in country.cues.items():
                for k, cue in enumerate(cues):
                    seqs_ = pipelines.phrase_variants(cue.term, lang) if cue_lang == lang else [pipelines.keys(cue.term, lang)]
                    key = f"cue:{ci}:{cue_lang}:{k}"
                    self._cue_labels[strings.add(key)] = (ci, cue.weight)
                    self._cues.add(key, [[strings.add(x) for x in q] for q in seqs_ if q])
                    self.pattern_count += len(seqs_)

    def _country_index(self, country_id: str | None) -> int | None:
        for ci, country in enumerate(self.countries):
            if country.id == country_id:
                return ci
        return None

    def _word_keys(self, pipelines: Pipelines, words: dict) -> frozenset[int]:
        """The match keys (hashes) of every word of ``words`` (per language), any inflection."""
        out = set()
        for word_lang, items in words.items():
            for word in items:
                keys = pipelines.phrase_variants(word, self.lang) if word_lang == self.lang else [pipelines.keys(word, self.lang)]
                for seq in keys:
                    out.update(self._strings.add(k) for k in seq)
        return frozenset(out)

    @staticmethod
    def _claim(seqs: dict, oi: int, seq: tuple[str, ...], kind: str, proper: bool, generic: int = 0) -> None:
        """The best kind that produces a key sequence owns it; among aliases of that kind,
        one ``case: proper`` makes it proper, and one that is not ``generic`` makes it a full
        name. So the Cyrillic spelling of "Verstka" stays proper like the Russian alias
        "Вёрстка", while the Latin spelling of the proper Russian "Идите лесом" does not
        override the English alias "Idite Lesom"."""
        current = seqs.get((oi, seq))
        if current is None or _RANK[kind] < _RANK[current[0]]:
            seqs[(oi, seq)] = [kind, proper, generic]
        elif kind == current[0]:
            current[1] = current[1] or proper
            current[2] = min(current[2], generic)

    def _synonym_keys(self, pipelines: Pipelines) -> dict[str, tuple[str, ...]]:
        """Match key -> the keys it may be swapped for, in this language."""
        out: dict[str, set[str]] = {}
        for group in synonyms.GROUPS.get(self.lang, ()):
            keys = [pipelines.key_of_word(word, self.lang) for word in group]
            for key in keys:
                out.setdefault(key, set()).update(k for k in keys if k != key)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    # -- matching ----------------------------------------------------------

    def __call__(self, doc: Doc, offset: int = 0, source_id: str | None = None,
                 title_end: int = 0) -> list[Mention]:
        """Mentions in ``doc``, in text order; ``offset`` is added to every character offset.
        ``source_id`` (the article's source) is a country cue for generic names; so, at
        :data:`TITLE_CUE_FACTOR` times their weight, are the cues before character
        ``title_end`` of ``doc`` (the headline)."""
        found = []
        for matcher in (self._names, self._acronyms):
            for match_id, start, end in matcher(doc):
                label = self._labels[match_id]
                found.append(_Candidate(label.org, start, end, label.kind, label.proper, label.generic))
        # Full mentions: what a ``proper`` name may lean on, and what resolves a generic one.
        full = [c for c in found if not c.generic and not c.proper]
        full_orgs = {c.org for c in full}
        # The article's match keys, for context words anywhere in it (only when needed).
        lemmas = frozenset(t.lemma for t in doc) if any(c.proper for c in found) else frozenset()
        candidates = []
        doubtful = []
        for cand in found:
            if cand.proper and not self._name_like(doc, cand, full_orgs, lemmas):
                doubtful.append(cand)
            elif not cand.generic:
                candidates.append(cand)
        # A supported ``proper`` mention is a full mention too: the headline's «Вёрстка»
        # leans on "как выяснила «Вёрстка»" in the text.
        supported = {c.org for c in candidates if c.proper}
        if supported:
            full_orgs |= supported
            candidates.extend(c for c in doubtful if not c.generic and c.org in supported
                              and self._name_like(doc, c, full_orgs, lemmas))
        full.extend(c for c in candidates if c.proper)
        generic = [c for c in found if c.generic and not self._vetoed(doc, c)
                   and (not c.proper or self._name_like(doc, c, full_orgs, lemmas))]
        if generic:
            candidates.extend(self._resolve_generic(doc, generic, full, source_id, title_end))
        mentions = []
        for cand in _resolve(candidates)[:MAX_MENTIONS]:
            span = doc[cand.start:cand.end]
            text = span.text
            if cand.generic:
                kind = "contextual"
            elif cand.kind == NAME:
                kind = "exact" if fold(text) in self._written[cand.org] else "lemma"
            else:
                kind = cand.kind
            mentions.append(
                Mention(
                    org_id=self.orgs[cand.org].id,
                    text=text,
                    start=span.start_char + offset,
                    end=span.end_char + offset,
                    match=kind,
                    resolved_by=cand.resolved_by,
                )
            )
        return mentions

    def names_in(self, doc: Doc) -> list[tuple[str, int, int, int]]:
        """Every alias and acronym pattern found in ``doc``, before any support or context
        rule: (org id, start token, end token, generic level). What the candidates finder
        (:mod:`transforms.candidates`) asks to tell a watched name, in any of its forms,
        from a new one."""
        out = []
        for matcher in (self._names, self._acronyms):
            for match_id, start, end in matcher(doc):
                label = self._labels[match_id]
                out.append((self.orgs[label.org].id, start, end, label.generic))
        return out

    def _vetoed(self, doc: Doc, cand: _Candidate) -> bool:
        """A generic name right after a word of :data:`GENERIC_VETO_BEFORE` ("civil"), or
        qualified by one of :data:`OTHER_COUNTRIES` ("Poland's Defence Ministry", "the Polish
        Defence Ministry", "Ministry of Defence of Poland", «Минобороны Финляндии»)."""
        start, end = cand.start, cand.end
        if start > 0 and doc[start - 1].lemma in self._generic_veto:
            return True
        others = self._other_countries
        if self.lang == "en":
            if start > 0 and doc[start - 1].lemma in others:
                return True
            if start > 1 and doc[start - 1].text in ("'s", "’s") and doc[start - 2].lemma in others:
                return True
            return end + 1 < len(doc) and doc[end].lower_ == "of" and doc[end + 1].lemma in others
        return end < len(doc) and doc[end].lemma in others

    def _name_like(self, doc: Doc, cand: _Candidate, full_orgs: set[int], lemmas: frozenset[int]) -> bool:
        """A name that is also an ordinary word counts when it is written as a name and
        something supports it. Written as a name: in quotation marks, or with a capital
        letter (an acronym is written as a name by construction), and not right after a
        word of :data:`OTHER_HEADS` ("фильм «Путь домой»"). Supported: a head word of the
        organization within :data:`HEAD_WINDOW` words ("движение «Путь домой»"), one of its
        context words within :data:`CONTEXT_WINDOW` words or :data:`ARTICLE_CONTEXT` of them
        anywhere in the article, or a full mention of it elsewhere in the article."""
        start, end, org = cand.start, cand.end, cand.org
        before = doc[start - 1].text if start > 0 else ""
        after = doc[end].text if end < len(doc) else ""
        quoted = bool(before and before[-1] in _QUOTES_OPEN and after and after[0] in _QUOTES_CLOSE)
        first = doc[start].text
        if not (quoted or first[:1].isupper()):
            return False
        i = start - 1
        while i >= 0 and (doc[i].is_punct or doc[i].is_space):
            i -= 1
        if i >= 0 and start - i <= 2 and doc[i].lemma in self._other_heads:
            return False
        if org in full_orgs:
            return True
        for words, window in ((self._heads[org], HEAD_WINDOW), (self._context[org], CONTEXT_WINDOW)):
            if words and any(t.lemma in words for t in _words_around(doc, start, end, window)):
                return True
        context = self._context[org]
        return bool(context) and len(context & lemmas) >= ARTICLE_CONTEXT

    def _resolve_generic(self, doc: Doc, generic: list[_Candidate], full: list[_Candidate],
                         source_id: str | None = None, title_end: int = 0) -> list[_Candidate]:
        """The generic candidates the article resolves, each given its ``resolved_by``.

        Candidates of several organizations on one span compete. In order: the organization
        whose full mention comes last before the span ("the ministry" after "Russia's
        Defence Ministry"), unless the span is a ``generic: mention`` alias and one of
        :data:`OTHER_MINISTRIES` is named between the two (then it is nobody's); for a ``generic: mention`` alias, the organization whose head's
        title (``generic: title``, "Defence Minister"), resolved by the evidence below, comes
        last before it; else the one with the most evidence — cue weight of its country
        (:meth:`_country_evidence`) plus its context words found anywhere in the article —
        if that is at least :data:`MIN_RESOLVING_EVIDENCE` and more than any other country
        has (a story about Kyiv does not make «Минобороны» Russia's however many Russian
        words it has, unless they outweigh the Ukrainian ones). On equal evidence the one
        whose cues in the text weigh more wins: the language and the source are priors, so
        «Путін доручив Міноборони ... війни проти України» in Ukrainian is Russia's (Путін
        against України and the language)."""
        by_span: dict[tuple[int, int], list[_Candidate]] = {}
        for cand in generic:
            by_span.setdefault((cand.start, cand.end), []).append(cand)
        countries = self._country_evidence(doc, source_id, title_end) if self.countries else {}
        doc_keys: dict[int, str] = {}
        for token in doc:
            doc_keys.setdefault(token.lemma, token.text)
        out = []
        titles: list[tuple[_Candidate, str]] = []  # resolved titles of heads, in text order
        other_ministries = sorted(start for _m, start, _e in self._other_ministries(doc))
        for (start, _end), group in sorted(by_span.items()):
            earlier = [(f.start, f) for f in full if f.end <= start and f.org in {c.org for c in group}]
            if earlier:
                _s, prior = max(earlier, key=lambda e: e[0])
                if all(c.generic == 2 for c in group) and any(prior.end <= m < start for m in other_ministries):
                    continue  # "the ministry" after a foreign ministry named since is that one
                chosen = next(c for c in group if c.org == prior.org)
                said = doc[prior.start:prior.end].text
                out.append(dataclasses.replace(chosen, resolved_by=f"after \u00ab{said}\u00bb"))
                continue
            # "the ministry" after a resolved "Defence Minister" is that minister's ministry.
            by_title = [(t, why) for t, why in titles if t.end <= start and t.org in {c.org for c in group if c.generic == 2}]
            if by_title:
                title, why = by_title[-1]
                chosen = next(c for c in group if c.org == title.org)
                said = doc[title.start:title.end].text
                out.append(dataclasses.replace(chosen, resolved_by=f"after \u00ab{said}\u00bb, {why}"))
                continue
            decided = self._by_evidence([c for c in group if c.generic in (1, 3)], countries, doc_keys)
            if decided is None:
                continue
            cand, why = decided
            if cand.generic == 3:
                titles.append((cand, why))  # never a mention itself
            else:
                out.append(dataclasses.replace(cand, resolved_by=why))
        return out

    def _by_evidence(self, group: list[_Candidate], countries: dict[int, tuple[float, float, list[str]]],
                     doc_keys: dict[int, str]) -> tuple[_Candidate, str] | None:
        """Of candidates on one span, the one the article's evidence resolves (the rule in
        :meth:`_resolve_generic`) and what resolved it, or None."""
        scored = []
        for cand in group:
            ci = self._country_of[cand.org]
            weight, text_weight, words = countries.get(ci, (0.0, 0.0, [])) if ci is not None else (0.0, 0.0, [])
            context = [doc_keys[k] for k in self._context[cand.org] if k in doc_keys]
            scored.append((weight + len(context), text_weight + len(context), cand, ci, words + context))
        if not scored:
            return None
        scored.sort(key=lambda x: (-x[0], -x[1]))
        best, best_text, cand, ci, words = scored[0]
        rivals = [(w, t) for other, (w, t, _) in countries.items() if other != ci] if ci is not None else []
        rivals += [(s[0], s[1]) for s in scored[1:] if s[3] != ci or ci is None]
        # On a tie the priors (language, source) yield to what the text says.
        if best < MIN_RESOLVING_EVIDENCE or any(r > best or (r == best and t >= best_text) for r, t in rivals):
            return None
        owner = self.countries[ci].name if ci is not None else self.orgs[cand.org].name
        named = ", ".join(dict.fromkeys(words[:MAX_NAMED_CUES])) or "the language"
        return cand, f"{owner}: {named}"

    def _country_evidence(self, doc: Doc, source_id: str | None = None,
                          title_end: int = 0) -> dict[int, tuple[float, float, list[str]]]:
        """Per country: the summed weight of its distinct cues in ``doc`` (each cue once, also
        when several languages' lists of the country have it), plus :data:`LANGUAGE_CUE` when
        the document's language is one of the country's and as much again when its source
        matches one of the country's ``sources`` (a cue in the headline, before character
        ``title_end``, weighs :data:`TITLE_CUE_FACTOR` times as much); the cues' weight alone (what the text
        itself says, which breaks a tie); and the cue words as written, strongest first
        (then "source X")."""
        hits: dict[int, dict[tuple[int, ...], tuple[float, str]]] = {}
        for match_id, start, end in self._cues(doc):
            ci, weight = self._cue_labels[match_id]
            if doc[start:end].end_char <= title_end:
                weight *= TITLE_CUE_FACTOR
            said = tuple(t.lemma for t in doc[start:end])
            seen = hits.setdefault(ci, {}).get(said)
            if seen is None or weight > seen[0]:
                hits[ci][said] = (weight, doc[start:end].text)
        out = {}
        for ci, country in enumerate(self.countries):
            cues = sorted(hits.get(ci, {}).values(), key=lambda h: -h[0])
            text_weight = sum(w for w, _ in cues)
            weight = text_weight + (LANGUAGE_CUE if self.lang in country.langs else 0.0)
            named = [text for _, text in cues]
            if source_id and any(fnmatch.fnmatchcase(source_id, p) for p in country.sources):
                weight += LANGUAGE_CUE
                named.append(f"source {source_id}")
            if weight:
                out[ci] = (weight, text_weight, named)
        return out


def _opens_sentence(doc: Doc, start: int) -> bool:
    i = start - 1
    # Opening quotes and brackets do not end a sentence; look past them.
    while i >= 0 and (doc[i].text in _QUOTES_OPEN or doc[i].text in ("(", "[")):
        i -= 1
    if i < 0:
        return True
    prev = doc[i]
    return prev.is_space or prev.text in _SENTENCE_END or "\n" in prev.whitespace_


def _resolve(candidates: list[_Candidate]) -> list[_Candidate]:
    """Longest span first, better kind first; an overlapping candidate is dropped unless it
    is another organization on exactly the same span. Returns text order."""
    ordered = sorted(candidates, key=lambda c: (-(c.end - c.start), _RANK[c.kind], c.start, c.org))
    kept: list[_Candidate] = []
    for cand in ordered:
        clash = False
        for other in kept:
            if cand.start < other.end and other.start < cand.end:
                same_span = cand.start == other.start and cand.end == other.end
                if not same_span or cand.org == other.org:
                    clash = True
                    break
        if not clash:
            kept.append(cand)
    kept.sort(key=lambda c: (c.start, c.org))
    return kept


def _translit_variants(text: str, alias_lang: str, lang: str) -> list[str]:
    """Spellings of an alias in the other script, for documents of ``lang``: Latin ones for
    English text, a Cyrillic one (short names only) for Russian and Ukrainian text."""
    if lang == "en":
        return translit.to_latin(text, alias_lang) if is_cyrillic(text) else []
    if not is_cyrillic(text) and len(text.split()) <= MAX_WORDS_TO_CYRILLIC:
        return [translit.to_cyrillic(text)]
    return []


def _swaps(seq: tuple[str, ...], synonym_keys: dict[str, tuple[str, ...]]):
    """``seq`` with one or two keys replaced by a synonym, at most MAX_FUZZY_PER_ALIAS."""
    positions = [i for i, key in enumerate(seq) if key in synonym_keys]
    produced = 0
    for count in range(1, synonyms.MAX_SWAPS + 1):
        for chosen in itertools.combinations(positions, count):
            for replacement in itertools.product(*(synonym_keys[seq[i]] for i in chosen)):
                variant = list(seq)
                for i, key in zip(chosen, replacement, strict=True):
                    variant[i] = key
                yield tuple(variant)
                produced += 1
                if produced >= MAX_FUZZY_PER_ALIAS:
                    return


def _reorder(seq: tuple[str, ...], conjunctions: set[str]) -> tuple[str, ...] | None:
    """``seq`` with the two words around its first conjunction swapped ("mothers and wives"
    -> "wives and mothers"), or None when it has no conjunction between two words."""
    for i in range(1, len(seq) - 1):
        if seq[i] in conjunctions:
            out = list(seq)
            out[i - 1], out[i + 1] = seq[i + 1], seq[i - 1]
            return tuple(out) if out != list(seq) else None
    return None
