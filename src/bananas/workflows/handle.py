"""WorkflowHandle: what a workflow's enqueue returns (docs/workflows.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..brokers.base import Broker
from ..brokers.workflow_records import WorkflowState, WorkflowView
from ..errors import BananasError, JobFailed
from ..handle import JobHandle

if TYPE_CHECKING:
    from ..app import Bananas


class WorkflowFailed(JobFailed):
    """Raised by WorkflowHandle.result()/wait() when the workflow ended
    failed or cancelled: `state` (failed / cancelled), `step` the id of the
    step that failed it ("" for a cancel), `error` why."""

    def __init__(self, workflow_id: str, state: str, step: str, error: str) -> None:
        what = f"step {step} " if step else ""
        super().__init__(workflow_id, f"{state}: {what}{error}".strip(), reason=error or state)
        self.args = (f"workflow {workflow_id} {state}: {what}{error}".strip(),)
        self.workflow_id = workflow_id
        self.state = state
        self.step = step


class WorkflowHandle:
    def __init__(self, app: Bananas, workflow_id: str, steps: list[str] | None = None) -> None:
        self.app = app
        self.id = workflow_id
        # The step ids in plan order (one per spec, depth first); empty for
        # a handle made from an id alone (`app.workflow(id)`).
        self.step_ids = steps or []

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.id!r}, steps={len(self.step_ids)})"

    @property
    def steps(self) -> list[JobHandle]:
        """A JobHandle per step, in plan order."""
        return [JobHandle(self.app, step, workflow_id=self.id) for step in self.step_ids]

    def result(self, timeout: float = 30.0) -> Any:
        """Block until the workflow is final; return its result (a chain's
        last step's, a group's list, a chord's callback's) or raise
        WorkflowFailed. TimeoutError if not final within `timeout` seconds."""
        from .plan import run_sync

        return run_sync(self.app, lambda broker: self._wait(broker, timeout))

    async def wait(self, timeout: float = 30.0) -> Any:
        return await self._wait(self._broker(), timeout)

    def status(self) -> WorkflowView | None:
        """Every step's state (the views' WorkflowView); None once expired."""
        from .plan import run_sync

        return run_sync(self.app, lambda broker: broker.workflow(self.id))

    async def status_async(self) -> WorkflowView | None:
        return await self._broker().workflow(self.id)

    def cancel(self) -> str | None:
        """Cancel what has not finished (waiting and queued steps never run,
        running ones are stopped). Returns the workflow's state after:
        "cancelled", or the final state it had already reached."""
        from .plan import run_sync

        return run_sync(self.app, lambda broker: broker.cancel_workflow(self.id))

    async def cancel_async(self) -> str | None:
        return await self._broker().cancel_workflow(self.id)

    def _broker(self) -> Broker:
        broker = self.app.async_broker()
        if not isinstance(broker, Broker):
            raise BananasError("workflows need a real broker (the test mode's has none)")
        return broker

    async def _wait(self, broker: Broker, timeout: float) -> Any:
        found = await broker.wait_result(self.id, timeout)
        if found is None:
            raise TimeoutError(f"workflow {self.id} did not finish within {timeout}s")
        head = await broker.workflow_head(self.id)
        if head is None:
            raise WorkflowFailed(self.id, "expired", "", "its keys expired (RESULT_TTL)")
        if head.state == WorkflowState.COMPLETED:
            return await broker.workflow_output(head)
        raise WorkflowFailed(self.id, head.state, head.failed_step or "", head.error or "")


__all__ = ["WorkflowFailed", "WorkflowHandle"]
