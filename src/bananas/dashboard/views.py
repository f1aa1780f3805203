"""The HTML pages and form actions."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from ..brokers.base import CancelOutcome
from ..vocabulary import JobState
from . import charts, fleet, job_detail, queries
from .context import ActionResult, BadRequest, Dashboard, act_on_dead, list_query, page_query
from .records import pretty_json
from .security import (
    SESSION_COOKIE,
    clear_cookie,
    root_path,
    route_path,
    safe_next,
    session_cookie,
)

STATE_TITLES = {state.value: state.value.capitalize() for state in JobState}
FINAL_STATES = (JobState.COMPLETED, JobState.DEAD, "cancelled", None)


async def overview(request: Request, dash: Dashboard) -> Response:
    data = await queries.overview(dash.broker, dash.worker_expiry)
    return dash.renderer.page(
        request,
        "overview.html",
        nav="overview",
        live=True,
        o=data,
        throughput=charts.throughput_chart(data.throughput),
        failures=charts.failure_rate_chart(data.throughput),
    )


async def workers(request: Request, dash: Dashboard) -> Response:
    data = await fleet.fleet(dash.broker, dash.worker_expiry)
    return dash.renderer.page(request, "workers.html", nav="workers", live=True, f=data)


async def jobs(request: Request, dash: Dashboard) -> Response:
    q = list_query(request)
    if q.search:
        state = await dash.broker.job_state(q.search)
        if state is not None or await dash.broker.get_record(q.search) is not None:
            return RedirectResponse(
                dash.renderer.context(request.scope)["job_url"](q.search), status_code=303
            )
    data = await queries.job_list(dash.broker, q.state, q.offset, q.limit, q.job_type)
    totals = await asyncio.gather(*(dash.broker.count_jobs(s) for s in STATE_TITLES))
    counts = dict(zip(STATE_TITLES, totals, strict=True))
    return dash.renderer.page(
        request,
        "jobs.html",
        nav="jobs",
        live=q.offset == 0,
        page=data,
        counts=counts,
        titles=STATE_TITLES,
        search=q.search,
        not_found=q.search,
    )


async def job(request: Request, dash: Dashboard) -> Response:
    job_id = request.path_params["job_id"]
    detail = await job_detail.job_detail(dash.broker, job_id)
    return dash.renderer.page(
        request,
        "job.html",
        status_code=200 if detail.found else 404,
        nav="jobs",
        live=detail.found and detail.state not in FINAL_STATES,
        j=detail,
        flash=_flash(request),
        cancel_flash=_cancel_flash(request),
    )


async def dead(request: Request, dash: Dashboard) -> Response:
    offset, limit = page_query(request)
    data = await queries.dead_list(dash.broker, offset, limit)
    return dash.renderer.page(
        request, "dead.html", nav="dead", live=False, d=data, flash=_flash(request)
    )


async def dead_action(request: Request, dash: Dashboard) -> Response:
    verb = request.path_params["verb"]
    form = await request.form()
    ids = [str(v) for v in form.getlist("ids") if str(v)]
    if form.get("all") == "1":
        ids = await queries.all_dead_ids(dash.broker)
    result = await act_on_dead(dash.broker, verb, ids)
    target = safe_next(request.scope, str(form.get("next") or "/dead"), "/dead")
    return RedirectResponse(_with_result(target, result), status_code=303)


async def cancel_action(request: Request, dash: Dashboard) -> Response:
    """Cancel one job (its page's button); back to `next` saying what it did."""
    form = await request.form()
    job_id = str(form.get("id") or "")
    if not job_id:
        raise BadRequest('give "id", the job to cancel')
    outcome = await dash.broker.cancel(job_id)
    target = safe_next(request.scope, str(form.get("next") or f"/jobs/{job_id}"), "/jobs")
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "cancel"]
    return RedirectResponse(
        f"{parts.path}?{urlencode([*query, ('cancel', outcome.value)])}", status_code=303
    )


def _cancel_flash(request: Request) -> str | None:
    """What the last cancel did, from the redirect's query (an outcome name only)."""
    raw = request.query_params.get("cancel")
    try:
        return CancelOutcome(raw).describe().capitalize() if raw else None
    except ValueError:
        return None


def _with_result(target: str, result: ActionResult) -> str:
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("done", "n", "missed", "bad")]
    query += [
        ("done", result.verb),
        ("n", str(result.done)),
        ("missed", str(len(result.missing))),
        ("bad", str(len(result.invalid))),
    ]
    return f"{parts.path}?{urlencode(query)}"


def _flash(request: Request) -> dict[str, int | str] | None:
    """The outcome of the last action, from the redirect's query (numbers only)."""
    verb = request.query_params.get("done")
    if verb not in ("replay", "delete"):
        return None
    out: dict[str, int | str] = {"verb": "replayed" if verb == "replay" else "deleted"}
    for key in ("n", "missed", "bad"):
        raw = request.query_params.get(key, "0")
        out[key] = int(raw) if raw.isdigit() else 0
    return out


async def schedules(request: Request, dash: Dashboard) -> Response:
    now = time.time()
    rows = []
    for name, schedule in sorted(dash.schedules.items()):
        try:
            upcoming: float | None = float(schedule.next_firing(now))
        except Exception:  # a schedule object of another shape: shown without a time
            upcoming = None
        rows.append(
            {
                "name": name,
                "describe": str(getattr(schedule, "describe", "")),
                "next": upcoming,
                "payload": pretty_json(getattr(schedule, "payload", {})),
            }
        )
    return dash.renderer.page(request, "schedules.html", nav="schedules", live=False, rows=rows)


async def login_form(request: Request, dash: Dashboard) -> Response:
    if request.scope.get("bananas.auth") is not None:  # logged in, or no login needed
        return RedirectResponse(safe_next(request.scope, request.query_params.get("next")), 303)
    return dash.renderer.page(
        request,
        "login.html",
        nav="",
        live=False,
        error=None,
        next=request.query_params.get("next") or "/",
        config=dash.config,
    )


async def login_submit(request: Request, dash: Dashboard) -> Response:
    form = await request.form()
    token = str(form.get("token") or "")
    user = str(form.get("username") or "")
    password = str(form.get("password") or "")
    next_path = str(form.get("next") or "/")
    ok = dash.keys.check_token(token) or (bool(user) and dash.keys.check_user(user, password))
    if not ok:
        return dash.renderer.page(
            request,
            "login.html",
            status_code=401,
            nav="",
            live=False,
            error="Those credentials are not valid.",
            next=next_path,
            config=dash.config,
        )
    response = RedirectResponse(safe_next(request.scope, next_path), status_code=303)
    response.raw_headers.append(session_cookie(dash.keys, request.scope))
    return response


async def logout(request: Request, dash: Dashboard) -> Response:
    response = RedirectResponse(safe_next(request.scope, "/login"), status_code=303)
    response.raw_headers.append(clear_cookie(SESSION_COOKIE, root_path(request.scope) + "/"))
    return response


async def login_page(scope: Scope, dash: Dashboard, status: int, why: str) -> Response:
    """The page the guard answers an unauthenticated browser with."""
    query = "&".join(
        p
        for p in scope.get("query_string", b"").decode("latin-1").split("&")
        if p and not p.startswith("token=")
    )
    return dash.renderer.render_scope(
        scope,
        "login.html",
        status,
        nav="",
        live=False,
        error=None if why == "authentication required" else why,
        next=route_path(scope) + (f"?{query}" if query else ""),
        config=dash.config,
    )
