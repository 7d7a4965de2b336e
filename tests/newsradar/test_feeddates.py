"""Dates in other languages (newsradar.feeddates), and what parse_feed makes of them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsradar.feeddates import MONTHS, parse_localized_date
from newsradar.feeds import parse_feed


@pytest.mark.parametrize("text, utc, assumed", [
    ("mer, 16 nov 2022 00:38:15 +0100", "2022-11-15 23:38:15", False),  # Il Messaggero
    ("Seg, 24 Set 2018 19:42:40 -0300", "2018-09-24 22:42:40", False),  # UOL
    ("lun., 3 déc. 2018 08:00:00 GMT", "2018-12-03 08:00:00", False),
    ("Di, 15. März 2022 10:00:00 CET", "2022-03-15 09:00:00", False),
    ("jue, 05 ene 2023 10:00:00 +01:00", "2023-01-05 09:00:00", False),
    ("śr, 16 paź 2022 10:00:00 +0200", "2022-10-16 08:00:00", False),
    ("za, 4 mrt 2023 10:00:00 +0100", "2023-03-04 09:00:00", False),
    ("16 de novembro de 2022 10:00", "2022-11-16 10:00:00", True),
    ("16 ноября 2022 10:00 MSK", "2022-11-16 07:00:00", False),
    ("Ср, 16 ноя 2022 10:00:00 +0300", "2022-11-16 07:00:00", False),
    ("16 листопада 2022, 10:00", "2022-11-16 10:00:00", True),
    ("3 travnja 2022", None, None),  # Croatian: not one of the languages, no guess
    ("Wed, 16 Foo 2022 10:00:00 GMT", None, None),
    ("32 nov 2022 10:00", None, None),
    ("16 nov 2022 25:00", None, None),
    ("16 nov 2022 10:00 +2500", None, None),
    ("16 nov 2022 10:00 XYZ", None, None),
    ("16 ma 2022", None, None),  # two letters name no month
])
def test_localized_dates(text, utc, assumed):
    got = parse_localized_date(text)
    if utc is None:
        assert got is None
    else:
        assert got == (datetime.fromisoformat(utc).replace(tzinfo=UTC), assumed)


def test_no_prefix_names_two_months():
    # "ma" (maggio? marzo?) and "ju" are not in the table; "mar", "mai", "jun", "jul" are, once each.
    assert "ma" not in MONTHS and "ju" not in MONTHS
    assert (MONTHS["mar"], MONTHS["mai"], MONTHS["jun"], MONTHS["jul"], MONTHS["set"], MONTHS["out"]) == (3, 5, 6, 7, 9, 10)


def feed_dated(date: str) -> bytes:
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>d</title><item>"
            f"<title>t</title><link>https://d.example.org/1</link><pubDate>{date}</pubDate></item></channel></rss>"
            ).encode()


@pytest.mark.parametrize("date, published, flags", [
    ("mer, 16 nov 2022 00:38:15 +0100", "2022-11-15T23:38:15Z", None),
    ("16 ноября 2022 10:00", "2022-11-16T10:00:00Z", ("date_zone_assumed",)),
    ("mer, 16 nov 2099 00:38:15 +0100", "2026-11-25T12:00:00Z", ("date_future",)),  # same checks as any date
    ("mer, 16 xyz 2022", "2026-11-25T12:00:00Z", ("date_malformed",)),
])
def test_parse_feed_reads_them_before_falling_back(date, published, flags):
    fetched = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    [record] = parse_feed(feed_dated(date), {}, source_id="s", fetched_at=fetched).records
    assert (record.published_at, record.flags) == (published, flags)
