"""Job definitions: what `@app.job` registers, checked once at import time so
that a mistake in a handler's declaration fails the app's import, not a job."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .concurrency import check_concurrency
from .durations import parse_duration
from .errors import ArgumentsError, BananasError
from .job import check_priority
from .rates import RateLimit, check_rate_limit
from .routes import DEFAULT_ROUTE, check_route
from .unique import check_unique_for

EXECUTORS = ("async", "thread", "process")


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """What a worker needs to run one job type."""

    name: str
    fn: Callable[..., Any]
    priority: str
    timeout: float | None
    max_retries: int | None
    executor: str
    signature: inspect.Signature
    # (keyword-passable names, required names, takes **kwargs), from the signature
    shape: tuple[frozenset[str], frozenset[str], bool] = (frozenset(), frozenset(), True)
    route: str | None = None  # None: the default route
    unique_for: float | None = None  # seconds a unique job holds its key (unique.py)
    concurrency: int | None = None  # most running at once, fleet-wide (concurrency.py)
    rate_limit: RateLimit | None = None  # starts per unit, fleet-wide (rates.py)

    def check_payload(self, payload: dict[str, Any]) -> None:
        """Raise TypeError when the payload does not fit the handler's parameters."""
        names, required, open_ended = self.shape
        keys = payload.keys()
        if required <= keys and (open_ended or keys <= names):
            return  # the common case, without building a BoundArguments
        self.signature.bind(**payload)

    def check_arguments(self, payload: dict[str, Any]) -> None:
        """`check_payload` at enqueue: an ArgumentsError naming the handler's
        parameters, so a bad payload fails in the caller, not in a worker."""
        try:
            self.check_payload(payload)
        except TypeError as exc:
            problems = self._mismatch(payload) or str(exc)
            raise ArgumentsError(
                f"payload does not match {self.name}{self.signature}: {problems}"
            ) from None

    def _mismatch(self, payload: dict[str, Any]) -> str:
        """Every missing and unknown argument (bind() names only the first),
        with a close parameter name for a misspelt one."""
        names, required, open_ended = self.shape
        parts = [
            f"missing a required argument: {name!r}"
            for name in sorted(required - payload.keys())
            if name in names
        ]
        import difflib  # only on this error path: it costs start-up otherwise

        for name in sorted(() if open_ended else payload.keys() - names):
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"got an unexpected keyword argument {name!r}{hint}")
        return "; ".join(parts)

    def positional_error(self, given: int) -> ArgumentsError:
        """What `fn.enqueue("a@b.c", "hi")` raises: the payload is keywords."""
        names = [
            p.name
            for p in self.signature.parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        example = ", ".join(f"{n}=..." for n in names) or "name=value, ..."
        return ArgumentsError(
            f"{self.name}.enqueue() got {given} positional argument(s): the payload is "
            f"keyword arguments (stored as a JSON object), e.g. {self.name}.enqueue({example})"
        )


def signature_shape(signature: inspect.Signature) -> tuple[frozenset[str], frozenset[str], bool]:
    """(keyword-passable names, required ones, takes **kwargs) of a signature."""
    kinds = inspect.Parameter
    params = signature.parameters.values()
    names = frozenset(
        p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
    )
    required = frozenset(p.name for p in params if p.name in names and p.default is kinds.empty)
    if any(p.kind is kinds.POSITIONAL_ONLY and p.default is kinds.empty for p in params):
        required = required | {"\0positional-only"}  # never satisfied: bind() explains
    open_ended = any(p.kind is kinds.VAR_KEYWORD for p in params)
    return names, required, open_ended


def define(
    func: Callable[..., Any],
    name: str | None,
    priority: str,
    timeout: str | float | None,
    max_retries: int | None,
    executor: str | None,
    route: str | None = None,
    unique_for: str | float | None = None,
    concurrency: int | None = None,
    rate_limit: str | None = None,
) -> JobDefinition:
    if not callable(func):
        raise BananasError(f"@app.job needs a function, got {type(func).__name__}")
    job_name = name or func.__name__
    is_async = inspect.iscoroutinefunction(func)
    chosen = executor or ("async" if is_async else "thread")
    where = f"@app.job on {func.__qualname__}"
    if chosen not in EXECUTORS:
        raise BananasError(
            f"{where}: unknown executor {chosen!r} (allowed: {', '.join(EXECUTORS)})"
        )
    if chosen == "async" and not is_async:
        raise BananasError(f"{where}: executor='async' needs an async def function")
    if chosen == "thread" and is_async:
        raise BananasError(f"{where}: executor='thread' needs a plain def function")
    try:
        priority = check_priority(str(priority))  # plain text: Priority.HIGH -> "high"
        seconds = None if timeout is None else parse_duration(timeout)
        if route is not None:
            route = check_route(route, "route")
    except ValueError as exc:
        raise BananasError(f"{where}: {exc}") from None
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise BananasError(f"{where}: max_retries must be a non-negative integer")
    unique_seconds = check_unique_for(unique_for, where)
    most_running = check_concurrency(concurrency, where)
    rate = check_rate_limit(rate_limit, where)
    signature = inspect.signature(func)
    return JobDefinition(
        job_name,
        func,
        priority,
        seconds,
        max_retries,
        chosen,
        signature,
        signature_shape(signature),
        None if route == DEFAULT_ROUTE else route,
        unique_seconds,
        most_running,
        rate,
    )


__all__ = ["EXECUTORS", "JobDefinition", "define", "signature_shape"]
