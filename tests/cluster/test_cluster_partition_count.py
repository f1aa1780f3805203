"""REDIS_PARTITIONS is fixed for a keyspace: whichever process uses it first
(a worker, the CLI, or a producer that only enqueues) stores it, and a
process configured with another count is refused with a clear error. A
producer with another count would otherwise enqueue under partition tags
that no worker reads: jobs acknowledged and never run."""

from __future__ import annotations

import json
import re

import pytest

from bananas.errors import ConfigError
from cluster.bed import Bed, app, configure

# Unset, the count is the cluster's number of primaries when the keyspace is
# created (the bed has 3).
REFUSED = (
    "REDIS_PARTITIONS=8 but this keyspace (prefix 'bananas') was created with 3 "
    "partitions: the count cannot change under existing data"
)


def queued(bed: Bed) -> int:
    done = bed.workers.cli("status", "--json", REDIS_PARTITIONS="")  # unset: the stored one
    assert done.returncode == 0, done.stderr
    return sum(q["depth"] for q in json.loads(done.stdout)["queues"])


def test_count_stored_by_a_producer_alone_is_enforced(
    shared_bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure()
    app.enqueue_many([app.spec("parked", n=i) for i in range(20)])  # sync, no worker yet
    status = shared_bed.workers.cli("status", REDIS_PARTITIONS="8")
    assert status.returncode == 2, status.stdout
    assert REFUSED in status.stderr, status.stderr
    worker = shared_bed.start_worker(wait=False, REDIS_PARTITIONS="8")
    assert worker.wait(30) == 2
    assert REFUSED in worker.events("worker.refused")[0]["error"]
    monkeypatch.setenv("REDIS_PARTITIONS", "8")
    configure()
    with pytest.raises(ConfigError, match=re.escape(REFUSED)):
        app.enqueue("parked", n=99)
    assert queued(shared_bed) == 20  # the refused processes changed nothing


def test_producer_with_another_count_than_the_workers_is_refused(
    shared_bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_bed.start_worker()  # stores the default: one partition per primary
    monkeypatch.setenv("REDIS_PARTITIONS", "8")
    configure()
    with pytest.raises(ConfigError, match=re.escape(REFUSED)):
        app.enqueue_many([app.spec("parked", n=i) for i in range(20)])
    assert queued(shared_bed) == 0
