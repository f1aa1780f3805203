"""`broker.sync` on Redis Cluster: the plain-code client calls (enqueue from
a web thread, a handle's result and progress), each sent to the job's
partition over that partition's RedisSyncClient, redirects followed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import BrokerMoved, BrokerUnavailable
from ..base import SyncClient
from ..records import JobProgress, JobResult, NewJob
from .cluster import SyncClusterTopology
from .connection import redis_errors
from .partitions import partitions_key
from .replicas import MinReplicas
from .sync import RedisSyncClient

if TYPE_CHECKING:
    from .partitioned import PartitionedBroker

T = TypeVar("T")
REDIRECT_WAIT_S = 15.0


class PartitionedSyncClient(SyncClient):
    def __init__(self, broker: PartitionedBroker) -> None:
        self.broker = broker
        self.topology = SyncClusterTopology(broker.cluster_url)
        self._lock = threading.Lock()
        self._parts: list[RedisSyncClient] = []

    @property
    def parts(self) -> list[RedisSyncClient]:
        if not self._parts:
            with self._lock:
                if not self._parts:
                    self._agree()
                    b = self.broker
                    self._parts = [
                        RedisSyncClient(
                            b.url,
                            keys,
                            node=self._node_of(slot),
                            replicas=MinReplicas.of(*b.min_replicas, keys.fence),
                        )
                        for keys, slot in zip(b.part_keys, b.slots, strict=True)
                    ]
        return self._parts

    def _agree(self) -> None:
        """The keyspace's partition count, as PartitionedBroker.parts reads it."""
        b = self.broker
        key = partitions_key(b.home_keys)
        with redis_errors():
            home = self.topology.client_for_slot(b.home_slot)
            primaries = len(self.topology.map.primaries())
            stored = home.get(key)
            b.agree(stored, primaries)
            if stored is None:
                b.agree(home.set(key, b.count, nx=True, get=True), primaries)

    def _node_of(self, slot: int) -> Callable[[], Any]:
        def node() -> Any:
            with self._lock:
                return self.topology.client_for_slot(slot)

        return node

    def _retarget(self) -> None:
        with self._lock:
            self.topology.refresh(force=True)
        for part in self._parts:
            part.retarget()

    def on(self, p: int, fn: Callable[[RedisSyncClient], T]) -> T:
        deadline = time.monotonic() + REDIRECT_WAIT_S
        pause = 0.005
        while True:
            try:
                return fn(self.parts[p])
            except BrokerMoved:
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
                with contextlib.suppress(BrokerUnavailable):
                    self._retarget()
            except BrokerUnavailable:
                with contextlib.suppress(BrokerUnavailable):
                    self._retarget()
                raise

    def on_job(self, job_id: str, fn: Callable[[RedisSyncClient], T]) -> T:
        assert self.parts
        return self.on(self.broker.part_of(job_id), fn)

    def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        assert self.parts  # the partition count is known from here on
        jobs = [job for batch in batches for job in batch]
        groups = self.broker._grouped([job.id for job in jobs])
        out = [False] * len(jobs)
        for p, rows in groups.items():
            reply = self.on(p, _enqueuer([jobs[n] for n in rows]))
            for n, ok in zip(rows, reply, strict=True):
                out[n] = ok
        return out

    def get_result(self, job_id: str) -> JobResult | None:
        return self.on_job(job_id, lambda c: c.get_result(job_id))

    def get_record(self, job_id: str) -> bytes | None:
        return self.on_job(job_id, lambda c: c.get_record(job_id))

    def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        return self.on_job(job_id, lambda c: c._wait_result(job_id, timeout))

    def get_progress(self, job_id: str) -> JobProgress | None:
        return self.on_job(job_id, lambda c: c.get_progress(job_id))

    def close(self) -> None:
        for part in self._parts:
            part.close()
        self.topology.close()


def _enqueuer(batch: list[NewJob]) -> Callable[[RedisSyncClient], list[bool]]:
    return lambda c: c._enqueue([batch])
