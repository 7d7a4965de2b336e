"""Candidates (issue 16, item 3): names nobody watches yet, found across stories, grouped by
form, ranked, watched names and stop-names left out, a stub that loads; the slovnet model on
Russian text. The articles are written here for the tests (the movements are invented)."""

from __future__ import annotations

import pytest

from newsradar.config import load_watchlist
from newsradar.records import RawArticle, TaggedArticle
from tests.conftest import REPO
from transforms import ner
from transforms.candidates import Finder, rank, stub, stub_yaml, tally
from transforms.tagging import Tagger

WATCHLIST = REPO / "config" / "watchlist.yaml"

# An invented reservists' movement in four stories, in three grammatical cases; a council of
# reservists' families in two; a fund in three stories of which only one carries a topic.
STORIES = [
    ("ru", "Пикет у военкомата",
     "Движение «Голос запаса» провело пикет у военкомата против мобилизации. Совет семей запасников "
     "поддержал жён мобилизованных."),
    ("ru", "Письмо в администрацию",
     "Активистки движения «Голоса запаса» передали письмо о демобилизации мобилизованных. Члены Совета "
     "семей запасников пришли на пикет."),
    ("ru", "Новая акция",
     "Участницы «Голоса запаса» вышли на одиночные пикеты: они требуют вернуть мобилизованных домой."),
    ("ru", "Повестки",
     "Сторонники движения «Голос запаса» раздали листовки о повестках и мобилизации у военкомата."),
    ("ru", "Фестиваль", "Фонд «Зелёный сад» открыл фестиваль цветов в парке."),
    ("ru", "Выставка", "Фонд «Зелёный сад» показал выставку тюльпанов."),
    ("ru", "Сбор", "Фонд «Зелёный сад» собирает помощь семьям мобилизованных, пришедших на пикет у военкомата."),
]


@pytest.fixture(scope="module")
def tagger():
    return Tagger(load_watchlist(WATCHLIST))


@pytest.fixture(scope="module")
def finder(tagger):
    return Finder(tagger.watchlist, pipelines=tagger.pipelines)


def tagged(tagger, i: int, lang: str, title: str, text: str, story: str | None = None) -> TaggedArticle:
    raw = RawArticle(article_id=f"test:{i}", source_id="test", source_kind="rss", url=f"https://example.org/{i}",
                     title=title, text=text, published_at="2026-05-01T10:00:00Z", fetched_at="2026-05-01T10:00:00Z")
    return tagger.tag(TaggedArticle(article=raw, lang=lang, story_id=story or f"story:{i}"))


def test_an_unwatched_movement_is_found_across_stories_with_its_forms_grouped(tagger, finder):
    articles = [tagged(tagger, i, *s) for i, s in enumerate(STORIES)]
    assert all(a.topics for a in articles[:4]), "the fixture stories must carry a watched topic"
    ranked = rank(tally(articles, finder).values())
    by_name = {c.name: c for c in ranked}
    voice = by_name["Голос запаса"]
    assert voice.stories == 4 and voice.articles == 4 and voice.topic_share == 1.0
    assert set(voice.forms) == {"Голос запаса", "Голоса запаса"}
    assert voice.heads == ("движение",) and voice.found_by == ("quotes",)
    assert "mobilization" in voice.topics
    assert len(voice.examples) == 3 and "Голос запаса" in voice.examples[0].snippet
    council = by_name["Совет семей запасников"]
    assert set(council.forms) == {"Совет семей запасников", "Совета семей запасников"}
    assert council.found_by == ("head",) and council.stories == 2


def test_ranked_by_stories_times_topic_share(tagger, finder):
    articles = [tagged(tagger, i, *s) for i, s in enumerate(STORIES)]
    # Two copies of one story count as one story.
    articles.append(tagged(tagger, 99, *STORIES[0], story="story:0"))
    ranked = rank(tally(articles, finder).values())
    names = [c.name for c in ranked]
    assert names[:2] == ["Голос запаса", "Совет семей запасников"]
    assert ranked[0].stories == 4 and ranked[0].articles == 5
    garden = next(c for c in ranked if c.name == "Зелёный сад")
    # three stories, one of them with a topic: 3 x 1/3 = 1 < the council's 2 x 1
    assert garden.stories == 3 and garden.topic_share == pytest.approx(0.333, abs=0.001)
    assert names.index("Зелёный сад") > names.index("Совет семей запасников")
    assert [c.name for c in rank(tally(articles, finder).values(), min_stories=3)] == ["Голос запаса", "Зелёный сад"]


