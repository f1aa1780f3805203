"""The worker's side of a workflow step (docs/workflows.md): mark the
delivery a member (it then settles through the member transitions) and
add what the step receives from its dependencies to its payload."""

from __future__ import annotations

from typing import Any

from ..brokers.base import Broker, Delivery
from ..brokers.workflow_records import INPUT_FIELD, member_of
from ..job import JobRecord


async def member_payload(broker: Broker, delivery: Delivery, record: JobRecord) -> dict[str, Any]:
    workflow_id = member_of(record.fields)
    if not workflow_id:
        return record.payload
    delivery.workflow = workflow_id
    if not record.fields.get(INPUT_FIELD):
        return record.payload
    found = await broker.workflow_inputs(workflow_id, delivery.id)
    if found is None:
        return record.payload
    keyword, value = found
    return {**record.payload, keyword: value}


__all__ = ["member_payload"]
