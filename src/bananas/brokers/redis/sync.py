"""The Redis broker's client calls from plain code (`broker.sync`), and the
enqueue call both the sync and the asyncio paths send.

Sync callers are web threads enqueueing one job per request, so this path
is tuned for one small call: a sync redis-py client (no event loop to
start), one connection held per thread (no pool checkout), and the script
call packed by hiredis and written in one send.
"""

from __future__ import annotations

import operator
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from ...errors import BrokerError
from ...keys import Keys, lane
from ..base import SyncClient
from ..records import CancelOutcome, JobProgress, JobResult, NewJob
from . import acl, scripts
from .cancels import CANCEL_TRIES, cancel_call, changed_too_often, parse_reply
from .connection import (
    RESULT_POLL_S,
    UNAVAILABLE,
    pack_command,
    parse_result,
    redis_errors,
    sync_client,
    wrap,
)
from .enqueue_packed import PackedEnqueue
from .progress import parse_progress
from .replicas import MinReplicas
from .script_loader import Call

_UNIQUE = operator.attrgetter("unique")


def enqueue_call(k: Keys, jobs: Sequence[NewJob]) -> Call:
    """enqueue.lua for one batch: jobs grouped by queue (see the script);
    enqueue_unique.lua when the batch holds a unique job (its other jobs
    then name no lock), so a batch is still one call, in order, and jobs
    without a key never pay for the lock."""
    numbers: dict[tuple[str, str], int] = {}
    queue: list[tuple[str, str, str]] = []
    job: list[Any] = []
    unique = any(map(_UNIQUE, jobs))  # a C loop: ~10 ns a job (digests are never "")
    for new in jobs:
        ref = (new.priority if new.route is None else lane(new.route, new.priority), new.name)
        q = numbers.get(ref)
        if q is None:
            q = numbers[ref] = len(queue) + 1
            queue.append((k.ready(*ref), k.marker(*ref), f"{ref[0]}:{new.name}"))
        at = "" if new.due is None else repr(new.due)
        delay = "" if new.delay is None or new.due is not None else repr(float(new.delay))
        record_key = k.job(new.id)
        if not unique:
            job.append((record_key, new.id, new.record, delay, at, q))
        elif new.unique is None:  # no lock: its own record key stands in (same slot)
            job.append((record_key, record_key, new.id, new.record, delay, at, q, "", 0))
        else:
            lock, digest, ttl = k.unique(new.unique), new.unique, new.unique_ms
            job.append((record_key, lock, new.id, new.record, delay, at, q, digest, ttl))
    if unique:
        return scripts.enqueue_unique(
            queues=k.queues,
            scheduled=k.scheduled,
            index=k.nonempty,
            held=k.unique_held,
            queue=queue,
            job=job,
            nq=len(queue),
        )
    return scripts.enqueue(
        queues=k.queues,
        scheduled=k.scheduled,
        index=k.nonempty,
        queue=queue,
        job=job,
        nq=len(queue),
    )


def settle_enqueue(
    batches: Sequence[Sequence[NewJob]], calls: Sequence[Call], replies: Sequence[Any]
) -> list[bool]:
    """The replies of `enqueue_calls`, in job order, as `enqueue`'s booleans;
    a duplicate's reply is the id of the job that holds its key (kept in
    `duplicate_of`)."""
    if all(call.script.name == "enqueue" for call in calls):  # no unique job
        return [bool(x) for reply in replies for x in reply]
    out = []
    jobs = [new for batch in batches for new in batch]
    for new, reply in zip(jobs, [x for r in replies for x in r], strict=True):
        if isinstance(reply, bytes):
            new.duplicate_of = reply.decode()
            out.append(False)
        else:
            out.append(bool(reply))
    return out


