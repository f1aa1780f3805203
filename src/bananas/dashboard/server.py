"""`serve`: run the dashboard with uvicorn (what `bananas dashboard` calls)."""

from __future__ import annotations

import asyncio
import ipaddress
import sys

import uvicorn

from ..brokers import from_url
from ..config import Settings
from ..errors import AppLoadError, BrokerError, ConfigError
from .app import create_app
from .config import DashboardConfig


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the dashboard on host:port until interrupted.

    Credentials and options come from BANANAS_DASHBOARD_* (see config.py);
    ConfigError when they are invalid. With BANANAS_APP set, the app's cron and
    periodic schedules are shown too."""
    config = DashboardConfig.load()
    _check_access(settings)
    schedules = _schedules(settings)
    app = create_app(
        settings,
        token=config.token,
        username=config.username,
        password=config.password,
        prefix=config.prefix,
        refresh_seconds=config.refresh_seconds,
        schedules=schedules,
    )
    auth = "token" if config.token else ""
    if config.username:
        auth = f"{auth} + user/password" if auth else "user/password"
    if not config.auth_required and not _loopback(host):
        print(
            f"bananas dashboard: warning: listening on {host} with no authentication; set "
            "BANANAS_DASHBOARD_TOKEN or BANANAS_DASHBOARD_USER/PASSWORD",
            file=sys.stderr,
        )
    shown = f"[{host}]" if ":" in host else host
    print(
        f"bananas dashboard on http://{shown}:{port}{config.prefix}/ "
        f"(broker {app.state.dashboard.renderer.broker_label}; "
        f"auth: {auth or 'none'})",
        flush=True,
    )
    # No access log: a `?token=` login would write the token to it.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _check_access(settings: Settings) -> None:
    """Refuse to start (ConfigError) when the broker's user lacks a permission
    the pages need (Redis ACL; brokers/redis/acl.py). A broker that cannot be
    reached now is left to the pages, which say so."""
    broker = from_url(settings.effective_broker_url, prefix=settings.prefix)
    check = getattr(broker, "check_access", None)

    async def probe() -> None:
        try:
            if check is not None:
                await check("dashboard")
        except BrokerError:
            pass
        finally:
            await broker.close()

    asyncio.run(probe())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _schedules(settings: Settings) -> dict[str, object]:
    if not settings.app:
        return {}
    from ..discovery import load_app

    try:
        app = load_app(settings.app)
    except AppLoadError as exc:
        raise ConfigError(f"BANANAS_APP={settings.app!r}: {exc}") from None
    return dict(getattr(app, "schedules", {}))
