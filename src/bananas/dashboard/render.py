"""Jinja2 environment (autoescaped), template filters and the per-request context."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..vocabulary import PRIORITIES
from .config import DashboardConfig
from .security import CSRF_FIELD, csrf_token, root_path, route_path


def ago(seconds_unix: float | None, now: float | None = None) -> str:
    """'12s ago' for the past, 'in 5m' for the future."""
    if seconds_unix is None:
        return "—"
    delta = (now if now is not None else time.time()) - seconds_unix
    text = duration(abs(delta))
    if abs(delta) < 1:
        return "now"
    return f"{text} ago" if delta > 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{hours // 24}d {hours % 24}h"


def iso(seconds_unix: float | None) -> str:
    if seconds_unix is None:
        return ""
    return (
        datetime.fromtimestamp(seconds_unix, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def make_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bananas.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, duration=duration, iso=iso, percent=percent, number=number)
    env.globals["priorities"] = PRIORITIES  # columns in the order workers take them
    return env


class Renderer:
    def __init__(self, config: DashboardConfig, broker_label: str) -> None:
        self.env = make_environment()
        self.config = config
        self.broker_label = broker_label

    def context(self, scope: Any) -> dict[str, Any]:
        root = root_path(scope)

        def url(path: str, **query: Any) -> str:
            params = {k: v for k, v in query.items() if v not in (None, "")}
            return root + path + (f"?{urlencode(params)}" if params else "")

        def job_url(job_id: str) -> str:
            return f"{root}/jobs/{quote(job_id, safe='')}"

        return {
            "url": url,
            "job_url": job_url,
            "static": lambda name: f"{root}/static/{name}",
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(scope),
            "here": route_path(scope),
            "auth": scope.get("bananas.auth"),
            "auth_required": self.config.auth_required,
            "refresh": self.config.refresh_seconds,
            "broker": self.broker_label,
            "now": time.time(),
        }

    def page(
        self, request: Request, template: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        return self.render_scope(request.scope, template, status_code, **values)

    def render_scope(
        self, scope: Any, template: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        context = self.context(scope)
        context.update(values)
        html = self.env.get_template(template).render(context)
        return HTMLResponse(html, status_code=status_code)
