"""Concurrency limits (docs/control.md): the checks of `concurrency=` and
`_concurrency_key=`, and the bucket a job's slot is counted in.

A job type declared `@app.job(concurrency=2)` runs at most 2 at once across
every worker; an enqueue given `_concurrency_key="customer-7"` counts in the
bucket of that key instead, each key with the type's limit. A bucket is
named by the job type and the key (absent: the type's own bucket), encoded
so that no type and key pair can name another's bucket.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import BananasError

MAX_CONCURRENCY = 1_000_000
MAX_KEY_LENGTH = 200


def check_concurrency(value: Any, where: str) -> int | None:
    """`concurrency` as a positive int (None: no limit), or a BananasError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BananasError(
            f"{where}: concurrency={value!r} must be a whole number "
            f"(allowed: 1 to {MAX_CONCURRENCY}, or None for no limit)"
        )
    if not 1 <= value <= MAX_CONCURRENCY:
        raise BananasError(
            f"{where}: concurrency={value!r} is out of range (allowed: 1 to {MAX_CONCURRENCY})"
        )
    return value


def check_concurrency_key(key: Any, name: str, limit: int | None, known: bool) -> str:
    """The `_concurrency_key` of an enqueue of `name`; a type this client knows
    (`known`) without a limit refuses one: the key would cap nothing."""
    if known and limit is None:
        raise BananasError(
            f"_concurrency_key given for {name!r}, which has no concurrency limit: "
            "declare @app.job(concurrency=N) to cap it per key"
        )
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise BananasError(
            f"_concurrency_key={key!r} for {name!r}: expected a non-empty string "
            f"of at most {MAX_KEY_LENGTH} characters"
        )
    return key


def bucket_of(name: str, key: str | None) -> str:
    """The bucket of a job type and its concurrency key: '["type"]' or
    '["type","key"]' (JSON: unambiguous whatever the names hold)."""
    return orjson.dumps([name] if key is None else [name, key]).decode()


def bucket_parts(bucket: str) -> tuple[str, str | None]:
    """(job type, key or None) of a bucket name."""
    parts = orjson.loads(bucket)
    return str(parts[0]), (str(parts[1]) if len(parts) > 1 else None)
