"""`newsradar connect --shard I/N`: N replicas poll every source exactly once between them,
changing N moves only the sources that must move, and replicas keep separate state."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys

import pytest

from connectors.app import build_slots, shard_state_dir
from connectors.http import FetchLimits, HttpClient
from connectors.shards import Shard, owner
from newsradar import paths
from newsradar.config.sources import load_sources
from newsradar.netguard import AddressPolicy
from tests.conftest import newsradar_cmd

IDS = [f"feed-{n}" for n in range(2000)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_every_source_belongs_to_exactly_one_shard_and_the_load_is_even(count):
    owners = collections.Counter()
    for source_id in IDS:
        owning = [i for i in range(count) if Shard(i, count).owns(source_id)]
        assert len(owning) == 1, (source_id, owning)
        owners[owning[0]] += 1
    assert set(owners) == set(range(count))
    assert max(owners.values()) < 1.25 * len(IDS) / count, owners


@pytest.mark.parametrize("count", [1, 3, 4, 7])
def test_adding_a_replica_moves_only_what_the_new_shard_takes(count):
    moved = [s for s in IDS if owner(s, count) != owner(s, count + 1)]
    assert all(owner(s, count + 1) == count for s in moved)
    # about 1/(N+1) of the sources, not a reshuffle
    assert 0.6 * len(IDS) / (count + 1) < len(moved) < 1.4 * len(IDS) / (count + 1), len(moved)


def test_the_assignment_is_a_pure_function_of_the_id():
    # another process with another string-hash seed agrees: no dependence on hash()
    code = "from connectors.shards import owner; print([owner(f'feed-{n}', 5) for n in range(50)])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONHASHSEED="12345"))
    assert run.stdout.strip() == str([owner(f"feed-{n}", 5) for n in range(50)])


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_is_exit_2_naming_the_option(text, tmp_path):
    result = subprocess.run(newsradar_cmd("connect", "--sources", str(tmp_path / "none.yaml"), "--shard", text),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert "--shard" in result.stderr and "No such option" not in result.stderr, result.stderr


def test_replicas_build_disjoint_slots_covering_every_enabled_source(tmp_path):
    feeds = "\n".join(f"  - {{id: f{n}, kind: rss, url: 'http://127.0.0.1:8000/{n}.xml'}}" for n in range(40))
    path = tmp_path / "sources.yaml"
    path.write_text(f"allow_private_networks: true\nsources:\n{feeds}\n", encoding="utf-8")
    sources = load_sources(path)

    async def pick():
        http = HttpClient(FetchLimits(timeout=5, max_body=1 << 20, max_redirects=3, user_agent="t"), AddressPolicy())
        try:
            return [[slot.poller.source.id for slot in build_slots(sources, http, shard=Shard(i, 3))]
                    for i in range(3)]
        finally:
            await http.close()

    picked = asyncio.run(pick())
    flat = [s for ids in picked for s in ids]
    assert sorted(flat) == sorted(s.id for s in sources.sources) and len(flat) == len(set(flat))
    assert all(picked)


def test_replicas_on_one_host_get_their_own_state_directory():
    dirs = {shard_state_dir(Shard(i, 3)) for i in range(3)}
    assert len(dirs) == 3 and all(d.parent == paths.state_dir() for d in dirs)
    assert shard_state_dir(Shard()) == paths.state_dir()
