"""Settings from the environment and CLI flags, validated in one place.

Nothing reads the environment at import time: `Settings.load()` is called by
the CLI (or by tests) with the environment and the flags given. Every invalid
value raises ConfigError naming the variable, the value and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .durations import parse_duration
from .errors import ConfigError
from .redact import redact_url
from .routes import ALLOWED, DEFAULT_ROUTE, check_routes
from .vocabulary import DEFAULT_PRIORITY_WEIGHTS, PRIORITIES, Mode
from .vocabulary import MODES as MODES  # re-exported: config is where users look

POLICIES = ("strict", "weighted")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "console")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
# What every boolean setting accepts (any case), said in its error message.
BOOLEAN_ALLOWED = f"{', '.join(_TRUE)} (true) or {', '.join(_FALSE)} (false)"
# A registry entry not refreshed for this long is pruned (the workers page and
# `bananas status` list only fresher ones).
REGISTRY_EXPIRY = 10.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    app: str | None = None
    broker_url: str | None = field(default=None, repr=False)  # may carry a password
    prefix: str = "bananas"
    mode: Mode = Mode.DEFAULT  # a StrEnum: compares equal to its text
    concurrency: int = 10
    prefetch: int = 10  # replaced at load: = concurrency unless WORKER_PREFETCH is set
    priorities: tuple[str, ...] = PRIORITIES
    job_types: tuple[str, ...] = ()
    routing_keys: tuple[str, ...] = (DEFAULT_ROUTE,)  # routes served, in order of preference
    group_id: str = "default"
    priority_policy: str = "strict"
    priority_weights: tuple[tuple[str, int], ...] = DEFAULT_PRIORITY_WEIGHTS
    enable_scheduler: bool = True
    scheduler_interval: float = 1.0
    job_timeout: float = 300.0
    max_retries: int = 3
    max_stalls: int = 3
    lease_timeout: float = 6.0
    shutdown_timeout: float = 30.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    max_payload_bytes: int = 1024 * 1024
    max_result_bytes: int = 1024 * 1024
    result_ttl: float = 86400.0
    # REDIS_MIN_REPLICAS: writes wait for this many replicas (0: off, no WAIT sent)
    redis_min_replicas: int = 0
    redis_min_replicas_timeout: float = 1.0
    health_port: int = 6061
    health_host: str = "0.0.0.0"
    metrics_log_interval: float = 30.0
    log_level: str = "info"
    log_format: str = ""  # "" = console on a terminal, json otherwise
    liveness_loop_stall: float = 10.0
    registry_heartbeat: float = 2.0
    registry_expiry: float = REGISTRY_EXPIRY
    burst: bool = False  # `bananas worker --burst`: exit once its queues are empty (burst.py)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Settings(mode="thin") from code or tests: still a Mode, so that
        # `settings.mode.takes_jobs` holds however the settings were made.
        if not isinstance(self.mode, Mode):
            object.__setattr__(self, "mode", Mode(self.mode))

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from `env` (default os.environ) with CLI `overrides`
        keyed by the environment variable they replace."""
        source: dict[str, Any] = dict(os.environ if env is None else env)
        for key, value in (overrides or {}).items():
            if value is not None and value != ():
                source[key] = value
        return _build(source)

    @property
    def replication(self) -> dict[str, Any]:
        """from_url's REDIS_MIN_REPLICAS arguments."""
        return {
            "min_replicas": self.redis_min_replicas,
            "min_replicas_timeout": self.redis_min_replicas_timeout,
        }

    @property
    def effective_broker_url(self) -> str:
        """The broker URL, or the project's embedded file (see project.py)."""
        if self.broker_url:
            return self.broker_url
        from .project import default_sqlite_url  # pathlib: only without a broker URL

        return default_sqlite_url()


def _get(source: Mapping[str, Any], name: str) -> Any | None:
    value = source.get(name)
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


