"""Route names: a route is a named pool of work (Celery's named queues, the
SDKs' `routing_key`), orthogonal to priority and job type. Jobs without one
are on `default`, whose ready lists keep the names they had before routes
(keys.lane), so a user who never names a route pays nothing.

This module imports nothing from the package but the vocabulary."""

from __future__ import annotations

import re

from .vocabulary import PRIORITY_NAMES

DEFAULT_ROUTE = "default"
MAX_ROUTE_LENGTH = 64
_ROUTE = re.compile(r"[A-Za-z0-9_-]{1,64}")
ALLOWED = "letters, digits, '_' and '-', at most 64 characters"


def check_route(value: object, where: str = "route") -> str:
    """The route name, or ValueError naming what was wrong and what is allowed.
    A priority's name is refused: a ready list's member starts with either."""
    if not isinstance(value, str) or not _ROUTE.fullmatch(value):
        raise ValueError(f"{where}: invalid route name {value!r} (allowed: {ALLOWED})")
    if value in PRIORITY_NAMES:
        raise ValueError(
            f"{where}: {value!r} is a priority, not a route name (allowed: {ALLOWED}, "
            "other than high, normal and low)"
        )
    return value


def check_routes(values: list[str] | tuple[str, ...], where: str) -> tuple[str, ...]:
    routes = tuple(check_route(v.strip(), where) for v in values)
    if not routes:
        raise ValueError(f"{where}: name at least one route ({ALLOWED})")
    if len(set(routes)) != len(routes):
        raise ValueError(f"{where}: a route is listed twice")
    return routes
