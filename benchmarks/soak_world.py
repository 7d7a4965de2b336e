"""The simulated world of the soak run (benchmarks/soak.py): sources, what they publish and
when, and the hostile records. Plain, deterministic functions of the seed, so the feed server
(its own process) and the driver build the same world from the same parameters.

* Sources have a cadence class (a few wire services publishing all day, busy outlets,
  regular ones, quiet blogs), a language, and a poll interval that fits the class.
* Publishing follows the day: more in the daytime (UTC+3), little at night, less at weekends.
* Stories: most items are originals; some originals are copied (lightly rewritten, new
  title) by other sources of the same language within hours, as wire copy is.
* Watched organizations from the watchlist recur: a share of stories names one of them
  (skewed, so a few come up every day and others rarely), and now and then one organization
  is named by many stories within an hour (a surge).
* Hostile records are produced straight into news.raw, a few per simulated day.

Times in the world are simulated unix seconds; the soak maps them to wall time.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

REPO = Path(__file__).resolve().parent.parent
VOCAB_FIXTURE = REPO / "tests" / "fixtures" / "pipeline" / "stories.jsonl"
WATCHLIST = REPO / "config" / "watchlist.yaml"

DAY = 86400.0
HOUR = 3600.0
LANGS = ("en", "ru", "uk")
LANG_WEIGHTS = (0.45, 0.35, 0.20)
FEED_WINDOW = 20  # items a feed shows, newest first

# name, share of sources, relative publishing rate, poll interval (simulated seconds)
CADENCES = (
    ("wire", 0.05, 12.0, 15 * 60),
    ("busy", 0.20, 3.0, 30 * 60),
    ("regular", 0.45, 1.0, 60 * 60),
    ("quiet", 0.30, 0.25, 3 * 3600),
)
_MEAN_RATE = sum(share * rate for _, share, rate, _ in CADENCES)
COPY_SHARE = 0.12  # of originals, copied by 1-4 other sources
MENTION_SHARE = 0.05  # of originals, naming a watched organization
SURGE_CHANCE = 0.5  # per simulated day: one organization named by many stories within an hour
SURGE_STORIES = 9


@dataclass(frozen=True, slots=True)
class Source:
    index: int
    id: str
    lang: str
    cadence: str
    poll_interval: float  # simulated seconds


@dataclass(frozen=True, slots=True)
class Item:
    """One published item. ``story`` numbers the story; a copy shares it with its original."""

    source: int
    n: int  # per source, in publishing order
    at: float  # simulated unix seconds
    story: int
    copy: int  # 0: the original; k: the k-th rewrite
    org: str | None  # the watched organization it names, if any


@dataclass(frozen=True)
class Params:
    seed: int = 20
    sources: int = 2000
    days: int = 14
    items_per_source_day: float = 2.0
    start: float = 0.0  # simulated start (unix seconds, midnight UTC)


def activity(at: float) -> float:
    """Relative publishing intensity at simulated time ``at`` (max 1.3)."""
    moment = datetime.fromtimestamp(at, UTC)
    hour = (moment.hour + 3) % 24
    level = 0.25 if hour < 6 else 1.3 if hour < 19 else 0.8
    return level * (0.6 if moment.weekday() >= 5 else 1.0)


def organizations(watchlist: Path = WATCHLIST) -> list[dict]:
    """The watched organizations with what the generator needs: aliases and context words per
    language, and a weight (the first listed ones come up most)."""
    doc = yaml.safe_load(watchlist.read_text(encoding="utf-8"))
    out = []
    for rank, org in enumerate(doc["organizations"]):
        aliases = {lang: [a["text"] if isinstance(a, dict) else a for a in names]
                   for lang, names in (org.get("aliases") or {}).items()}
        out.append({"id": org["id"], "aliases": aliases, "context": org.get("context") or {},
                    "weight": 1.0 / (rank + 1)})
    return out


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, list[str]]:
    words: dict[str, list[str]] = {}
    for line in VOCAB_FIXTURE.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for token in row["text"].replace(",", " ").replace(".", " ").replace('"', " ").split():
            if token.isalpha() and len(token) > 2:
                words.setdefault(row["lang"], []).append(token.lower())
    return {lang: sorted(set(ws)) for lang, ws in words.items()}


class World:
    """Every source and item of one soak, built once from :class:`Params`."""

    def __init__(self, params: Params, watchlist: Path = WATCHLIST):
        self.params = params
        self.end = params.start + params.days * DAY
        self.orgs = organizations(watchlist)
        rng = random.Random(params.seed)
        self.sources = [self._source(i, rng) for i in range(params.sources)]
        self.items = self._items(rng)
        self.by_source: dict[int, list[Item]] = {}
        for item in self.items:
            self.by_source.setdefault(item.source, []).append(item)
        self._times = {s: [i.at for i in items] for s, items in self.by_source.items()}

    def _source(self, index: int, rng: random.Random) -> Source:
        roll, acc = rng.random(), 0.0
        name, poll = CADENCES[-1][0], CADENCES[-1][3]
        for cadence, share, _, interval in CADENCES:
            acc += share
            if roll < acc:
                name, poll = cadence, interval
                break
        lang = rng.choices(LANGS, LANG_WEIGHTS)[0]
        return Source(index, f"soak-{index:05d}", lang, name, poll)

    def _rate(self, source: Source) -> float:
        rate = next(r for name, _, r, _ in CADENCES if name == source.cadence)
        return rate * self.params.items_per_source_day / _MEAN_RATE / DAY  # items per second at activity 1

    def _pick_org(self, rng: random.Random) -> str:
        return rng.choices([o["id"] for o in self.orgs], [o["weight"] for o in self.orgs])[0]

    def _items(self, rng: random.Random) -> list[Item]:
        p = self.params
        originals: list[tuple[float, int, int | None]] = []  # (at, source, org index)
        for source in self.sources:
            peak = self._rate(source) * 1.3
            at = p.start
            while True:
                at += rng.expovariate(peak)
                if at >= self.end:
                    break
                if rng.random() < activity(at) / 1.3:
                    org = self._pick_org(rng) if rng.random() < MENTION_SHARE else None
                    originals.append((at, source.index, org))
        for day in range(p.days):
            if rng.random() < SURGE_CHANCE:
                org = self._pick_org(rng)
                hour = p.start + day * DAY + rng.randrange(6, 18) * HOUR
                for _ in range(SURGE_STORIES):
                    originals.append((hour + rng.uniform(0, 3000), rng.randrange(p.sources), org))
        originals.sort()
        by_lang: dict[str, list[int]] = {}
        for s in self.sources:
            by_lang.setdefault(s.lang, []).append(s.index)
        raw: list[tuple[float, int, int, int, str | None]] = []  # (at, source, story, copy, org)
        for story, (at, source, org) in enumerate(originals):
            raw.append((at, source, story, 0, org))
            if rng.random() < COPY_SHARE:
                peers = by_lang[self.sources[source].lang]
                for k in range(1, rng.randint(1, 4) + 1):
                    copier = rng.choice(peers)
                    later = at + rng.uniform(600, 6 * HOUR)
                    if copier != source and later < self.end:
                        raw.append((later, copier, story, k, org))
        raw.sort()
        counts: dict[int, int] = {}
        items = []
        for at, source, story, copy, org in raw:
            n = counts.get(source, 0)
            counts[source] = n + 1
            items.append(Item(source, n, at, story, copy, org))
        return items

    # -- what a feed shows ---------------------------------------------------------

    def visible(self, source: int, now: float) -> list[Item]:
        """The items of ``source`` published by simulated time ``now``, newest first, at most
        :data:`FEED_WINDOW`."""
        times = self._times.get(source, [])
        upto = bisect.bisect_right(times, now)
        return self.by_source[source][max(0, upto - FEED_WINDOW):upto][::-1] if upto else []

    def published_by(self, now: float) -> int:
        return sum(bisect.bisect_right(t, now) for t in self._times.values())

    def feed(self, source: int, now: float) -> tuple[str, bytes]:
        """(ETag, RSS body) of ``source`` at simulated time ``now``."""
        shown = self.visible(source, now)
        etag = f'"{source}-{shown[0].n + 1 if shown else 0}"'
        src = self.sources[source]
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>',
            f"<title>Soak source {src.id}</title><link>https://{src.id}.soak.example/</link>",
            f"<description>generated</description><language>{src.lang}</language>",
        ]
        parts.extend(self.render(item) for item in shown)
        parts.append("</channel></rss>")
        return etag, "".join(parts).encode("utf-8")

    def render(self, item: Item) -> str:
        title, text = self.text(item)
        src = self.sources[item.source]
        when = format_datetime(datetime.fromtimestamp(item.at, UTC), usegmt=True)
        return (f"<item><title>{escape(title)}</title><link>https://{src.id}.soak.example/{item.n}</link>"
                f'<guid isPermaLink="false">{src.id}-{item.n}</guid><pubDate>{when}</pubDate>'
                f"<description>{escape(text)}</description></item>")

    def text(self, item: Item) -> tuple[str, str]:
        """(title, text) of an item: the story's words, rewritten a little per copy."""
        # Copies are made within one language, so the copier's language is the story's.
        return _story_text(self.params.seed, item.story, self.sources[item.source].lang,
                           item.org, item.copy, self._org_names(item.org))

    def _org_names(self, org_id: str | None) -> str:
        if org_id is None:
            return ""
        org = next(o for o in self.orgs if o["id"] == org_id)
        return json.dumps({"aliases": org["aliases"], "context": org["context"]}, ensure_ascii=False)


