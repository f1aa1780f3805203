"""Writing a job's outcome (runner.py) through broker trouble: retried
while the lease could still be ours, with no deadline while Redis refuses
writes (nothing applied, the lease kept), and until REDIS_MIN_REPLICAS
replicas confirm it; after that the job comes back by lease expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum

from ..brokers.base import Delivery
from ..errors import BrokerRefusesWrites, BrokerUnavailable, ReplicationTimeout
from ..logs import EventLog
from ..observe.status import BrokerLink

REFUSED = (
    "outcomes are kept and written once Redis accepts writes again; no new job starts until then"
)
UNCONFIRMED = (
    "the outcome stands on the Redis primary but fewer than REDIS_MIN_REPLICAS replicas "
    "confirmed it within the lease; the job runs again only if a failover loses it"
)


class Settle(Enum):
    DONE = "done"
    REFUSED = "refused"  # the broker refused our token: the lease was re-issued
    UNREACHABLE = "unreachable"  # no answer within a lease; the job comes back by expiry


async def settle(
    delivery: Delivery,
    action: Callable[[], Awaitable[bool]],
    lease_timeout: float,
    link: BrokerLink,
    log: EventLog,
) -> Settle:
    """`action` (the broker call writing the outcome) until it is answered."""
    deadline = time.monotonic() + lease_timeout
    pause = 0.0  # the first retry at once: a dropped connection is replaced
    while True:
        try:
            done = await action()
            if link.refusing is not None and link.accepts():
                log.info("broker.accepts_writes", detail="outcomes are written again")
            return Settle.DONE if done else Settle.REFUSED
        except BrokerRefusesWrites as exc:
            # Refused whole (nothing applied) and the lease stays ours (its
            # heartbeat is allowed at maxmemory): keep the outcome and try
            # again, with no deadline, until Redis takes writes or the
            # drain puts the job back (it then runs again). No stall.
            if link.refuses(str(exc)):
                log.warning("broker.refuses_writes", error=str(exc), detail=REFUSED)
            deadline = time.monotonic() + lease_timeout
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
        except BrokerUnavailable as exc:
            # ReplicationTimeout too: the outcome is applied on the primary
            # but not known to be on REDIS_MIN_REPLICAS replicas. Sent again
            # (idempotent by token) until they confirm it, never run again here.
            if time.monotonic() + pause > deadline:
                log.error(
                    "job.settle_failed",
                    job_id=delivery.id,
                    error=str(exc),
                    detail=UNCONFIRMED
                    if isinstance(exc, ReplicationTimeout)
                    else "broker unreachable; the job will run again after its lease expires",
                )
                return Settle.UNREACHABLE
            await asyncio.sleep(pause)
            pause = min(max(pause * 2, 0.05), 1.0)
