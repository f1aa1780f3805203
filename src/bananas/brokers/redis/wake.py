"""An idle worker's wake-up and dequeue in one client round trip.

Waiting and then dequeuing cost two round trips between an enqueue and the
job's start: BZPOPMIN returns the marker, then the worker sends dequeue.lua.
Here both go in one write on a connection of their own: Redis holds the
EVALSHA in the connection's input until the BZPOPMIN returns and runs it at
once, so the pop's reply and the leased jobs arrive together. When the pop
times out the dequeue runs anyway and finds nothing, which costs one script
per idle wait (IDLE_WAIT, 1 s) and no round trip.

The dequeue is built before the pop names the list that woke us, so it names
every list of the order whose marker the pop waits on (the worker's copy of
the index may lack the list an enqueue just filled; a wake-up spent on a call
that left the job where it was would be a lost job start until the next
marker). The pop already carries every marker, so this is the same order of
size.

The connection is the wait's alone: the batcher's carries every ack, which
must not wait behind a block. A wait cancelled mid-block (drain, SIGTERM)
leaves the connection mid-reply, so it is closed, and Redis drops the queued
EVALSHA with the client. If the pop had returned first, the dequeue ran and
its jobs are leased: the fetcher sends the call again with the same token
prefix (at once, or at stop with count 0), and dequeue.lua's record of the
worker's last call hands the same jobs back, as for any lost reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ...errors import BrokerError, BrokerUnavailable
from ...keys import Keys
from ..records import Delivery, QueueRef
from .connection import UNAVAILABLE, pack_command, text, wrap
from .ready_index import ReadyIndex, parse_member
from .replicas import MinReplicas
from .script_loader import Call

# Seconds a reply may take beyond the wait itself before the connection
# counts as broken (the socket timeout of every other call).
READ_MARGIN = 5.0


class WakeConnection:
    """BZPOPMIN then EVALSHA, sent in one write and read together."""

    def __init__(self, client: Callable[[], Any], replicas: MinReplicas | None = None) -> None:
        self._client = client  # the redis.asyncio client, created lazily
        self._conn: Any = None
        # REDIS_MIN_REPLICAS: the leases the dequeue wrote wait for the replicas
        # too (a WAIT after it in the same write, read with the replies).
        self._replicas = replicas

    async def call(self, markers: Sequence[str], timeout: float, dequeue: Call) -> tuple[Any, Any]:
        """(the pop's reply, the dequeue's reply); a reply Redis refused is
        returned as its exception. A broken connection raises BrokerUnavailable."""
        packed = pack_command(("BZPOPMIN", *markers, timeout)) + pack_command(
            ("EVALSHA", dequeue.script.sha, len(dequeue.keys), *dequeue.keys, *dequeue.args)
        )
        if self._replicas is not None:
            packed += self._replicas.packed
        try:
            conn = await self._connection()
            await conn.send_packed_command([packed], check_health=False)
            async with asyncio.timeout(timeout + READ_MARGIN):
                popped = await _read(conn)
                reply = await _read(conn)
                waited = None
                if self._replicas is not None:
                    await _read(conn)  # the fence (replicas.py)
                    waited = await _read(conn)
        except BaseException as exc:
            # Cancelled, timed out or broken mid-reply: the stream cannot be
            # trusted, and closing it makes Redis drop the queued EVALSHA if
            # the pop has not returned yet.
            await self.close()
            if isinstance(exc, (TimeoutError, *UNAVAILABLE)):
                raise BrokerUnavailable(f"Redis unreachable: {exc or 'no reply'}") from exc
            if isinstance(exc, Exception) and not isinstance(exc, BrokerError):
                raise BrokerError(f"Redis call failed: {type(exc).__name__}: {exc}") from exc
            raise
        if self._replicas is not None and not isinstance(reply, Exception):
            # The leases are written but may not survive a failover: a fetch
            # error, as for the batcher's dequeue (the jobs come back when
            # their leases expire).
            error = self._replicas.error(waited)
            if error is not None:
                reply = error
        return popped, reply

    async def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._client().connection_pool.make_connection()
        if not self._conn.is_connected:
            await self._conn.connect()
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)


async def _read(conn: Any) -> Any:
    try:
        # No read timeout of its own (the caller bounds both reads): redis-py
        # answers None for a read that timed out, which a nil pop also is.
        return await conn.read_response(timeout=math.inf)
    except ResponseError as exc:  # an error reply; the connection is fine
        return exc


class RedisWake:
    """The Redis broker's `wait_and_dequeue` (a mixin)."""

    _replicas: MinReplicas | None

    keys: Keys
    _ready_index: ReadyIndex
    _wake: WakeConnection | None = None

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    async def _run(self, call: Call) -> Any:
        raise NotImplementedError

    def _ready_keys(self, queues: Sequence[QueueRef]) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _dequeue_call(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None,
    ) -> Call:
        raise NotImplementedError

    async def dequeue(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        raise NotImplementedError

    async def wait_and_dequeue(
        self,
        queues: Sequence[QueueRef],
        timeout: float,
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        if timeout <= 0 or not queues:  # BZPOPMIN 0 would block for good
            return await self.dequeue(queues, count, lease_seconds, token_prefix, start)
        index = self._ready_index
        ready = self._ready_keys(queues)
        call = self._dequeue_call(queues, count, lease_seconds, token_prefix, start)
        if self._wake is None:
            self._wake = WakeConnection(lambda: self.redis, self._replicas)
        try:
            popped, reply = await self._wake.call([m for _, m in ready], timeout, call)
            if isinstance(popped, list):
                # Applied before the reply's index, which is newer than the pop.
                member = text(popped[0]).removeprefix(self.keys.marker_prefix)
                index.woke(parse_member(member))
            if isinstance(reply, NoScriptError):
                # Redis lost its script cache; nothing ran, so the same token
                # prefix is free (the batcher's path loads the script).
                reply = await self._run(call)
            for answer in (reply, popped):
                if isinstance(answer, BrokerError):
                    raise answer  # REDIS_MIN_REPLICAS not met (ReplicationTimeout)
                if isinstance(answer, Exception):
                    raise wrap(answer)
        except BrokerError:
            index.reset()  # it may be another primary's, or a lost keyspace's
            raise
        # Every list of the order was named: the index cannot have hidden one.
        index.update(reply[0], reply[1])
        return deliveries(reply)

    async def _close_wake(self) -> None:
        if self._wake is not None:
            await self._wake.close()
            self._wake = None


def deliveries(reply: Sequence[Any]) -> list[Delivery]:
    """Delivery per (id, record, token) of a dequeue reply, after its header."""
    return [
        Delivery(reply[i].decode(), reply[i + 1], reply[i + 2].decode())
        for i in range(2, len(reply), 3)
    ]
