"""A worker's copy of the index of ready lists that may hold jobs
(lua/_index.lua), so that a dequeue names only those lists of its order.

A worker serving hundreds of job types has three ready lists per type; sent
whole, every dequeue carried two keys per list (the list and its marker) and
cost a third of the drain rate. With the copy, a call names the lists of the
order the index holds, in the order's order.

The copy can only lag: every dequeue reply carries the index version, and the
members when the version is not the copy's, so a list that got jobs since is
named from the next call on. A call that found nothing while the index moved
is sent once more at once (RedisBroker.dequeue), and the list whose marker
woke an idle worker is named whatever the copy says (`woke`), so no wake-up
is spent on a call that leaves the job where it is. Without a copy (a fresh
worker, after a broker error, or more members than INDEX_LIMIT), the whole
order is sent, as before the index.

Once every FULL_EVERY seconds a dequeue sends the whole order anyway: jobs
pushed by a writer that does not keep the index (a Bananas from before it,
still running during a rolling upgrade; an operator's LPUSH) are then found,
and the dequeue that finds such a list adds it to the index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ... import keys
from ..records import QueueRef

# Members a reply may carry. More than that and the worker sends its whole
# order: the index then changes rarely relative to calls but would cost its
# size on every change.
INDEX_LIMIT = 256
# The longest a list filled without the index waits to be named (seconds).
FULL_EVERY = 1.0


class ReadyIndex:
    def __init__(self) -> None:
        self.version = ""
        self._members: set[QueueRef] | None = None
        self._full_at = 0.0

    def select(self, queues: Sequence[QueueRef]) -> Sequence[QueueRef]:
        members = self._members
        if members is None:
            return queues
        now = time.monotonic()
        if now >= self._full_at:
            self._full_at = now + FULL_EVERY
            return queues
        return [q for q in queues if q in members]

    def update(self, version: bytes | str, index: object) -> bool:
        """Apply a reply's header; True when the copy changed."""
        version = version.decode() if isinstance(version, bytes) else version
        if index is None and version == self.version:
            return False
        self.version = version
        if isinstance(index, list):
            if self._members is None:  # the call that brought it named every list
                self._full_at = time.monotonic() + FULL_EVERY
            self._members = {parse_member(m) for m in index}
        else:  # 'many', or a version moved without members (not sent by the script)
            self._members = None
        return True

    def woke(self, queue: QueueRef) -> None:
        if self._members is not None:
            self._members.add(queue)

    def reset(self) -> None:
        """Forget the copy (a broker error: it may be of another primary)."""
        self.version = ""
        self._members = None


def parse_member(member: bytes | str) -> QueueRef:
    return keys.parse_member(member.decode() if isinstance(member, bytes) else member)
