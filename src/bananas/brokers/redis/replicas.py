"""REDIS_MIN_REPLICAS: a write is acknowledged once N replicas have it.

Redis replicates asynchronously: a primary killed right after it answered
loses what its replicas had not received yet. `WAIT N timeout` blocks the
connection until N replicas have acknowledged every write sent before it on
that connection (the replication stream is one ordered log, so that is also
every write of any connection before it), or until the timeout, and answers
how many did. One WAIT after the calls of a pipeline covers all of them, so
the cost is one replica round trip per pipeline, not per job; with N = 0
nothing is sent.

A call answered before a short WAIT stays applied on the primary: its caller
gets ReplicationTimeout and may send it again (every script here is
idempotent on a resend: enqueue by job id, settles and leases by token).

A resend that finds its work done writes nothing, and a WAIT only covers the
writes of its own connection: after a reconnect it would return at once and
acknowledge a write no replica has. So every WAIT follows a write of its own
(the fence: SET <prefix>:fence, a few bytes kept 10 s), which comes after
every earlier write in the one replication stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import BrokerError, ReplicationTimeout
from .connection import pack_command

FENCE_MS = 10_000


@dataclass(frozen=True, slots=True)
class MinReplicas:
    count: int
    timeout_ms: int
    fence: str = "bananas:fence"

    @classmethod
    def of(cls, count: int, timeout: float, fence: str = "bananas:fence") -> MinReplicas | None:
        """The setting as the clients use it: None when off (count 0). WAIT 0
        means "forever", so at least 1 ms; config.py keeps it under the
        clients' 5 s socket read timeout, or a slow WAIT would read as a
        dead connection."""
        if count <= 0:
            return None
        return cls(count, max(1, round(timeout * 1000)), fence)

    @property
    def fence_args(self) -> tuple[str, str, str, str, int]:
        return ("SET", self.fence, "1", "PX", FENCE_MS)

    @property
    def args(self) -> tuple[str, int, int]:
        return ("WAIT", self.count, self.timeout_ms)

    @property
    def packed(self) -> bytes:
        """The fence, then WAIT: two replies, the WAIT's last."""
        return pack_command(self.fence_args) + pack_command(self.args)

    def error(self, reply: Any) -> BrokerError | None:
        """The error of WAIT's reply (the replicas that acknowledged), or None."""
        if isinstance(reply, Exception):  # an error reply: NOPERM, or WAIT on a replica
            return BrokerError(f"Redis refused WAIT (REDIS_MIN_REPLICAS={self.count}): {reply}")
        if isinstance(reply, int) and not isinstance(reply, bool):
            if reply >= self.count:
                return None
            return ReplicationTimeout(reply, self.count, self.timeout_ms)
        return BrokerError(f"Redis answered WAIT with {reply!r} (REDIS_MIN_REPLICAS={self.count})")

    def check(self, reply: Any) -> None:
        error = self.error(reply)
        if error is not None:
            raise error
