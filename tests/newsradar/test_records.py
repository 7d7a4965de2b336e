import json
from datetime import UTC, datetime

import pytest

from newsradar import identity
from newsradar import records as r


def raw(**overrides):
    base = dict(
        article_id="rss:meduza-en:g:abc",
        source_id="meduza-en",
        source_kind="rss",
        url="https://meduza.io/en/news/1",
        title="Mobilization in Russia",
        text="Body",
        published_at="2026-11-20T10:00:00Z",
        fetched_at="2026-11-20T10:01:00.250Z",
    )
    base.update(overrides)
    return r.RawArticle(**base)


def test_raw_round_trip_keeps_every_field_and_version():
    article = raw(author="A. Author", lang_hint="en", guid="g-1", views=10, flags=("date_missing",))
    data = json.loads(article.encode())
    assert data["v"] == 1  # the oldest version that carries it (nothing in news.raw is new in 2)
    assert "html" not in data  # unset optionals are left out
    again = r.decode_raw(article.encode())
    assert again == article
    assert again.encode() == article.encode()


def test_decode_normalizes_timestamps_to_utc():
    payload = dict(json.loads(raw().encode()), published_at="2026-11-20T13:00:00+03:00")
    assert r.decode_raw(json.dumps(payload)).published_at == "2026-11-20T10:00:00Z"


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (lambda d: d.pop("title"), "title", "missing"),
        (lambda d: d.update(published_at="yesterday"), "published_at", "RFC 3339"),
        (lambda d: d.update(published_at="2026-11-20T10:00:00"), "published_at", "timezone"),
        (lambda d: d.update(source_kind="email"), "source_kind", "rss, telegram"),
        (lambda d: d.update(views="many"), "views", "expected int"),
        (lambda d: d.update(views=True), "views", "number"),
        (lambda d: d.update(article_id="  "), "article_id", "empty"),
        # An id is copied into every record made from this one (story ids, alerts): 1 MB of
        # it made a 3.5 MB news.tagged record (benchmarks/fuzz.py, seed 13).
        (lambda d: d.update(article_id="x" * 513), "article_id", "over 512"),
        (lambda d: d.update(source_id="s" * 10_000), "source_id", "over 512"),
        (lambda d: d.update(reply_to="tg:c:" + "1" * 600), "reply_to", "over 512"),
        (lambda d: d.update(v=4), "v", "unsupported schema version"),
        (lambda d: d.pop("v"), "v", "missing"),
        (lambda d: d.update(flags=[1]), "flags[0]", "expected str"),
    ],
)
def test_bad_raw_record_names_the_field(mutate, field, words):
    data = json.loads(raw().encode())
    mutate(data)
    with pytest.raises(r.RecordError) as err:
        r.decode_raw(json.dumps(data).encode())
    assert err.value.field == field
    assert words in str(err.value)


@pytest.mark.parametrize(
    "payload, words",
    [(b"not json", "not JSON"), (b"[1,2]", "JSON object"), (b"\xff\xfe", "UTF-8"), (b"{" + b" " * r.MAX_RECORD_BYTES + b"}", "cap")],
)
def test_undecodable_payloads(payload, words):
    with pytest.raises(r.RecordError) as err:
        r.decode_raw(payload)
    assert words in str(err.value)


def test_constructing_an_invalid_record_fails_at_the_edge():
    with pytest.raises(r.RecordError):
        raw(published_at="soon")


def test_tagged_round_trip_and_span_validation():
    tagged = r.TaggedArticle(
        article=raw(),
        lang="en",
        story_id="s-1",
        topics=(r.TopicTag("mobilization", 3.0, (r.Evidence("mobilization", 0, 12),)),),
        mentions=(r.Mention("united-russia", "United Russia", 20, 33, "exact"),),
    )
    data = json.loads(tagged.encode())
    assert data["duplicate_of"] is None and data["lang"] == "en" and data["title"] == "Mobilization in Russia"
    assert r.decode_tagged(tagged.encode()) == tagged
    data["mentions"][0]["end"] = 5
    with pytest.raises(r.RecordError) as err:
        r.decode_tagged(json.dumps(data))
    assert err.value.field == "mentions[0].end"
    data["mentions"][0].update(end=33, match="guess")
    with pytest.raises(r.RecordError) as err:
        r.decode_tagged(json.dumps(data))
    assert err.value.field == "mentions[0].match"


