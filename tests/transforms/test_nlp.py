"""Language pipelines: match keys agree across inflected forms, caches stay bounded."""

import pytest

from transforms.nlp import COMPONENT, KeyCache, Pipelines, analysis_text, fold, guess_lang


@pytest.fixture(scope="module")
def pipes():
    return Pipelines()


def keys(pipes, text, lang):
    return [t.lemma_ for t in pipes(text, lang) if not t.is_space]


@pytest.mark.parametrize(
    "lang, forms, key",
    [
        ("ru", ["мобилизация", "мобилизации", "мобилизацию", "Мобилизацией"], "мобилизация"),
        ("ru", ["Вёрстка", "верстка", "вёрстки", "ВЕРСТКОЙ"], "верстка"),
        ("uk", ["мобілізація", "мобілізації", "мобілізацію"], "мобілізація"),
        ("uk", ["повістка", "повістки", "повісткою"], "повістка"),
        ("en", ["mothers", "Mother", "MOTHERS"], "mother"),
        ("en", ["mobilized", "mobilizing", "mobilizes"], "mobilize"),
    ],
)
def test_inflected_forms_share_one_key(pipes, lang, forms, key):
    assert {keys(pipes, f, lang)[0] for f in forms} == {key}


def test_a_different_word_keeps_a_different_key(pipes):
    assert keys(pipes, "мобильный", "ru") != keys(pipes, "мобилизация", "ru")
    assert keys(pipes, "mobile", "en") != keys(pipes, "mobilization", "en")


def test_apostrophes_and_possessives_fold_to_one_mark(pipes):
    assert keys(pipes, "Soldiers’ Mothers", "en") == keys(pipes, "soldiers' mothers", "en")
    assert keys(pipes, "soldier's", "en") == ["soldier", "'"]
    assert keys(pipes, "об’єднання", "uk") == keys(pipes, "об'єднання", "uk")


def test_participles_key_like_their_verb_so_terms_and_texts_agree(pipes):
    # pymorphy3 normalizes participles to the infinitive; a term written as the participle
    # goes through the same function, so both sides agree whatever the lemma is.
    assert tuple(keys(pipes, "мобилизованных", "ru")) == pipes.keys("мобилизованный", "ru")


def test_inflection_keys_cover_forms_whose_first_analysis_is_another_word(pipes):
    # Ukrainian "рада" (council): pymorphy3's first analysis of "рада" and "ради" is "рад",
    # of "радою" it is "рада". A pattern must accept every form.
    assert keys(pipes, "радою", "uk") != keys(pipes, "ради", "uk")
    options = set(pipes.inflection_keys("Рада", "uk"))
    for form in ("рада", "ради", "раді", "раду", "радою"):
        assert keys(pipes, form, "uk")[0] in options, form
    variants = pipes.phrase_variants("Рада матерів і дружин", "uk")
    assert tuple(keys(pipes, "Радою матерів і дружин", "uk")) in variants
    assert tuple(keys(pipes, "Ради матерів і дружин", "uk")) in variants


def test_key_cache_is_bounded_and_counts_misses():
    p = Pipelines(langs=("ru",), max_cache=50)
    cache = p.nlp["ru"].get_pipe(COMPONENT).cache
    p(" ".join(f"слово{i}" for i in range(200)), "ru")
    assert len(cache) <= 50
    assert cache.misses >= 200
    before = cache.misses
    p("слово199", "ru")
    assert cache.misses == before  # the newest forms are still cached


def test_key_cache_is_a_plain_dict_lookup_on_hits():
    strings = {1: "Тест"}

    class Strings(dict):
        def add(self, s):
            self[hash(s)] = s
            return hash(s)

    calls = []
    cache = KeyCache(Strings(strings), lambda form: calls.append(form) or form, max_size=10)
    assert cache[1] == hash("тест")
    assert cache[1] == hash("тест")
    assert calls == ["тест"]


def test_grown_reports_a_string_store_past_its_bound():
    p = Pipelines(langs=("en",), max_strings=10**9)
    assert not p.grown()
    p.max_strings = len(p.nlp["en"].vocab.strings)
    p("several brand new words appear here", "en")
    assert p.grown()


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Члени Ради матерів і дружин провели акцію", "uk"),
        ("Жены мобилизованных вышли на пикет", "ru"),
        ("The Council of Mothers and Wives", "en"),
        ("Їхні діти", "uk"),
        ("Съезд партии", "ru"),
    ],
)
def test_guess_lang_by_script(text, lang):
    assert guess_lang(text) == lang


def test_analysis_text_joins_title_and_text():
    assert analysis_text("Title", "Body") == "Title\n\nBody"
    assert analysis_text("", "Body") == "Body"
    assert analysis_text("  Title ", "") == "Title"


def test_fold():
    assert fold("Вёрстка’s") == "верстка's"


def test_a_memory_zone_forgets_new_words_and_keys_them_as_outside_one():
    pipes = Pipelines(langs=("ru", "en"), warm_texts=1)
    with pipes.memory_zone() as zoned:
        assert not zoned  # not warm yet: the first text's words stay
        assert keys(pipes, "Министерство обороны сообщило", "ru") == ["министерство", "оборона", "сообщить"]
    plain = Pipelines(langs=("ru", "en"))
    # The first zone sees "мобилизация" as a word, and as the key of "мобилизацией"; the
    # second sees only the latter, whose key it reads back from the cache by hash.
    first, second = "Мобилизация и мобилизацией занимались военкоматы", "Мобилизацией занимались военкоматы"
    strings = len(pipes.nlp["ru"].vocab.strings)
    for text in (first, second, first):
        with pipes.memory_zone() as zoned:
            assert zoned
            assert keys(pipes, text, "ru") == keys(plain, text, "ru")
        # What stays is the new keys, not the words: "мобилизация", "заниматься", "военкомат".
        assert len(pipes.nlp["ru"].vocab.strings) == strings + 3
