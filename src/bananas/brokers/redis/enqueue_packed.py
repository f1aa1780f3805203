"""One job's enqueue.lua call as the bytes sent, for `fn.enqueue()`.

A web thread enqueueing one job per request pays for the call's encoding on
every request: building the KEYS / ARGV lists (scripts.enqueue), the Call and
packing 16 arguments cost about as much as the rest of the client's work.
Of those 16, only the record key, the id, the record and the delay / at are
the job's own; the rest depend on its queue (lane, type) alone, so they are
packed once per queue and reused. The bytes are exactly those of
`pack_command` on `enqueue_call(keys, [job])` (tests/test_enqueue_packed.py),
so the script sees the same call whichever way it was built.
"""

from __future__ import annotations

from ...keys import Keys, lane
from ..records import NewJob
from .script_loader import load

# Queues remembered at most (the job types a client enqueues, by priority and
# route); past it the cache starts over rather than grow with odd names.
MAX_QUEUES = 1024


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


_NO_TIME = _bulk(b"")
_FIRST_QUEUE = _bulk(b"1")


class PackedEnqueue:
    """enqueue.lua for one job without a unique key (the RESP of one EVALSHA)."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._job_prefix = keys.job_prefix.encode()
        # (lane, type) -> (everything before the record key, the nq and member after it)
        self._queues: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    def pack(self, new: NewJob) -> bytes:
        ref = (new.priority if new.route is None else lane(new.route, new.priority), new.name)
        parts = self._queues.get(ref)
        if parts is None:
            parts = self._queue_parts(ref)
        head, member = parts
        job_id = new.id.encode()
        at = _NO_TIME if new.due is None else _bulk(repr(new.due).encode())
        if new.delay is None or new.due is not None:
            delay = _NO_TIME
        else:
            delay = _bulk(repr(float(new.delay)).encode())
        return b"".join(
            (
                head,
                _bulk(self._job_prefix + job_id),
                member,
                _bulk(job_id),
                _bulk(new.record),
                delay,
                at,
                _FIRST_QUEUE,
            )
        )

    def _queue_parts(self, ref: tuple[str, str]) -> tuple[bytes, bytes]:
        k = self._keys
        # KEYS: queues, scheduled, index, ready, marker, record key; ARGV: nq,
        # member, id, record, delay, at, queue_number (lua/enqueue.lua's header)
        fixed = ("EVALSHA", load("enqueue").sha, "6", k.queues, k.scheduled, k.nonempty)
        head = b"*16\r\n" + b"".join(
            _bulk(x.encode()) for x in (*fixed, k.ready(*ref), k.marker(*ref))
        )
        member = _FIRST_QUEUE + _bulk(f"{ref[0]}:{ref[1]}".encode())
        if len(self._queues) >= MAX_QUEUES:
            self._queues.clear()
        self._queues[ref] = parts = (head, member)
        return parts


__all__ = ["PackedEnqueue"]
