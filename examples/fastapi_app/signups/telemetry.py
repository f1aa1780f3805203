"""OpenTelemetry for the example, switched on by the environment.

With SPANS_DIR unset nothing here imports OpenTelemetry: the example runs
without it installed. With SPANS_DIR=/some/dir, every process (the web
server and the worker) exports each finished span as one JSON line to
SPANS_DIR/<service>-<pid>.jsonl, which is what the example's test reads. In
production keep the wiring and swap the exporter for OTLP
(opentelemetry-exporter-otlp) pointed at your collector.

OTEL_SERVICE_NAME names the process in the spans (standard OpenTelemetry
variable), e.g. signups-web and signups-worker. Needs `bananas[otel]` and
opentelemetry-instrumentation-fastapi.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bananas import Bananas

_provider_set = False


def enabled() -> bool:
    return bool(os.environ.get("SPANS_DIR"))


def _setup_provider() -> None:
    global _provider_set
    if _provider_set:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    resource = Resource.create()  # reads OTEL_SERVICE_NAME
    service = str(resource.attributes.get("service.name", "signups"))
    path = os.path.join(os.environ["SPANS_DIR"], f"{service}-{os.getpid()}.jsonl")
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider = TracerProvider(resource=resource)
    # Simple (synchronous) export: each span is on disk when it ends, so a
    # test can read it without waiting for a batch; use BatchSpanProcessor
    # with a network exporter.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider_set = True


def configure(app: Bananas) -> None:
    """Trace enqueues and job runs (both processes import signups.jobs)."""
    if not enabled():
        return
    _setup_provider()
    from bananas.otel import instrument

    # parent=True: the worker's `process` span is a child of the `send` span
    # the request made, so request, enqueue and run are one trace (the
    # default links them instead, each run a trace of its own).
    instrument(app, parent=True)


def instrument_web(api: FastAPI) -> None:
    """A server span per HTTP request; enqueues inside it become its children."""
    if not enabled():
        return
    _setup_provider()
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(api)
