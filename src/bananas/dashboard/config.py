"""Dashboard settings: credentials and mount prefix, from the environment or
from `create_app` arguments (arguments win), validated with one clear error.

Read only when `serve()` / `create_app()` is called, never at import time.

| variable | meaning |
|---|---|
| `BANANAS_DASHBOARD_TOKEN` | shared secret: Bearer header, `?token=` login, login form |
| `BANANAS_DASHBOARD_USER`, `..._PASSWORD` | HTTP Basic credentials (both or neither) |
| `BANANAS_DASHBOARD_PREFIX` | serve the pages under this path, e.g. `/bananas` (behind a proxy) |
| `BANANAS_DASHBOARD_REFRESH` | live-refresh period of the pages, e.g. `5s` (`0` turns it off) |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..durations import parse_duration
from ..errors import ConfigError

MIN_SECRET_LENGTH = 8
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    token: str | None = None
    username: str | None = None
    password: str | None = None
    prefix: str = ""
    refresh_seconds: float = 5.0

    @property
    def auth_required(self) -> bool:
        return self.token is not None or self.username is not None

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        prefix: str | None = None,
        refresh_seconds: float | None = None,
    ) -> DashboardConfig:
        """Settings from `env` (default: os.environ); explicit arguments win.
        Raises ConfigError naming the variable, the value's problem and what is allowed."""
        source = os.environ if env is None else env

        def pick(given: str | None, name: str) -> str | None:
            value = given if given is not None else source.get(name)
            return None if value is None or value.strip() == "" else value

        tok = pick(token, "BANANAS_DASHBOARD_TOKEN")
        user = pick(username, "BANANAS_DASHBOARD_USER")
        pwd = pick(password, "BANANAS_DASHBOARD_PASSWORD")
        if tok is not None:
            _check_secret("BANANAS_DASHBOARD_TOKEN", tok)
        if (user is None) != (pwd is None):
            missing = "BANANAS_DASHBOARD_PASSWORD" if pwd is None else "BANANAS_DASHBOARD_USER"
            raise ConfigError(
                "BANANAS_DASHBOARD_USER and BANANAS_DASHBOARD_PASSWORD go together: "
                f"{missing} is not set"
            )
        if user is not None:
            if ":" in user or not user.isprintable():
                raise ConfigError(
                    f"BANANAS_DASHBOARD_USER={user!r} is invalid (allowed: printable text "
                    "without ':')"
                )
            assert pwd is not None
            _check_secret("BANANAS_DASHBOARD_PASSWORD", pwd)
        return cls(
            token=tok,
            username=user,
            password=pwd,
            prefix=_prefix(pick(prefix, "BANANAS_DASHBOARD_PREFIX")),
            refresh_seconds=_refresh(refresh_seconds, source.get("BANANAS_DASHBOARD_REFRESH")),
        )


def _check_secret(name: str, value: str) -> None:
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{name} is too short ({len(value)} characters; allowed: at least "
            f"{MIN_SECRET_LENGTH} printable characters)"
        )
    if not value.isprintable() or value != value.strip():
        raise ConfigError(
            f"{name} is invalid: it contains spaces at its ends or unprintable characters "
            "(allowed: printable characters)"
        )


def _prefix(raw: str | None) -> str:
    if raw is None or raw.strip() in ("", "/"):
        return ""
    value = raw.strip().rstrip("/")
    if not _PREFIX.match(value):
        raise ConfigError(
            f"BANANAS_DASHBOARD_PREFIX={raw!r} is invalid (allowed: a path such as /bananas "
            "or /ops/queues)"
        )
    return value


def _refresh(given: float | None, raw: str | None) -> float:
    if given is not None:
        value = float(given)
    elif raw is None or raw.strip() == "":
        return 5.0
    else:
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(
                f"BANANAS_DASHBOARD_REFRESH={raw!r} is invalid: {exc} (allowed: 0 to turn "
                "live refresh off, or 1s to 1h)"
            ) from None
    if value != 0 and not 1 <= value <= 3600:
        raise ConfigError(
            f"BANANAS_DASHBOARD_REFRESH={raw if raw is not None else given!r} is invalid "
            "(allowed: 0 to turn live refresh off, or 1s to 1h)"
        )
    return value