def _parse(name: str, raw: Any, parser: Callable[[Any], T], allowed: str) -> T:
    try:
        return parser(raw)
    except (ValueError, TypeError) as exc:
        detail = str(exc) if str(exc) else allowed
        raise ConfigError(f"{name}={raw!r} is invalid: {detail} (allowed: {allowed})") from None


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        value = int(str(raw).strip())
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _duration_in(low: float, high: float) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        value = parse_duration(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {_fmt(low)} and {_fmt(high)}")
        return value

    return parse


def _fmt(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean")


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise ValueError(f"unknown value {value!r}")
        return value

    return parse


def _mode(raw: Any) -> Mode:
    return Mode(_choice(MODES)(raw))


def _priorities(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    values = tuple(str(p).strip().lower() for p in items if str(p).strip())
    if not values:
        raise ValueError("the list is empty")
    for value in values:
        if value not in PRIORITIES:
            raise ValueError(f"unknown priority {value!r}")
    if len(set(values)) != len(values):
        raise ValueError("a priority is listed twice")
    return values


def _weights(raw: Any) -> tuple[tuple[str, int], ...]:
    weights: dict[str, int] = {}
    for item in str(raw).split(","):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in PRIORITIES:
            raise ValueError(f"bad item {item.strip()!r}")
        number = int(value.strip())
        if not 1 <= number <= 1000:
            raise ValueError(f"weight of {name} must be 1-1000")
        weights[name] = number
    if set(weights) != set(PRIORITIES):
        raise ValueError(f"give a weight for each of {', '.join(PRIORITIES)}")
    return tuple((p, weights[p]) for p in PRIORITIES)


def _routes(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    return check_routes([str(i) for i in items if str(i).strip()], "route list")


def _names(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    return tuple(dict.fromkeys(str(n).strip() for n in items if str(n).strip()))


def _aliased(source: Mapping[str, Any], main: str, alias: str) -> tuple[str, Any | None]:
    """Value of `main`, or of its alias; both set to different values is an error."""
    main_value, alias_value = _get(source, main), _get(source, alias)
    if main_value is not None and alias_value is not None and str(main_value) != str(alias_value):
        raise ConfigError(
            f"{main}={main_value!r} and its alias {alias}={alias_value!r} disagree: set only one"
        )
    if main_value is not None:
        return main, main_value
    return alias, alias_value


_BROKER_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "sqlite://",
)


def _build(source: Mapping[str, Any]) -> Settings:
    values: dict[str, Any] = {}
    defaults = Settings()

    def opt(name: str, attr: str, parser: Callable[[Any], Any], allowed: str) -> None:
        raw = _get(source, name)
        if raw is not None:
            values[attr] = _parse(name, raw, parser, allowed)

    values["app"] = _get(source, "BANANAS_APP")
    for name in ("BANANAS_BROKER_URL", "REDIS_URL"):
        url = _get(source, name)
        if url is None:
            continue
        if not str(url).startswith(_BROKER_SCHEMES):
            raise ConfigError(
                f"{name}={redact_url(str(url))!r} is invalid (allowed: "
                + ", ".join(_BROKER_SCHEMES[:-1])
                + " or sqlite:///path)"
            )
        if not str(url).startswith("sqlite://"):
            # Only a Redis URL pays for the import; its parse names what is wrong
            from .brokers.redis.urls import parse

            parse(str(url))
        values.setdefault("broker_url", str(url))
    opt("BANANAS_PREFIX", "prefix", _nonempty_name, "letters, digits, _ - . :")

    opt("WORKER_MODE", "mode", _mode, ", ".join(MODES))
    name, raw = _aliased(source, "WORKER_CONCURRENCY", "CONCURRENCY")
    if raw is not None:
        values["concurrency"] = _parse(name, raw, _int_in(1, 1000), "an integer from 1 to 1000")
    opt("WORKER_PREFETCH", "prefetch", _int_in(0, 1000), "an integer from 0 to 1000")
    if "prefetch" not in values:
        values["prefetch"] = values.get("concurrency", defaults.concurrency)
    opt("WORKER_PRIORITIES", "priorities", _priorities, f"a comma list of {', '.join(PRIORITIES)}")
    name, raw = _aliased(source, "WORKER_JOB_TYPES", "WORKER_TYPE")
    if raw is not None:
        values["job_types"] = _parse(name, raw, _names, "a comma list of job type names")
        if not values["job_types"]:
            raise ConfigError(f"{name}={raw!r} is invalid: the list is empty")
        if name == "WORKER_TYPE" and _get(source, "WORKER_MODE") is None:
            values["mode"] = Mode.JOB_SPECIALIZED
    opt("GROUP_ID", "group_id", _nonempty_name, "a pool name")
    opt("WORKER_ROUTING_KEYS", "routing_keys", _routes, f"a comma list of route names: {ALLOWED}")
    mode: Mode = values.get("mode", defaults.mode)
    if mode is Mode.SPECIALIZED and _get(source, "WORKER_PRIORITIES") is None:
        raise ConfigError(
            "WORKER_MODE=specialized needs WORKER_PRIORITIES (the priorities this pool takes, "
            "e.g. high)"
        )
    if mode.needs_job_types and "job_types" not in values:
        raise ConfigError(
            "WORKER_MODE=job-specialized needs WORKER_JOB_TYPES (a comma list of job types)"
        )
    opt("WORKER_PRIORITY_POLICY", "priority_policy", _choice(POLICIES), ", ".join(POLICIES))
    opt(
        "WORKER_PRIORITY_WEIGHTS",
        "priority_weights",
        _weights,
        "e.g. high=6,normal=3,low=1 (positive integers)",
    )
    opt("ENABLE_SCHEDULER", "enable_scheduler", _bool, BOOLEAN_ALLOWED)
    if "enable_scheduler" not in values:
        values["enable_scheduler"] = mode.scheduler_by_default
    elif not mode.takes_jobs and not values["enable_scheduler"]:
        raise ConfigError("ENABLE_SCHEDULER=false contradicts WORKER_MODE=scheduler-only")
    opt("SCHEDULER_INTERVAL", "scheduler_interval", _duration_in(0.1, 60), "100ms to 1m")
    opt("JOB_TIMEOUT", "job_timeout", _duration_in(0.001, 7 * 86400), "1ms to 7d")
    opt("MAX_RETRIES", "max_retries", _int_in(0, 1000), "an integer from 0 to 1000")
    opt("MAX_STALLS", "max_stalls", _int_in(1, 1000), "an integer from 1 to 1000")
    opt("LEASE_TIMEOUT", "lease_timeout", _duration_in(0.5, 3600), "500ms to 1h")
    opt("SHUTDOWN_TIMEOUT", "shutdown_timeout", _duration_in(0, 86400), "0s to 1d")
    opt("RETRY_BACKOFF", "retry_backoff", _duration_in(0.001, 3600), "1ms to 1h")
    opt("RETRY_BACKOFF_MAX", "retry_backoff_max", _duration_in(0.001, 7 * 86400), "1ms to 7d")
    opt("MAX_PAYLOAD_BYTES", "max_payload_bytes", _int_in(64, 512 * 1024 * 1024), "64 to 512 MiB")
    opt("MAX_RESULT_BYTES", "max_result_bytes", _int_in(64, 512 * 1024 * 1024), "64 to 512 MiB")
    # Records of finished jobs live this long; cron firing ids rely on it being
    # longer than the scheduler's look-back, hence the 5m floor.
    opt("RESULT_TTL", "result_ttl", _duration_in(300, 365 * 86400), "5m to 365d")
    opt(
        "REDIS_MIN_REPLICAS",
        "redis_min_replicas",
        _int_in(0, 100),
        "an integer from 0 (off) to 100",
    )
    # At least 1ms (WAIT 0 blocks forever); under the 5 s socket read timeout.
    opt(
        "REDIS_MIN_REPLICAS_TIMEOUT",
        "redis_min_replicas_timeout",
        _duration_in(0.001, 4),
        "1ms to 4s",
    )
    opt("LIVENESS_LOOP_STALL", "liveness_loop_stall", _duration_in(0.5, 3600), "500ms to 1h")
    opt("HEALTH_PORT", "health_port", _int_in(0, 65535), "0 (off) or a port 1-65535")
    opt("HEALTH_HOST", "health_host", _nonempty_text, "an address to bind")
    opt("METRICS_LOG_INTERVAL", "metrics_log_interval", _duration_in(0.1, 86400), "100ms to 1d")
    opt("LOG_LEVEL", "log_level", _choice(LOG_LEVELS), ", ".join(LOG_LEVELS))
    opt("LOG_FORMAT", "log_format", _choice(LOG_FORMATS), ", ".join(LOG_FORMATS))
    return Settings(**values)


def _nonempty_name(raw: Any) -> str:
    text = str(raw).strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError("must be a non-empty name without spaces")
    return text


def _nonempty_text(raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ValueError("must not be empty")
    return text
