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
``fuzzy`` as above. Names marked ``case: proper`` (names that are also ordinary words) count
only with evidence that they are used as a name: see :meth:`OrgMatcher._name_like`.

Guarantees: offsets are indices into the analyzed text; overlapping candidates resolve to
the longest span (names before transliterations before fuzzy), two organizations on the
very same span both stay; at most :data:`MAX_MENTIONS` mentions per article.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from newsradar.config.watchlist import Organization
from newsradar.records import Mention

from . import synonyms, translit
from .nlp import Pipelines, fold, is_cyrillic

# Kinds in order of preference when candidates overlap.
NAME, TRANSLIT, FUZZY = "name", "translit", "fuzzy"
_RANK = {NAME: 0, TRANSLIT: 1, FUZZY: 2}
MAX_MENTIONS = 50
# Words on either side of a ``case: proper`` name searched for a context word.
CONTEXT_WINDOW = 8
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


@dataclass(frozen=True, slots=True)
class _Candidate:
    org: int
    start: int  # token indices
    end: int
    kind: str


def _alias_texts(org: Organization, lang: str) -> list[tuple[str, bool, str]]:
    """(text, proper, alias language) for every alias, this language's first."""
    order = [lang] + [other for other in org.aliases if other != lang]
    out = []
    for alias_lang in order:
        for alias in org.aliases.get(alias_lang, ()):
            out.append((alias.text, alias.case == "proper", alias_lang))
            if "'" in alias.text or "’" in alias.text:
                # "Soldiers' Mothers" is also written without the apostrophe.
                bare = " ".join(alias.text.replace("’", "'").replace("'", " ").split())
                out.append((bare, alias.case == "proper", alias_lang))
    return out


