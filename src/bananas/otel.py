"""OpenTelemetry tracing through the queue, built on the lifecycle hooks
(`pip install 'bananas[otel]'`; docs/tracing.md).

`instrument(app)` adds a `TracingHook`: every enqueue makes a producer span
`send <job type>` and stores its context in the job record's `headers`
(`traceparent`, `tracestate`, through the globally configured propagator);
every attempt a worker runs makes a consumer span `process <job type>`,
linked to the send span (or its child, with `parent=True`), current while the
handler runs, so the handler's own spans nest under it. Attributes follow
OpenTelemetry's messaging conventions; `error.type` names a failure.

Process-executor jobs run in a pool child: the child enters the process
span's context around the handler and flushes the global tracer provider when
the handler returns (the pool's processes are killed at the worker's stop,
before any exit hook could export). The worker flushes its tracer provider at
its stop too (it leaves through `os._exit`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import Token
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import BananasError
from .hooks import DEAD, INTERRUPTED, RETRYING, ChildScope, Hook, Outcome, OutgoingJob, RunningJob

if TYPE_CHECKING:
    from .app import Bananas
    from .observe.status import WorkerIdentity

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover - the extra is in the test extra
    raise ImportError("bananas.otel needs OpenTelemetry: pip install 'bananas[otel]'") from exc

SYSTEM = "bananas"
ATTEMPT = "messaging.bananas.attempt"
PRIORITY = "messaging.bananas.priority"
OUTCOME = "messaging.bananas.outcome"
REASON = "messaging.bananas.reason"


def instrument(
    app: Bananas, *, parent: bool = False, tracer_provider: TracerProvider | None = None
) -> TracingHook:
    """Trace `app`'s enqueues and the runs of its jobs. Call it where the app
    is defined (the module `--app` names), so that the enqueuing processes and
    the workers are both instrumented. `parent=True` makes each process span a
    child of its send span (one trace from the enqueuing request to the job)
    instead of linked to it. Instrumenting an app twice returns the first hook."""
    for hook in app.hooks.all:
        if isinstance(hook, TracingHook):
            if hook.parent != parent:
                raise BananasError(
                    f"the app is instrumented already with parent={hook.parent}; "
                    f"call bananas.otel.instrument(app) once"
                )
            return hook
    hook = TracingHook(tracer_provider, parent=parent)
    app.add_hook(hook)
    return hook


class TracingHook(Hook):
    def __init__(self, tracer_provider: TracerProvider | None = None, *, parent: bool = False):
        self.parent = parent
        self.provider = tracer_provider
        self.tracer = trace.get_tracer("bananas", __version__, tracer_provider=tracer_provider)

    # -- enqueue ------------------------------------------------------------
    def before_enqueue(self, job: OutgoingJob) -> None:
        span = self.tracer.start_span(
            f"send {job.name}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": job.name,
                "messaging.message.id": job.id,
                PRIORITY: job.priority,
            },
        )
        propagate.inject(job.headers, context=trace.set_span_in_context(span))
        job.state[self] = span

    def after_enqueue(self, job: OutgoingJob, error: BaseException | None) -> None:
        span: Span | None = job.state.pop(self, None)
        if span is None:
            return
        if error is not None:
            _failed(span, _type_name(error), str(error), error)
        span.end()

    # -- worker -------------------------------------------------------------
    def before_run(self, job: RunningJob) -> None:
        sent = propagate.extract(job.headers) if job.headers else Context()
        sent_span = trace.get_current_span(sent).get_span_context()
        links = []
        if sent_span.is_valid and not self.parent:
            links.append(Link(sent_span))
        span = self.tracer.start_span(
            f"process {job.name}",
            context=sent if self.parent else Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": job.name,
                "messaging.message.id": job.id,
                "messaging.client.id": job.worker_id,
                ATTEMPT: job.attempt,
                PRIORITY: job.priority,
            },
        )
        # Current for the handler: the runner's task runs this job only, and
        # the thread executor copies this context into the job's thread.
        token = otel_context.attach(trace.set_span_in_context(span, sent))
        job.state[self] = (span, token)

    def process_scope(self, job: RunningJob) -> ChildScope | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the process span, current since before_run
        return (in_child, carrier)

    def after_run(self, job: RunningJob, outcome: Outcome) -> None:
        held: tuple[Span, Token[Context]] | None = job.state.pop(self, None)
        if held is None:
            return
        span, token = held
        span.set_attribute(OUTCOME, outcome.status)
        if outcome.reason:
            span.set_attribute(REASON, outcome.reason)
        if outcome.status in (RETRYING, DEAD):
            _failed(span, outcome.error_type or "_OTHER", outcome.error, outcome.exception)
        elif outcome.status == INTERRUPTED and outcome.exception is not None:
            span.set_attribute("error.type", _type_name(outcome.exception))
        span.end()
        otel_context.detach(token)

    def on_worker_stop(self, worker: WorkerIdentity) -> None:
        _flush(self.provider)


@contextlib.contextmanager
def in_child(carrier: dict[str, str]) -> Iterator[None]:
    """In a process-pool child: the worker's process span is current around
    the handler; what the handler exported is flushed when it returns."""
    token = otel_context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)
        _flush(None)


def _flush(provider: TracerProvider | None) -> None:
    chosen: Any = provider or trace.get_tracer_provider()
    flush = getattr(chosen, "force_flush", None)  # the API's no-op provider has none
    if flush is not None:
        flush()


def _failed(span: Span, error_type: str, message: str | None, exc: BaseException | None) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, message))
    if exc is not None:
        span.record_exception(exc)


def _type_name(exc: BaseException) -> str:
    return Outcome(DEAD, 0.0, exception=exc).error_type or type(exc).__qualname__


__all__ = ["TracingHook", "in_child", "instrument"]
