"""The event log never raises into its caller: a job or a shutdown that logs
through a broken stream goes on (the real-pipe case: tests/test_cli.py)."""

from __future__ import annotations

import io

import pytest

from bananas.logs import EventLog


class BrokenStream(io.StringIO):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error

    def flush(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error", [BrokenPipeError(32, "Broken pipe"), OSError(28, "No space"), ValueError("closed")]
)
def test_a_line_that_cannot_be_written_is_dropped_and_counted(error: Exception) -> None:
    log = EventLog("info", "json", BrokenStream(error))
    log.info("job.completed", job_id="a")
    log.lifecycle("worker.draining", signal="SIGTERM")
    log.debug("below.the.level")  # not written, not counted
    log.flush()
    assert log.dropped == 2


def test_lines_are_written_when_the_stream_works() -> None:
    stream = io.StringIO()
    log = EventLog("info", "json", stream)
    log.info("job.completed", job_id="a")
    assert '"event":"job.completed"' in stream.getvalue() and log.dropped == 0
