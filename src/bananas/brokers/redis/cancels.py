"""Cancel on Redis (docs/control.md): the calls of lua/cancel.lua (a job in
any state), lua/cancelled.lua (its worker settles a cancelled running job)
and lua/cancel_check.lua (a worker asks which of its jobs were cancelled).

The cancel reads the record first, to name its ready list and write its
cancelled record; the script applies it only if the record is unchanged,
else the record is read again (a retry or an ack moved it in between).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ...errors import BrokerError, InvalidRecord
from ...job import decode_record, now_iso, wire_durations
from ...keys import Keys, lane
from ..records import CancelOutcome, Delivery, cancelled_record
from ..workflow_records import member_of
from . import scripts
from .connection import redis_errors
from .script_loader import Call

CANCEL_TRIES = 20
_REPLIES = {o.value: o for o in CancelOutcome}


def cancel_call(keys: Keys, job_id: str, raw: bytes | None, ttl: str, publish: str) -> Call:
    """The cancel of `job_id` whose record the caller read as `raw`."""
    ready_lane, name, record, wf = "normal", "", raw or b"", ""
    if raw is not None:
        try:
            rec = decode_record(raw, expected_id=job_id)
        except InvalidRecord:
            pass  # cancelled as it is: the record is kept for inspection
        else:
            ready_lane, name = lane(rec.route, rec.priority), rec.name
            record = cancelled_record(rec)
            wf = member_of(rec.fields)
    return scripts.cancel(
        record_key=keys.job(job_id),
        result_key=keys.result(job_id),
        ready=keys.ready(ready_lane, name),
        scheduled=keys.scheduled,
        active=keys.active,
        dead=keys.dead,
        stalls=keys.stalls,
        cancels=keys.cancels,
        cancelled=keys.cancelled,
        unique_held=keys.unique_held,
        id=job_id,
        seen=raw or b"",
        record=record,
        ttl=ttl,
        cancelled_at=now_iso(),
        notify=keys.notify_channel(job_id),
        publish=publish,
        unique_prefix=keys.unique_prefix,
        wf=wf,
        wf_context=keys.wf_context(ttl, publish, now_iso()) if wf else "",
    )


def parse_reply(reply: Any) -> CancelOutcome | None:
    """The outcome, or None when the record changed under the call."""
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    if text == "changed":
        return None
    return _REPLIES[text]


def changed_too_often(job_id: str) -> BrokerError:
    return BrokerError(
        f"cannot cancel job {job_id}: its record changed on each of {CANCEL_TRIES} tries"
    )


class RedisCancels:
    """RedisBroker's cancel calls (mixed in; it provides the rest)."""

    keys: Keys
    _ttl: str
    _publish: str
    redis: Any
    _run: Callable[[Call], Awaitable[Any]]
    get_record: Callable[[str], Awaitable[bytes | None]]

    async def cancel(self, job_id: str) -> CancelOutcome:
        for _ in range(CANCEL_TRIES):
            raw = await self.get_record(job_id)
            call = cancel_call(self.keys, job_id, raw, self._ttl, self._publish)
            found = parse_reply(await self._run(call))
            if found is not None:
                return found
        raise changed_too_often(job_id)

    async def _settle_cancelled(
        self, delivery: Delivery, record: bytes | None, duration_ms: float
    ) -> bool:
        k = self.keys
        job_id = delivery.id
        whole_ms, us = wire_durations(duration_ms)
        call = scripts.cancelled(
            active=k.active,
            leases=k.leases,
            stalls=k.stalls,
            record_key=k.job(job_id),
            result_key=k.result(job_id),
            cancels=k.cancels,
            cancelled=k.cancelled,
            unique_held=k.unique_held,
            id=job_id,
            token=delivery.token,
            record=record or b"",
            ttl=self._ttl,
            completed_at=now_iso(),
            duration_ms=whole_ms,
            duration_us=us,
            error="cancelled",
            notify=k.notify_channel(job_id),
            publish=self._publish,
            unique_prefix=k.unique_prefix,
            wf=delivery.workflow or "",
            wf_context=k.wf_context(self._ttl, self._publish, now_iso())
            if delivery.workflow
            else "",
        )
        return bool(await self._run(call))

    async def _cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        k = self.keys
        with redis_errors():
            if not await self.redis.exists(k.cancels):  # nobody cancels: all it costs
                return []
        call = scripts.cancel_check(
            cancels=k.cancels,
            job_prefix=k.job_prefix,
            result_prefix=k.result_prefix,
            job=[(i,) for i in job_ids],
        )
        return [x.decode() for x in await self._run(call)]
