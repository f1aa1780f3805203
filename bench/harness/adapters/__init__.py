"""Library adapters, in the order results are listed."""

from __future__ import annotations

from .arq import ArqAdapter
from .bananas import BananasAdapter
from .base import Adapter, WorkerSpec
from .celery import CeleryAdapter
from .dramatiq import DramatiqAdapter
from .huey import HueyAdapter
from .rq import RqAdapter
from .saq import SaqAdapter
from .taskiq import TaskiqAdapter

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        BananasAdapter(),
        CeleryAdapter(),
        DramatiqAdapter(),
        HueyAdapter(),
        RqAdapter(),
        ArqAdapter(),
        SaqAdapter(),
        TaskiqAdapter(),
    )
}

__all__ = ["ADAPTERS", "Adapter", "WorkerSpec"]
