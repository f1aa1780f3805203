"""Unique jobs (docs/control.md): the key a unique job locks, and its checks.

A job type declared `@app.job(unique_for="10m")`, or an enqueue given
`_unique_key=` / `_unique_for=`, takes a lock in the same atomic step that
writes the job: while the job is not final (completed, dead-lettered,
cancelled) and `unique_for` has not passed, an enqueue of the same key
creates nothing and answers with the job that holds it.

The lock is keyed by a digest: the job type and either the caller's key or
the payload as canonical JSON (sorted keys, so {"a":1,"b":2} and
{"b":2,"a":1} are one key). The type is part of it: "user-42" of two job
types are two keys. The digest is what the broker stores (a fixed length
whatever the payload) and what the record carries (`unique_key`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .durations import parse_duration
from .errors import BananasError, PayloadError

# A lock outliving its job by more than a month is almost surely a mistake.
MAX_UNIQUE_FOR = 31 * 86400.0


def check_unique_for(value: Any, where: str) -> float | None:
    """`unique_for` in seconds (None: not unique), or a BananasError naming `where`."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise BananasError(f"{where}: unique_for={value!r}: {exc}") from None
    if not 0.001 <= seconds <= MAX_UNIQUE_FOR:
        raise BananasError(
            f"{where}: unique_for={value!r} is out of range (allowed: 1ms to 31 days)"
        )
    return seconds


def unique_digest(name: str, payload: Any, key: str | None) -> str:
    """The hashed lock key of a unique job: its type and its key, or its
    type and its payload as canonical JSON when no key is given."""
    if key is not None:
        if not isinstance(key, str) or not key:
            raise BananasError(f"_unique_key must be a non-empty string, got {key!r}")
        material = b"k\0" + name.encode() + b"\0" + key.encode()
    else:
        try:
            canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:
            raise PayloadError(f"payload is not JSON-serializable: {exc}") from None
        material = b"p\0" + name.encode() + b"\0" + canonical
    return hashlib.blake2b(material, digest_size=16).hexdigest()


__all__ = ["MAX_UNIQUE_FOR", "check_unique_for", "unique_digest"]
