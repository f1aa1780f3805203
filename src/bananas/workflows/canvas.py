"""chain, group, chord (docs/workflows.md): what a workflow is made of,
before it is enqueued. Each is a tree of JobSpecs; `enqueue` flattens it
into a WorkflowPlan (plan.py) and writes it in one broker call."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import BananasError
from ..specs import JobSpec

if TYPE_CHECKING:
    from ..app import Bananas
    from .handle import WorkflowHandle

Node = "JobSpec | Chain | Group | Chord"


class Canvas:
    """What chain, group and chord share: the enqueue."""

    def specs(self) -> list[JobSpec]:
        raise NotImplementedError

    def enqueue(self, *, on_failure: str = "fail", app: Bananas | None = None) -> WorkflowHandle:
        """Write the workflow (sync) and return its handle. `on_failure`:
        "fail" (default: the first step ending dead-lettered or cancelled
        fails the workflow, the rest is cancelled) or "continue"."""
        from .plan import enqueue_sync

        return enqueue_sync(self, on_failure, app)

    async def enqueue_async(
        self, *, on_failure: str = "fail", app: Bananas | None = None
    ) -> WorkflowHandle:
        from .plan import enqueue_async

        return await enqueue_async(self, on_failure, app)


def _node(value: Any, where: str) -> Any:
    if isinstance(value, JobSpec | Canvas):
        return value
    raise BananasError(
        f"{where}: got {type(value).__name__}; allowed: a job spec (fn.spec(...)), "
        "a chain, a group or a chord"
    )


class Chain(Canvas):
    """Steps one after another; each later step gets the previous one's
    result as the keyword argument `previous` (unless it is immutable)."""

    def __init__(self, *steps: Any) -> None:
        if not steps:
            raise BananasError("chain() needs at least one step")
        self.steps = [_node(s, "chain()") for s in steps]

    def specs(self) -> list[JobSpec]:
        return [s for n in self.steps for s in _specs(n)]


class Group(Canvas):
    """Steps in parallel; the result is the list of their results, in order."""

    def __init__(self, members: Iterable[Any]) -> None:
        self.members = [_node(m, "group()") for m in members]
        if not self.members:
            raise BananasError("group() needs at least one member")

    def specs(self) -> list[JobSpec]:
        return [s for n in self.members for s in _specs(n)]


class Chord(Canvas):
    """A group, then a callback that runs once, after every member is
    final, with the list of their results as the keyword argument `results`."""

    def __init__(self, header: Any, callback: Any) -> None:
        self.header = header if isinstance(header, Group) else Group(header)
        self.callback = _node(callback, "chord() callback")

    def specs(self) -> list[JobSpec]:
        return [*self.header.specs(), *_specs(self.callback)]


def _specs(node: Any) -> list[JobSpec]:
    return [node] if isinstance(node, JobSpec) else node.specs()


def chain(*steps: Any) -> Chain:
    return Chain(*steps)


def group(members: Iterable[Any]) -> Group:
    return Group(members)


def chord(header: Any, callback: Any) -> Chord:
    return Chord(header, callback)


__all__ = ["Canvas", "Chain", "Chord", "Group", "chain", "chord", "group"]
