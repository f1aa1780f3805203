"""What every handler shares: the broker, the renderer, settings; request parsing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ..brokers import Broker, from_url
from ..brokers.cache import BrokerCache
from ..config import REGISTRY_EXPIRY, Settings
from ..errors import InvalidRecord
from ..vocabulary import JOB_STATES, JobState
from .config import DashboardConfig
from .queries import PAGE_SIZES
from .render import Renderer
from .security import Secrets

# The registry's own expiry: a longer one would list workers that `bananas
# status` (which prunes at the registry expiry) has already dropped.
DEFAULT_WORKER_EXPIRY = REGISTRY_EXPIRY
MAX_TYPE_LENGTH = 200


class BrokerSource:
    """The broker the pages read. A broker handed in is used as is (its owner
    closes it); one built from Settings is made per event loop, lazily (a
    mounted sub-app gets no lifespan events), and closed on shutdown."""

    def __init__(self, broker: Broker | None, settings: Settings | None) -> None:
        self._fixed = broker
        self._settings = settings
        self._cache = BrokerCache(self._make)

    def describe(self) -> str:
        return self._fixed.describe() if self._fixed is not None else self._make().describe()

    def _make(self) -> Broker:
        assert self._settings is not None
        s = self._settings
        return from_url(
            s.effective_broker_url, prefix=s.prefix, result_ttl=s.result_ttl, **s.replication
        )

    def get(self) -> Broker:
        return self._fixed if self._fixed is not None else self._cache.for_loop()

    async def close(self) -> None:
        await self._cache.aclose_loop()


@dataclass(slots=True)
class Dashboard:
    source: BrokerSource
    config: DashboardConfig
    renderer: Renderer
    keys: Secrets
    worker_expiry: float = DEFAULT_WORKER_EXPIRY
    schedules: dict[str, Any] = field(default_factory=dict)

    @property
    def broker(self) -> Broker:
        return self.source.get()


@dataclass(slots=True)
class ListQuery:
    state: str
    job_type: str | None
    offset: int
    limit: int
    search: str | None


class BadRequest(Exception):
    """A query parameter is invalid; the message says which and what is allowed."""


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise BadRequest(f"{name}={raw!r} must not be negative")
    return value


def list_query(request: Request, default_state: str = JobState.QUEUED) -> ListQuery:
    state = request.query_params.get("state") or default_state
    if state not in JOB_STATES:
        raise BadRequest(f"unknown state {state!r} (allowed: {', '.join(JOB_STATES)})")
    job_type = (request.query_params.get("type") or "").strip() or None
    if job_type is not None and len(job_type) > MAX_TYPE_LENGTH:
        raise BadRequest(f"type is longer than {MAX_TYPE_LENGTH} characters")
    limit = _int_param(request, "limit", 50)
    if limit not in PAGE_SIZES:
        raise BadRequest(f"limit={limit} (allowed: {', '.join(map(str, PAGE_SIZES))})")
    offset = _int_param(request, "offset", 0)
    search = (request.query_params.get("q") or "").strip() or None
    return ListQuery(state, job_type, offset, limit, search)


def page_query(request: Request) -> tuple[int, int]:
    limit = _int_param(request, "limit", 50)
    if limit not in PAGE_SIZES:
        raise BadRequest(f"limit={limit} (allowed: {', '.join(map(str, PAGE_SIZES))})")
    return _int_param(request, "offset", 0), limit


@dataclass(slots=True)
class ActionResult:
    verb: str
    done: int = 0
    missing: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.verb,
            "done": self.done,
            "missing": self.missing,
            "invalid": self.invalid,
        }


async def act_on_dead(broker: Broker, verb: str, ids: list[str]) -> ActionResult:
    """Replay or delete dead letters one by one, as `bananas dlq` does."""
    result = ActionResult(verb)
    for job_id in ids:
        try:
            ok = await (
                broker.replay_dead(job_id) if verb == "replay" else broker.delete_dead(job_id)
            )
        except InvalidRecord as exc:
            if await broker.job_state(job_id) != JobState.DEAD:
                result.missing.append(job_id)  # not a dead letter: nothing to delete
            else:
                result.invalid[job_id] = str(exc)
            continue
        if ok:
            result.done += 1
        else:
            result.missing.append(job_id)
    return result