def test_contextual_mentions_are_version_2_and_version_1_is_still_read():
    old = r.TaggedArticle(article=raw(), lang="ru", story_id="s-1",
                          mentions=(r.Mention("russian-ministry-of-defence", "Минобороны России", 0, 17, "exact"),))
    new = r.TaggedArticle(article=raw(), lang="ru", story_id="s-1",
                          mentions=(r.Mention("russian-ministry-of-defence", "Минобороны", 0, 10, "contextual",
                                              "Russia's: Москва, Кремль"),))
    # Nothing new in it: written as version 1, so a reader one version behind takes it.
    assert json.loads(old.encode())["v"] == 1
    assert "resolved_by" not in json.loads(old.encode())["mentions"][0]
    assert r.decode_tagged(old.encode()) == old
    data = json.loads(new.encode())
    assert data["v"] == 2 and data["mentions"][0]["resolved_by"] == "Russia's: Москва, Кремль"
    assert r.decode_tagged(new.encode()) == new
    # A version-1 record cannot carry what version 2 added.
    data["v"] = 1
    with pytest.raises(r.RecordError) as err:
        r.decode_tagged(json.dumps(data))
    assert err.value.field == "mentions[0].resolved_by"
    del data["mentions"][0]["resolved_by"]
    with pytest.raises(r.RecordError) as err:
        r.decode_tagged(json.dumps(data))
    assert err.value.field == "mentions[0].match"


def test_a_topic_a_learned_classifier_decided_is_version_3_and_older_versions_are_still_read():
    plain = r.TopicTag("protest", 3.5, (r.Evidence("пикет", 0, 5),))
    learned = r.TopicTag("protest", 1.0, (r.Evidence("стояли", 0, 6),), learned=0.734)
    old = r.TaggedArticle(article=raw(), lang="ru", story_id="s-1", topics=(plain,))
    new = r.TaggedArticle(article=raw(), lang="ru", story_id="s-1", topics=(plain, learned))
    assert json.loads(old.encode())["v"] == 1 and "learned" not in json.loads(old.encode())["topics"][0]
    assert r.decode_tagged(old.encode()) == old
    data = json.loads(new.encode())
    assert data["v"] == 3 and data["topics"][1]["learned"] == 0.734
    assert r.decode_tagged(new.encode()) == new
    # the field is version 3's: a record of an older version cannot carry it
    for version in (1, 2):
        data["v"] = version
        with pytest.raises(r.RecordError) as err:
            r.decode_tagged(json.dumps(data))
        assert err.value.field == "topics[1].learned"
    data["v"] = 3
    for bad in (1.5, -0.1, True, "high"):
        data["topics"][1]["learned"] = bad
        with pytest.raises(r.RecordError) as err:
            r.decode_tagged(json.dumps(data))
        assert err.value.field == "topics[1].learned"


def test_alert_round_trip_and_subject_required():
    alert = r.Alert(
        alert_id=identity.alert_id("new_mention", "united-russia", "s-1"),
        kind="new_mention",
        severity="warning",
        article_id="a",
        story_id="s-1",
        url="https://x",
        title="t",
        snippet="... United Russia ...",
        why="First article of a new story mentioning United Russia.",
        created_at=r.format_time(r.utc_now()),
        org_id="united-russia",
    )
    assert r.decode_alert(alert.encode()) == alert
    data = json.loads(alert.encode())
    del data["org_id"]
    with pytest.raises(r.RecordError) as err:
        r.decode_alert(json.dumps(data))
    assert err.value.field == "org_id"


def test_dead_letter_keeps_original_bytes_text_or_binary():
    text = r.DeadLetter.wrap(b'{"oops"', "not JSON", "parse")
    assert text.encoding == "utf-8" and text.original_bytes() == b'{"oops"'
    binary = r.DeadLetter.wrap(b"\x00\xff\xfe", "not UTF-8", "parse")
    assert binary.encoding == "base64"
    back = r.decode_dead_letter(binary.encode())
    assert back.original_bytes() == b"\x00\xff\xfe" and back.step == "parse"


