"""Watched organizations over blank pipelines: inflections, case, acronyms, translit,
synonym swaps, names that are also ordinary words, overlaps and offsets."""

import pytest

from newsradar.config.watchlist import Organization
from transforms.nlp import Pipelines, analysis_text
from transforms.orgs import MAX_MENTIONS, OrgMatcher


def org(**kw):
    return Organization.model_validate(kw)


ORGS = [
    org(
        id="smu", name="Union of Committees of Soldiers' Mothers",
        aliases={
            "en": ["Union of Committees of Soldiers' Mothers", "Committee of Soldiers' Mothers"],
            "ru": ["Союз комитетов солдатских матерей", "Комитет солдатских матерей"],
            "uk": ["Союз комітетів солдатських матерів"],
        },
        acronyms=["UCSMR", "СКСМ"],
    ),
    org(
        id="cmw", name="Council of Mothers and Wives",
        aliases={"en": ["Council of Mothers and Wives"], "ru": ["Совет матерей и жён"], "uk": ["Рада матерів і дружин"]},
    ),
    org(
        id="verstka", name="Verstka",
        aliases={"en": ["Verstka"], "ru": [{"text": "Вёрстка", "case": "proper"}]},
        context={"ru": ["сообщить", "журналист", "писать"]},
    ),
    org(id="mod", name="Ministry", aliases={"ru": ["Министерство обороны России", "Министерство обороны"]}),
    org(id="mod2", name="Other ministry", aliases={"ru": ["Министерство обороны"]}),
    org(id="plain", name="No extras", aliases={"en": ["Council of Mothers"]}, translit=False, fuzzy=False),
]


@pytest.fixture(scope="module")
def pipes():
    return Pipelines()


@pytest.fixture(scope="module")
def matchers(pipes):
    return {lang: OrgMatcher(ORGS, pipes, lang) for lang in ("en", "ru", "uk")}


def find(pipes, matchers, text, lang, title=""):
    full = analysis_text(title, text)
    mentions = matchers[lang](pipes(full, lang))
    for m in mentions:
        assert full[m.start:m.end] == m.text
    return [(m.org_id, m.text, m.match) for m in mentions]


@pytest.mark.parametrize(
    "text, lang, surface, kind",
    [
        ("Представители Союза комитетов солдатских матерей заявили.", "ru", "Союза комитетов солдатских матерей", "lemma"),
        ("В Союзе комитетов солдатских матерей сообщили.", "ru", "Союзе комитетов солдатских матерей", "lemma"),
        ("Союз комитетов солдатских матерей заявил.", "ru", "Союз комитетов солдатских матерей", "exact"),
        ("СОЮЗ КОМИТЕТОВ СОЛДАТСКИХ МАТЕРЕЙ заявил.", "ru", "СОЮЗ КОМИТЕТОВ СОЛДАТСКИХ МАТЕРЕЙ", "exact"),
        ("До Союзу комітетів солдатських матерів надійшли скарги.", "uk", "Союзу комітетів солдатських матерів", "lemma"),
        ("the union of committees of soldiers' mothers said", "en", "union of committees of soldiers' mothers", "exact"),
        ("the Union of Committees of Soldiers’ Mothers said", "en", "Union of Committees of Soldiers’ Mothers", "exact"),
        ("the Union of Committees of Soldiers Mothers said", "en", "Union of Committees of Soldiers Mothers", "exact"),
    ],
)
def test_aliases_in_every_inflected_form_and_case(pipes, matchers, text, lang, surface, kind):
    assert find(pipes, matchers, text, lang) == [("smu", surface, kind)]


@pytest.mark.parametrize(
    "text",
    [
        "Члени Ради матерів і дружин провели акцію.",
        "Заяву оприлюднили Радою матерів і дружин.",
        "Звернення до Раді матерів і дружин.",
    ],
)
def test_ukrainian_rada_in_every_case(pipes, matchers, text):
    assert [m[0] for m in find(pipes, matchers, text, "uk")] == ["cmw"]


