"""Prometheus metrics of one worker or scheduler process (docs/observability.md).

Counters and gauges are read from the process's WorkerStats and one status
snapshot (with the last broker snapshot) at scrape time, so the per-job hot
path only feeds the duration histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..keys import split_lane
from ..rates import RateUsage
from .limits import LimitRow
from .stats import WorkerStats
from .status import WorkerIdentity, WorkerStatus

DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    float("inf"),
)


class WorkerMetrics:
    def __init__(
        self, stats: WorkerStats, status: Callable[[], WorkerStatus], identity: WorkerIdentity
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            "bananas_job_duration_seconds",
            "Time a job attempt ran, by job type.",
            ["job_type"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[str, Histogram] = {}
        self.registry.register(_WorkerCollector(stats, status, identity))
        stats.observe_duration = self.observe

    def observe(self, job_type: str, seconds: float) -> None:
        child = self._children.get(job_type)
        if child is None:
            child = self._children[job_type] = self.duration.labels(job_type=job_type)
        child.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _WorkerCollector(Collector):
    def __init__(
        self, stats: WorkerStats, status: Callable[[], WorkerStatus], identity: WorkerIdentity
    ) -> None:
        self.stats = stats
        self.status = status
        self.identity = identity

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        w = self.status()
        snap = w.snapshot
        jobs = CounterMetricFamily(
            "bananas_jobs", "Job outcomes in this process.", labels=["status"]
        )
        for status, value in (
            ("completed", s.completed),
            ("failed", s.failed),
            ("retried", s.retried),
            ("dead_lettered", s.dead_lettered),
            ("rejected", s.rejected),
            ("requeued", s.requeued),
            ("cancelled", s.cancelled),
        ):
            jobs.add_metric([status], value)
        yield jobs
        depth = GaugeMetricFamily(
            "bananas_queue_depth",
            "Jobs waiting, by route, priority and type (route '' and type '': SDK "
            "records not routed yet).",
            labels=["route", "priority", "job_type"],
        )
        for (lane, name), n in sorted(snap.stats.ready.items()):
            depth.add_metric([*split_lane(lane), name], n)
        for priority, n in sorted(snap.stats.unrouted.items()):
            depth.add_metric(["", priority, ""], n)
        for (route, priority), n in sorted(snap.stats.unrouted_routes.items()):
            depth.add_metric([route, priority, ""], n)  # the Go scheduler's route lists
        yield depth
        oldest = GaugeMetricFamily(
            "bananas_oldest_job_age_seconds",
            "Age of the oldest waiting job, by priority.",
            labels=["priority"],
        )
        for priority, age in sorted(snap.oldest_age.items()):
            oldest.add_metric([priority], age)
        yield oldest
        if snap.rates:
            yield from _rate_metrics(snap.rates)
        yield _gauge(
            "bananas_worker_utilization",
            "Busy slot-time over total slot-time, last sample.",
            w.utilization,
        )
        yield _gauge(
            "bananas_error_rate", "Failed over finished attempts, last sample.", w.error_rate
        )
        yield _gauge("bananas_in_flight_jobs", "Jobs running in this process.", w.in_flight)
        yield _gauge("bananas_worker_concurrency", "Job slots in this process.", w.concurrency)
        yield _gauge(
            "bananas_job_threads_stuck",
            "Job threads still running a handler that timed out (of bananas_job_threads).",
            w.threads_stuck,
        )
        yield _gauge("bananas_job_threads", "Job threads in this process.", w.threads_total)
        yield _gauge(
            "bananas_drain_duration_seconds",
            "Duration of the last drain (0 if none).",
            w.drain_duration_s,
        )
        yield _gauge(
            "bananas_scheduled_jobs", "Delayed and back-off jobs waiting.", snap.stats.scheduled
        )
        yield _gauge("bananas_dead_letter_jobs", "Jobs in the dead-letter queue.", snap.stats.dead)
        if snap.limits:  # concurrency limits (docs/control.md), where a type here has one
            yield from _limit_gauges(snap.limits)
        yield _gauge(
            "bananas_cancelled_jobs",
            "Cancelled jobs whose result is still kept (RESULT_TTL).",
            snap.stats.cancelled,
        )
        workflows = GaugeMetricFamily(
            "bananas_workflows",
            "Workflows by state: running now; completed, failed and cancelled since the "
            "keyspace was created (they outlive the expired workflows).",
            labels=["state"],
        )
        for state, n in snap.workflows.items():
            workflows.add_metric([state], n)
        yield workflows
        yield _gauge(
            "bananas_broker_up",
            "1 when the broker answered the last check.",
            1 if w.broker_ok else 0,
        )
        for name, doc, value in (
            ("bananas_scheduler_moved", "Due jobs moved to ready by this scheduler.", s.moved),
            ("bananas_scheduler_firings", "Cron/periodic firings enqueued here.", s.fired),
            ("bananas_leases_recovered", "Expired leases recovered here.", s.recovered),
        ):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter
        info = GaugeMetricFamily(
            "bananas_worker_info",
            "Static facts of this process.",
            labels=["worker_id", "mode", "group"],
        )
        me = self.identity
        info.add_metric([me.id, str(me.mode), me.group], 1)
        yield info


def _limit_gauges(rows: tuple[LimitRow, ...]) -> Iterator[Metric]:
    labels = ["job_type", "key"]
    families = (
        ("bananas_concurrency_limit", "A concurrency bucket's limit.", "limit"),
        ("bananas_concurrency_running", "Slots of a concurrency bucket held.", "running"),
        ("bananas_concurrency_waiting", "Jobs parked for a concurrency slot.", "waiting"),
    )
    for name, doc, attr in families:
        family = GaugeMetricFamily(name, doc, labels=labels)
        for row in rows:
            family.add_metric([row.job_type, row.key or ""], getattr(row, attr))
        yield family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, doc)
    gauge.add_metric([], value)
    return gauge


def _rate_metrics(rates: tuple[RateUsage, ...]) -> Iterator[Metric]:
    """Rate limits (docs/control.md): the limit, the jobs waiting for a slot,
    and how far ahead the type's own slots are booked (above 0: at its limit)."""
    families = (
        ("bananas_rate_limit_per_second", "A job type's rate limit, in starts per second."),
        ("bananas_rate_limit_throttled_jobs", "Jobs waiting for a rate-limit slot."),
        ("bananas_rate_limit_booked_seconds", "Seconds of start slots already reserved ahead."),
    )
    made = [GaugeMetricFamily(name, doc, labels=["job_type"]) for name, doc in families]
    for usage in rates:
        made[0].add_metric([usage.name], usage.per_second)
        made[1].add_metric([usage.name], usage.throttled)
        made[2].add_metric([usage.name], usage.booked)
    yield from made
