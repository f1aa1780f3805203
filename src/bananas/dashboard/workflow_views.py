"""The workflow pages (a workflow drawn as a graph, the running workflows)
and their JSON API: the graph page polls /api/workflows/{id} for its
nodes' states (static/workflow.js) until the workflow is final."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..brokers.base import Broker
from ..brokers.workflow_records import WORKFLOW_STATES, WorkflowView
from .api import ORJSONResponse
from .context import Dashboard
from .workflow_graph import COLLAPSE, MAX_NODES, Graph, edge_path, graph_of, short

LIST_LIMIT = 100
FAST_POLL_STEPS = 500  # up to this many steps the page polls every second, else every 5 s


async def workflow_page(request: Request, dash: Dashboard) -> Response:
    workflow_id = request.path_params["workflow_id"]
    view = await dash.broker.workflow(workflow_id)
    graph = graph_of(view) if view is not None else None
    return dash.renderer.page(
        request,
        "workflow.html",
        status_code=200 if view is not None else 404,
        nav="workflows",
        live=False,  # the graph polls its JSON (static/workflow.js); the page stays put
        workflow_id=workflow_id,
        w=view,
        g=graph,
        failed_name=_failed_name(view),
        poll_ms=_poll_ms(view) if dash.config.refresh_seconds else 0,
        edge_path=edge_path,
        short=short,
        collapse=COLLAPSE,
        max_nodes=MAX_NODES,
    )


async def workflows_page(request: Request, dash: Dashboard) -> Response:
    data = await running(dash.broker, LIST_LIMIT)
    return dash.renderer.page(
        request,
        "workflows.html",
        nav="workflows",
        live=True,
        counts=data["counts"],
        rows=data["running"],
        limit=LIST_LIMIT,
    )


async def api_workflow(request: Request, dash: Dashboard) -> Response:
    view = await dash.broker.workflow(request.path_params["workflow_id"])
    if view is None:
        return ORJSONResponse({"error": "no such workflow"}, status_code=404)
    data = live_state(view, graph_of(view))
    if request.query_params.get("steps") in ("1", "true"):
        data["steps"] = [s.to_dict() for s in view.steps]
    return ORJSONResponse(data)


async def api_workflows(request: Request, dash: Dashboard) -> Response:
    return ORJSONResponse(await running(dash.broker, LIST_LIMIT))


def live_state(view: WorkflowView, graph: Graph) -> dict[str, Any]:
    """The workflow's fields and each graph node's state, detail and error."""
    data = view.to_dict()
    del data["steps"]
    data["failed_name"] = _failed_name(view)
    data["nodes"] = graph.live()
    return data


async def running(broker: Broker, limit: int) -> dict[str, Any]:
    """The count of workflows per state and the running ones (oldest first)."""
    counts = await asyncio.gather(*(broker.count_workflows(s) for s in WORKFLOW_STATES))
    ids = await broker.list_workflows(limit)
    heads = await asyncio.gather(*(broker.workflow_head(i) for i in ids))
    rows = [
        {"id": h.id, "state": h.state, "policy": h.policy, "total": h.total, "done": h.done}
        for h in heads
        if h is not None
    ]
    return {"counts": dict(zip(WORKFLOW_STATES, counts, strict=True)), "running": rows}


def _failed_name(view: WorkflowView | None) -> str:
    if view is None or not view.failed_step:
        return ""
    return next((s.name for s in view.steps if s.id == view.failed_step), "")


def _poll_ms(view: WorkflowView | None) -> int:
    if view is None or view.state != "running":
        return 0
    return 1000 if view.total <= FAST_POLL_STEPS else 5000


__all__ = [
    "api_workflow",
    "api_workflows",
    "live_state",
    "running",
    "workflow_page",
    "workflows_page",
]
