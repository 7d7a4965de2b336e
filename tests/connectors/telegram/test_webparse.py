"""The t.me/s page parser over fixture pages that follow the real preview markup."""

from datetime import UTC, datetime

import pytest

from connectors.telegram.webparse import parse_count, parse_page
from tests.conftest import FIXTURES

PAGES = FIXTURES / "telegram" / "web" / "newsradar_test"


@pytest.fixture(scope="module")
def latest():
    return parse_page((PAGES / "latest.html").read_bytes())


def by_id(page):
    return {m.message_id: m for m in page.messages}


def test_page_links_and_counts(latest):
    assert latest.has_history
    assert latest.before == 121
    assert latest.service_ids == [128]
    assert latest.unparsed == 1
    assert latest.unknown_blocks == 1
    assert any("tgme_widget_message_hologram" in p for p in latest.problems)
    assert [m.message_id for m in latest.messages] == [121, 122, 123, 124, 125, 126, 127, 129, 130, 131, 132, 133, 134]


def test_text_keeps_link_text_breaks_and_signature(latest):
    m = by_id(latest)[121]
    assert m.channel == "newsradar_test"
    assert m.published_at == datetime(2026, 3, 2, 6, 15, tzinfo=UTC)
    assert m.text == (
        "Военкомат Центрального района начал раздавать повестки прямо на проходных заводов.\n\n"
        "Подробности: репортаж нашего корреспондента"
    )
    assert "https://example.org/news/121" in m.html
    assert m.author == "Анна Петрова"
    assert m.views == 12300
    assert not m.edited


def test_media_captions(latest):
    msgs = by_id(latest)
    assert msgs[122].media == ("photo",) and msgs[122].text.startswith("Пикет у здания администрации")
    assert msgs[123].media == ("video",) and msgs[123].text.startswith("Видео: колонна")
    assert msgs[124].media == ("document",)
    assert msgs[124].document_titles == ("prikaz_o_mobilizacii.pdf",)
    assert msgs[124].text == "Текст приказа о частичной мобилизации — в файле."
    assert msgs[134].media == ("photo",) and msgs[134].text == "Альбом: три фото с акции у военкомата."
    assert msgs[133].media == ("photo",) and msgs[133].text == ""


def test_date_with_offset_is_utc(latest):
    assert by_id(latest)[123].published_at == datetime(2026, 3, 2, 5, 30, tzinfo=UTC)


def test_poll(latest):
    m = by_id(latest)[125]
    assert m.media == ("poll",)
    assert m.poll_question == "Получали ли вы повестку?"
    assert m.text == "Получали ли вы повестку?\nДа\nНет"


def test_forwarded_and_reply(latest):
    msgs = by_id(latest)
    assert msgs[126].forwarded_from == "soldiers_mothers_news"
    assert msgs[127].reply_to == 121
    # The quoted text of the message replied to is not part of the reply's own text.
    assert msgs[127].text == "Обновление: администрация завода подтвердила раздачу повесток."


def test_edited_marker_and_long_text(latest):
    msgs = by_id(latest)
    assert msgs[129].edited and not msgs[130].edited
    assert len(msgs[130].text) > 3000 and msgs[130].text.startswith("Мобилизация в регионе")


def test_emoji_and_rtl(latest):
    text = by_id(latest)[131].text
    assert text.splitlines() == ["⚠️ عاجل: احتجاجات أمام مكتب التجنيد 📢", "מחאה מול לשכת הגיוס", "Протест у военкомата 🔥"]


def test_unknown_block_keeps_the_text(latest):
    assert by_id(latest)[132].text == "Пост с блоком неизвестного типа: текст должен сохраниться."


def test_older_pages_chain_to_the_start():
    middle = parse_page((PAGES / "before-121.html").read_bytes())
    assert middle.before == 111
    assert [m.message_id for m in middle.messages] == [111, 112, 113, 114, 116, 117, 118, 119, 120]
    first = parse_page((PAGES / "before-111.html").read_bytes())
    assert first.before is None
    assert first.service_ids == [100]
    assert [m.message_id for m in first.messages] == list(range(101, 111))


