"""Job records: the JSON codec of the Redis wire format (docs/wire-format.md)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import InvalidRecord, PayloadError, PayloadTooLarge
from .vocabulary import PRIORITIES, PRIORITY_NAMES, Priority, Status

_last_iso: tuple[int, str] = (0, "")


def now_iso() -> str:
    """UTC time as the SDKs write it: 2026-01-02T03:04:05.678Z.

    Cached for the current millisecond: a busy worker stamps several records
    per millisecond, and formatting a datetime is most of the cost."""
    global _last_iso
    ms = int(time.time() * 1000)
    if _last_iso[0] != ms:
        stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        _last_iso = (ms, stamp.replace("+00:00", "Z"))
    return _last_iso[1]


def wire_durations(duration_ms: float) -> tuple[str, str]:
    """A run time as the result hash stores it: (`duration_ms`, `duration_us`).

    `duration_ms` is whole milliseconds, truncated as Go's
    Duration.Milliseconds() is: the SDKs parse it with int() / ParseInt /
    parseInt. `duration_us` is Bananas' own, whole microseconds, for runs
    shorter than a millisecond (docs/wire-format.md)."""
    us = max(0, round(duration_ms * 1000))
    return str(us // 1000), str(us)


def iso_from_unix(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def record_field(raw: bytes | None, name: str) -> str:
    """One text field of a raw record, "" when the record is missing or malformed."""
    if not raw:
        return ""
    try:
        value = orjson.loads(raw).get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def created_at(raw: bytes | None) -> float | None:
    """Unix seconds of a record's created_at, None when absent or unparsable."""
    if not raw:
        return None
    try:
        value = orjson.loads(raw).get("created_at")
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except (orjson.JSONDecodeError, AttributeError, ValueError):
        return None


def new_job_id() -> str:
    """A random (version 4) UUID string, built without uuid.UUID's overhead."""
    return new_job_ids(1)[0]


def new_job_ids(count: int) -> list[str]:
    """`count` new ids from one read of the system's random source (one id:
    from this thread's stock, see `_spare`)."""
    if count == 1:
        return [_spare()]
    return _fresh_ids(count)


def _fresh_ids(count: int) -> list[str]:
    h = os.urandom(16 * count).hex()
    return [_uuid4_text(h[i : i + 32]) for i in range(0, 32 * count, 32)]


# One os.urandom read costs a system call (~1.5 us on a VM, half of a
# single `fn.enqueue()`'s encoding), so single ids come from a stock of
# _SPARE_IDS read at once. The stock is per thread (never shared, so never
# handed out twice) and dropped in a forked child, which would otherwise
# hand out its parent's ids.
_SPARE_IDS = 64
_spares = threading.local()


def _spare() -> str:
    try:
        return _spares.ids.pop()  # type: ignore[no-any-return]
    except (AttributeError, IndexError):
        _spares.ids = ids = _fresh_ids(_SPARE_IDS)
        return ids.pop()


def _forget_spares() -> None:
    global _spares
    _spares = threading.local()


os.register_at_fork(after_in_child=_forget_spares)


def _uuid4_text(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"


def check_priority(value: str) -> str:
    if value not in PRIORITY_NAMES:
        raise ValueError(f"unknown priority {value!r}: expected one of {', '.join(PRIORITIES)}")
    return value


def encode_payload(payload: Any, max_bytes: int) -> bytes:
    """Serialize a payload, refusing non-objects and oversized ones with a clear error."""
    if not isinstance(payload, dict):
        raise PayloadError(f"payload must be a JSON object (dict), got {type(payload).__name__}")
    try:
        data = orjson.dumps(payload)
    except TypeError as exc:
        raise PayloadError(f"payload is not JSON-serializable: {exc}") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"payload is {len(data)} bytes, over MAX_PAYLOAD_BYTES={max_bytes}")
    return data


