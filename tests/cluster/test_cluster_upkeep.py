"""Upkeep on Redis Cluster runs per partition under a claim (lua/claim.lua):
concurrent schedulers share the partitions, a partition is done by one of them
per round, and a dead scheduler's partitions are taken over."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from conformance.kit import job
from topology import Cluster

from bananas.brokers.redis.partitioned import PartitionedBroker
from bananas.brokers.redis.partitioned_fleet import CLAIM_MS


async def _holders(broker: PartitionedBroker, kind: str) -> list[str | None]:
    parts = await broker.parts()
    out = []
    for keys, part in zip(broker.part_keys, parts, strict=True):
        raw = await part.redis.get(f"{keys.prefix}:upkeep:{kind}")
        out.append(None if raw is None else raw.decode())
    return out


def test_schedulers_share_the_partitions_and_take_over_a_dead_ones(
    redis_cluster: Cluster,
) -> None:
    redis_cluster.flushall()

    async def main() -> None:
        a, b = PartitionedBroker(redis_cluster.url), PartitionedBroker(redis_cluster.url)
        try:
            await asyncio.gather(a.move_due(), b.move_due())
            holders = await _holders(a, "due")
            # Every partition is claimed, each by exactly one of the two.
            assert all(h in (a._owner, b._owner) for h in holders), holders
            holder, other = (a, b) if holders[0] == a._owner else (b, a)
            # A due job in partition 0 (an id chosen by the caller lives there).
            due = job("due-now", due=time.time() - 1)
            assert await holder.enqueue([due]) == [True]
            assert await other.move_due() == 0  # not its partition this round
            assert await other.job_state("due-now") == "scheduled"
            assert await holder.move_due() == 1
            assert await other.job_state("due-now") == "queued"
            # The holder stops coming back: its claim lapses and the other takes over.
            late = job("due-later", due=time.time() - 1)
            await other.enqueue([late])
            deadline = time.monotonic() + CLAIM_MS / 1000 + 5
            moved = 0
            while moved == 0 and time.monotonic() < deadline:
                moved = await other.move_due()
                await asyncio.sleep(0.1)
            assert moved == 1
            assert (await _holders(other, "due"))[0] == other._owner
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
