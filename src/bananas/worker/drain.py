"""The drain's job side (steps 2-4 of the stop order in `runtime.py`): put the
prefetched jobs back, let the running ones finish up to SHUTDOWN_TIMEOUT,
cancel the rest and put them back uncharged.

The fetcher has stopped taking jobs before this starts, and the lease
heartbeat keeps running until after it ends, so no job here loses its lease
while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ..brokers.base import Broker, Delivery
from ..errors import BrokerError
from ..logs import EventLog
from .fetcher import Fetcher
from .shutdown import bounded

CANCEL_GRACE = 5.0  # seconds cancelled jobs get to end before they are abandoned


@dataclass(frozen=True, slots=True)
class Drained:
    finished: int  # jobs that finished during the drain
    put_back: int  # jobs put back on their queue, uncharged
    abandoned: int  # jobs whose handler ignored the cancel (put back too)


async def drain_jobs(
    fetcher: Fetcher, broker: Broker, log: EventLog, shutdown_timeout: float
) -> Drained:
    put_back = 0
    prefetched = fetcher.take_prefetched()
    if prefetched:  # never started: back at once, so other workers can take them
        put_back += await bounded(log, "requeue", _put_back(broker, log, prefetched)) or 0
    running = fetcher.running()
    if running:
        await asyncio.wait(running, timeout=shutdown_timeout)
    leftover = [t for t in running if not t.done()]
    for task in leftover:
        task.cancel()
    if leftover:
        await asyncio.wait(leftover, timeout=CANCEL_GRACE)
    # A handler that ignores cancellation: its job goes back like the others
    # and the process leaves without it (the CLI exits past such tasks).
    abandoned = fetcher.unfinished()
    for delivery in abandoned:
        log.warning(
            "job.abandoned",
            job_id=delivery.id,
            detail="its handler did not stop when cancelled; put back, run again elsewhere",
        )
    to_requeue = fetcher.cancelled + abandoned
    if to_requeue:
        put_back += await bounded(log, "requeue", _put_back(broker, log, to_requeue)) or 0
    return Drained(len(running) - len(leftover), put_back, len(abandoned))


async def _put_back(broker: Broker, log: EventLog, deliveries: Sequence[Delivery]) -> int:
    try:
        return await broker.requeue(deliveries)
    except BrokerError as exc:
        log.error(
            "drain.requeue_failed",
            error=str(exc),
            detail="the jobs come back after their lease expires",
        )
        return 0