@dataclass(slots=True)
class JobRecord:
    """A decoded job record. `fields` keeps every field, SDK extras included,
    so that rewriting the record never drops what another client wrote."""

    fields: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.fields["id"])

    @property
    def name(self) -> str:
        return str(self.fields["name"])

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.fields["payload"]
        return payload

    @property
    def priority(self) -> str:
        return str(self.fields["priority"])

    @property
    def route(self) -> str:
        """The SDKs' `routing_key`; "default" when absent."""
        return str(self.fields.get("routing_key") or "default")

    @property
    def attempts(self) -> int:
        return int(self.fields.get("attempts") or 0)

    def max_retries(self, default: int) -> int:
        value = self.fields.get("max_retries")
        return default if value is None else int(value)

    def updated(self, **changes: Any) -> bytes:
        """The record with `changes` applied and updated_at refreshed, encoded."""
        self.fields.update(changes)
        self.fields["updated_at"] = now_iso()
        return orjson.dumps(self.fields)


def record_tail(
    *,
    name: str,
    priority: str,
    max_retries: int | None,
    description: str,
    now: str,
    scheduled_for: float | None = None,
    route: str | None = None,
    unique: tuple[str, int] | None = None,
    concurrency_key: str | None = None,
    rate_key: str | None = None,
) -> bytes:
    """A new record's fields after `id`, encoded. Ready-now jobs alike in
    these fields share one tail across a batch (see `assemble_record`).
    `unique`: (digest, unique_for in whole ms) of a unique job (unique.py)."""
    head: dict[str, Any] = {
        "name": name,
        "description": description,
        "status": Status.SCHEDULED if scheduled_for is not None else Status.PENDING,
        "priority": priority,
        "created_at": now,
        "updated_at": now,
        "attempts": 0,
    }
    if max_retries is not None:
        head["max_retries"] = max_retries
    if scheduled_for is not None:
        head["scheduled_for"] = iso_from_unix(scheduled_for)
    if route is not None:  # the SDKs' field; absent means the default route
        head["routing_key"] = route
    if unique is not None:  # Bananas' own fields: an SDK ignores them (wire-format.md)
        head["unique_key"], head["unique_for_ms"] = unique
    if concurrency_key is not None:  # Bananas' own (concurrency.py)
        head["concurrency_key"] = concurrency_key
    if rate_key is not None:  # the bucket of a rate-limited type (rates.py)
        head["rate_key"] = rate_key
    return b"," + orjson.dumps(head)[1:-1]


def assemble_record(job_id: str, tail: bytes, payload_json: bytes) -> bytes:
    """A record from its id, a `record_tail` and the serialized payload, which
    is spliced in as is (a possibly large payload is never serialized twice)."""
    return b'{"id":' + orjson.dumps(job_id) + tail + b',"payload":' + payload_json + b"}"


_REQUIRED_TEXT = ("id", "name")


def decode_record(raw: bytes | None, expected_id: str | None = None) -> JobRecord:
    """Decode and validate a record; InvalidRecord names the first problem found."""
    if raw is None:
        raise InvalidRecord("no job record stored for this id")
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"record is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise InvalidRecord(f"record must be a JSON object, got {type(fields).__name__}")
    for key in _REQUIRED_TEXT:
        value = fields.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidRecord(f"field {key!r} must be a non-empty string")
    if expected_id is not None and fields["id"] != expected_id:
        raise InvalidRecord(f"record id {fields['id']!r} does not match its key ({expected_id!r})")
    if "payload" not in fields:
        raise InvalidRecord("field 'payload' is missing")
    payload = fields["payload"]
    if not isinstance(payload, dict):
        raise InvalidRecord(f"field 'payload' must be a JSON object, got {type(payload).__name__}")
    priority = fields.get("priority") or Priority.NORMAL.value
    if priority not in PRIORITY_NAMES:
        raise InvalidRecord(
            f"field 'priority' is {priority!r}: expected one of {', '.join(PRIORITIES)}"
        )
    fields["priority"] = priority
    for key in ("attempts", "max_retries"):
        value = fields.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise InvalidRecord(f"field {key!r} must be a non-negative integer, got {value!r}")
    return JobRecord(fields)
