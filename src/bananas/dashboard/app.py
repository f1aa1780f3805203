"""`create_app`: the dashboard as an ASGI (Starlette) app, standalone or mounted."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ..brokers import Broker
from ..config import Settings
from ..errors import BrokerError, BrokerUnavailable
from . import api, views, workflow_views
from .config import DashboardConfig
from .context import DEFAULT_WORKER_EXPIRY, BadRequest, BrokerSource, Dashboard
from .render import Renderer
from .security import Guard, Secrets, route_path

Handler = Callable[[Request, Dashboard], Awaitable[Response]]
STATIC = Path(__file__).parent / "static"


def create_app(
    source: Broker | Settings | None = None,
    *,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
    prefix: str | None = None,
    refresh_seconds: float | None = None,
    worker_expiry: float | None = None,
    env: Mapping[str, str] | None = None,
    schedules: Mapping[str, Any] | None = None,
) -> Starlette:
    """The dashboard as a Starlette app.

    `source` is a Broker (used as is; you close it), or Settings (a broker is made
    from them), or None (Settings from the environment). Credentials and the
    prefix come from the arguments, else from BANANAS_DASHBOARD_* in `env`
    (default os.environ); raises ConfigError when they are invalid.

    Mount it under a path of your own app, e.g. `Mount("/bananas", app=create_app())`
    in Starlette or `app.mount("/bananas", create_app())` in FastAPI; `prefix` is
    for serving it standalone under a path (behind a reverse proxy).
    """
    config = DashboardConfig.load(
        env,
        token=token,
        username=username,
        password=password,
        prefix=prefix,
        refresh_seconds=refresh_seconds,
    )
    if isinstance(source, Broker):
        brokers = BrokerSource(source, None)
        settings = None
    else:
        settings = source if isinstance(source, Settings) else Settings.load(env)
        brokers = BrokerSource(None, settings)
    expiry = worker_expiry
    if expiry is None:
        expiry = settings.registry_expiry if settings is not None else DEFAULT_WORKER_EXPIRY
    keys = Secrets(config)
    dash = Dashboard(
        source=brokers,
        config=config,
        renderer=Renderer(config, brokers.describe()),
        keys=keys,
        worker_expiry=expiry,
        schedules=dict(schedules or {}),
    )

    async def login(scope: Scope, status: int, why: str) -> Response:
        return await views.login_page(scope, dash, status, why)

    routes: list[BaseRoute] = _routes(dash)
    if config.prefix:

        async def to_prefix(_: Request) -> Response:
            return RedirectResponse(config.prefix + "/", 307)

        routes = [Mount(config.prefix, routes=routes), Route("/", to_prefix)]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await brokers.close()

    app = Starlette(
        routes=routes,
        exception_handlers={
            BadRequest: _error_handler(dash, 400),
            BrokerUnavailable: _error_handler(dash, 503),
            BrokerError: _error_handler(dash, 502),
            HTTPException: _http_error(dash),
        },
        lifespan=lifespan,
    )
    app.state.dashboard = dash
    app.add_middleware(Guard, config=config, keys=keys, login=login)
    return app


def _routes(dash: Dashboard) -> list[BaseRoute]:
    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(request, dash)

        endpoint.__name__ = f"{handler.__module__.rsplit('.', 1)[-1]}_{handler.__name__}"
        return endpoint

    verbs = "{verb:str}"
    return [
        Route("/", bind(views.overview), methods=["GET"]),
        Route("/workers", bind(views.workers), methods=["GET"]),
        Route("/jobs", bind(views.jobs), methods=["GET"]),
        Route("/jobs/{job_id:path}", bind(views.job), methods=["GET"]),
        Route("/dead", bind(views.dead), methods=["GET"]),
        Route(f"/dead/{verbs}", bind(_only_verbs(views.dead_action)), methods=["POST"]),
        Route("/cancel", bind(views.cancel_action), methods=["POST"]),
        Route("/schedules", bind(views.schedules), methods=["GET"]),
        Route("/workflows", bind(workflow_views.workflows_page), methods=["GET"]),
        Route("/workflows/{workflow_id:path}", bind(workflow_views.workflow_page), methods=["GET"]),
        Route("/login", bind(views.login_form), methods=["GET"]),
        Route("/login", bind(views.login_submit), methods=["POST"]),
        Route("/logout", bind(views.logout), methods=["POST"]),
        Route("/api/overview", bind(api.overview), methods=["GET"]),
        Route("/api/workers", bind(api.workers), methods=["GET"]),
        Route("/api/jobs", bind(api.jobs), methods=["GET"]),
        Route("/api/jobs/{job_id:path}", bind(api.job), methods=["GET"]),
        Route("/api/dead", bind(api.dead), methods=["GET"]),
        Route(f"/api/dead/{verbs}", bind(_only_verbs(api.dead_action)), methods=["POST"]),
        Route("/api/cancel", bind(api.cancel_action), methods=["POST"]),
        Route("/api/workflows", bind(workflow_views.api_workflows), methods=["GET"]),
        Route(
            "/api/workflows/{workflow_id:path}",
            bind(workflow_views.api_workflow),
            methods=["GET"],
        ),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def _only_verbs(handler: Handler) -> Handler:
    async def checked(request: Request, dash: Dashboard) -> Response:
        if request.path_params["verb"] not in ("replay", "delete"):
            raise HTTPException(404, "unknown action (allowed: replay, delete)")
        return await handler(request, dash)

    checked.__name__ = handler.__name__
    checked.__module__ = handler.__module__
    return checked


def _wants_json(request: Request) -> bool:
    return route_path(request.scope).startswith("/api/")


def _error_handler(
    dash: Dashboard, status: int
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        message = str(exc)
        if isinstance(exc, BrokerError):
            message = f"{exc} (broker {dash.renderer.broker_label})"
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        return dash.renderer.page(
            request,
            "error.html",
            status_code=status,
            nav="",
            live=False,
            status=status,
            message=message,
        )

    return handle


def _http_error(dash: Dashboard) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if _wants_json(request):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 405:
            return PlainTextResponse(exc.detail, status_code=405)
        return dash.renderer.page(
            request,
            "error.html",
            status_code=exc.status_code,
            nav="",
            live=False,
            status=exc.status_code,
            message=exc.detail,
        )

    return handle