@lru_cache(maxsize=50_000)
def _story_text(seed: int, story: int, lang: str, org: str | None, copy: int, names: str) -> tuple[str, str]:
    rng = random.Random(_hash_seed(seed, story))
    words = vocabulary()[lang]
    sentences = [[rng.choice(words) for _ in range(rng.randint(8, 16))] for _ in range(rng.randint(6, 10))]
    title = [rng.choice(words) for _ in range(rng.randint(6, 10))]
    if org is not None:
        spec = json.loads(names)
        aliases = spec["aliases"].get(lang) or next(iter(spec["aliases"].values()))
        context = spec["context"].get(lang) or []
        alias = rng.choice(aliases)
        where = rng.randrange(len(sentences))
        mention = [rng.choice(words), rng.choice(words), alias] + ([rng.choice(context)] if context else [])
        sentences[where] = sentences[where][:3] + mention + sentences[where][3:]
    if copy:
        edit = random.Random(_hash_seed(seed, story, copy))
        for sentence in sentences:
            for i in range(len(sentence)):
                if edit.random() < 0.05:
                    sentence[i] = edit.choice(words)
        title = [edit.choice(words) for _ in range(len(title))]
    body = " ".join(_sentence(s) + "." for s in sentences)
    return _sentence(title), body


def _sentence(words: list[str]) -> str:
    text = " ".join(words)
    return text[:1].upper() + text[1:]  # not str.capitalize: it would lower-case the names


