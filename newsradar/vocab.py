"""The shared vocabulary, defined once: languages, source kinds, alert kinds, severities.

Records (:mod:`newsradar.records`), config models (:mod:`newsradar.config`), metrics labels
(:mod:`newsradar.metrics`) and the transforms all take these names from here, so a new value
is added in one place. The ``Literal`` types are the source; the tuples are derived from them.
"""

from __future__ import annotations

from typing import Literal, get_args

# The languages newsradar tags (watchlist keys, lang_hint, language detection targets).
Lang = Literal["en", "ru", "uk"]
LANGUAGES: tuple[str, ...] = get_args(Lang)
# What language detection reports for anything else; a label value, never a watchlist key.
OTHER_LANG = "other"
DETECTED_LANGUAGES: tuple[str, ...] = (*LANGUAGES, OTHER_LANG)

SourceKind = Literal["rss", "telegram"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)

AlertKind = Literal["new_mention", "first_in_window", "surge", "topic"]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)

# Ordered from least to most urgent: escalation moves one step right.
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)

MatchKind = Literal["exact", "lemma", "translit", "fuzzy", "contextual"]
MATCH_KINDS: tuple[str, ...] = get_args(MatchKind)
# Record schema version 1 knew only these; "contextual" (a short or generic name resolved by
# the article's context) came with version 2 (newsradar.records, "Versions").
MATCH_KINDS_V1: tuple[str, ...] = ("exact", "lemma", "translit", "fuzzy")
