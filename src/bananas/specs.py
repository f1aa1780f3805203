"""Enqueue requests: a JobSpec from `app.spec(...)` options, and a batch of
specs encoded into broker-ready records (the hot path of `enqueue_many`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .brokers.base import NewJob
from .concurrency import check_concurrency_key
from .definitions import JobDefinition
from .durations import parse_duration
from .errors import ArgumentsError, BananasError, PayloadError
from .job import (
    assemble_record,
    check_priority,
    encode_payload,
    new_job_ids,
    now_iso,
    record_tail,
)
from .rates import check_rate_key
from .routes import DEFAULT_ROUTE, check_route
from .unique import check_unique_for, unique_digest
from .vocabulary import PRIORITY_NAMES, Priority

_OPTIONS = (
    "_delay",
    "_at",
    "_priority",
    "_job_id",
    "_description",
    "_max_retries",
    "_route",
    "_unique_key",
    "_unique_for",
    "_concurrency_key",
    "_rate_key",
)
_OPTION_NAMES = frozenset(_OPTIONS)


@dataclass(slots=True)
class JobSpec:
    """One job for `enqueue_many`: made by `fn.spec(...)` or `app.spec(name, ...)`."""

    name: str
    payload: dict[str, Any]
    priority: str
    delay: float | None = None
    at: float | None = None
    job_id: str | None = None
    description: str = ""
    max_retries: int | None = None
    route: str | None = None  # None: the default route
    # A unique job (unique.py): seconds its lock lasts at most, and the
    # caller's key (None: the job type and payload are the key).
    unique_for: float | None = None
    unique_key: str | None = None
    concurrency_key: str | None = None  # the bucket of a limited type (concurrency.py)
    rate_key: str | None = None  # the bucket of a rate-limited type (rates.py)
    # A workflow step (docs/workflows.md): True, it gets only its own payload,
    # not its predecessor's result (`previous`) or its header's (`results`).
    ignore_previous: bool = False
    app: Any = field(default=None, repr=False, compare=False)  # whose spec (Bananas.spec)

    def immutable(self) -> JobSpec:
        """This spec as a workflow step that receives nothing from the
        steps before it (Celery's `si`): only its own payload."""
        return replace(self, ignore_previous=True)


def make_spec(
    definition: JobDefinition | None,
    name: str,
    payload: dict[str, Any] | None,
    kwargs: dict[str, Any],
) -> JobSpec:
    """`Bananas.spec`: keyword arguments are the payload, `_delay`, `_at`,
    `_priority`, `_job_id`, `_description`, `_max_retries`, `_route` are options; the
    job type's definition (None for a type this client does not register)
    gives the defaults and the parameters the payload is checked against."""
    options = {k: v for k, v in kwargs.items() if k[:1] == "_"} if kwargs else kwargs
    if options:
        kwargs = {k: v for k, v in kwargs.items() if k[:1] != "_"}
        if not options.keys() <= _OPTION_NAMES:
            unknown = sorted(options.keys() - _OPTION_NAMES)
            raise BananasError(
                f"unknown enqueue option {unknown[0]!r} (allowed: {', '.join(_OPTIONS)})"
            )
    if payload is not None and kwargs:
        raise PayloadError("give the payload either as a dict or as keyword arguments")
    if payload is None:
        payload = kwargs
    if definition is None:
        priority, max_retries, route, unique_for = Priority.NORMAL.value, None, None, None
    else:
        priority, max_retries = definition.priority, definition.max_retries
        route, unique_for = definition.route, definition.unique_for
        if isinstance(payload, dict):  # anything else: encode_payload says what is wrong
            try:
                definition.check_arguments(payload)
            except ArgumentsError:
                # A workflow step's `previous` / `results` come at run time.
                definition.check_arguments({**payload, **_inputs_for(definition, payload)})
    if not options:  # the common case
        return JobSpec(
            name, payload, priority, max_retries=max_retries, route=route, unique_for=unique_for
        )
    chosen = options.get("_priority")
    if chosen is not None:
        priority = str(chosen)
        if priority not in PRIORITY_NAMES:
            try:
                check_priority(priority)
            except ValueError as exc:
                raise BananasError(str(exc)) from None
    if options.get("_max_retries") is not None:
        max_retries = options["_max_retries"]
    if options.get("_route") is not None:
        try:
            route = check_route(options["_route"], "_route")
        except ValueError as exc:
            raise BananasError(str(exc)) from None
        route = None if route == DEFAULT_ROUTE else route
    if options.get("_unique_for") is not None:
        unique_for = check_unique_for(options["_unique_for"], f"enqueue of {name!r}")
    unique_key = options.get("_unique_key")
    if unique_key is not None and unique_for is None:
        raise BananasError(
            f"_unique_key given for {name!r}, which is not unique: declare "
            "@app.job(unique_for=...) or give _unique_for"
        )
    if unique_for is not None and options.get("_job_id") is not None:
        raise BananasError(
            f"_job_id given for the unique job type {name!r}: a job id already makes the "
            "enqueue idempotent by id; a unique job is deduplicated by its key (choose one)"
        )
    concurrency_key = options.get("_concurrency_key")
    if concurrency_key is not None:
        limit = None if definition is None else definition.concurrency
        concurrency_key = check_concurrency_key(
            concurrency_key, name, limit, definition is not None
        )
    rate_key = options.get("_rate_key")
    if rate_key is not None:
        rate_key = check_rate_key(rate_key, name)
        if definition is not None and definition.rate_limit is None:
            raise BananasError(
                f"_rate_key given for {name!r}, which has no rate limit: declare "
                '@app.job(rate_limit="100/s") (or "/m", "/h") to limit it per key'
            )
    return JobSpec(
        name=name,
        payload=payload,
        priority=priority,
        delay=_seconds(options.get("_delay"), "_delay"),
        at=_unix(options.get("_at")),
        job_id=options.get("_job_id"),
        description=str(options.get("_description") or ""),
        max_retries=max_retries,
        route=route,
        unique_for=unique_for,
        unique_key=unique_key,
        concurrency_key=concurrency_key,
        rate_key=rate_key,
    )


def encode_specs(
    specs: Iterable[JobSpec | tuple[str, dict[str, Any]]],
    limit: int,
    to_spec: Callable[[str, dict[str, Any]], JobSpec],
) -> list[NewJob]:
    """`Bananas.build_jobs`: records ready for `Broker.enqueue` (no I/O); a
    (name, payload) pair becomes a JobSpec through `to_spec`."""
    items = specs if isinstance(specs, Sequence) else list(specs)
    jobs = []
    now = time.time()
    stamp = now_iso()  # one created_at for the batch: they are enqueued together
    # Alike ready-now jobs share their encoded fields; only id and payload differ.
    tails: dict[tuple[str, str, int | None, str, str | None, str | None], bytes] = {}
    for item, fresh_id in zip(items, new_job_ids(len(items)), strict=True):
        spec = item if isinstance(item, JobSpec) else to_spec(item[0], item[1])
        name = spec.name
        if not name or not isinstance(name, str):
            raise BananasError("a job type name must be a non-empty string")
        payload_json = encode_payload(spec.payload, limit)
        job_id = spec.job_id or fresh_id
        # `_at` is absolute; `_delay` goes to the broker as a duration (its
        # clock decides when it is due), the record shows this host's guess.
        delay = spec.delay or None if spec.at is None else None
        due = spec.at if spec.at is not None else (now + delay if delay else None)
        alike = (name, spec.priority, spec.max_retries, spec.description, spec.route, spec.rate_key)
        unique = None
        if spec.unique_for is not None:  # its own tail: the record names its key
            if spec.job_id is not None:
                raise BananasError(f"_job_id given for the unique job type {name!r}")
            ttl_ms = max(1, round(spec.unique_for * 1000))
            unique = (unique_digest(name, spec.payload, spec.unique_key), ttl_ms)
            tail = None
        elif spec.concurrency_key is not None:
            tail = None  # its own tail: the record names its key
        else:
            tail = tails.get(alike) if due is None else None
        if tail is None:
            tail = record_tail(
                name=name,
                priority=spec.priority,
                max_retries=spec.max_retries,
                description=spec.description,
                now=stamp,
                scheduled_for=due,
                route=spec.route,
                unique=unique,
                concurrency_key=spec.concurrency_key,
                rate_key=spec.rate_key,
            )
            if due is None and unique is None and spec.concurrency_key is None:
                tails[alike] = tail
        record = assemble_record(job_id, tail, payload_json)
        new = NewJob(job_id, name, spec.priority, record, spec.at, delay, spec.route)
        if unique is not None:
            new.unique, new.unique_ms = unique
        jobs.append(new)
    return jobs


def _inputs_for(definition: JobDefinition, payload: dict[str, Any]) -> dict[str, Any]:
    required = definition.shape[1]
    return {k: None for k in ("previous", "results") if k in required and k not in payload}


def _seconds(value: Any, option: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BananasError(f"{option}={value!r}: {exc}") from None


def _unix(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise BananasError("_at needs a timezone-aware datetime")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise BananasError(f"_at={value!r}: expected an aware datetime or unix seconds")


__all__ = ["JobSpec", "encode_specs", "make_spec"]
