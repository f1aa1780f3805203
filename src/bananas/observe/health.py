"""Health and metrics HTTP server: /livez, /readyz, /drainz, /metrics.

It runs uvicorn in its own thread with its own event loop, so /livez can
still answer (503, with the reason) while the worker's loop is blocked by a
misbehaving handler, instead of just timing out. Every endpoint reads one
status snapshot (`WorkerStatus`) through a callable; it never touches the
Worker.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .status import WorkerStatus


@dataclass(frozen=True, slots=True)
class HealthParams:
    status: Callable[[], WorkerStatus]  # called from the health thread
    metrics: Callable[[], bytes]  # the Prometheus exposition
    loop_stall: float  # LIVENESS_LOOP_STALL


def build_app(params: HealthParams) -> Starlette:
    def livez(_: Request) -> JSONResponse:
        problems = params.status().liveness_problems(time.monotonic(), params.loop_stall)
        return JSONResponse(
            {"status": "fail" if problems else "ok", "problems": problems},
            status_code=503 if problems else 200,
        )

    def readyz(_: Request) -> JSONResponse:
        problems = params.status().readiness_problems()
        return JSONResponse(
            {"status": "fail" if problems else "ok", "problems": problems},
            status_code=503 if problems else 200,
        )

    def drainz(_: Request) -> JSONResponse:
        return JSONResponse(params.status().drain_info())

    def metrics(_: Request) -> Response:
        return Response(params.metrics(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/drainz", drainz),
            Route("/metrics", metrics),
        ]
    )


class HealthServer:
    """start() binds at once (a port in use is reported, not fatal); stop() ends the thread."""

    def __init__(self, params: HealthParams, host: str, port: int) -> None:
        self.params = params
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str | None:
        """Start serving; returns an error text instead of raising when it cannot bind."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            return f"cannot bind {self.host}:{self.port}: {exc.strerror or exc}"
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.params),
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        server = self._server

        def serve() -> None:
            server.run(sockets=[sock])

        self._thread = threading.Thread(target=serve, name="bananas-health", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return None

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=3)

    def describe(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port}