def test_acronyms_are_case_sensitive_whole_tokens(pipes, matchers):
    assert find(pipes, matchers, "The UCSMR hotline", "en") == [("smu", "UCSMR", "exact")]
    assert find(pipes, matchers, "the ucsmr hotline", "en") == []
    assert find(pipes, matchers, "The UCSMRX hotline", "en") == []
    assert find(pipes, matchers, "В СКСМ сообщили", "ru") == [("smu", "СКСМ", "exact")]


def test_transliterations_both_ways(pipes, matchers):
    found = find(pipes, matchers, "Soyuz komitetov soldatskikh materey said.", "en")
    assert found == [("smu", "Soyuz komitetov soldatskikh materey", "translit")]
    # Latin name in Cyrillic; it inherits the proper-case rule of the Russian alias.
    assert find(pipes, matchers, "Об этом пишет «Верстка».", "ru") == [("verstka", "Верстка", "exact")]


def test_synonym_swapped_rewrite_is_fuzzy(pipes, matchers):
    assert find(pipes, matchers, "The Council of Moms and Wives said.", "en") == [("cmw", "Council of Moms and Wives", "fuzzy")]
    assert find(pipes, matchers, "The Council of Mums and Spouses said.", "en") == [
        ("cmw", "Council of Mums and Spouses", "fuzzy")
    ]
    assert find(pipes, matchers, "Совет мам и супруг заявил.", "ru") == [("cmw", "Совет мам и супруг", "fuzzy")]


def test_other_words_are_not_a_fuzzy_match(pipes, matchers):
    # "Council of Mothers" is another (watched) body; "and Daughters" is not a swap of "and Wives".
    assert find(pipes, matchers, "The Council of Mothers and Daughters said.", "en") == [
        ("plain", "Council of Mothers", "exact")
    ]
    assert find(pipes, matchers, "The Council of Moms said.", "en") == []  # 'plain' has fuzzy off


def test_proper_name_that_is_also_a_word(pipes, matchers):
    def orgs(text):
        return [m[0] for m in find(pipes, matchers, text, "ru")]

    assert orgs("Как сообщила «Вёрстка», повестки раздают.") == ["verstka"]  # quoted, context word
    assert orgs("По словам журналистов Вёрстки, повестки раздают.") == ["verstka"]  # capital, context
    assert orgs("Вёрстка сообщила, что повестки раздают.") == ["verstka"]  # context word nearby
    # Quotes or a capital alone are not enough: a film, a shop, a memorial share names too.
    assert orgs("В прокат вышел фильм «Вёрстка» о работе типографии.") == []
    assert orgs("По данным Вёрстки, повестки раздают.") == []
    assert orgs("Вёрстка выяснила детали. Как сообщила «Вёрстка», повестки раздают.") == ["verstka", "verstka"]
    assert orgs("Верстка журнала заняла три дня.") == []  # opens a sentence, nothing else
    assert orgs("Курс по вёрстке и типографике.") == []  # lower case
    assert orgs("Он закончил. Верстка номера заняла три дня.") == []


def test_longest_span_wins_and_ties_between_orgs_are_kept(pipes, matchers):
    found = find(pipes, matchers, "Министерство обороны России сообщило.", "ru")
    assert found == [("mod", "Министерство обороны России", "exact")]
    found = find(pipes, matchers, "Министерство обороны сообщило.", "ru")
    assert sorted(found) == [("mod", "Министерство обороны", "exact"), ("mod2", "Министерство обороны", "exact")]


def test_same_org_several_times_in_text_order(pipes, matchers):
    found = find(pipes, matchers, "UCSMR said. Later the Committee of Soldiers' Mothers said again.", "en",
                 title="Союз комитетов солдатских матерей")
    # Russian aliases are matched in English text too (as written), the title included.
    assert [f[1] for f in found] == ["Союз комитетов солдатских матерей", "UCSMR", "Committee of Soldiers' Mothers"]


def test_mentions_per_article_are_capped(pipes, matchers):
    text = " ".join(["UCSMR said."] * (MAX_MENTIONS + 20))
    assert len(find(pipes, matchers, text, "en")) == MAX_MENTIONS


def test_pattern_count_is_reported(matchers):
    assert matchers["ru"].pattern_count > len(ORGS)
