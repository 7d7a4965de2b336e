"""The state rebuild at start, as plain code: what news.tagged and news.alerts say the stateful
steps knew, folded into a :class:`Seed` that the steps take into *empty* state.

Prism keeps pipeline state in memory, so a restart would forget stories, novelty windows and
surge baselines. Before the job is submitted, the launcher (:mod:`pipelines.rebuild`) reads the
topics back over the pipeline's longest memory and feeds every tagged record, in the order it
arrived, to :class:`SeedBuilder`, which applies the same rules the stream applies:

* Dedupe's repeats (:func:`transforms.dedupe.judge_repeat`): per article id, the last version
  that went out and when that is forgotten (``repeat_window`` after its newest arrival);
* Dedupe's stories: per language, the :class:`transforms.dedupe.StoryEntry` of every article
  (its story id as written, exact key and MinHash sketch recomputed from its text);
* novelty (:func:`transforms.alert_rules.observe`, through the same
  :func:`~transforms.alert_rules.watched_event`): per organization, the OrgState the mentions
  build — stories, first and last seen, hour counts, the last surge. What the rules trigger
  during the fold is dropped: those alerts were raised when the records were live.

and collects, per organization, the ids of the alerts already on news.alerts.

What is older than the memory goes into the seed only as each organization's *lifetime*
fields (first and last mention, last surge): ``first_in_window`` after a silence longer than
the memory needs the last mention before it. They come from the tagged records read before the
memory's start (:meth:`SeedBuilder.add_lifetime`) and from news.novelty
(:meth:`SeedBuilder.add_summary`), the compacted topic the stream's prune timer writes when it
reduces an organization to those fields and the launcher writes after each rebuild
(:meth:`SeedBuilder.summaries`), so they outlive news.tagged's retention.

Guarantees:

* The seed only fills **empty** state: a step folds a key's part of it the first time it
  sees the key with nothing in state (on Flink with restored state, state is not empty and the
  seed is not used). An alert whose id is on news.alerts is never raised again.
* Records whose news.raw record was not committed (``pending``: read again after the restart)
  are left out of the fold, so their replay is judged against the state before them, as the
  first time, and raises what it raised then (under the same ids) or what it did not get to
  raise before a crash.
* The seed travels to the workers with the pipeline (a compressed blob in the steps'
  arguments, decoded once per worker process), so it works on any runner. A large one (over
  :data:`INLINE_LIMIT`) is written to a file the steps' arguments name instead
  (:meth:`SeedBlob.shipped`), which every worker must be able to read.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from newsradar.config.watchlist import Watchlist
from newsradar.records import Alert, NoveltySummary, TaggedArticle, format_time

from .alert_rules import MentionEvent, OrgState, events_of, observe, watched_event
from .dedupe import NEW, UPDATE, DedupeSettings, StoryEntry, Version, exact_key, judge_repeat, sketch, version_of
from .state_coders import StateFormatError, decode_org_state, encode_org_state

_MICROS = 1_000_000
SEED_FORMAT = 1


@dataclass
class Seed:
    """What the rebuild found, by the keys of the stateful steps."""

    # article id -> (last version that went out, when it is forgotten, micros)
    repeats: dict[str, tuple[Version, int]] = field(default_factory=dict)
    # language -> story entries, in arrival order
    stories: dict[str, list[StoryEntry]] = field(default_factory=dict)
    # organization id -> its novelty state
    orgs: dict[str, OrgState] = field(default_factory=dict)
    # organization id -> ids of the alerts about it already on news.alerts
    alert_ids: dict[str, frozenset[str]] = field(default_factory=dict)

    def repeat(self, article_id: str, ts_micros: int) -> tuple[Version, int] | None:
        """The remembered version of ``article_id`` for an element at ``ts_micros``, unless
        the stream would have forgotten it by then."""
        found = self.repeats.get(article_id)
        return found if found is not None and found[1] > ts_micros else None

    def org_state(self, org_id: str) -> OrgState | None:
        """A fresh copy of the organization's state (the rules change state in place)."""
        state = self.orgs.get(org_id)
        return None if state is None else decode_org_state(encode_org_state(state))

    def raised(self, org_id: str | None, alert_id: str) -> bool:
        return alert_id in self.alert_ids.get(org_id or "", ())

    def counts(self) -> dict[str, int]:
        return {
            "article ids": len(self.repeats),
            "story entries": sum(len(v) for v in self.stories.values()),
            "organizations": len(self.orgs),
            "alert ids": sum(len(v) for v in self.alert_ids.values()),
        }


