"""One error hierarchy for everything Bananas raises on purpose."""

from __future__ import annotations

from .durations import parse_duration


class BananasError(Exception):
    """Base class of every error Bananas raises on purpose."""


class ConfigError(BananasError):
    """A configuration value (environment or CLI) is invalid; the message names it."""


class BrokerError(BananasError):
    """The broker failed or could not be reached; wraps the driver's exception."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached right now (connection refused, timeout)."""


class BrokerNotReached(BrokerUnavailable):
    """No connection to the broker could be made, so the call was never sent:
    nothing of it ran (unlike a connection lost mid-call, whose call may have)."""


class ReplicationTimeout(BrokerUnavailable):
    """Redis applied a write but fewer than REDIS_MIN_REPLICAS replicas
    confirmed it within REDIS_MIN_REPLICAS_TIMEOUT (`WAIT`): it stands on
    the primary, and is lost if the primary fails before its replicas catch
    up. Sending the same call again is safe: an enqueue by its job id (a job
    id that exists is left alone), a settle by its lease token. A worker
    retries its settles as through an outage (it is a BrokerUnavailable)."""

    def __init__(
        self, acked: int, wanted: int, timeout_ms: int, job_ids: tuple[str, ...] = ()
    ) -> None:
        self.acked = acked
        self.wanted = wanted
        self.timeout_ms = timeout_ms
        self.job_ids = job_ids
        ids = ""
        if job_ids:
            shown = ", ".join(job_ids[:5]) + (
                f" and {len(job_ids) - 5} more" if len(job_ids) > 5 else ""
            )
            ids = f" (job ids: {shown})"
        super().__init__(
            f"{acked} of {wanted} Redis replicas acknowledged the write within {timeout_ms}ms "
            f"(REDIS_MIN_REPLICAS={wanted}): it is applied on the primary but may be lost on "
            f"a failover; sending it again is safe, an enqueue with the same job id is "
            f"idempotent{ids}"
        )

    def __reduce__(self) -> tuple[type[ReplicationTimeout], tuple[int, int, int, tuple[str, ...]]]:
        return (ReplicationTimeout, (self.acked, self.wanted, self.timeout_ms, self.job_ids))

    def for_jobs(self, job_ids: tuple[str, ...]) -> ReplicationTimeout:
        """The same timeout, naming the jobs of the enqueue it failed."""
        return ReplicationTimeout(self.acked, self.wanted, self.timeout_ms, job_ids)


class BrokerRefusesWrites(BrokerError):
    """The broker answers but refuses writes (Redis at `maxmemory` under
    `noeviction`): nothing of the refused call was applied, and it can be
    retried as is once the broker accepts writes again."""


class BrokerMoved(BrokerError):
    """A Redis Cluster node answered that the call's slot is served elsewhere
    (MOVED, ASK), is moving (TRYAGAIN) or has no primary yet (CLUSTERDOWN),
    or a node that was a primary is a replica now (READONLY): the call was
    not run. The cluster broker refreshes its slot map and sends it again."""


class BrokerIncompatible(BrokerRefusesWrites):
    """The broker's data was written by a newer Bananas (a SQLite file of a
    newer schema): nothing is read or written; a worker refuses to start."""


class InvalidRecord(BananasError):
    """A job record read from the broker does not follow the wire format."""


class UniqueConflict(BananasError):
    """A dead unique job cannot be replayed: a newer job holds its unique key
    (docs/control.md). `holder` is that job's id."""

    def __init__(self, job_id: str, holder: str) -> None:
        super().__init__(
            f"job {job_id} cannot be replayed: job {holder} holds its unique key "
            "(replay it once that job is finished, or delete this one)"
        )
        self.job_id = job_id
        self.holder = holder


class PayloadTooLarge(BananasError):
    """An enqueued payload is over MAX_PAYLOAD_BYTES."""


class PayloadError(BananasError):
    """A payload is not a JSON object, or not JSON-serializable."""


class ArgumentsError(PayloadError, TypeError):
    """A payload does not fit the handler's parameters (a missing or unknown
    argument, or positional arguments where the payload is keyword arguments).
    A TypeError too, as Python's own wrong-arguments error is."""


class JobFailed(BananasError):
    """Raised by JobHandle.result()/wait() when the job ended failed (dead-lettered).

    `error` is the last error (`"ValueError: bad"`), `reason` why the job was
    dead-lettered (`"failed 4 times (max_retries=3)"`; the error itself when
    that says why), `traceback` the handler's traceback ("" when there is none,
    e.g. a timeout), `attempts` the attempts made (None when the job's record
    is gone). The message is `job <id> failed: <error>`, as it always was."""

    def __init__(
        self,
        job_id: str,
        error: str,
        *,
        reason: str = "",
        traceback: str = "",
        attempts: int | None = None,
    ) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error
        self.reason = reason or error
        self.traceback = traceback
        self.attempts = attempts


class JobTimeout(BananasError):
    """A job ran past its time limit."""


class AppLoadError(BananasError):
    """The --app / BANANAS_APP target could not be imported."""


class JobCancelled(BananasError):
    """Raised in a handler by `current_job().check_cancelled()` once someone
    cancelled the job: the job then settles as cancelled (never retried)."""


class CancelRequested(BananasError):
    """A broker refused to schedule a retry of a job someone cancelled: the
    worker settles it as cancelled instead (not retried)."""


class RetryLater(BananasError):
    """Raised in a handler to run the job again after `delay` without charging
    an attempt, e.g. because an outside API answered 429:
    `raise RetryLater("30s")` (a duration: 500ms, 30s, 5m, 1h, or seconds).
    The job is scheduled with its attempts unchanged; a job that snoozes
    more than rates.MAX_SNOOZES (100) times has the next one charged as a failed attempt
    (docs/control.md, "Rate limits")."""

    MAX_DELAY = 7 * 86400.0

    def __init__(self, delay: str | float = 1.0) -> None:
        try:
            seconds = parse_duration(delay)
        except (ValueError, TypeError) as exc:
            raise BananasError(f"RetryLater(delay={delay!r}): {exc}") from None
        if not 0.001 <= seconds <= self.MAX_DELAY:
            raise BananasError(
                f"RetryLater(delay={delay!r}) is out of range (allowed: 1ms to 7 days)"
            )
        self.delay = seconds
        super().__init__(seconds)  # args: what a process job's pickle rebuilds it from

    def __str__(self) -> str:
        return f"retry later in {self.delay:g}s"