def test_watched_names_in_any_form_and_stop_names_are_not_candidates(tagger, finder):
    text = ("Движение «Путь домой» и Совет матерей и жён провели пикет против мобилизации. Представители "
            "Совета матерей и жён мобилизованных пришли к военкомату, Комитет солдатских матерей России "
            "поддержал их, «Минобороны» не ответило. Министерство России и Совет Европы промолчали. "
            "Вечером в кинотеатре показали фильм «Голос запаса». Министерство юстиции прислало ответ.")
    article = tagged(tagger, 1, "ru", "Пикет", text)
    assert {m.org_id for m in article.mentions} >= {"put-domoy", "council-of-mothers-and-wives"}
    _lang, found = finder.find(article)
    assert [f.text for f in found] == ["Министерство юстиции"]


def test_english_and_ukrainian_headed_names(tagger, finder):
    en = tagged(tagger, 1, "en", "Rally",
                "The Council of Reservists' Families held a rally against mobilization. The Ministry said nothing, "
                "and the Union of Committees of Soldiers' Mothers joined.")
    uk = tagged(tagger, 2, "uk", "Акція", "Рада родин резервістів провела акцію протесту проти мобілізації.")
    assert [f.text for f in finder.find(en)[1]] == ["Council of Reservists' Families"]
    assert [f.text for f in finder.find(uk)[1]] == ["Рада родин резервістів"]


def test_the_stub_loads_with_the_watchlist_loader_and_then_matches(tagger, finder, tmp_path):
    articles = [tagged(tagger, i, *s) for i, s in enumerate(STORIES)]
    ranked = rank(tally(articles, finder).values())
    taken = [o.id for o in tagger.watchlist.organizations]
    voice = next(c for c in ranked if c.name == "Голос запаса")
    entry = stub(voice, taken)
    assert entry["id"] == "golos-zapasa" and entry["heads"] == {"ru": ["движение"]}
    text = WATCHLIST.read_text(encoding="utf-8")
    assert "\norganizations:\n" in text
    head, rest = text.split("\norganizations:\n", 1)
    stubs = "".join(stub_yaml(c, taken) for c in ranked)
    path = tmp_path / "watchlist.yaml"
    path.write_text(head + "\norganizations:\n" + stubs + rest, encoding="utf-8")
    extended = load_watchlist(path)
    assert extended.organization("golos-zapasa").aliases["ru"][1].text == "Голоса запаса"
    after = Tagger(extended, pipelines=tagger.pipelines)
    story = tagged(after, 1, *STORIES[1])
    assert "golos-zapasa" in {m.org_id for m in story.mentions}
    # ... and it is no candidate any more
    assert "Голос запаса" not in [c.name for c in rank(tally([story], Finder(extended, pipelines=tagger.pipelines)).values())]


def test_slovnet_finds_russian_organizations():
    text = "Представители Северного штаба резервистов заявили о новой волне призыва в Москве."
    spans = [text[a:b] for a, b in ner.organizations(text)]
    assert spans == ["Северного штаба резервистов"]
    types = {text[e.start:e.stop]: e.type for e in ner.entities(text)}
    assert types["Москве"] == "LOC"


def test_a_quoted_name_the_model_cuts_short_is_closed():
    text = "Движение «Путь домой» провело пикет у здания Министерства обороны в Москве."
    raw = [text[e.start:e.stop] for e in ner.entities(text) if e.type == "ORG"]
    assert raw == ["Движение «Путь домой", "Министерства обороны"]  # the model stops before »
    assert [text[a:b] for a, b in ner.organizations(text)] == ["Движение «Путь домой»", "Министерства обороны"]


def test_ner_only_on_russian_articles_with_a_topic(tagger):
    with_ner = Finder(tagger.watchlist, pipelines=tagger.pipelines, ner=True)
    without = Finder(tagger.watchlist, pipelines=tagger.pipelines)
    text = "В пикете против мобилизации участвовали представители Северного штаба резервистов."
    topical = tagged(tagger, 1, "ru", "Пикет", text)
    assert topical.topics
    assert [f.via for f in with_ner.find(topical)[1]] == ["ner"]
    assert with_ner.find(topical)[1][0].text == "Северного штаба резервистов"
    assert without.find(topical)[1] == []
    plain = tagged(tagger, 2, "ru", "Встреча", "Представители Северного штаба резервистов встретились с журналистами.")
    assert not plain.topics and with_ner.find(plain)[1] == []


def test_a_later_version_of_an_article_is_not_counted_again(tagger, finder):
    import dataclasses

    first = tagged(tagger, 1, *STORIES[0])
    edit = dataclasses.replace(tagged(tagger, 1, *STORIES[1]), is_update=True)
    voice = next(c for c in rank(tally([first, edit], finder).values()) if c.name == "Голос запаса")
    assert voice.articles == 1 and voice.forms == ("Голос запаса",)