def pending_key(article_id: str, edited_at: str | None, fetched_at: str) -> tuple[str, str, str]:
    """Identifies a version of an article across news.raw and news.tagged (the fields Normalize
    leaves as they came), for leaving uncommitted records out of the fold."""
    return (article_id, edited_at or "", fetched_at)


class SeedBuilder:
    """Folds history into a :class:`Seed`. Give it the tagged records in the order they arrived
    (:meth:`add_tagged`) and the alerts on news.alerts (:meth:`add_alert`), then :meth:`seed`."""

    def __init__(self, watchlist: Watchlist, settings: DedupeSettings | None = None,
                 pending: Iterable[tuple[str, str, str]] = ()):
        self._watchlist = watchlist
        self._settings = settings or DedupeSettings()
        self._repeat_window = int(self._settings.repeat_window_seconds * _MICROS)
        self._pending = set(pending)
        self._seed = Seed()
        # Story entries still within reach, per language; sketched only at the end (the
        # sketch is most of the fold's cost, and only the newest story window's worth stays).
        self._stories: dict[str, dict[str, tuple[int, TaggedArticle]]] = {}
        self._story_reach = int((self._settings.story_window_seconds + self._settings.prune_interval_seconds)
                                * _MICROS)
        self._alert_ids: dict[str, set[str]] = {}
        # organization id -> [first seen, last seen, last surge] from before the memory
        self._lifetime: dict[str, list[float | None]] = {}
        self._newest = 0
        self.folded = 0
        self.left_pending = 0
        self.alerts = 0
        self.lifetime_read = 0
        self.summaries_read = 0

    def add_tagged(self, tagged: TaggedArticle, arrived_micros: int) -> bool:
        """Fold one tagged record; False when it was left out (its raw record is pending)."""
        art = tagged.article
        if pending_key(art.article_id, art.edited_at, art.fetched_at) in self._pending:
            self.left_pending += 1
            return False
        self._newest = max(self._newest, arrived_micros)
        fold_repeat(self._seed.repeats, tagged, arrived_micros, self._repeat_window)
        fold_story(self._stories, tagged, arrived_micros, self._newest - self._story_reach)
        for _org_id, event in events_of(tagged):
            fold_mention(self._seed.orgs, event, self._watchlist, self._lifetime)
        self.folded += 1
        return True

    def add_lifetime(self, tagged: TaggedArticle) -> bool:
        """A tagged record from before the memory: only when its organizations were seen."""
        art = tagged.article
        if pending_key(art.article_id, art.edited_at, art.fetched_at) in self._pending:
            self.left_pending += 1
            return False
        for _org_id, event in events_of(tagged):
            watched = watched_event(self._watchlist, event)
            if watched is not None:
                self._widen(watched[0].id, event.event_time, event.event_time, None)
        self.lifetime_read += 1
        return True

    def add_summary(self, summary: NoveltySummary) -> None:
        """A record of news.novelty (any of an organization's: they are merged)."""
        self._widen(summary.org_id, summary.first_seen, summary.last_seen, summary.last_surge)
        self.summaries_read += 1

    def _widen(self, org_id: str, first: float, last: float, surge: float | None) -> None:
        known = self._lifetime.setdefault(org_id, [first, last, surge])
        known[0] = min(known[0], first)
        known[1] = max(known[1], last)
        if surge is not None:
            known[2] = surge if known[2] is None else max(known[2], surge)

    def add_alert(self, alert: Alert) -> None:
        self._alert_ids.setdefault(alert.org_id or "", set()).add(alert.alert_id)
        self.alerts += 1

    def seed(self) -> Seed:
        """The seed, without what the stream would already have forgotten at the newest arrival:
        repeats past their window; story entries older than the story window plus the prune
        interval (the stream's prune timer removes the rest as the watermark passes)."""
        s = self._seed
        horizon = self._newest - self._story_reach
        return Seed(
            repeats={k: v for k, v in s.repeats.items() if v[1] > self._newest},
            stories={lang: kept for lang, entries in self._stories.items()
                     if (kept := [story_entry(t, ts, self._settings) for ts, t in entries.values() if ts >= horizon])},
            orgs=with_lifetime(s.orgs, self._lifetime),
            alert_ids={k: frozenset(v) for k, v in self._alert_ids.items()},
        )

    def summaries(self, seed: Seed, known: dict[str, NoveltySummary], now: datetime) -> list[NoveltySummary]:
        """What news.novelty should hold after this rebuild and does not: a summary of every
        organization in ``seed`` whose lifetime fields differ from ``known`` (the newest
        record per organization on the topic). Written by the launcher, so that an
        organization the restarted job never sees again is still known at the next restart."""
        out = []
        for org_id, state in sorted(seed.orgs.items()):
            summary = summary_of(org_id, state, now)
            old = known.get(org_id)
            if summary is not None and (old is None or (old.first_seen, old.last_seen, old.last_surge)
                                        != (summary.first_seen, summary.last_seen, summary.last_surge)):
                out.append(summary)
        return out


