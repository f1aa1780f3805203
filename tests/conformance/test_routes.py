"""Named routes: a job on a route is delivered only from that route's queues
(lane "route:priority"), in its own queue figures, and keeps its route
through a retry, a lost lease and a replay from the dead letters."""

from __future__ import annotations

from bananas import JobSpec
from bananas.brokers import Broker
from bananas.brokers.base import DeadInfo, NewJob

from .kit import _CLIENT, drain_ids, lease_one, take, until

GPU = [("gpu:high", "t")]


def routed(job_id: str, route: str | None = "gpu") -> NewJob:
    spec = JobSpec("t", {"n": 1}, "high", job_id=job_id, route=route)
    return _CLIENT.build_jobs([spec])[0]


async def test_a_routed_job_is_taken_only_from_its_route(broker: Broker) -> None:
    await broker.enqueue([routed("g"), routed("d", None)])
    stats = await broker.stats()
    assert stats.ready[("gpu:high", "t")] == 1 and stats.ready[("high", "t")] == 1
    assert await take(broker, queues=[("high", "t")]) == ["d"]
    assert await take(broker, queues=[("high", "t")]) == []
    assert await drain_ids(broker, GPU) == ["g"]


async def test_a_route_survives_retry_recovery_and_replay(broker: Broker) -> None:
    await broker.enqueue([routed("g")])
    d = await lease_one(broker, queues=GPU)
    assert d.raw is not None and b'"routing_key":"gpu"' in d.raw
    assert await broker.retry(d, d.raw, -1.0)
    assert await broker.move_due() == 1
    assert await take(broker, queues=[("high", "t")]) == []
    lost = await lease_one(broker, lease=0.01, queues=GPU)
    await _expire(broker)
    again = await lease_one(broker, queues=GPU)
    assert again.id == lost.id == "g"
    assert await broker.bury(again, again.raw, DeadInfo("boom", ""), 1.0)
    assert await broker.replay_dead("g")
    assert await take(broker, queues=[("high", "t")]) == []
    assert await drain_ids(broker, GPU) == ["g"]


async def _expire(broker: Broker) -> None:
    async def recovered() -> int:
        return len((await broker.recover_expired(3)).recovered)

    await until(recovered, message="the lost lease to be recovered")
