"""The page of one job: its record, result, dead letter and a timeline."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from ..brokers.base import Broker, DeadInfo, JobProgress, JobResult, Lease
from ..vocabulary import JobState, Status
from .records import load_fields, parse_time, pretty_json


@dataclass(slots=True)
class Event:
    at: float
    label: str
    detail: str = ""


@dataclass(slots=True)
class JobDetail:
    id: str
    state: str | None
    fields: dict[str, Any] | None
    raw_record: str | None
    payload: str | None
    result: JobResult | None
    result_value: str | None
    dead: DeadInfo | None
    timeline: list[Event]
    progress: JobProgress | None = None
    lease: Lease | None = None

    @property
    def found(self) -> bool:
        return self.state is not None or self.raw_record is not None or self.result is not None

    @property
    def name(self) -> str:
        return str((self.fields or {}).get("name") or (self.dead.name if self.dead else ""))

    @property
    def other_fields(self) -> list[tuple[str, str]]:
        """Record fields other than the payload, values as text."""
        out = []
        for key, value in (self.fields or {}).items():
            if key in ("payload", "traceback"):
                continue
            text = value if isinstance(value, str) else pretty_json(value)
            if key == "attempts" and self.state == JobState.RUNNING and isinstance(value, int):
                # Finished attempts; the worker logs the one running as attempt N + 1.
                text = f"{value} finished · attempt {value + 1} running"
            out.append((key, text))
        return out

    @property
    def traceback(self) -> str:
        if self.dead and self.dead.traceback:
            return self.dead.traceback
        value = (self.fields or {}).get("traceback")
        return value if isinstance(value, str) else ""

    def to_json(self) -> dict[str, Any]:
        result = None
        if self.result is not None:
            result = {
                "status": self.result.status,
                "completed_at": self.result.completed_at,
                "duration_ms": self.result.duration_ms,
                "result": self.result.value() if self.result_value is not None else None,
                "error": self.result.error,
            }
        return {
            "id": self.id,
            "state": self.state,
            "record": self.fields,
            "raw_record": self.raw_record if self.fields is None else None,
            "result": result,
            "dead": asdict(self.dead) if self.dead else None,
            "timeline": [asdict(e) for e in self.timeline],
            "progress": self.progress.to_dict() if self.progress else None,
            "lease": asdict(self.lease) if self.lease else None,
        }


async def job_detail(broker: Broker, job_id: str) -> JobDetail:
    raw, state, results, dead, progress, lease = await asyncio.gather(
        broker.get_record(job_id),
        broker.job_state(job_id),
        broker.get_results([job_id]),
        broker.get_dead_info(job_id),
        broker.get_progress(job_id),
        broker.job_lease(job_id),
    )
    result = results[0] if results else None
    fields = load_fields(raw)
    result_value = None
    if result is not None and result.result is not None:
        try:
            result_value = pretty_json(result.value())
        except orjson.JSONDecodeError:
            result_value = result.result.decode("utf-8", "replace")
    payload = fields.get("payload") if fields else None
    return JobDetail(
        id=job_id,
        state=state,
        fields=fields,
        raw_record=None if raw is None else raw.decode("utf-8", "replace"),
        payload=None if fields is None or "payload" not in fields else pretty_json(payload),
        result=result,
        result_value=result_value,
        dead=dead,
        timeline=_timeline(fields or {}, result, dead),
        progress=progress,
        lease=lease,
    )


def _timeline(
    fields: dict[str, Any], result: JobResult | None, dead: DeadInfo | None
) -> list[Event]:
    events: list[Event] = []

    def add(value: Any, label: str, detail: str = "") -> None:
        at = parse_time(value)
        if at is not None:
            events.append(Event(at, label, detail))

    add(fields.get("created_at"), "created")
    add(fields.get("scheduled_for"), "scheduled for", "due time (a delay or a retry back-off)")
    add(fields.get("updated_at"), "updated", f"status {fields.get('status') or '?'}")
    if result is not None:
        detail = f"{result.duration_ms:.0f} ms" + (f": {result.error}" if result.error else "")
        label = "completed" if result.status == Status.COMPLETED else "failed"
        add(result.completed_at, label, detail)
    if dead is not None:
        add(dead.failed_at, "dead-lettered", dead.reason)
    events.sort(key=lambda e: e.at)
    return events


__all__ = ["Event", "JobDetail", "job_detail"]
