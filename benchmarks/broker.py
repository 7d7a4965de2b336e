"""The broker a benchmark runs against: the one named by ``--bootstrap-servers``, or a local
single-node KRaft broker started for the block (``newsradar kafka start``) and stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import LocalKafka, free_port


@contextmanager
def local_broker(workdir: Path, bootstrap: str | None = None) -> Iterator[str]:
    """Yield a bootstrap address; a broker started here keeps its data under ``workdir/kafka``."""
    if bootstrap:
        yield bootstrap
        return
    broker = LocalKafka(free_port(), Path(workdir) / "kafka")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
