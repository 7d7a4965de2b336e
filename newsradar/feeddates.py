"""Feed dates that feedparser cannot read: RFC 822 shapes with month names in other languages.

Feeds from Italy, Brazil, France, Germany, Poland, Russia or Ukraine often write their dates
in the site's language ("mer, 16 nov 2022 00:38:15 +0100", "Seg, 24 Set 2018 19:42:40 -0300",
"16 ноября 2022 10:00"). feedparser only knows English names and gives up; without this the
entry would fall back to the fetch time.

Guarantees of :func:`parse_localized_date`:

* It reads ``[weekday[,]] day [.] [de] month[.] [de] year [[,] hh:mm[:ss] [zone]]``, where the
  weekday is any word (it is not checked: it adds nothing to the date), the month is a full
  name, a genitive or an abbreviation of at least three letters in English, French, German,
  Italian, Spanish, Portuguese, Dutch, Polish, Russian or Ukrainian (accents optional), and the
  zone is a numeric offset or one of :data:`ZONES`.
* It returns an aware UTC datetime and whether the zone was assumed (none given: UTC), or
  ``None`` for anything else, never a guess: an unknown month word, day 32, hour 25.
* Linear in the length of the text (one anchored regular expression, no nested repetition).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta

# Full month names (nominative and, where it differs, genitive), lower case, accents removed.
_MONTH_NAMES = {
    1: "january janvier januar gennaio enero janeiro januari styczen stycznia январь января январ січень січня",
    2: "february fevrier februar febbraio febrero fevereiro februari luty lutego февраль февраля лютий лютого",
    3: "march mars marz marzo marco maart marzec marca март марта березень березня",
    4: "april avril aprile abril kwiecien kwietnia апрель апреля квітень квітня",
    5: "may mai maggio mayo maio mei maj maja май мая травень травня",
    6: "june juin juni giugno junio junho czerwiec czerwca июнь июня червень червня",
    7: "july juillet juli luglio julio julho lipiec lipca июль июля липень липня",
    8: "august aout agosto augustus sierpien sierpnia август августа серпень серпня",
    9: "september septembre settembre septiembre setiembre setembro wrzesien wrzesnia сентябрь сентября "
       "вересень вересня",
    10: "october octobre oktober ottobre octubre outubro pazdziernik pazdziernika октябрь октября жовтень жовтня",
    11: "november novembre noviembre novembro listopad listopada ноябрь ноября листопад листопада",
    12: "december decembre dezember dicembre diciembre dezembro grudzien grudnia декабрь декабря грудень грудня",
}
# Abbreviations that are not a prefix of a full name.
_MONTH_ABBREVIATIONS = {"mrt": 3, "sept": 9}


def _fold(word: str) -> str:
    """Lower case, Latin letters without accents ("Déc." -> "dec", "März" -> "marz");
    Cyrillic words keep theirs ("й" and "ї" are letters of their own)."""
    word = word.casefold().rstrip(".")
    if any("\u0400" <= ch <= "\u04ff" for ch in word):
        return word
    return "".join(ch for ch in unicodedata.normalize("NFD", word) if not unicodedata.combining(ch))


def _month_table() -> dict[str, int]:
    table: dict[str, int] = {}
    conflicts: set[str] = set()
    for month, names in _MONTH_NAMES.items():
        for name in names.split():
            for end in range(3, len(name) + 1):
                prefix = name[:end]
                if table.get(prefix, month) != month:
                    conflicts.add(prefix)
                table[prefix] = month
    for prefix in conflicts:  # a prefix two months share names neither
        del table[prefix]
    table.update(_MONTH_ABBREVIATIONS)
    return table


MONTHS = _month_table()

# Zone names feeds use, with their offsets in hours.
ZONES = {
    "gmt": 0, "ut": 0, "utc": 0, "z": 0, "wet": 0, "west": 1, "bst": 1, "cet": 1, "met": 1, "cest": 2, "mest": 2,
    "eet": 2, "eest": 3, "msk": 3, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6,
    "pst": -8, "pdt": -7,
}

_DATE = re.compile(
    r"""^\s*
    (?:[^\W\d_]+\.?,?\s+)?                # weekday, not checked
    (?P<day>\d{1,2})\.?\s+
    (?:de\s+)?(?P<month>[^\W\d_]{3,}\.?),?\s+
    (?:de\s+)?(?P<year>\d{4}|\d{2})
    (?:,?\s+(?:[^\W\d_]{1,3}\.?\s+)?      # "à", "um", "в" before the time
       (?P<hour>\d{1,2})[:h.](?P<minute>\d{2})(?::(?P<second>\d{2}))?
       (?:\s*(?P<zone>[+-]\d{2}:?\d{2}|[A-Za-z]{1,5}))?
    )?\s*$""",
    re.VERBOSE,
)


def parse_localized_date(text: str) -> tuple[datetime, bool] | None:
    """``(when in UTC, zone_assumed)`` for a date in one of the shapes above, else None."""
    match = _DATE.match(text or "")
    if not match:
        return None
    month = MONTHS.get(_fold(match["month"]))
    if month is None:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:
        year += 2000 if year < 70 else 1900
    offset, assumed = _offset(match["zone"]) if match["hour"] else (timedelta(0), True)
    if offset is None:
        return None
    try:
        local = datetime(year, month, int(match["day"]), int(match["hour"] or 0), int(match["minute"] or 0),
                         int(match["second"] or 0))
    except ValueError:
        return None
    return (local - offset).replace(tzinfo=UTC), assumed


def _offset(zone: str | None) -> tuple[timedelta | None, bool]:
    if not zone:
        return timedelta(0), True
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            return None, False
        sign = 1 if zone[0] == "+" else -1
        return sign * timedelta(hours=hours, minutes=minutes), False
    hours = ZONES.get(zone.lower())
    return (timedelta(hours=hours), False) if hours is not None else (None, False)


__all__ = ["MONTHS", "ZONES", "parse_localized_date"]