def with_lifetime(orgs: dict[str, OrgState], lifetime: dict[str, list[float | None]]) -> dict[str, OrgState]:
    """The folded states with what is known from before the memory: the first mention is the
    earliest of all, the last (and the last surge) the latest; an organization only known
    from before gets a state of those fields alone (what the stream's prune leaves)."""
    out = dict(orgs)
    for org_id, (first, last, surge) in lifetime.items():
        state = out.get(org_id)
        if state is None:
            out[org_id] = OrgState(last_seen=last, first_seen=first, last_surge=surge)
            continue
        out[org_id] = dataclasses.replace(
            state,
            first_seen=first if state.first_seen is None else min(state.first_seen, first),
            last_seen=last if state.last_seen is None else max(state.last_seen, last),
            last_surge=surge if state.last_surge is None else (state.last_surge if surge is None
                                                                 else max(state.last_surge, surge)),
        )
    return out


def summary_of(org_id: str, state: OrgState, now: datetime) -> NoveltySummary | None:
    """The news.novelty record of an organization's state (None before its first mention)."""
    if state.last_seen is None or state.first_seen is None:
        return None
    return NoveltySummary(org_id=org_id, first_seen=state.first_seen, last_seen=state.last_seen,
                          written_at=format_time(now), last_surge=state.last_surge)


def fold_repeat(repeats: dict[str, tuple[Version, int]], tagged: TaggedArticle, ts_micros: int,
                window_micros: int) -> None:
    """DropRepeats' rule for a record that went out: its version is remembered if the rule
    would have let it pass (new, or a later edit), and the id is kept a window past its newest
    arrival."""
    article_id = tagged.article.article_id
    incoming = version_of(tagged)
    last, expires = repeats.get(article_id, (None, 0))
    verdict = judge_repeat(last, incoming)
    kept = incoming if verdict in (NEW, UPDATE) else last
    repeats[article_id] = (kept, max(expires, ts_micros + window_micros))


def fold_story(stories: dict[str, dict[str, tuple[int, TaggedArticle]]], tagged: TaggedArticle, ts_micros: int,
               horizon_micros: int) -> None:
    """GroupStories' memory of a record: the first record of an article id wins while it is
    remembered, as in :meth:`transforms.dedupe.StoryIndex.add`. Records older than
    ``horizon_micros`` at the front (arrival order) are forgotten as the stream's prune would."""
    entries = stories.setdefault(tagged.lang, {})
    while entries:
        first = next(iter(entries))
        if entries[first][0] >= horizon_micros:
            break
        del entries[first]
    entries.setdefault(tagged.article.article_id, (ts_micros, tagged))


def story_entry(tagged: TaggedArticle, ts_micros: int, settings: DedupeSettings) -> StoryEntry:
    """The entry GroupStories keeps for a tagged record: its story as written on news.tagged;
    the exact key and sketch recomputed from the text (pure functions of it)."""
    return StoryEntry(tagged.article.article_id, tagged.story_id, tagged.duplicate_of or "", ts_micros,
                      exact_key(tagged), sketch(tagged, settings))


def fold_mention(orgs: dict[str, OrgState], event: MentionEvent, watchlist: Watchlist,
                 lifetime: dict[str, list[float | None]] | None = None) -> None:
    """The novelty rules over one mention, for their state only (the triggers were raised, or
    withheld, when the record was live). An organization's first folded mention starts from
    its ``lifetime`` fields (what the stream's state held from before the memory), so the
    surge baseline and cooldown see what the stream saw."""
    watched = watched_event(watchlist, event)
    if watched is None:
        return
    org, event = watched
    state = orgs.get(org.id)
    if state is None:
        first, last, surge = (lifetime or {}).get(org.id, (None, None, None))
        state = orgs[org.id] = OrgState(last_seen=last, first_seen=first, last_surge=surge)
    observe(state, event, org, watchlist.novelty)


# ---------------------------------------------------------------------------
# transport to the workers


def encode_seed(seed: Seed) -> bytes:
    """A versioned, compressed encoding of plain values (no pickled classes)."""
    body = {
        "repeats": {k: [v.edited_at, v.fetched_at, v.digest, exp] for k, (v, exp) in seed.repeats.items()},
        "stories": {lang: [[e.article_id, e.story_id, e.duplicate_of, e.ts_micros, e.exact,
                            base64.b64encode(e.hashvalues).decode("ascii")] for e in entries]
                    for lang, entries in seed.stories.items()},
        "orgs": {k: base64.b64encode(encode_org_state(v)).decode("ascii") for k, v in seed.orgs.items()},
        "alert_ids": {k: sorted(v) for k, v in seed.alert_ids.items()},
    }
    return bytes([SEED_FORMAT]) + zlib.compress(json.dumps(body, separators=(",", ":")).encode("utf-8"), 6)


