"""The web dashboard: queues, jobs, workers and dead letters, through the
Broker protocol only. `serve()` runs it (`bananas dashboard`); `create_app()`
returns the ASGI app, to mount inside your own. See docs/dashboard.md."""

from __future__ import annotations

from .app import create_app
from .config import DashboardConfig
from .server import serve

__all__ = ["DashboardConfig", "create_app", "serve"]
