"""Waking an idle worker on Redis Cluster.

A blocking pop cannot span slots, so an idle worker blocks once per
partition: BZPOPMIN on the partition's markers of the worker's queues, on a
connection of its own to the partition's primary. The first pop that
returns ends the wait; the others are released at once with CLIENT UNBLOCK
(a marker one of them took in that instant counts as a wake-up too), so no
marker stays taken by a worker that is no longer waiting. The markers are
the standalone ones, per list and per partition: enqueue sets them, and a
dequeue that leaves a list non-empty sets its marker again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ..records import QueueRef
from .connection import text, wrap
from .ready_index import parse_member

if TYPE_CHECKING:
    from .redis_broker import RedisBroker

# A blocked read waits its block time and this much more for the reply.
READ_MARGIN_S = 5.0
# After a wake-up the other pops are released (CLIENT UNBLOCK) and waited for
# this long, up to RELEASES times (a release can overtake a pop just sent on
# another connection); any still blocked then are cancelled.
RELEASE_WAIT_S = 0.05
RELEASES = 3


class _Blocker:
    """One partition's blocking connection and its CLIENT ID."""

    __slots__ = ("client_id", "conn", "node")

    def __init__(self, node: Any, conn: Any, client_id: int) -> None:
        self.node, self.conn, self.client_id = node, conn, client_id


class ClusterWaker:
    def __init__(self) -> None:
        self._blockers: dict[int, _Blocker] = {}

    async def _blocker(self, p: int, node: Any) -> _Blocker:
        held = self._blockers.get(p)
        if held is not None and held.node is node and held.conn.is_connected:
            return held
        if held is not None:
            await held.conn.disconnect()
        conn = node.connection_pool.make_connection()
        await conn.connect()
        await conn.send_command("CLIENT", "ID")
        client_id = int(await conn.read_response())
        held = self._blockers[p] = _Blocker(node, conn, client_id)
        return held

    async def _pop(
        self, p: int, part: RedisBroker, markers: list[str], timeout: float, stop: set[int]
    ) -> Any:
        held = await self._blocker(p, part.redis)
        if 0 in stop:
            return None  # another partition woke us before this one blocked
        try:
            # No health check: nothing may run between the check above and
            # the write, or a release could miss this call.
            await held.conn.send_command("BZPOPMIN", *markers, timeout, check_health=False)
            stop.add(-1 - p)  # sent: CLIENT UNBLOCK can release it
            return await held.conn.read_response(timeout=timeout + READ_MARGIN_S)
        except BaseException:
            # Cancelled or broken mid-reply: this connection cannot be reused.
            self._blockers.pop(p, None)
            with contextlib.suppress(Exception):
                await held.conn.disconnect()
            raise

    async def wait(
        self, parts: Sequence[RedisBroker], queues: Sequence[QueueRef], timeout: float
    ) -> set[int]:
        """The partitions a marker woke us for (empty: `timeout` passed)."""
        stop: set[int] = set()  # 0: stop now; -1-p: partition p's pop was sent
        tasks: dict[asyncio.Future[Any], int] = {
            asyncio.ensure_future(
                self._pop(p, part, [m for _, m in part._ready_keys(queues)], timeout, stop)
            ): p
            for p, part in enumerate(parts)
        }
        woken: set[int] = set()
        pending: set[asyncio.Future[Any]] = set(tasks)
        releases = 0
        try:
            while pending:
                wait_s = None if not woken else RELEASE_WAIT_S
                done, pending = await asyncio.wait(
                    pending, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    try:
                        got = task.result()
                    except (RedisError, OSError) as exc:
                        raise wrap(exc) from exc
                    if got is not None:
                        p = tasks[task]
                        woken.add(p)
                        part = parts[p]
                        part._ready_index.woke(
                            parse_member(text(got[0]).removeprefix(part.keys.marker_prefix))
                        )
                if woken and pending:
                    if releases >= RELEASES:
                        break  # the rest are cancelled below (their connections closed)
                    stop.add(0)
                    releases += 1
                    sent = [tasks[t] for t in pending if -1 - tasks[t] in stop]
                    await self._release(sent)
        finally:
            for task in pending:
                task.cancel()
        return woken

    async def _release(self, partitions: list[int]) -> None:
        """CLIENT UNBLOCK the partitions still blocked (one call per node)."""
        by_node: dict[int, tuple[Any, list[int]]] = {}
        for p in partitions:
            held = self._blockers.get(p)
            if held is not None and held.node is not None:
                by_node.setdefault(id(held.node), (held.node, []))[1].append(held.client_id)
        for node, ids in by_node.values():
            with contextlib.suppress(RedisError, OSError):
                async with node.pipeline(transaction=False) as pipe:
                    for client_id in ids:
                        pipe.execute_command("CLIENT", "UNBLOCK", client_id)
                    await pipe.execute()

    def forget(self) -> None:
        """The slot map changed: reconnect lazily (a blocker on a node that no
        longer serves its partition would wait in vain)."""
        for held in self._blockers.values():
            held.node = None

    async def close(self) -> None:
        blockers, self._blockers = self._blockers, {}
        for held in blockers.values():
            with contextlib.suppress(Exception):
                await held.conn.disconnect()
