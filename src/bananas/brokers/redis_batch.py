"""Coalesce the script calls of one event-loop turn into one Redis pipeline.

A worker running 50 jobs acks them one by one from 50 tasks; sent one by one
that is 50 round trips and 50 socket writes. Here every call made while a
pipeline is in flight waits for the next one, so under load N acks (and the
fetch loop's next dequeue) share one round trip, and when idle a call goes
out at once (within the same loop turn). At most one pipeline is in flight,
which bounds a call's latency to two round trips.

The batcher writes on a connection of its own, packed in one write, and reads
the replies in order: redis-py's Pipeline object costs more per command than
the commands themselves at this rate. A broken connection fails the batch in
flight (the callers see BrokerUnavailable and retry while their lease holds)
and is replaced on the next batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .lua_scripts import LuaScript

Pending = tuple[LuaScript, Sequence[str], Sequence[Any], "asyncio.Future[Any]"]
_BROKEN = (RedisConnectionError, RedisTimeoutError, OSError)


class ScriptBatcher:
    def __init__(
        self,
        client: Callable[[], Any],
        single: Callable[[LuaScript, Sequence[str], Sequence[Any]], Awaitable[Any]],
        wrap: Callable[[Exception], Exception],
    ) -> None:
        self._client = client  # the redis.asyncio client, created lazily
        self._single = single  # one call with NOSCRIPT handling, for the slow path
        self._wrap = wrap
        self._pending: list[Pending] = []
        self._running = False
        self._task: asyncio.Future[None] | None = None  # kept: the loop holds tasks weakly
        self._conn: Any = None

    def call(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Awaitable[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._running:
            self._running = True
            loop.call_soon(self._start)
        return future

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send(batch)
        finally:
            self._running = False

    async def _connection(self) -> Any:
        if self._conn is None:
            pool = self._client().connection_pool
            self._conn = pool.make_connection()
        if not self._conn.is_connected:
            await self._conn.connect()
        return self._conn

    async def _send(self, batch: list[Pending]) -> None:
        replies: list[Any] = []
        try:
            conn = await self._connection()
            commands = [
                ("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args, _ in batch
            ]
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            for _ in batch:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # an error reply; the connection is fine
                    replies.append(exc)
        except _BROKEN as exc:
            if self._conn is not None:
                await self._conn.disconnect()
            error = self._wrap(exc)
            for *_, future in batch[len(replies) :]:
                if not future.done():
                    future.set_exception(error)
            batch = batch[: len(replies)]
        for (script, keys, args, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue  # its caller was cancelled (drain); the outcome stands
            if isinstance(reply, NoScriptError):
                # Redis restarted or flushed its script cache: load and redo this one.
                try:
                    future.set_result(await self._single(script, keys, args))
                except Exception as exc:  # handed to the caller
                    if not future.done():
                        future.set_exception(exc)
            elif isinstance(reply, Exception):
                future.set_exception(self._wrap(reply))
            else:
                future.set_result(reply)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None
