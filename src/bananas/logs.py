"""Structured event logs: one line per event, JSON or human console format.

Lines go to stdout, block-buffered when it is not a terminal so that per-job
lines do not cost a system call each; `flush()` runs periodically and at exit.

A line that cannot be written (stdout piped into `head`, which has exited; a
full disk) is dropped and counted in `EventLog.dropped`, never raised: like
the standard `logging` module, a broken log stream must not fail a job or a
shutdown, and the worker's real state is on the broker and its metrics.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any, TextIO

import orjson

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class EventLog:
    def __init__(
        self, level: str = "info", fmt: str = "json", stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.threshold = _LEVELS[level]
        self.json = fmt == "json"
        self.context: dict[str, Any] = {}
        self.dropped = 0  # lines lost to a failed write (broken pipe, full disk)

    def enabled(self, level: str) -> bool:
        return _LEVELS[level] >= self.threshold

    def log(self, level: str, event: str, **fields: Any) -> None:
        if _LEVELS[level] < self.threshold:
            return
        ts = time.time()
        if self.json:
            line = orjson.dumps(
                {"ts": round(ts, 3), "level": level, "event": event, **self.context, **fields},
                default=str,
            ).decode()
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"
            extras = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            line = f"{stamp} {level.upper():7} {event:20} {extras}"
        try:  # inline, not a helper: this runs for every job line
            self.stream.write(line + "\n")
        except (OSError, ValueError):  # EPIPE, ENOSPC; ValueError: the stream is closed
            self.dropped += 1

    def lifecycle(self, event: str, **fields: Any) -> None:
        """Process lifecycle lines (started, draining, drained, stopped): written
        at LOG_LEVEL info and warning alike, so a quiet worker still says what it does."""
        if self.threshold <= _LEVELS["warning"]:
            saved, self.threshold = self.threshold, _LEVELS["info"]
            try:
                self.log("info", event, **fields)
            finally:
                self.threshold = saved

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self.log("debug", event, **fields)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()


def flush_std_streams() -> None:
    """Flush stdout and stderr at exit, ignoring a stream that is gone (a
    reader that exited): the exit code must say how the worker ended."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def setup(level: str, fmt: str) -> EventLog:
    """Event log for this process; library loggers go to stderr at WARNING+."""
    logging.basicConfig(level=max(_LEVELS[level], logging.WARNING), stream=sys.stderr)
    chosen = fmt if fmt else ("console" if sys.stdout.isatty() else "json")
    return EventLog(level, chosen)