def _hash_seed(*parts: int) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def hostile_records(day: int) -> list[bytes]:
    """What a broken or malicious producer might put on news.raw on one simulated day: not
    JSON, not UTF-8, the wrong JSON type, a record with fields of the wrong type."""
    return [
        b"\xff\xfe soak hostile day %d: not UTF-8, not JSON" % day,
        b'["soak hostile", %d, "a JSON array, not an object"]' % day,
        json.dumps({"article_id": day, "source_id": ["soak"], "text": None, "url": 7}).encode(),
    ]


def sources_yaml(world: World, base_url: str, accel: float, metrics_port: int, min_poll: float) -> dict:
    """The connectors' sources file for ``world`` served at ``base_url``: each source's poll
    interval is its simulated interval in wall time (never below ``min_poll`` seconds)."""
    def wall(sim: float) -> str:
        return f"{max(min_poll, sim / accel):.1f}s"

    return {
        "allow_private_networks": True,
        "defaults": {"interval": wall(3600), "min_interval": "1s", "timeout": "10s",
                     "per_host_concurrency": 16, "max_concurrent_polls": 64},
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "sources": [{"id": s.id, "kind": "rss", "url": f"{base_url}/f/{s.index}.xml",
                     "interval": wall(s.poll_interval), "lang": s.lang} for s in world.sources],
    }
