"""The demo's jobs: a web shop's mix, with the id of each kept for the display."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..app import Bananas, JobSpec
from ..job import new_job_id

DELAYS_S = (1.5, 2.0, 2.5, 3.0, 3.5)


@dataclass
class Plan:
    specs: list[JobSpec] = field(default_factory=list)
    priority: dict[str, str] = field(default_factory=dict)  # job id -> priority
    name: dict[str, str] = field(default_factory=dict)  # job id -> job type
    delay: dict[str, float] = field(default_factory=dict)  # delayed job id -> seconds

    def add(self, client: Bananas, name: str, delay: float | None = None, **payload: Any) -> None:
        job_id = new_job_id()
        options: dict[str, Any] = {"_job_id": job_id}
        if delay is not None:
            options["_delay"] = delay
            self.delay[job_id] = delay
        spec = client.spec(name, **payload, **options)
        self.specs.append(spec)
        self.priority[job_id] = spec.priority
        self.name[job_id] = name

    @property
    def ids(self) -> list[str]:
        return list(self.priority)


def make_plan(client: Bananas, jobs: int) -> Plan:
    """The bulk (emails high, image resizes normal, reports low), a few
    delayed reminders, one flaky payment and one job that cannot succeed."""
    plan = Plan()
    for i in range(max(jobs - len(DELAYS_S) - 2, 3)):
        slot = i % 20
        if slot < 6:
            plan.add(client, "send_email", to=f"customer{i}@example.com", subject="Your order")
        elif slot < 15:
            plan.add(client, "resize_image", image_id=i, width=640)
        else:
            plan.add(client, "generate_report", report_id=i)
    for i, delay in enumerate(DELAYS_S):
        plan.add(client, "send_email", delay, to=f"late{i}@example.com", subject="Reminder")
    plan.add(client, "charge_card", order_id=1001, amount_cents=4_999)
    plan.add(client, "sync_legacy_crm", customer_id=42)
    return plan
