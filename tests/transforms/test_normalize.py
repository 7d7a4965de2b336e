"""Normalize: clean text and the language of short and long posts."""

from __future__ import annotations

import json
import unicodedata

import pytest

from tests.conftest import FIXTURES
from tests.pipelines.support import raw_article
from transforms.normalize import clean_article, detect_language, normalize, normalize_hint, shared_detector

SAMPLES = [json.loads(line) for line in (FIXTURES / "pipeline" / "languages.jsonl").read_text("utf-8").splitlines()]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["text"][:30] for s in SAMPLES])
def test_language_of_short_posts(sample):
    assert detect_language(sample["text"], sample.get("hint"), shared_detector()) == sample["lang"]


STORIES = [json.loads(line) for line in (FIXTURES / "pipeline" / "stories.jsonl").read_text("utf-8").splitlines()]


@pytest.mark.parametrize("story", STORIES, ids=[s["id"] for s in STORIES])
def test_language_of_news_texts(story):
    assert detect_language(f"{story['title']}\n{story['text']}", None, shared_detector()) == story["lang"]


def test_fixture_covers_every_language_and_hints():
    assert {s["lang"] for s in SAMPLES} == {"en", "ru", "uk", "other"}
    assert sum(1 for s in SAMPLES if "hint" in s) >= 5


def test_hint_decides_only_when_the_text_is_inconclusive():
    detector = shared_detector()
    # A Ukrainian text in a feed labelled Russian stays Ukrainian ...
    assert detect_language("Мобілізацію оголошено в трьох областях країни", "ru", detector) == "uk"
    # ... but a two-letter reply follows its channel's language.
    assert detect_language("Ок", "ru", detector) == "ru"
    assert detect_language("Ок", None, detector) in {"ru", "uk", "other"}
    # A hint outside en/ru/uk is not a language we tag in: ignored.
    assert detect_language("12:45", "de", detector) == "other"


@pytest.mark.parametrize(("hint", "code"), [("en-US", "en"), ("ru_RU", "ru"), ("UK", "uk"), ("de", None), ("", None),
                                            (None, None)])
def test_normalize_hint(hint, code):
    assert normalize_hint(hint) == code


def test_clean_article_takes_text_from_html_and_normalizes():
    decomposed = unicodedata.normalize("NFD", "Йошкар-Ола")
    article = raw_article(
        3,
        title="<b>Митинг</b> &amp; пикет",
        text="",
        html=f"<p>Первый абзац про {decomposed}.</p><script>track()</script><p>Второй\u00a0абзац.</p>",
    )
    clean = clean_article(article)
    assert clean.title == "Митинг & пикет"
    assert clean.text == "Первый абзац про Йошкар-Ола.\n\nВторой абзац."
    assert unicodedata.is_normalized("NFC", clean.text)
    assert clean.html is None


def test_normalize_sets_language_and_own_story():
    tagged = normalize(raw_article(4, text="Мобилизованных отправили на учения в соседнюю область"), shared_detector())
    assert tagged.lang == "ru"
    assert tagged.story_id == tagged.article.article_id
    assert tagged.topics == () and tagged.mentions == ()


def test_plain_language_agrees_with_lingua_on_every_text_at_hand():
    """The clear-case rule decides only texts lingua gives the same label whatever the hint:
    the fixtures and the real-world feeds and Telegram pages (the benchmark mix is measured by
    benchmarks/language_sample.py --plain)."""
    from benchmarks.language_sample import corpora, plain_disagreements

    detector = shared_detector()
    texts = corpora(mix=0)
    decided = {}
    for name, items in texts.items():
        decided[name], differ, _lowest = plain_disagreements(items, detector)
        assert differ == [], name
    assert decided["fixtures"] >= len(texts["fixtures"]) // 2  # the rule is doing the work


@pytest.mark.parametrize("text,lang", [
    ("Мобилизованных отправили на учения, сообщили в военкомате Тверской области в понедельник.", "ru"),
    ("Мобілізованих відправили на навчання, повідомили в обласному ТЦК у понеділок зранку.", "uk"),
    ("The ministry said on Monday that it was not planning a new wave of call-ups this year, "
     "and that the men who had been mobilized in the autumn would be sent home.", "en"),
])
def test_plain_language_decides_clear_texts(text, lang):
    from transforms.normalize import plain_language

    assert plain_language(text) == lang
    assert detect_language(text, None, shared_detector(), plain=False) == lang


@pytest.mark.parametrize("text", [
    "Мабілізаваных адправілі на вучэнні, паведамілі ў ваенкамаце ў панядзелак раніцай.",  # Belarusian
    "Мобилизираните бяха изпратени на учение, съобщиха от военното окръжие в понеделник.",  # Bulgarian
    "Мобилисани су послати на вежбу, саопштили су у војном одсеку у понедељак ујутру.",  # Serbian
    "Мобилизованных отправили на учения",  # too short to be sure
    "Die Regierung hat am Montag erklärt, dass sie keine neue Welle plant und die Männer heimkehren.",
    "Mobilization news: ministry statement on call-ups, reservists, deferments, exemptions today",  # few function words
    "Мобилизованных отправили на учения в Tver region, сообщили в военкомате в понедельник.",  # two scripts
])
def test_plain_language_leaves_the_rest_to_lingua(text):
    from transforms.normalize import plain_language

    assert plain_language(text) is None
