"""Helpers for the dashboard tests: a real uvicorn server in a thread, Chromium
through Playwright, and broker set-up done through the Broker protocol."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from support import free_port, wait_for

from bananas import Bananas
from bananas.brokers import Broker, from_url
from bananas.brokers.base import DeadInfo
from bananas.config import Settings
from bananas.dashboard import create_app

BACKENDS = ("redis", "sqlite")
both_brokers = pytest.mark.parametrize("broker_url", BACKENDS, indirect=True)
"""Run a test against every broker (the `broker_url` fixture of conftest.py)."""
TRACEBACK = 'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: boom'
CHROMIUM = os.environ.get("BANANAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def settings_for(url: str) -> Settings:
    return Settings.load({"BANANAS_BROKER_URL": url})


class ThreadServer:
    """A real uvicorn serving `app` on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_for(lambda: self.server.started, 10, message="uvicorn to start")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ClosingBroker:
    """Wraps an ASGI app: closes a broker handed to it when the server shuts down
    (on the server's own event loop, where the broker's connections live)."""

    def __init__(self, app: Any, broker: Broker) -> None:
        self.app, self.broker = app, broker

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watch() -> Any:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.broker.close()
            return message

        await self.app(scope, watch, send)


@contextmanager
def serve_app(redis_url: str, **options: Any) -> Iterator[ThreadServer]:
    options.setdefault("env", {})
    app = create_app(settings_for(redis_url), **options)
    with ThreadServer(app) as server:
        yield server


class CliDashboard:
    """`bananas dashboard` as a subprocess (what an operator runs)."""

    def __init__(self, redis_url: str, log: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("BANANAS_", "WORKER_"))
        }
        full_env.update({"REDIS_URL": redis_url, **env})
        self._log = open(log, "wb")  # noqa: SIM115
        self.log_path = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bananas.cli", "dashboard", "--port", str(self.port), *args],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError("dashboard exited:\n" + log.read_text())
            try:
                return httpx.get(f"{self.url}/static/dashboard.css", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 20, interval=0.05, message="bananas dashboard to answer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call fn in a fresh thread: Playwright's sync API keeps an event loop
    running in the main thread, where asyncio.run() is refused."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def run(coro: Any) -> Any:
    return in_thread(asyncio.run, coro)


async def with_broker(redis_url: str, action: Any) -> Any:
    broker = from_url(redis_url)
    try:
        return await action(broker)
    finally:
        await broker.close()


def enqueue(
    redis_url: str, specs: Sequence[tuple[str, dict[str, Any]]], **options: Any
) -> list[str]:
    return in_thread(_enqueue, redis_url, specs, **options)  # type: ignore[no-any-return]


def _enqueue(
    redis_url: str, specs: Sequence[tuple[str, dict[str, Any]]], **options: Any
) -> list[str]:
    app = Bananas(redis_url)
    try:
        return [h.id for h in app.enqueue_many([app.spec(n, p, **options) for n, p in specs])]
    finally:
        app.close()


async def lease(
    broker: Broker, queues: Sequence[tuple[str, str]], count: int, lease_seconds: float = 300
) -> list[Any]:
    out: list[Any] = []
    while len(out) < count:
        got = await broker.dequeue(
            queues, min(500, count - len(out)), lease_seconds, f"test{time.monotonic_ns()}:"
        )
        if not got:
            break
        out += got
    return out


async def finish(broker: Broker, deliveries: Sequence[Any], *, fail: bool) -> None:
    """Complete (or dead-letter) leased jobs through the protocol, many at a time."""

    async def one(d: Any) -> None:
        if fail:
            await broker.bury(
                d,
                d.raw,
                DeadInfo(
                    reason="failed",
                    error="RuntimeError: boom",
                    traceback=TRACEBACK,
                    source="test",
                ),
                1.0,
            )
        else:
            await broker.complete(d, d.raw, b'{"ok":true}', 1.0)

    for start in range(0, len(deliveries), 50):
        await asyncio.gather(*(one(d) for d in deliveries[start : start + 50]))


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def timed_get(client: httpx.Client, url: str, **kw: Any) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = client.get(url, **kw)
    return (time.perf_counter() - start) * 1000, response