@pytest.mark.parametrize(
    "markup",
    [
        "",
        "<html><body><p>Not a channel</p></body></html>",
        "<div class='tgme_widget_message' data-post='x'>",
        "<div class='tgme_widget_message' data-post='chan/12'><div class='tgme_widget_message_date'><time datetime='yesterday'></time></div>",
        b"\xff\xfe<div class='tgme_widget_message' data-post='chan_x/1'>\x80</div>",
        "<section class='tgme_channel_history'>" + "<div class='tgme_widget_message' data-post='chan/1'>" * 2000,
    ],
)
def test_broken_pages_never_raise(markup):
    page = parse_page(markup)
    assert page.unparsed + len(page.messages) + page.service <= 2000


def test_page_without_history():
    page = parse_page("<html><body><div class='tgme_page'>If you have Telegram, you can contact</div></body></html>")
    assert not page.has_history and page.messages == []


def test_bad_date_is_reported_not_fatal():
    page = parse_page(
        "<div class='tgme_widget_message' data-post='chan_x/12'><div class='tgme_widget_message_text'>hi</div>"
        "<a class='tgme_widget_message_date'><time datetime='yesterday'></time></a></div>"
    )
    assert page.messages[0].published_at is None and page.messages[0].text == "hi"
    assert any("unreadable date" in p for p in page.problems)


@pytest.mark.parametrize(
    "text, expected",
    [("2", 2), ("1.2K", 1200), ("4.85K", 4850), ("10.7M", 10_700_000), ("79,8K", 79_800), ("", None), ("many", None)],
)
def test_parse_count(text, expected):
    assert parse_count(text) == expected


def test_declared_entities_in_a_page_are_not_expanded():
    # t.me pages are HTML, read by an HTML5 parser that has no DTD processing: an internal
    # subset is junk text to it and "&laugh;" stays as written. (Feeds are XML and get the
    # declaration check in newsradar.feeds; no Telegram mode parses XML.)
    page = (PAGES / "latest.html").read_bytes()
    hostile = page.replace(
        b"<!DOCTYPE html>", b'<!DOCTYPE html [<!ENTITY laugh "' + b"ha" * 50 + b'">]>', 1
    ).replace("Пикет у здания администрации".encode(), "Пикет &laugh; у здания".encode(), 1)
    assert hostile != page
    texts = [m.text for m in parse_page(hostile).messages]
    assert any("Пикет &laugh; у здания" in t for t in texts)
    assert not any("haha" in t for t in texts)


ALBUM = """<section class="tgme_channel_history js-message_history">
<div class="tgme_widget_message_wrap"><div class="tgme_widget_message text_not_supported_wrap" data-post="chan/1010">
<div class="tgme_widget_message_bubble">
<div class="tgme_widget_message_grouped_wrap"><a class="tgme_widget_message_photo_wrap" href="#"></a>
<a class="tgme_widget_message_photo_wrap" href="#"></a></div>
<div class="tgme_widget_message_text js-message_text" dir="auto"><div class="tgme_widget_message_text js-message_text"
 dir="auto">Repair work goes on.<br><br>Site visit: <a href="https://example.org/r">report</a></div></div>
<div class="tgme_widget_message_footer"><span class="tgme_widget_message_meta"><a class="tgme_widget_message_date"
 href="#"><time datetime="2026-03-02T06:15:00+00:00">06:15</time></a></span></div>
</div></div></div></section>"""


def test_an_album_caption_nested_in_its_copy_is_read_once():
    [m] = parse_page(ALBUM).messages
    assert m.text == "Repair work goes on.\n\nSite visit: report"
    assert m.html.count("https://example.org/r") == 1 and "tgme_widget_message_text" not in m.html
    assert m.media == ("photo",)
