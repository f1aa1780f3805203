"""The Redis broker, a package: connection (client options, error wrapping),
scripts (the Lua transitions and their typed wrappers), batch (one pipeline
per event-loop turn), sync (client calls from plain code), broker (the
worker path) and inspect (inspection, dead letters, the registry)."""

from __future__ import annotations

from .broker import RedisBroker

__all__ = ["RedisBroker"]