class RedisSyncClient(SyncClient):
    def __init__(
        self,
        url: str,
        keys: Keys,
        node: Callable[[], Any] | None = None,
        replicas: MinReplicas | None = None,
        result_ttl: float = 86400.0,
    ) -> None:
        """`node`: where a Redis Cluster partition's client comes from (the
        primary serving its slot, partitioned_sync.py; results are then
        notified on sharded channels); None: from `url`. `replicas`:
        REDIS_MIN_REPLICAS, one WAIT per batch of calls."""
        self.url = url
        self.keys = keys
        self.result_ttl = result_ttl
        self._node = node
        self._generation = 0  # a held connection of an older one is dropped
        self._replicas = replicas
        self._client: Any = None
        self._packed = PackedEnqueue(keys)
        self._lock = threading.Lock()
        self._local = threading.local()

    def client(self) -> Any:
        client = self._client
        if client is None:
            # Locked: a client that loses the race is garbage-collected, and
            # redis-py's Redis.__del__ closes its pool under whoever still uses it.
            with self._lock:
                client = self._client
                if client is None:
                    client = sync_client(self.url) if self._node is None else self._node()
                    # A producer's start-up check, once per process: a user
                    # missing a permission fails here, named, not midway.
                    try:
                        with redis_errors():
                            acl.check_sync(client, self.keys, acl.Role.PRODUCER)
                    except BaseException:
                        client.close()  # its connections (a sentinel client's too)
                        raise
                    self._client = client
        return client

    def retarget(self) -> None:
        """The partition's slot moved: the next call asks `node` again."""
        self._client = None
        self._generation += 1

    def close(self) -> None:
        if self._client is not None:
            if self._node is None:
                self._client.close()
            self._client = None
        held = getattr(self._local, "conn", None)
        if held is not None:
            held.disconnect()
            self._local.conn = None

    # -- the primitives ---------------------------------------------------------
    def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        if len(batches) == 1 and len(batches[0]) == 1 and self._replicas is None:
            new = batches[0][0]
            if new.unique is None:  # `fn.enqueue()`: the common single call
                return [bool(self._enqueue_one(new)[0])]
        calls = [enqueue_call(self.keys, batch) for batch in batches]
        return settle_enqueue(batches, calls, self.run_many(calls))

    def _enqueue_one(self, new: NewJob) -> Any:
        """`run_many` of one enqueue call, its bytes packed from the parts of
        its queue packed before (enqueue_packed.py); every outcome but a
        reply on the held connection takes run_many's way for one call."""
        try:
            packed = self._packed.pack(new)
        except TypeError:  # not packable: the generic path says what is wrong
            return self.run_many([enqueue_call(self.keys, [new])])[0]
        fast = self._held_connection()
        if fast is not None:
            try:
                fast.send_packed_command([packed])
                reply = fast.read_response()
            except ResponseError as exc:  # an error reply; the connection is fine
                reply = exc
            except (RedisError, OSError) as exc:
                fast.disconnect()
                self._local.conn = None
                if not isinstance(exc, UNAVAILABLE):
                    raise wrap(exc) from exc
                return self._pooled(enqueue_call(self.keys, [new]))
            if not isinstance(reply, Exception):
                return reply
            return self._settle(enqueue_call(self.keys, [new]), reply)
        return self._pooled(enqueue_call(self.keys, [new]))

    def get_result(self, job_id: str) -> JobResult | None:
        with redis_errors():
            data = self.client().hgetall(self.keys.result(job_id))
        return parse_result(data)

    def get_record(self, job_id: str) -> bytes | None:
        with redis_errors():
            raw: bytes | None = self.client().get(self.keys.job(job_id))
        return raw

    def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        deadline = time.monotonic() + timeout
        with redis_errors():
            pubsub = self.client().pubsub(ignore_subscribe_messages=True)
            try:
                channel = self.keys.notify_channel(job_id)
                if self._node is None:
                    pubsub.subscribe(channel)
                else:
                    pubsub.ssubscribe(channel)
                # Checked again after subscribing: the job may have finished in between.
                while (found := self.get_result(job_id)) is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    pubsub.get_message(timeout=min(remaining, RESULT_POLL_S))
                return found
            finally:
                pubsub.close()

    def cancel(self, job_id: str) -> CancelOutcome:
        # A partition's client (node) notifies on sharded channels.
        publish = "PUBLISH" if self._node is None else "SPUBLISH"
        ttl = str(max(1, int(self.result_ttl)))
        for _ in range(CANCEL_TRIES):
            call = cancel_call(self.keys, job_id, self.get_record(job_id), ttl, publish)
            found = parse_reply(self.run_many([call])[0])
            if found is not None:
                return found
        raise changed_too_often(job_id)

    def get_progress(self, job_id: str) -> JobProgress | None:
        with redis_errors():
            data = self.client().hgetall(self.keys.progress(job_id))
        return parse_progress(data)

    # -- script calls -------------------------------------------------------------
    def run_many(self, calls: Sequence[Call]) -> list[Any]:
        """Run script calls in one write and one round trip, replies in order
        (then one WAIT when REDIS_MIN_REPLICAS is set: replicas.py)."""
        try:
            packed = b"".join(
                pack_command(("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args))
                for c in calls
            )
        except TypeError as exc:
            raise BrokerError(f"cannot send {calls[0].script.name}: {exc}") from exc
        wait = self._replicas
        if wait is not None:
            packed += wait.packed
        replies: list[Any] = []
        late: BrokerError | None = None
        fast = self._held_connection()
        if fast is not None:
            try:
                fast.send_packed_command([packed])
                for _ in calls:
                    try:
                        replies.append(fast.read_response())
                    except ResponseError as exc:  # an error reply; the connection is fine
                        replies.append(exc)
                if wait is not None:
                    _reply(fast)  # the fence (replicas.py)
                    late = wait.error(_reply(fast))
            except (RedisError, OSError) as exc:
                # The held connection broke (or is out of step): drop it. Calls
                # already answered stand; the rest are redone on the pooled path.
                fast.disconnect()
                self._local.conn = None
                if not isinstance(exc, UNAVAILABLE) or (wait is not None and replies):
                    # With REDIS_MIN_REPLICAS, calls answered before the WAIT's
                    # reply are applied but not known to be replicated; a redo
                    # would write nothing for a WAIT to cover: the caller retries.
                    raise wrap(exc) from exc
        out = [self._settle(call, reply) for call, reply in zip(calls, replies, strict=False)]
        if late is not None:  # every call answered, none known to be replicated
            raise late
        return out + [self._pooled(call) for call in calls[len(replies) :]]

    def _settle(self, call: Call, reply: Any) -> Any:
        if isinstance(reply, NoScriptError):
            # First use on this server, or it restarted without its script cache;
            # only this call is redone (the others ran, and enqueue is not idempotent
            # in what it reports).
            return self._pooled(call)
        if isinstance(reply, Exception):
            raise wrap(reply)
        return reply

    def _pooled(self, call: Call) -> Any:
        client = self.client()
        with redis_errors():
            try:
                return self._evalsha(client, call)
            except NoScriptError:
                client.script_load(call.script.source)
                return self._evalsha(client, call)

    def _evalsha(self, client: Any, call: Call) -> Any:
        args = (call.script.sha, len(call.keys), *call.keys, *call.args)
        wait = self._replicas
        if wait is None:
            return client.evalsha(*args)
        # One pooled connection for both: WAIT covers that connection's writes.
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(*args)
        pipe.execute_command(*wait.fence_args)
        pipe.execute_command(*wait.args)
        reply, _, acked = pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        wait.check(acked)
        return reply

    def _held_connection(self) -> Any:
        """This thread's own connection for single sync calls.

        redis-py's pool costs tens of microseconds per checkout; a web thread
        enqueueing one job per request pays it on every call. Holding one
        connection per thread (never shared, dropped after a fork or an
        error) halves the cost of `fn.enqueue()`."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            if self._local.generation == self._generation:
                return conn
            conn.disconnect()
        try:
            conn = self.client().connection_pool.make_connection()
            conn.connect()
        except (RedisError, OSError):
            return None
        self._local.conn, self._local.pid = conn, os.getpid()
        self._local.generation = self._generation
        return conn


def _reply(conn: Any) -> Any:
    """One reply, an error reply as its exception (not raised)."""
    try:
        return conn.read_response()
    except ResponseError as exc:
        return exc
