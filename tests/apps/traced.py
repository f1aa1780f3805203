"""An app traced with `bananas.otel`, for the tracing tests.

With TEST_TRACE_FILE set (a worker process, a process-pool child), this
module installs a global tracer provider whose exporter appends every ended
span to that file as one JSON line: the test reads what each process
exported. TEST_TRACE_PARENT=1 makes process spans children of their send span;
TEST_TRACE_BATCH=1 exports through a BatchSpanProcessor that only a flush
empties in time.
The handlers make a span of their own ("work <k>") inside the job's span.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from bananas import Bananas, otel

app = Bananas()
otel.instrument(app, parent=os.environ.get("TEST_TRACE_PARENT") == "1")


def tracer() -> trace.Tracer:
    # Looked up at each call: a test may replace the global provider between jobs.
    return trace.get_tracer("tests.apps.traced")


class FileExporter(SpanExporter):
    """Appends each span as a JSON line (the fields the tests compare)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as out:
            for span in spans:
                out.write(json.dumps(span_fields(span)) + "\n")
        return SpanExportResult.SUCCESS


def span_fields(span: ReadableSpan) -> dict[str, object]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "links": [f"{link.context.span_id:016x}" for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "pid": os.getpid(),
    }


if os.environ.get("TEST_TRACE_FILE"):
    provider = TracerProvider()
    exporter = FileExporter(os.environ["TEST_TRACE_FILE"])
    if os.environ.get("TEST_TRACE_BATCH") == "1":  # exports only when flushed (or in a minute)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


@app.job()
async def traced_async(k: str) -> str:
    with tracer().start_as_current_span(f"work {k}"):
        return k


@app.job()
def traced_thread(k: str) -> str:
    with tracer().start_as_current_span(f"work {k}"):
        return k


@app.job(executor="process")
def traced_process(k: str) -> int:
    with tracer().start_as_current_span(f"work {k}"):
        time.sleep(0.01)
    return os.getpid()


@app.job(max_retries=1)
async def traced_fails(k: str) -> None:
    with tracer().start_as_current_span(f"work {k}"):
        raise KeyError(k)
