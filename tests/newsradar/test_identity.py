import pytest

from newsradar import identity as i


def test_article_ids_are_stable_and_scoped():
    a = i.rss_article_id("src-a", guid="https://x/1")
    assert a == i.rss_article_id("src-a", guid="https://x/1")
    assert a != i.rss_article_id("src-b", guid="https://x/1")
    # A feed that repeats one guid: the link tells entries apart.
    g1 = i.rss_article_id("s", guid="same", link="https://x/1", guid_is_repeated=True)
    g2 = i.rss_article_id("s", guid="same", link="https://x/2", guid_is_repeated=True)
    assert g1 != g2
    # No guid: canonical URL, so tracking parameters and fragments do not split an article.
    u1 = i.rss_article_id("s", link="https://Example.org:443/a?utm_source=x&b=2&a=1#top")
    u2 = i.rss_article_id("s", link="https://example.org/a?a=1&b=2&fbclid=zzz")
    assert u1 == u2
    # Nothing but text: whitespace and case do not change identity.
    h1 = i.rss_article_id("s", title="Протест  матерей", text="Текст")
    assert h1 == i.rss_article_id("s", title="протест матерей", text=" Текст ")
    assert i.telegram_article_id("@MediaZZZona", 42) == "tg:mediazzzona:42"


def test_canonical_url():
    assert i.canonical_url("HTTP://News.Example.org:80/x?utm_medium=rss&id=5#c") == "http://news.example.org/x?id=5"


def test_alert_id_is_deterministic_per_trigger():
    a = i.alert_id("surge", "verstka", "2026-11-20T10")
    assert a == i.alert_id("surge", "verstka", "2026-11-20T10")
    assert a != i.alert_id("surge", "verstka", "2026-11-20T11")
    assert a != i.alert_id("first_in_window", "verstka", "2026-11-20T10")
    with pytest.raises(ValueError):
        i.alert_id("bogus", "x", "y")
