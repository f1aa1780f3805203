"""How a keyspace is cut into partitions on Redis Cluster.

A partition holds a complete set of Bananas' structures (ready lists,
markers, the index, leases, the scheduled set, dead letters, records,
results, progress) under one hash tag, so every script of a partition runs
on one slot. Partition i's keys are `Keys("<prefix>:{<tag_i>}")`; the tags
are chosen so the partitions' slots are evenly spaced over 0..16383, which
puts them evenly on primaries that hold contiguous slot ranges (what
`redis-cli --cluster create` and `rebalance` make).

A job's partition follows from its id alone, so a handle finds its record
and result without a lookup, and an enqueue repeated with the same id (a
cron firing, a client retry) lands in the same partition: enqueue stays
idempotent by id. An id Bananas generates (a random UUID) is spread by its
hash, crc32(id) % partitions; an id the caller chose (a cron firing's, an
idempotency key, an upstream system's) lives in partition 0, where such jobs
keep the strict order of a single Redis among themselves.

The fleet's own keys (worker registry, job types, the keyspace marker, the
partition count) live under `Keys("<prefix>:{<prefix>}")`.
"""

from __future__ import annotations

import re
import zlib
from functools import cache

from ...errors import ConfigError
from ...keys import Keys
from .cluster import SLOTS, key_slot

MAX_PARTITIONS = 1024


def check_partitions(value: int) -> int:
    if not 1 <= value <= MAX_PARTITIONS:
        raise ConfigError(
            f"REDIS_PARTITIONS={value} is out of range (allowed: 1 to {MAX_PARTITIONS})"
        )
    return value


@cache
def partition_tags(prefix: str, count: int) -> tuple[str, ...]:
    """The hash tag of every partition: the first "<prefix>.<i>.<n>" whose
    slot falls in the i-th of `count` equal slot ranges."""
    tags = []
    for i in range(count):
        low, high = i * SLOTS // count, (i + 1) * SLOTS // count
        n = 0
        while not low <= key_slot(f"{{{prefix}.{i}.{n}}}") < high:
            n += 1
        tags.append(f"{prefix}.{i}.{n}")
    return tuple(tags)


def partition_keys(prefix: str, count: int) -> list[Keys]:
    return [Keys(f"{prefix}:{{{tag}}}") for tag in partition_tags(prefix, count)]


def home_keys(prefix: str) -> Keys:
    return Keys(f"{prefix}:{{{prefix}}}")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def partition_of(job_id: str, count: int) -> int:
    if len(job_id) != 36 or _UUID.fullmatch(job_id) is None:
        return 0
    return zlib.crc32(job_id.encode()) % count


def partition_of_key(key: str, count: int) -> int:
    """The partition of a fleet-wide limit's key (a rate-limit bucket, a
    concurrency key): its hash, so the limits spread over the partitions and
    each one's script touches one slot."""
    return zlib.crc32(key.encode()) % count


def partitions_key(home: Keys) -> str:
    """String: the partition count the keyspace was created with."""
    return f"{home.prefix}:partitions"
