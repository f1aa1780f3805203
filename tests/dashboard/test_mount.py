"""The dashboard mounted inside another ASGI app, and served under a prefix."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx
from dashtools import (
    ClosingBroker,
    ThreadServer,
    csrf_from,
    enqueue,
    finish,
    lease,
    run,
    settings_for,
    with_broker,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from bananas.brokers import from_url
from bananas.dashboard import create_app


def _links(html: str) -> list[str]:
    return re.findall(r'(?:href|action|src)="(/[^"]*)"', html)


def test_mounted_in_a_starlette_app(redis_url: str) -> None:
    [job_id] = enqueue(redis_url, [("mounted", {"x": 1})])

    async def home(_: Request) -> PlainTextResponse:
        return PlainTextResponse("the user's own app")

    dashboard = create_app(settings_for(redis_url), token="mounted-token", env={})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Mounted apps get no lifespan events: run the dashboard's (it closes its broker).
        async with dashboard.router.lifespan_context(dashboard):
            yield

    outer = Starlette(
        routes=[Route("/", home), Mount("/ops/bananas", app=dashboard)], lifespan=lifespan
    )
    with (
        ThreadServer(outer) as s,
        httpx.Client(base_url=s.url, headers={"accept": "text/html"}) as c,
    ):
        assert c.get("/").text == "the user's own app"
        assert c.get("/ops/bananas/").status_code == 401
        r = c.get("/ops/bananas/jobs", params={"token": "mounted-token"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ops/bananas/jobs"
        assert "Path=/ops/bananas/" in r.headers["set-cookie"]
        html = c.get("/ops/bananas/jobs").text
        links = _links(html)
        assert links and all(link.startswith("/ops/bananas/") for link in links), links
        assert f"/ops/bananas/jobs/{job_id}" in links
        assert c.get(f"/ops/bananas/jobs/{job_id}").status_code == 200
        assert c.get("/ops/bananas/static/dashboard.js").status_code == 200


def test_served_under_a_prefix_with_a_broker_handed_in(redis_url: str) -> None:
    [job_id] = enqueue(redis_url, [("prefixed", {})])

    async def bury(b):
        await finish(b, await lease(b, [("normal", "prefixed")], 1), fail=True)

    run(with_broker(redis_url, bury))
    broker = from_url(redis_url)
    app = create_app(broker, prefix="/queues", env={})
    with (
        ThreadServer(ClosingBroker(app, broker)) as s,
        httpx.Client(base_url=s.url, headers={"accept": "text/html"}) as c,
    ):
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/queues/"
        page = c.get("/queues/dead").text
        assert all(link.startswith("/queues/") for link in _links(page))
        r = c.post(
            "/queues/dead/replay",
            data={"csrf_token": csrf_from(page), "ids": job_id, "next": "/dead"},
            follow_redirects=False,
        )
        assert r.headers["location"].startswith("/queues/dead?done=replay&n=1")
        assert c.get(f"/queues/api/jobs/{job_id}").json()["state"] == "queued"
        assert c.get("/dead").status_code == 404
