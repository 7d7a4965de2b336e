"""Which feed entry is which from one poll to the next: per-item ids, and updates.

Rules (docs/connectors.md, "Identity of feed items"), each decided per entry, so what the
rest of the feed does never changes an entry's id:

1. An entry is known by its guid; without one, by its canonical link; without either, by
   its title and text (:func:`newsradar.identity.rss_article_id`).
2. A guid naming more than one item is *shared*: two entries of one body carry it with
   different links, or a later body lists it with another link than the item that had it.
   Entries with a shared guid are told apart by guid + canonical link, except the item that
   held the guid before (same link), which keeps its id. A shared guid is remembered (in the
   source's cursor, the :data:`MAX_SHARED_GUIDS` latest), so its ids do not flip back when the
   repetition ends. Entries with other guids keep their guid ids.
3. The same id twice in one body (same guid and link): the first entry counts.
4. An entry whose title or text changed since the last delivered body, under the same id,
   is an update: the same ``article_id`` with ``edited_at`` = the fetch time, flagged
   ``edit_time_is_fetch_time``. The delivery loop sends it (a new ``(article_id, edited_at)``)
   and Dedupe passes it as ``is_update``. Nothing else about an entry (its date, its markup)
   makes an update.
5. A cursor written before these rules that says ``guids_repeat`` keeps guid + link ids for
   every entry of that feed, as then, so no id changes on upgrade.

Everything here is a pure function of the entries and the memory of the previous body.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from newsradar.identity import canonical_url, rss_article_id

# How many shared guids a feed's cursor remembers (the latest found).
MAX_SHARED_GUIDS = 1000
UPDATE_FLAG = "edit_time_is_fetch_time"


def _short(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:12]


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


@dataclass(frozen=True)
class Candidate:
    """What identity needs of one entry: its guid, link, title and text as read."""

    guid: str | None
    link: str
    title: str
    text: str

    @property
    def link_key(self) -> str:
        return _short(canonical_url(self.link)) if self.link else ""

    @property
    def content_key(self) -> str:
        return _short(_norm(self.title), _norm(self.text))


@dataclass(frozen=True)
class FeedMemory:
    """What a feed's cursor keeps about its last delivered body (JSON-ready via to_cursor)."""

    # Digests of guids known to name more than one item, oldest first.
    shared_guids: tuple[str, ...] = ()
    # For each record of the last delivered body: article id -> (link digest, content digest).
    items: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # A cursor from before these rules that had seen a guid repeated (rule 5).
    all_guid_link: bool = False

    @classmethod
    def from_cursor(cls, cursor: Mapping[str, Any] | None) -> FeedMemory:
        cursor = cursor or {}
        items = cursor.get("items") if isinstance(cursor.get("items"), dict) else {}
        return cls(
            shared_guids=tuple(g for g in cursor.get("shared_guids") or () if isinstance(g, str)),
            items={k: (v[0], v[1]) for k, v in items.items() if isinstance(v, list) and len(v) == 2},
            all_guid_link=bool(cursor.get("guids_repeat")),
        )

    def to_cursor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shared_guids": list(self.shared_guids),
                               "items": {k: list(v) for k, v in self.items.items()}}
        if self.all_guid_link:
            out["guids_repeat"] = True
        return out


@dataclass(frozen=True)
class Identity:
    """The id of one entry, and whether it is an update of what was delivered under it."""

    article_id: str
    updated: bool


def identify(
    source_id: str, entries: Sequence[Candidate], memory: FeedMemory
) -> tuple[list[Identity | None], FeedMemory]:
    """Ids for ``entries`` (None for a repeat within the body, rule 3) and the memory to save."""
    shared = list(memory.shared_guids)
    shared_set = set(shared)

    def share(guid: str) -> None:
        key = _short(guid)
        if key not in shared_set:
            shared_set.add(key)
            shared.append(key)

    links_of: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if entry.guid:
            links_of[entry.guid].add(entry.link_key)
    for guid, links in links_of.items():
        if len(links) > 1:
            share(guid)
            continue
        before = memory.items.get(_key(rss_article_id(source_id, guid=guid)))
        (link,) = links
        if before is not None and before[0] and link and before[0] != link:
            share(guid)  # the guid now names another item than the one that had it

    out: list[Identity | None] = []
    items: dict[str, tuple[str, str]] = {}
    for entry in entries:
        article_id = _article_id(source_id, entry, memory, shared_set)
        key = _key(article_id)
        if key in items:
            out.append(None)
            continue
        before = memory.items.get(key)
        items[key] = (entry.link_key, entry.content_key)
        out.append(Identity(article_id, updated=before is not None and before[1] != entry.content_key))
    kept = tuple(shared[-MAX_SHARED_GUIDS:])
    return out, FeedMemory(shared_guids=kept, items=items, all_guid_link=memory.all_guid_link)


def _article_id(source_id: str, entry: Candidate, memory: FeedMemory, shared: set[str]) -> str:
    if not entry.guid:
        return rss_article_id(source_id, link=entry.link, title=entry.title, text=entry.text)
    if memory.all_guid_link:
        return rss_article_id(source_id, guid=entry.guid, link=entry.link, guid_is_repeated=True)
    by_guid = rss_article_id(source_id, guid=entry.guid)
    if _short(entry.guid) not in shared or not entry.link:
        return by_guid
    before = memory.items.get(_key(by_guid))
    if before is not None and before[0] == entry.link_key:
        return by_guid  # the item that held the guid keeps its id
    return rss_article_id(source_id, guid=entry.guid, link=entry.link, guid_is_repeated=True)


def _key(article_id: str) -> str:
    # "rss:<source>:<kind>:<digest>" -> "<kind>:<digest>": the source is the cursor's own.
    return article_id.rsplit(":", 2)[-2] + ":" + article_id.rsplit(":", 1)[-1]


__all__ = ["Candidate", "FeedMemory", "Identity", "MAX_SHARED_GUIDS", "UPDATE_FLAG", "identify"]
