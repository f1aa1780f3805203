"""Coalesce the script calls of one event-loop turn into one Redis pipeline.

A worker running 50 jobs acks them one by one from 50 tasks; sent one by one
that is 50 round trips and 50 socket writes. Here every call made while a
pipeline is in flight waits for the next one, so under load N acks (and the
fetch loop's next dequeue) share one round trip, and when idle a call goes
out at once (within the same loop turn). At most one pipeline is in flight,
which bounds a call's latency to two round trips.

Scripts written for it (complete.lua) take a batch in one call: `call_merged`
items of one loop turn that share the script and its leading KEYS/ARGV become
one EVALSHA whose reply holds one entry per item, so Redis runs one script and
one variadic command per shared structure instead of one of each per job.
An item of such a reply that is the text "error: <reason>" fails that item's
caller alone.

The batcher writes on a connection of its own, packed in one write, and reads
the replies in order: redis-py's Pipeline object costs more per command than
the commands themselves at this rate. A broken connection fails the batch in
flight (the callers see BrokerUnavailable and retry while their lease holds)
and is replaced on the next batch.

With REDIS_MIN_REPLICAS=N each pipeline ends with one `WAIT N timeout`
(replicas.py): it covers every call before it, and when fewer than N
replicas confirm, every call of the pipeline fails with ReplicationTimeout
(applied on the primary, not known to be replicated).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...errors import BrokerError
from .connection import pack_command
from .replicas import MinReplicas
from .script_loader import LuaScript

_BROKEN = (RedisConnectionError, RedisTimeoutError, OSError)
# Items per merged call: bounds one script's run time and its reply size.
MERGE_LIMIT = 500


class _Fanout:
    """Stands in for a future: hands item i of a merged call's reply to item i's caller."""

    __slots__ = ("futures",)

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    def set_result(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) != len(self.futures):
            self.set_exception(BrokerError(f"merged script reply does not match: {reply!r}"))
            return
        for future, item in zip(self.futures, reply, strict=True):
            if future.done():
                continue
            if isinstance(item, bytes) and item.startswith(b"error: "):
                future.set_exception(
                    BrokerError(f"Redis error: {item[7:].decode(errors='replace')}")
                )
            else:
                future.set_result(item)

    def set_exception(self, exc: BaseException) -> None:
        for future in self.futures:
            if not future.done():
                future.set_exception(exc)


Pending = tuple[LuaScript, Sequence[str], Sequence[Any], "asyncio.Future[Any] | _Fanout"]
# (script name, shared keys, shared args) -> (keys, args, fan-out) being filled
Groups = dict[tuple[str, tuple[str, ...], tuple[Any, ...]], tuple[list[str], list[Any], _Fanout]]


class ScriptBatcher:
    def __init__(
        self,
        client: Callable[[], Any],
        single: Callable[[LuaScript, Sequence[str], Sequence[Any]], Awaitable[Any]],
        wrap: Callable[[Exception], Exception],
        replicas: MinReplicas | None = None,
    ) -> None:
        self._client = client  # the redis.asyncio client, created lazily
        self._single = single  # one call with NOSCRIPT handling, for the slow path
        self._wrap = wrap
        self._pending: list[Pending] = []
        self._groups: Groups = {}
        self._running = False
        self._task: asyncio.Future[None] | None = None  # kept: the loop holds tasks weakly
        self._conn: Any = None
        self._replicas = replicas  # REDIS_MIN_REPLICAS: one WAIT per pipeline (replicas.py)

    def call(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Awaitable[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        self._kick(loop)
        return future

    def call_merged(
        self,
        script: LuaScript,
        shared_keys: tuple[str, ...],
        shared_args: tuple[Any, ...],
        item_keys: Sequence[str],
        item_args: Sequence[Any],
    ) -> Awaitable[Any]:
        """One item of a batch script (KEYS/ARGV: the shared ones, then each
        item's); resolves to the item's entry of the script's reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        group_key = (script.name, shared_keys, shared_args)
        group = self._groups.get(group_key)
        if group is None or len(group[2].futures) >= MERGE_LIMIT:
            group = self._groups[group_key] = ([*shared_keys], [*shared_args], _Fanout())
            self._pending.append((script, group[0], group[1], group[2]))
        group[0].extend(item_keys)
        group[1].extend(item_args)
        group[2].futures.append(future)
        self._kick(loop)
        return future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._running:
            self._running = True
            loop.call_soon(self._start)

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self._groups.clear()  # later items start new merged calls
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

    async def _send(self, batch: list[Pending], load: Sequence[LuaScript] = ()) -> None:
        """One pipeline: the calls of `batch`, after SCRIPT LOAD of `load`
        (a redo of calls Redis answered NOSCRIPT) and before one WAIT when
        REDIS_MIN_REPLICAS is set (replicas.py)."""
        parts = [pack_command(("SCRIPT", "LOAD", script.source)) for script in load]
        sendable = []
        for item in batch:
            script, keys, args, future = item
            try:
                parts.append(pack_command(("EVALSHA", script.sha, len(keys), *keys, *args)))
            except Exception as exc:  # an argument Redis cannot take: this caller's bug alone
                if not future.done():
                    future.set_exception(BrokerError(f"cannot send {script.name}: {exc}"))
                continue
            sendable.append(item)
        batch = sendable
        if not batch:
            return
        wait = self._replicas
        if wait is not None:
            parts.append(wait.packed)
        replies: list[Any] = []
        waited: Any = None
        try:
            conn = await self._connection()
            await conn.send_packed_command([b"".join(parts)], check_health=False)
            for _ in load:
                with contextlib.suppress(ResponseError):  # the EVALSHA then says why
                    await conn.read_response()
            for _ in batch:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # an error reply; the connection is fine
                    replies.append(exc)
            if wait is not None:
                # The fence, then the WAIT (replicas.py): each read on its own,
                # so an error reply to the fence (a slot moved) leaves the
                # stream in step.
                try:
                    fenced = await conn.read_response()
                except ResponseError as exc:
                    fenced = exc
                try:
                    waited = await conn.read_response()
                except ResponseError as exc:
                    waited = exc
                if isinstance(fenced, ResponseError):
                    waited = fenced
        except BaseException as exc:
            # A broken connection, a reply that cannot be parsed, or this task
            # cancelled: the callers get an error rather than waiting forever.
            # The stream may be mid-reply: start over on a new connection.
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.disconnect()
            error = (
                self._wrap(exc)
                if isinstance(exc, _BROKEN)
                else BrokerError(f"Redis call failed: {type(exc).__name__}: {exc}")
            )
            # Without the WAIT's answer no call is known to be replicated:
            # those answered fail too (their callers send them again).
            answered = len(replies) if wait is None else 0
            for *_, future in batch[answered:]:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise  # cancellation and the like go on up
            batch = batch[:answered]
        await self._settle(batch, replies, None if wait is None else wait.error(waited), load)

    async def _settle(
        self,
        batch: list[Pending],
        replies: list[Any],
        late: BrokerError | None,
        loaded: Sequence[LuaScript],
    ) -> None:
        """Hand each call its reply; `late`: the pipeline's WAIT fell short."""
        redo: list[Pending] = []
        for item, reply in zip(batch, replies, strict=False):
            script, keys, args, future = item
            if future.done():
                continue  # its caller was cancelled (drain); the outcome stands
            if isinstance(reply, NoScriptError) and not loaded:
                redo.append(item)
            elif isinstance(reply, Exception):
                future.set_exception(self._wrap(reply))
            elif late is not None:
                future.set_exception(late)
            else:
                future.set_result(reply)
        if not redo:
            return
        if self._replicas is not None:
            # Redone on this connection, so that their WAIT covers them.
            await self._send(redo, load=list({item[0].sha: item[0] for item in redo}.values()))
            return
        for script, keys, args, future in redo:
            # Redis restarted or flushed its script cache: load and redo this one.
            try:
                future.set_result(await self._single(script, keys, args))
            except Exception as exc:  # handed to the caller
                if not future.done():
                    future.set_exception(exc)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None
