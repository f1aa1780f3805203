"""Prometheus alert rules and the Grafana dashboard: every expression parses
(a real PromQL parser), and every metric, label and label value they use is one
a real worker serves on /metrics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import promql_parser
import pytest
import redis
import yaml
from deploytools import (
    ALERTS,
    DASHBOARD,
    Exposition,
    go_duration,
    grafana_expr,
    parse_exposition,
    promql_selectors,
)
from support import WorkerFactory, free_port, wait_for

from bananas.config import MODES, Settings
from bananas.vocabulary import PRIORITIES

RULES: list[dict[str, Any]] = [
    rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
]
PANELS: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
DASHBOARD_EXPRS = [
    (panel["title"], target["expr"]) for panel in PANELS for target in panel.get("targets", [])
]
# Labels Prometheus adds to every scraped series.
SCRAPE_LABELS = {"job", "instance"}
KNOWN_VALUES = {"priority": set(PRIORITIES), "mode": set(MODES)}


def test_alert_rules_are_well_formed() -> None:
    names = [r["alert"] for r in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        promql_parser.parse(rule["expr"])
        if "for" in rule:
            go_duration(rule["for"])
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def _threshold(expr: str) -> tuple[str, float]:
    node = promql_parser.parse(expr)
    assert type(node).__name__ == "BinaryExpr" and type(node.rhs).__name__ == "NumberLiteral"
    return str(node.op), float(node.rhs.val)


@pytest.mark.parametrize(
    ("alert", "op", "threshold", "duration", "metric", "matcher"),
    [
        ("BananasHighPriorityBacklog", ">", 100, "2m", "bananas_queue_depth", ("priority", "high")),
        ("BananasWorkersSaturated", ">", 0.9, "5m", "bananas_worker_utilization", None),
        ("BananasHighErrorRate", ">", 0.05, "5m", "bananas_jobs_total", ("status", "failed")),
        ("BananasQueueBacklog", ">", 1000, "5m", "bananas_queue_depth", None),
        ("BananasNoReadyWorkers", "==", 0, "2m", "bananas_broker_up", None),
    ],
)
def test_user_guide_thresholds(
    alert: str,
    op: str,
    threshold: float,
    duration: str,
    metric: str,
    matcher: tuple[str, str] | None,
) -> None:
    rule = next(r for r in RULES if r["alert"] == alert)
    assert _threshold(rule["expr"]) == (op, threshold)
    assert go_duration(rule["for"]) == go_duration(duration)
    selectors = [s for s in promql_selectors(rule["expr"]) if s.name == metric]
    assert selectors, f"{alert} does not read {metric}"
    if matcher is not None:
        assert any((matcher[0], "Equal", matcher[1]) in s.matchers for s in selectors)


def test_queue_depth_is_deduplicated_across_processes() -> None:
    """Every process exports the same queue figures: summing them raw would
    multiply the backlog by the number of workers."""
    for where, expr in [(r["alert"], r["expr"]) for r in RULES] + DASHBOARD_EXPRS:
        if "bananas_queue_depth" in expr:
            assert "max by (route, priority, job_type) (bananas_queue_depth" in expr, where


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "group"} <= variables
    assert len(DASHBOARD_EXPRS) >= 15
    for panel in PANELS:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            promql_parser.parse(grafana_expr(target["expr"]))


@pytest.fixture
def exposition(workers: WorkerFactory, r: redis.Redis) -> Exposition:
    """/metrics of a real worker that has run jobs and sees a backlog."""
    from apps.core import app

    port = free_port()
    workers.start(
        "apps.core:app",
        WORKER_MODE="job-specialized",
        WORKER_JOB_TYPES="record",
        HEALTH_PORT=str(port),
        HEALTH_HOST="127.0.0.1",
    )
    app.configure(Settings.load())  # this test's broker, not one an earlier test configured
    app.enqueue_many([("record", {"k": f"m{i}"}) for i in range(3)])
    app.enqueue_many([("add", {"a": 1, "b": i}) for i in range(3)])  # no worker takes add
    wait_for(lambda: r.hlen("test:runs") == 3, 20, message="3 record jobs")
    url = f"http://127.0.0.1:{port}/metrics"

    def scraped() -> str | None:
        text = httpx.get(url, timeout=5).text
        return text if "bananas_queue_depth{" in text else None

    text = wait_for(scraped, 20, interval=0.2, message="queue depth in /metrics")
    app.close()
    return parse_exposition(text)


def test_alerts_and_dashboard_use_metrics_a_worker_serves(exposition: Exposition) -> None:
    exprs = [(r["alert"], r["expr"]) for r in RULES] + [
        (title, grafana_expr(e)) for title, e in DASHBOARD_EXPRS
    ]
    used: set[str] = set()
    for where, expr in exprs:
        for selector in promql_selectors(expr):
            assert selector.name in exposition.names, f"{where}: unknown metric {selector.name}"
            used.add(selector.name)
            for label, op, value in selector.matchers:
                if label in SCRAPE_LABELS or label == "__name__":
                    continue
                assert label in exposition.labels.get(selector.name, set()), (
                    f"{where}: {selector.name} has no label {label!r}"
                )
                allowed = KNOWN_VALUES.get(label) or exposition.values[(selector.name, label)]
                if op in ("Equal", "NotEqual"):
                    assert value in allowed, f"{where}: {selector.name}{{{label}={value!r}}}"
                elif op == "Re" and value != ".*":
                    for alternative in value.split("|"):
                        assert alternative in allowed, f"{where}: {label}=~{alternative!r}"
    # the dashboard covers the metrics of docs/observability.md
    for name in (
        "bananas_queue_depth",
        "bananas_worker_utilization",
        "bananas_jobs_total",
        "bananas_job_duration_seconds_bucket",
        "bananas_in_flight_jobs",
        "bananas_drain_duration_seconds",
        "bananas_scheduler_moved_total",
        "bananas_scheduler_firings_total",
        "bananas_worker_info",
    ):
        assert name in used, f"nothing shows {name}"


def test_the_metric_check_catches_a_typo(exposition: Exposition) -> None:
    (selector,) = promql_selectors("sum(rate(bananas_job_total[5m]))")
    assert selector.name not in exposition.names
    assert "bananas_jobs_total" in exposition.names