CJK = "士兵母亲委员会在市政厅前集会"  # 3 bytes a character in UTF-8


def test_fit_to_size_leaves_a_record_that_fits_alone():
    article = raw(html="<p>Body</p>", flags=("date_missing",))
    assert r.fit_to_size(article) is article
    assert r.fit_to_size(article, len(article.encode())) is article


def test_fit_to_size_drops_html_first():
    article = raw(text=CJK * 50, html="<p>" + CJK * 50 + "</p>", flags=("date_missing",))
    fitted = r.fit_to_size(article, len(article.encode()) - 100)
    assert fitted.html is None and fitted.text == article.text
    assert fitted.flags == ("date_missing", "html_dropped")


@pytest.mark.parametrize("text", [CJK * 400, ('"\\\n\x01' + CJK) * 300, "🙂a" * 2000])
def test_fit_to_size_cuts_text_on_a_character_boundary(text):
    article = raw(text=text, html="<p>x</p>")
    fitted = r.fit_to_size(article, 4096)
    encoded = fitted.encode()
    assert len(encoded) <= 4096
    assert len(encoded) > 4096 - 64, "cut far more than needed"
    assert text.startswith(fitted.text) and len(fitted.text) < len(text)
    assert fitted.flags == ("html_dropped", "text_truncated")
    again = r.decode_raw(encoded)  # valid UTF-8 and JSON, same identity
    assert again == fitted and again.article_id == article.article_id


def test_fit_to_size_cuts_the_title_last_and_refuses_what_cannot_fit():
    article = raw(title=CJK * 400, text=CJK * 400)
    fitted = r.fit_to_size(article, 4096)
    assert fitted.text == "" and article.title.startswith(fitted.title) and fitted.title
    assert fitted.flags == ("text_truncated", "title_truncated") and len(fitted.encode()) <= 4096
    with pytest.raises(r.RecordError, match="over the 4096-byte cap"):
        r.fit_to_size(raw(url="https://x.example/" + "a" * 5000), 4096)


def test_dead_letter_of_a_huge_payload_keeps_its_head_and_fits_its_topic():
    payload = ("я" * (r.MAX_DLQ_ORIGINAL_BYTES)).encode("utf-8")  # 2 bytes a character: twice the cap
    letter = r.DeadLetter.wrap(payload, "record exceeds the cap", "parse", source="news.raw/0/17")
    assert letter.original_size == len(payload)
    kept = letter.original_bytes()
    assert kept == payload[: len(kept)] and r.MAX_DLQ_ORIGINAL_BYTES - 4 <= len(kept) <= r.MAX_DLQ_ORIGINAL_BYTES
    encoded = letter.encode()
    assert len(encoded) <= r.MAX_OUTPUT_RECORD_BYTES
    back = r.decode_dead_letter(encoded)
    assert back.original_size == len(payload) and back.source == "news.raw/0/17"
    # Binary and cut: base64 grows it by a third, and it still fits.
    binary = r.DeadLetter.wrap(b"\xff" * (3 * r.MAX_DLQ_ORIGINAL_BYTES), "not UTF-8", "parse")
    assert binary.encoding == "base64" and len(binary.encode()) <= r.MAX_OUTPUT_RECORD_BYTES
    small = r.DeadLetter.wrap(b"{}", "missing fields", "parse")
    assert small.original_size is None and "original_size" not in json.loads(small.encode())


def test_pipeline_outputs_may_exceed_the_raw_cap():
    big_text = "x" * (r.MAX_RECORD_BYTES - 2000)
    article = r.RawArticle(
        article_id="a", source_id="s", source_kind="rss", url="https://x", title="t", text=big_text,
        published_at="2026-11-20T10:00:00Z", fetched_at="2026-11-20T10:00:00Z",
    )
    mentions = tuple(r.Mention("united-russia", "United Russia", i, i + 13, "exact") for i in range(0, 60000, 20))
    tagged = r.TaggedArticle(article=article, lang="en", story_id="s1", mentions=mentions)
    encoded = tagged.encode()
    assert r.MAX_RECORD_BYTES < len(encoded) <= r.MAX_OUTPUT_RECORD_BYTES
    assert r.decode_tagged(encoded).story_id == "s1"


