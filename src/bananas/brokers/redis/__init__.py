"""The Redis broker, a package: connection (client options, error wrapping),
script_loader (the Lua transitions), scripts and upkeep_scripts (their typed
wrappers), batch (one pipeline per event-loop turn), sync (client calls from
plain code), redis_broker (the worker path), redis_upkeep (routing, due jobs,
recovery) and redis_inspect (inspection, dead letters, the registry).

The redis_* modules carry the backend in their names because logs and stuck-step
reports name a frame by its file's basename alone (worker.shutdown_stuck)."""

from __future__ import annotations

from .redis_broker import RedisBroker

__all__ = ["RedisBroker"]
