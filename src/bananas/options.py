"""The typed enqueue form: `send_email.options(delay="10s").enqueue(to=..., subject=...)`.

`fn.enqueue(**kwargs)` mixes the payload with `_`-prefixed options, so it can
only be typed `**kwargs: Any`. Here the options are bound first, by name, and
`enqueue` then takes exactly the handler's own parameters (`ParamSpec`), so
mypy and IDEs check the payload against the handler's signature. At run time
both forms end in `Bananas.spec`: the same option parsing and the same
signature check at enqueue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypedDict

from .definitions import JobDefinition
from .errors import ArgumentsError, BananasError

if TYPE_CHECKING:
    from .app import Bananas
    from .handle import JobHandle
    from .specs import JobSpec

P = ParamSpec("P")


class JobOptions(Generic[P]):
    """Options bound to one job type; `enqueue`, `enqueue_async` and `spec`
    take the handler's parameters. Reusable: nothing is enqueued until called."""

    __slots__ = ("_app", "_definition", "_options")

    def __init__(self, app: Bananas, definition: JobDefinition, options: dict[str, Any]) -> None:
        self._app = app
        self._definition = definition
        self._options = options

    def spec(self, *args: P.args, **kwargs: P.kwargs) -> JobSpec:
        """A JobSpec for `enqueue_many`, checked like `enqueue`."""
        payload = _payload(self._definition, args, kwargs) if args else dict(kwargs)
        return self._app.spec(self._definition.name, payload, **self._options)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        return self._app.enqueue_many([self.spec(*args, **kwargs)])[0]

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        return (await self._app.enqueue_many_async([self.spec(*args, **kwargs)]))[0]


class EnqueueOptions(TypedDict, total=False):
    """What `fn.options(...)` takes: the `_`-prefixed enqueue options, by plain name."""

    delay: str | float | timedelta
    at: datetime | float
    priority: str
    job_id: str
    description: str
    max_retries: int
    route: str
    unique_key: str
    unique_for: str | float
    concurrency_key: str
    rate_key: str


_NAMES = tuple(EnqueueOptions.__annotations__)


def bind_options(options: EnqueueOptions) -> dict[str, Any]:
    """The `_`-prefixed options `Bananas.spec` takes; None means unset."""
    unknown = sorted(options.keys() - set(_NAMES))
    if unknown:
        raise BananasError(f"unknown enqueue option {unknown[0]!r} (allowed: {', '.join(_NAMES)})")
    return {f"_{k}": v for k, v in options.items() if v is not None}


def _payload(
    definition: JobDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Positional arguments (which the typed form allows, as the handler does)
    turned into the keyword payload the job is stored as."""
    try:
        bound = definition.signature.bind_partial(*args, **kwargs)
    except TypeError as exc:
        raise ArgumentsError(
            f"payload does not match {definition.name}{definition.signature}: {exc}"
        ) from None
    payload: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = definition.signature.parameters[name].kind
        if kind is kind.VAR_POSITIONAL or kind is kind.POSITIONAL_ONLY:
            raise definition.positional_error(len(args))
        if kind is kind.VAR_KEYWORD:
            payload.update(value)
        else:
            payload[name] = value
    return payload


__all__ = ["EnqueueOptions", "JobOptions", "bind_options"]
