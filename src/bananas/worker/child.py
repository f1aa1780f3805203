"""What runs inside a process-pool child, and how its outcome comes back.

The pool's result reader unpickles what a child sends in the worker's manager
thread; an object that fails there (an exception whose constructor takes
required arguments: `pickle` rebuilds it as `cls(*exc.args)`) breaks the whole
pool, and every job in it is reported dead with the real error lost. So a child
never sends an object of the job's: it sends bytes it pickled itself, plus the
exception's type name, message and traceback text. The worker unpickles those
bytes where a failure is caught, and falls back to a `ChildError` named after
the original type (as Celery's `UnpickleableExceptionWrapper` does).

A child also writes its pid into the job's slot of a shared array when the job
starts, so that when the pool breaks the worker knows which jobs had started
and in which process (see executors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pickle
import time
import traceback
from typing import Any

from ..errors import BananasError
from ..hooks import ChildScope
from .job_hooks import child_scopes

_PIDS: Any = None  # the pool's shared pid array, set by init_child
_STARTED: Any = None  # and its start times (CLOCK_MONOTONIC is system-wide)


class ChildError(BananasError):
    """A process job's exception that could not be brought back as itself;
    `make_child_error` names a subclass after the original type."""


class RemoteTraceback(Exception):
    """The child's traceback text, chained as the cause of the job's error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def init_child(pids: Any, started: Any) -> None:
    global _PIDS, _STARTED
    _PIDS, _STARTED = pids, started


def call_in_child(
    slot: int,
    module: str,
    qualname: str,
    kwargs: dict[str, Any],
    scopes: list[ChildScope] | None = None,
) -> tuple[bool, bytes]:
    """Run the handler; (True, pickled result) or (False, pickled error fields).
    `scopes` (from hooks) are entered around it, after its module is imported
    (where an app sets up what they use, e.g. its tracer provider)."""
    if _PIDS is not None and slot >= 0:
        _STARTED[slot] = time.monotonic()
        _PIDS[slot] = os.getpid()
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        fn = getattr(target, "__wrapped__", target)
        with child_scopes(scopes) if scopes else contextlib.nullcontext():
            result = fn(**kwargs)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
    except BaseException as exc:  # SystemExit too: reported, not raised
        return False, _error_fields(exc, traceback.format_exc())
    try:
        return True, pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return False, _error_fields(
            exc, traceback.format_exc(), "the job's result cannot be pickled: "
        )


def _error_fields(exc: BaseException, tb: str, prefix: str = "") -> bytes:
    blob: bytes | None = None
    if not prefix:
        try:
            blob = pickle.dumps(exc, pickle.HIGHEST_PROTOCOL)
            pickle.loads(blob)  # what the worker would do: fails here the same way
        except Exception as why:
            blob = None
            why_text = f"{type(why).__name__}: {why}"
            tb += f"(the exception cannot be pickled back to the worker: {why_text})\n"
    kind = type(exc)
    fields = (blob, kind.__module__, kind.__qualname__, prefix + str(exc), tb)
    return pickle.dumps(fields, pickle.HIGHEST_PROTOCOL)


def outcome(ok: bool, data: bytes) -> Any:
    """In the worker: the job's result, or raise its error (chained to the
    child's traceback text)."""
    if ok:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise BananasError(
                f"the job's result cannot be unpickled in the worker: {type(exc).__name__}: {exc}"
            ) from None
    blob, module, qualname, message, tb = pickle.loads(data)  # builtins only
    error: BaseException | None = None
    if blob is not None:
        try:
            error = pickle.loads(blob)
        except Exception:
            tb += "(the exception cannot be unpickled in the worker)\n"
    if not isinstance(error, Exception):  # SystemExit, CancelledError...: never raised as is
        error = make_child_error(module, qualname, message)
    raise error from RemoteTraceback(tb)


def make_child_error(module: str, qualname: str, message: str) -> ChildError:
    """A ChildError whose type prints as the original: `KeyedError: message`."""
    name = qualname.rsplit(".", 1)[-1]
    kind = type(name, (ChildError,), {"__module__": module, "__qualname__": qualname})
    return kind(message)  # type: ignore[no-any-return]