@pytest.mark.parametrize("micro", [0, 1, 999, 1000, 123456, 999999])
def test_format_time_survives_a_round_trip(micro):
    from datetime import datetime

    t = datetime(2026, 11, 25, 19, 29, 26, micro, tzinfo=UTC)
    text = r.format_time(t)
    assert r.format_time(r.parse_time(text)) == text


@pytest.mark.parametrize("char", ["\x01", '"', "\\"])
def test_dead_letter_caps_the_encoded_original_whatever_its_escapes(char):
    # 700 KiB of byte 0x01 is 4.3 MB once JSON-escaped: over the broker's 4 MiB request limit.
    payload = (char * (3 * 1024 * 1024 // len(char.encode()))).encode("utf-8")
    letter = r.DeadLetter.wrap(payload, "too large", "parse")
    encoded = letter.encode()
    assert len(encoded) <= r.MAX_DLQ_ORIGINAL_BYTES + 2048
    back = r.decode_dead_letter(encoded)
    kept = back.original_bytes()
    assert back.original_size == len(payload) and kept == payload[: len(kept)] and len(kept) > 0


def test_dead_letter_of_700_kib_of_control_bytes_fits_whole_or_cut():
    payload = b'{"v":1,"title":"' + b"\x01" * (700 * 1024) + b'"}'
    letter = r.DeadLetter.wrap(payload, "bad", "parse")
    assert len(letter.encode()) <= r.MAX_DLQ_ORIGINAL_BYTES + 2048
    assert letter.original_size == len(payload)


def test_decode_refuses_what_python_cannot_read_as_a_record_error():
    base = json.loads(raw().encode())
    cases = {
        "nested": b"[" * 200_000,
        "huge int": json.dumps({**base, "message_id": 0}).replace('"message_id": 0', '"message_id": ' + "9" * 5000),
        "wide int": json.dumps({**base, "views": 2**70}),
        "nan": json.dumps(base)[:-1] + ',"views":NaN}',
        "overflow": json.dumps({**base, "published_at": "9999-12-31T23:59:59-23:59"}),
    }
    for name, payload in cases.items():
        with pytest.raises(r.RecordError):
            r.decode_raw(payload)
        assert name


def test_lone_surrogates_are_replaced_and_flagged_on_decode_and_build():
    base = json.loads(raw().encode())
    payload = json.dumps({**base, "title": "bad \ud83d title", "text": "pair \ud83d\ude00 ok"}, ensure_ascii=True)
    decoded = r.decode_raw(payload)
    assert decoded.title == "bad \ufffd title" and decoded.text == "pair \U0001f600 ok"
    assert "surrogates_replaced" in decoded.flags
    decoded.encode().decode("utf-8")  # valid UTF-8
    built = r.RawArticle(**{**{f: getattr(raw(), f) for f in ("article_id", "source_id", "source_kind", "url",
                           "published_at", "fetched_at")}, "title": "x\udc00", "text": "t"})
    assert built.title == "x\ufffd" and built.flags == ("surrogates_replaced",)


def test_encode_escapes_a_surrogate_it_is_handed_instead_of_raising():
    letter = r.DeadLetter(original="\ud800", error="e", step="s", at="2026-01-01T00:00:00Z")
    assert r.decode_dead_letter(letter.encode()).original == "\ud800"


def test_clamp_future_moves_times_ahead_of_the_clock_back_and_flags_them():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    future = raw(published_at="2099-01-01T00:00:00Z", fetched_at="2099-01-01T00:00:00Z")
    clamped = r.clamp_future(future, now)
    assert clamped.published_at == clamped.fetched_at == "2026-11-20T12:05:00Z"
    assert clamped.flags == ("published_at_clamped", "fetched_at_clamped")
    fine = raw(published_at="2026-11-20T12:04:00Z", fetched_at="2026-11-20T12:04:00Z")
    assert r.clamp_future(fine, now) is fine


def test_reply_to_travels_from_news_raw_to_news_tagged():
    from transforms.normalize import clean_article

    raw = r.RawArticle(
        article_id="tg:chan:8", source_id="tg", source_kind="telegram", url="https://t.me/chan/8", title="Ответ",
        text="Ответ", published_at="2026-03-02T08:00:00Z", fetched_at="2026-03-02T08:01:00Z", channel="chan",
        message_id=8, reply_to="tg:chan:5",
    )
    assert r.decode_raw(raw.encode()).reply_to == "tg:chan:5"
    tagged = r.TaggedArticle(article=clean_article(raw), lang="ru", story_id=raw.article_id)
    assert r.decode_tagged(tagged.encode()).article.reply_to == "tg:chan:5"
    assert b'"reply_to":"tg:chan:5"' in tagged.encode()


RAW = raw(html="<p>Body</p>", author="A. Author", lang_hint="en", flags=("date_missing",))


def _with_mark_in_url() -> r.RawArticle:
    # A decoded record keeps a SURROGATE_MARK (only a newly built one has its marks replaced).
    from newsradar.escapes import SURROGATE_MARK

    data = json.loads(RAW.encode())
    data["url"] = f"https://example.org/{SURROGATE_MARK}"
    return r.decode_raw(json.dumps(data).encode())


@pytest.mark.parametrize("article", [RAW, _with_mark_in_url()], ids=["built", "decoded with a mark"])
@pytest.mark.parametrize("title,text,flags", [
    ("Clean title", "Clean text.", None),
    ("", "Повестки вручают у метро.", ("text_cut",)),
    ("A lone \ud800 surrogate", "and a mark \U0010fffd here", ("date_missing",)),
    ("t", "x", ("surrogates_replaced",)),
])
def test_with_text_is_the_record_a_replace_builds(article, title, text, flags):
    import dataclasses

    fast = r.with_text(article, title, text, flags)
    assert fast == dataclasses.replace(article, title=title, text=text, html=None, flags=flags)
    assert r.decode_raw(fast.encode()) == fast


def test_with_text_refuses_what_a_record_cannot_hold():
    with pytest.raises(r.RecordError, match="text"):
        r.with_text(RAW, "title", None, None)
    with pytest.raises(r.RecordError, match="flags"):
        r.with_text(RAW, "title", "text", ["not", "a tuple"])


def test_records_pickle_as_their_values_without_looking_their_fields_up(monkeypatch):
    """The batch path hands articles to its workers and tagged ones back pickled: a record
    comes back equal, nested ones included, and neither pickling nor unpickling calls
    dataclasses.fields (the slotted dataclass's own pickling does, for every object)."""
    import dataclasses
    import pickle

    article = raw(author="A. Author", lang_hint="en", views=10, flags=("date_missing",), edited_at="2026-11-20T11:00:00Z")
    tagged = r.TaggedArticle(
        article=article, lang="en", story_id="s", duplicate_of="d", is_update=True,
        topics=(r.TopicTag("mobilization", 2.5, (r.Evidence("Body", 0, 4),), learned=0.9),),
        mentions=(r.Mention("cmw", "Body", 0, 4, "alias", resolved_by="x"),),
    )
    alert = r.Alert(alert_id="a", kind="new_mention", severity="warning", article_id=article.article_id,
                    story_id="s", url="https://x", title="t", snippet="Body", why="First.",
                    created_at="2026-11-20T10:00:00Z", org_id="cmw")
    for record in (article, tagged, alert, r.DeadLetter.wrap(b"\xff", error="bad", step="parse")):
        pickle.loads(pickle.dumps(record))  # warm the field-name cache
        monkeypatch.setattr(dataclasses, "fields", _refuse)
        try:
            again = pickle.loads(pickle.dumps(record))
        finally:
            monkeypatch.undo()
        assert again == record and type(again) is type(record)
        assert again.encode() == record.encode()


def _refuse(*_args):
    raise AssertionError("dataclasses.fields called")
