"""Cancel (docs/control.md): every outcome of `cancel(job_id)`, the worker's
check for cancelled running jobs, and the settle of a cancelled running job."""

from __future__ import annotations

import time
import uuid

import pytest

from bananas.brokers import Broker
from bananas.brokers.base import CancelOutcome, DeadInfo
from bananas.errors import CancelRequested

from .kit import drain_ids, fields, job, jobs, lease_one, record


def ids(n: int) -> list[str]:
    """UUIDs: on a cluster they spread over the partitions."""
    return [str(uuid.uuid4()) for _ in range(n)]


async def test_a_queued_job_cancelled_never_runs(broker: Broker) -> None:
    a, b, c = ids(3)
    await broker.enqueue(jobs(a, b, c))
    assert await broker.cancel(b) == CancelOutcome.CANCELLED
    assert sorted(await drain_ids(broker)) == sorted([a, c])
    result = await broker.get_result(b)
    assert result is not None and result.status == "cancelled"
    rec = fields(await broker.get_record(b))
    assert (rec["status"], rec["error"], bool(rec["cancelled_at"])) == ("failed", "cancelled", True)
    assert await broker.job_state(b) == "cancelled"
    assert (await broker.stats()).cancelled == 1
    assert await broker.cancel(b) == CancelOutcome.ALREADY_CANCELLED


async def test_a_scheduled_job_cancelled_never_runs(broker: Broker) -> None:
    [d] = ids(1)
    await broker.enqueue([job(d, due=time.time() - 1)])  # due already: moved by move_due
    assert await broker.cancel(d) == CancelOutcome.CANCELLED
    await broker.move_due()
    assert await drain_ids(broker) == []
    assert (await broker.stats()).scheduled == 0
    result = await broker.get_result(d)
    assert result is not None and result.status == "cancelled"


async def test_a_running_job_is_flagged_for_its_worker(broker: Broker) -> None:
    a, b = ids(2)
    await broker.enqueue(jobs(a, b))
    one, two = await lease_one(broker), await lease_one(broker)
    assert await broker.cancel_requests([one.id, two.id]) == []  # nobody cancelled
    assert await broker.cancel(one.id) == CancelOutcome.REQUESTED
    assert await broker.cancel_requests([one.id, two.id]) == [one.id]
    assert await broker.get_result(one.id) is None  # still running: its worker settles it
    assert await broker.settle_cancelled(one, None, 12.5)
    assert await broker.settle_cancelled(one, None, 12.5)  # sent again: its own, done
    result = await broker.get_result(one.id)
    assert result is not None and (result.status, result.duration_ms) == ("cancelled", 12.5)
    assert await broker.job_state(one.id) == "cancelled"
    assert await broker.cancel_requests([two.id]) == []
    assert await broker.cancel(one.id) == CancelOutcome.ALREADY_CANCELLED
    stats = await broker.stats()
    assert (stats.active, stats.cancelled) == (1, 1)


async def test_a_cancelled_running_job_is_not_retried(broker: Broker) -> None:
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    lease = await lease_one(broker)
    assert await broker.cancel(a) == CancelOutcome.REQUESTED
    with pytest.raises(CancelRequested):
        await broker.retry(lease, record(a, attempts=1, status="scheduled"), 0.0)
    assert await broker.job_state(a) == "running"  # the retry changed nothing
    assert await broker.settle_cancelled(lease, record(a, status="cancelled"), 1.0)
    await broker.move_due()
    assert await drain_ids(broker) == []


async def test_settle_cancelled_refuses_a_lost_lease(broker: Broker) -> None:
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    lease = await lease_one(broker)
    assert await broker.requeue([lease]) == 1
    assert not await broker.settle_cancelled(lease, None, 1.0)
    assert await broker.get_result(a) is None


async def test_requests_of_jobs_that_finished_anyway_are_dropped(broker: Broker) -> None:
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    lease = await lease_one(broker)
    assert await broker.cancel(a) == CancelOutcome.REQUESTED
    assert await broker.complete(lease, record(a, status="completed"), b"1", 1.0)
    assert await broker.cancel_requests([a]) == []
    assert await broker.cancel(a) == CancelOutcome.ALREADY_COMPLETED


async def test_finished_and_unknown_jobs_answer_so(broker: Broker) -> None:
    done, dead = ids(2)
    await broker.enqueue(jobs(done, dead))
    for delivery in await broker.dequeue([("normal", "t")], 2, 30.0, "w1:"):
        if delivery.id == done:
            assert await broker.complete(delivery, record(done), None, 1.0)
        else:
            info = DeadInfo(reason="bad", error="bad", priority="normal", name="t")
            assert await broker.bury(delivery, None, info, 1.0)
    assert await broker.cancel(done) == CancelOutcome.ALREADY_COMPLETED
    assert await broker.cancel(dead) == CancelOutcome.ALREADY_DEAD
    assert await broker.cancel(str(uuid.uuid4())) == CancelOutcome.UNKNOWN
    assert await broker.cancel("not-a-uuid") == CancelOutcome.UNKNOWN
    assert (await broker.stats()).cancelled == 0


async def test_the_sync_client_cancels_too(broker: Broker) -> None:
    a, b = ids(2)
    await broker.enqueue(jobs(a, b))
    assert broker.sync.cancel(a) == CancelOutcome.CANCELLED
    assert broker.sync.cancel(a) == CancelOutcome.ALREADY_CANCELLED
    assert broker.sync.cancel(str(uuid.uuid4())) == CancelOutcome.UNKNOWN
    assert await drain_ids(broker) == [b]