def decode_seed(blob: bytes) -> Seed:
    if not blob or blob[0] != SEED_FORMAT:
        raise StateFormatError(f"seed in format {blob[:1]!r}; this release reads {SEED_FORMAT}")
    body = json.loads(zlib.decompress(blob[1:]).decode("utf-8"))
    return Seed(
        repeats={k: (Version(v[0], v[1], v[2]), int(v[3])) for k, v in body["repeats"].items()},
        stories={lang: [StoryEntry(e[0], e[1], e[2], int(e[3]), e[4], base64.b64decode(e[5])) for e in entries]
                 for lang, entries in body["stories"].items()},
        orgs={k: decode_org_state(base64.b64decode(v)) for k, v in body["orgs"].items()},
        alert_ids={k: frozenset(v) for k, v in body["alert_ids"].items()},
    )


EMPTY = Seed()
_LOADED: dict[str, Seed] = {}
_LOCK = threading.Lock()
# A seed up to this size travels inside the pipeline; a larger one as a file the steps name.
INLINE_LIMIT = 1 << 20
_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class SeedBlob:
    """The seed as the stateful steps carry it: small to pickle, decoded once per process.
    Either the encoded seed itself (``blob``) or, for a large one, the ``path`` of a file
    holding it (:meth:`shipped`); ``digest`` names the encoding in both cases."""

    blob: bytes
    digest: str
    path: str | None = None
    size: int = 0

    @classmethod
    def of(cls, seed: Seed) -> SeedBlob:
        blob = encode_seed(seed)
        return cls(blob, _digest(blob), None, len(blob))

    @classmethod
    def shipped(cls, seed: Seed, directory: str, name: str, inline_limit: int | None = None) -> SeedBlob:
        """Inside the pipeline when its encoding is at most ``inline_limit`` bytes; else
        written to ``directory`` (local, or any filesystem Beam reads, e.g. ``gs://``; every
        worker must read it) as ``seed-<name>-<digest>.bin``, and only the path travels.
        Earlier seed files of ``name`` there are removed (a job reads its seed while it runs;
        the one pipeline of a consumer group that runs is the one being started)."""
        inline = cls.of(seed)
        if inline.size <= (INLINE_LIMIT if inline_limit is None else inline_limit):
            return inline
        return cls(b"", inline.digest, write_seed_file(inline.blob, directory, name, inline.digest), inline.size)

    def describe(self) -> str:
        where = f"in {self.path}" if self.path else "inside the pipeline"
        return f"{self.size / 1e6:.1f} MB, {where}"

    def load(self) -> Seed:
        with _LOCK:
            found = _LOADED.get(self.digest)
            if found is None:
                blob = self.blob if self.path is None else read_seed_file(self.path, self.digest)
                found = _LOADED[self.digest] = decode_seed(blob)
            return found


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


def write_seed_file(blob: bytes, directory: str, name: str, digest: str) -> str:
    """Write ``blob`` as the seed file of ``name`` in ``directory`` (whole, then renamed into
    place) and remove that name's earlier ones; the file's path."""
    from apache_beam.io.filesystems import FileSystems

    prefix = f"seed-{_FILE_NAME.sub('_', name)}-"
    if "://" not in directory:
        os.makedirs(directory, exist_ok=True)
    path = FileSystems.join(directory, f"{prefix}{digest}.bin")
    partial = path + ".partial"
    with FileSystems.create(partial) as out:
        out.write(blob)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([partial], [path])
    earlier = [m.path for r in FileSystems.match([FileSystems.join(directory, prefix + "*.bin")])
               for m in r.metadata_list if m.path != path]
    if earlier:
        FileSystems.delete(earlier)
    return path


def read_seed_file(path: str, digest: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as f:
            blob = f.read()
    except OSError as exc:  # Beam's filesystems raise BeamIOError, an OSError
        raise StateFormatError(f"cannot read the seed file {path} ({exc}); --seed_location must be a path "
                               "every worker can read") from exc
    if _digest(blob) != digest:
        raise StateFormatError(f"the seed file {path} is not the seed this job was built with "
                               f"(digest {_digest(blob)}, expected {digest})")
    return blob


def load(seed: SeedBlob | None) -> Seed:
    """The seed a step was given, or the empty one."""
    return EMPTY if seed is None else seed.load()