class OrgMatcher:
    """Watched organizations for documents of one language (built once per worker)."""

    def __init__(self, orgs: Sequence[Organization], pipelines: Pipelines, lang: str):
        self.lang = lang
        self.orgs = tuple(orgs)
        nlp = pipelines.nlp[lang]
        self.vocab = nlp.vocab
        self._strings = nlp.vocab.strings
        self._names = PhraseMatcher(self.vocab, attr="LEMMA")
        self._acronyms = PhraseMatcher(self.vocab, attr="ORTH")
        self._labels: dict[int, _Label] = {}
        # Folded names as written, per organization: the test for match kind "exact".
        self._written: list[frozenset[str]] = []
        self._context: list[frozenset[int]] = []
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
            for text, proper, alias_lang in _alias_texts(org, lang):
                written.add(fold(text))
                # Another language's alias is matched as written: this language's
                # morphology would only invent forms for it.
                if alias_lang == lang:
                    variants = pipelines.phrase_variants(text, lang)
                else:
                    variants = [pipelines.keys(text, lang)]
                for seq in variants:
                    self._claim(seqs, oi, seq, NAME, proper)
                    named.add(seq)
                    if alias_lang == lang:
                        own.add((oi, seq))
                if org.translit:
                    for variant in _translit_variants(text, alias_lang, lang):
                        written.add(fold(variant))
                        for seq in pipelines.phrase_variants(variant, lang):
                            self._claim(seqs, oi, seq, TRANSLIT, proper)
                            named.add(seq)
            for acronym in org.acronyms:
                written.add(fold(acronym))
            self._written.append(frozenset(written))
            context = set()
            for ctx_lang, words in org.context.items():
                for word in words:
                    keys = pipelines.phrase_variants(word, lang) if ctx_lang == lang else [pipelines.keys(word, lang)]
                    for seq in keys:
                        context.update(self._strings.add(k) for k in seq)
            self._context.append(frozenset(context))
        # Second pass: synonym swaps of this language's names, unless some organization
        # already has the result as a name.
        if synonym_keys:
            for (oi, seq), (kind, proper) in list(seqs.items()):
                if kind != NAME or (oi, seq) not in own or not self.orgs[oi].fuzzy:
                    continue
                for variant in _swaps(seq, synonym_keys):
                    if variant not in named:
                        self._claim(seqs, oi, variant, FUZZY, proper)
        # Patterns go in as hash sequences, not Docs: a Doc per pattern costs ~5 KB, which
        # for 10,000 organizations is gigabytes (docs/benchmarks.md).
        strings = self._strings
        groups: dict[_Label, list[list[int]]] = {}
        for (oi, seq), (kind, proper) in seqs.items():
            groups.setdefault(_Label(oi, kind, proper), []).append([strings.add(k) for k in seq])
        for label, patterns in groups.items():
            key = f"{label.org}:{label.kind}:{int(label.proper)}"
            self._labels[strings.add(key)] = label
            self._names.add(key, patterns)
            self.pattern_count += len(patterns)
        tokenize = pipelines.nlp[lang].make_doc
        for oi, org in enumerate(self.orgs):
            if org.acronyms:
                key = f"{oi}:acronym:0"
                self._labels[strings.add(key)] = _Label(oi, NAME, False)
                self._acronyms.add(key, [[t.orth for t in tokenize(a)] for a in org.acronyms])
                self.pattern_count += len(org.acronyms)

    @staticmethod
    def _claim(seqs: dict, oi: int, seq: tuple[str, ...], kind: str, proper: bool) -> None:
        """The best kind that produces a key sequence owns it; among aliases of that kind,
        one ``case: proper`` makes it proper. So the Cyrillic spelling of "Verstka" stays
        proper like the Russian alias "Вёрстка", while the Latin spelling of the proper
        Russian "Идите лесом" does not override the English alias "Idite Lesom"."""
        current = seqs.get((oi, seq))
        if current is None or _RANK[kind] < _RANK[current[0]]:
            seqs[(oi, seq)] = [kind, proper]
        elif kind == current[0]:
            current[1] = current[1] or proper

    def _synonym_keys(self, pipelines: Pipelines) -> dict[str, tuple[str, ...]]:
        """Match key -> the keys it may be swapped for, in this language."""
        out: dict[str, set[str]] = {}
        for group in synonyms.GROUPS.get(self.lang, ()):
            keys = [pipelines.key_of_word(word, self.lang) for word in group]
            for key in keys:
                out.setdefault(key, set()).update(k for k in keys if k != key)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    # -- matching ----------------------------------------------------------

    def __call__(self, doc: Doc, offset: int = 0) -> list[Mention]:
        """Mentions in ``doc``, in text order; ``offset`` is added to every character offset."""
        candidates = []
        for matcher in (self._names, self._acronyms):
            for match_id, start, end in matcher(doc):
                label = self._labels[match_id]
                if label.proper and not self._name_like(doc, start, end, label.org, label.kind == NAME):
                    continue
                candidates.append(_Candidate(label.org, start, end, label.kind))
        mentions = []
        for cand in _resolve(candidates)[:MAX_MENTIONS]:
            span = doc[cand.start:cand.end]
            text = span.text
            if cand.kind == NAME:
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
                )
            )
        return mentions

    def _name_like(self, doc: Doc, start: int, end: int, org: int, capital_counts: bool) -> bool:
        """Evidence that a name which is also an ordinary word is used as a name here:
        quotation marks around it; or written with a capital and not opening a sentence
        (only for the name as given: a transliterated or reworded name is capitalized in
        any case, "Memorial" is also "Memorial Day"); or a context word of the
        organization within :data:`CONTEXT_WINDOW` words."""
        before = doc[start - 1].text if start > 0 else ""
        after = doc[end].text if end < len(doc) else ""
        if before and before[-1] in _QUOTES_OPEN and after and after[0] in _QUOTES_CLOSE:
            return True
        first = doc[start].text
        if capital_counts and first[:1].isupper() and not _opens_sentence(doc, start):
            return True
        context = self._context[org]
        if context:
            lo, hi = max(0, start - CONTEXT_WINDOW), min(len(doc), end + CONTEXT_WINDOW)
            for i in itertools.chain(range(lo, start), range(end, hi)):
                if doc[i].lemma in context:
                    return True
        return False


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
