"""The JSON API behind the pages (same data, same auth; POSTs need the CSRF
header unless authenticated with `Authorization: Bearer`)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import fleet, job_detail, queries
from .context import BadRequest, Dashboard, act_on_dead, list_query, page_query


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


async def overview(request: Request, dash: Dashboard) -> Response:
    data = await queries.overview(dash.broker, dash.worker_expiry)
    return ORJSONResponse(data.to_json())


async def workers(request: Request, dash: Dashboard) -> Response:
    return ORJSONResponse((await fleet.fleet(dash.broker, dash.worker_expiry)).to_json())


async def jobs(request: Request, dash: Dashboard) -> Response:
    q = list_query(request)
    data = await queries.job_list(dash.broker, q.state, q.offset, q.limit, q.job_type)
    return ORJSONResponse(data.to_json())


async def job(request: Request, dash: Dashboard) -> Response:
    detail = await job_detail.job_detail(dash.broker, request.path_params["job_id"])
    if not detail.found:
        return ORJSONResponse({"error": "no such job"}, status_code=404)
    return ORJSONResponse(detail.to_json())


async def dead(request: Request, dash: Dashboard) -> Response:
    offset, limit = page_query(request)
    return ORJSONResponse((await queries.dead_list(dash.broker, offset, limit)).to_json())


async def cancel_action(request: Request, dash: Dashboard) -> Response:
    """Body: {"ids": ["..."]} (JSON). Answers {"outcomes": {id: outcome}}."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise BadRequest('the body must be {"ids": [job ids (strings)]}')
    outcomes = {job_id: (await dash.broker.cancel(job_id)).value for job_id in ids}
    return ORJSONResponse({"outcomes": outcomes})


async def dead_action(request: Request, dash: Dashboard) -> Response:
    """Body: {"ids": ["..."]} or {"all": true} (JSON or a urlencoded form)."""
    verb = request.path_params["verb"]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest('the body must be a JSON object: {"ids": [...]} or {"all": true}')
        ids_raw = body.get("ids") or []
        everything = body.get("all") is True
    else:
        form = await request.form()
        ids_raw = [str(v) for v in form.getlist("ids")]
        everything = form.get("all") in ("1", "true")
    if not isinstance(ids_raw, list) or not all(isinstance(i, str) for i in ids_raw):
        raise BadRequest('"ids" must be a list of job ids (strings)')
    if everything and ids_raw:
        raise BadRequest('give either "ids" or "all", not both')
    ids = await queries.all_dead_ids(dash.broker) if everything else list(ids_raw)
    if not ids and not everything:
        raise BadRequest('give "ids" (a list of job ids) or "all": true')
    result = await act_on_dead(dash.broker, verb, ids)
    return ORJSONResponse(result.to_json())
