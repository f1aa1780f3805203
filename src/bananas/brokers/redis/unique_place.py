"""Where a unique job lives on Redis Cluster (docs/control.md).

A unique job's lock and its record must be in one partition, so that one
script takes the lock and writes the job atomically (enqueue_unique.lua).
The lock's partition follows from the key alone (crc32 of its digest %
partitions), so every enqueue of the key looks in the same place; the job's
id is then chosen in that partition: a fresh random UUID, drawn again until
crc32(id) % partitions (partitions.partition_of) is the key's partition.
That costs on average `partitions` draws of 16 random bytes (16 partitions:
~10 µs) and only for unique jobs; the id stays a plain UUID, so every other
part of the broker finds the job by its id as before. A unique job never
has a caller-chosen id (specs.py refuses `_job_id` with a unique key).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import orjson

from ...job import new_job_ids
from ..records import NewJob
from .partitions import partition_of

_DRAW = 64  # ids drawn per read of the random source


def key_partition(digest: str, count: int) -> int:
    return zlib.crc32(digest.encode()) % count


def id_in(partition: int, count: int) -> str:
    """A fresh job id whose partition is `partition`."""
    while True:
        for job_id in new_job_ids(_DRAW):
            if partition_of(job_id, count) == partition:
                return job_id


def place(jobs: Sequence[NewJob], count: int) -> None:
    """Give every unique job an id in its key's partition (in place: the
    record's id too). Idempotent: a job sent again keeps the id it got."""
    for job in jobs:
        if job.unique is None or count <= 1:
            continue
        target = key_partition(job.unique, count)
        if partition_of(job.id, count) == target:
            continue
        new_id = id_in(target, count)
        head = b'{"id":' + orjson.dumps(job.id)
        if job.record.startswith(head):
            job.record = b'{"id":' + orjson.dumps(new_id) + job.record[len(head) :]
        else:  # a record a hook rewrote: decode it
            fields = orjson.loads(job.record)
            fields["id"] = new_id
            job.record = orjson.dumps(fields)
        job.id = new_id
