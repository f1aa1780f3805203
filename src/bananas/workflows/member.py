"""The worker's side of a workflow step (docs/workflows.md): mark the
delivery a member (it then settles through the member transitions) and
add what the step receives from its dependencies to its payload."""

from __future__ import annotations

from typing import Any

from ..brokers.base import Broker, Delivery
from ..brokers.workflow_records import INPUT_FIELD, member_of
from ..definitions import JobDefinition
from ..job import JobRecord


async def member_payload(
    broker: Broker, delivery: Delivery, record: JobRecord, definition: JobDefinition
) -> dict[str, Any]:
    """The payload the handler is called with. A step's inputs are given
    only to a handler that takes them: a `previous` / `results` parameter
    (or **kwargs); another step after a step just runs on its payload."""
    workflow_id = member_of(record.fields)
    if not workflow_id:
        return record.payload
    delivery.workflow = workflow_id
    keyword = record.fields.get(INPUT_FIELD)
    names, _, open_ended = definition.shape
    if not keyword or not (open_ended or keyword in names):
        return record.payload
    found = await broker.workflow_inputs(workflow_id, delivery.id)
    if found is None:
        return record.payload
    keyword, value = found
    return {**record.payload, keyword: value}


__all__ = ["member_payload"]
