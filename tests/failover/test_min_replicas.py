"""A primary SIGKILLed under an enqueue load and its replica promoted
(REPLICAOF NO ONE): with REDIS_MIN_REPLICAS=1 no acknowledged enqueue is
missing on the promoted replica. The loss figures without it, 5 runs each,
are in docs/deployment.md (bench/min_replicas.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apps.core import app
from replication import Replicated, enqueue_through_failover

from bananas.config import Settings


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Replicated]:
    replicated = Replicated(tmp_path / "redis").start()
    yield replicated
    app.configure(Settings.load(env={}))
    replicated.stop()


def test_no_acknowledged_enqueue_is_lost_when_the_primary_dies(pair: Replicated) -> None:
    seen = enqueue_through_failover(pair, app, 1, cut=False)
    assert seen.acknowledged >= 300 and seen.lost == 0, seen


def test_a_cut_off_replica_loses_acknowledged_enqueues_only_without_it(
    tmp_path: Path, pair: Replicated
) -> None:
    # Without the setting the primary goes on acknowledging while its replica
    # is cut off: those jobs are gone once the replica is promoted.
    without = enqueue_through_failover(pair, app, 0, cut=True)
    assert without.lost >= without.acknowledged_after_cut >= 8, without
    # With it nothing is acknowledged meanwhile (each call raised
    # ReplicationTimeout: the caller knew), so nothing acknowledged is lost.
    other = Replicated(tmp_path / "second").start()
    try:
        with_it = enqueue_through_failover(other, app, 1, cut=True)
    finally:
        other.stop()
    assert with_it.acknowledged_after_cut == 0 and with_it.refused >= 8, with_it
    assert with_it.lost == 0, with_it
