"""Every Compose file, through a real Compose v2 implementation's `config`, and
the invariants across files: valid Bananas configuration per pool, grace period
longer than the drain, health checks on the health port, Redis durability,
scalable services, and every job type of the app taken by some pool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploytools import (
    COMPOSE_FILES,
    ROOT,
    Pool,
    check_coverage,
    check_pool_against_app,
    compose_command,
    compose_config,
    compose_env,
    compose_pools,
    example_app,
    go_duration,
    is_bananas_service,
    reachable,
    scheduler_runs,
)

EXPECTED_PATTERNS = {"thin", "default", "specialized", "job-specialized"}


@pytest.fixture(scope="module")
def configs() -> dict[str, dict[str, Any]]:
    return {path.stem: compose_config(path) for path in COMPOSE_FILES}


def test_one_compose_file_per_pattern() -> None:
    assert {p.stem for p in COMPOSE_FILES} == EXPECTED_PATTERNS


def test_compose_implementation_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator is real: it fails on what Docker would refuse."""
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  w:\n    image: x\n    stop_grace_period: soon\n")
    result = subprocess.run(
        [*compose_command(), "-f", str(bad), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=compose_env(),
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "stop_grace_period" in result.stderr or "duration" in result.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.stem)
def test_compose_config_is_valid(path: Path) -> None:
    result = subprocess.run(
        [*compose_command(), "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=compose_env(),
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"warnings from compose config: {result.stderr}"


@pytest.mark.parametrize("pattern", sorted(EXPECTED_PATTERNS))
def test_redis_is_durable(configs: dict[str, dict[str, Any]], pattern: str) -> None:
    redis = configs[pattern]["services"]["redis"]
    command = redis["command"]
    pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert command[0] == "redis-server"
    assert pairs["--appendonly"] == "yes"
    assert pairs["--appendfsync"] == "everysec"
    assert pairs["--maxmemory-policy"] == "noeviction"
    assert redis["image"].startswith("redis:7"), "Bananas needs Redis 7.0 or newer"
    data = [v for v in redis["volumes"] if v["target"] == "/data"]
    assert data and data[0]["type"] == "volume", "Redis data must live on a named volume"
    assert data[0]["source"] in configs[pattern]["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"]


@pytest.mark.parametrize("pattern", sorted(EXPECTED_PATTERNS))
def test_services_scale_and_have_limits(configs: dict[str, dict[str, Any]], pattern: str) -> None:
    for name, service in configs[pattern]["services"].items():
        where = f"{pattern}:{name}"
        assert "container_name" not in service, f"{where}: a fixed name breaks --scale"
        published = [p for p in service.get("ports", []) if p.get("published")]
        if is_bananas_service(service):
            assert not published, f"{where}: a fixed host port breaks --scale"
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and int(limits["memory"]) > 0, where
        assert service.get("restart") == "unless-stopped", where


@pytest.mark.parametrize("pattern", sorted(EXPECTED_PATTERNS))
def test_every_pool_is_a_valid_configuration(
    configs: dict[str, dict[str, Any]], pattern: str
) -> None:
    app = example_app()
    pools = compose_pools(configs[pattern], pattern)
    assert pools
    for pool in pools:
        service = pool.extra["service"]
        check_pool_against_app(pool, app)
        # drain budget < grace period, so Docker never SIGKILLs a draining worker
        grace = go_duration(service["stop_grace_period"])
        assert grace > pool.settings.shutdown_timeout, (
            f"{pool.where}: stop_grace_period {grace}s <= SHUTDOWN_TIMEOUT "
            f"{pool.settings.shutdown_timeout}s"
        )
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM", pool.where
        assert service.get("init") is True, f"{pool.where}: PID 1 should be an init"
        # health check: the image's probe, on the port the worker serves
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "python", pool.where
        assert "/livez" in test[-1] and "HEALTH_PORT" in test[-1], pool.where
        assert pool.settings.health_port != 0, f"{pool.where}: HEALTH_PORT=0 disables probes"
        assert str(pool.settings.health_port) in service.get("expose", []), pool.where
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", pool.where
        assert pool.settings.broker_url == "redis://redis:6379/0", pool.where
    check_coverage(pools, app, pattern)


def _pool(pools: list[Pool], name: str) -> Pool:
    return next(p for p in pools if p.extra["name"] == name)


def test_thin_is_one_process_with_its_own_scheduler(configs: dict[str, dict[str, Any]]) -> None:
    pools = compose_pools(configs["thin"], "thin")
    assert [p.extra["name"] for p in pools] == ["worker"]
    worker = pools[0]
    assert worker.settings.mode == "thin"
    assert worker.settings.enable_scheduler
    assert worker.replicas == 1


def test_default_is_three_by_twenty_plus_a_scheduler(configs: dict[str, dict[str, Any]]) -> None:
    pools = compose_pools(configs["default"], "default")
    worker = _pool(pools, "worker")
    assert worker.settings.mode == "default"
    assert (worker.replicas, worker.settings.concurrency) == (3, 20)
    assert worker.settings.priorities == ("high", "normal", "low")
    assert [p.extra["name"] for p in scheduler_runs(pools)] == ["scheduler"]
    assert _pool(pools, "scheduler").settings.mode == "scheduler-only"


def test_specialized_pools(configs: dict[str, dict[str, Any]]) -> None:
    pools = compose_pools(configs["specialized"], "specialized")
    expected = {"high": (3, 50), "normal": (2, 30), "low": (1, 10)}
    for priority, (replicas, concurrency) in expected.items():
        pool = _pool(pools, f"worker-{priority}")
        assert pool.settings.mode == "specialized"
        assert pool.settings.priorities == (priority,)
        assert (pool.replicas, pool.settings.concurrency) == (replicas, concurrency)
        assert pool.settings.group_id == priority
    assert [p.extra["name"] for p in scheduler_runs(pools)] == ["scheduler"]


def test_job_specialized_pools(configs: dict[str, dict[str, Any]]) -> None:
    app = example_app()
    pools = compose_pools(configs["job-specialized"], "job-specialized")
    cpu, io, general = (_pool(pools, f"worker-{n}") for n in ("cpu", "io", "general"))
    assert cpu.settings.mode == io.settings.mode == "job-specialized"
    assert all(app.handlers[t].executor == "process" for t in cpu.settings.job_types)
    assert all(app.handlers[t].executor == "async" for t in io.settings.job_types)
    assert io.settings.concurrency > cpu.settings.concurrency
    assert general.settings.mode == "default" and not general.settings.job_types
    assert [p.extra["name"] for p in scheduler_runs(pools)] == ["scheduler"]


@pytest.mark.parametrize("pattern", ["specialized", "job-specialized"])
def test_a_routed_gpu_pool_alone_serves_route_gpu(
    configs: dict[str, dict[str, Any]], pattern: str
) -> None:
    app = example_app()
    pools = compose_pools(configs[pattern], pattern)
    gpu = _pool(pools, "worker-gpu")
    assert gpu.settings.routing_keys == ("gpu",)
    routed = {q for q in gpu.takes(app) if q[0].startswith("gpu:")}
    assert routed and all(app.handlers[t].route == "gpu" for _, t in routed & reachable(app))
    for pool in pools:
        if pool is not gpu:
            assert "gpu" not in pool.settings.routing_keys, pool.where
    devices = gpu.extra["service"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
