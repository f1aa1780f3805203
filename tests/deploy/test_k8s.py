"""Kubernetes manifests: every built-in resource against the Kubernetes JSON
schemas offline (kubernetes-validate, strict: unknown fields fail), the KEDA
resources structurally, and the invariants across files (grace periods, probes,
ports, each pool's environment, PDBs, autoscalers, the KEDA lists)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from deploytools import (
    K8S_DIR,
    K8S_FILES,
    Pool,
    by_kind,
    check_coverage,
    check_pool_against_app,
    container_env,
    cpu_quantity,
    dockerfile_instructions,
    example_app,
    k8s_documents,
    reachable,
    secret_data,
)

from bananas.config import Settings
from bananas.keys import Keys
from bananas.vocabulary import PRIORITIES

CRD_GROUPS = ("keda.sh/",)
DOCS = k8s_documents()


def _id(item: tuple[Path, dict[str, Any]]) -> str:
    path, doc = item
    return f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"


BUILTIN = [d for d in DOCS if not d[1]["apiVersion"].startswith(CRD_GROUPS)]


@pytest.mark.parametrize("item", BUILTIN, ids=[_id(d) for d in BUILTIN])
def test_manifest_matches_kubernetes_schema(item: tuple[Path, dict[str, Any]]) -> None:
    _, doc = item
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_schema_validation_is_real() -> None:
    deployment = next(d for _, d in DOCS if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


def test_every_document_is_namespaced_and_listed_in_kustomization() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S_FILES)
    for path, doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == kustomization["namespace"], _id((path, doc))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(rendered) == len(DOCS)


# -- pools ------------------------------------------------------------------------
def _pools() -> list[tuple[dict[str, Any], Pool]]:
    configmaps = by_kind(DOCS, "ConfigMap")
    secrets = by_kind(DOCS, "Secret")
    out = []
    for name, deployment in by_kind(DOCS, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = container_env(container, configmaps, secrets)
        limits = container["resources"]["limits"]
        pool = Pool(
            where=f"Deployment/{name}",
            env=env,
            settings=Settings.load(env=env),
            replicas=deployment["spec"].get("replicas"),
            cpu_limit=cpu_quantity(limits["cpu"]),
            extra={"name": name},
        )
        out.append((deployment, pool))
    return out


POOLS = _pools()


def test_there_is_a_deployment_per_pool() -> None:
    groups = sorted(p.settings.group_id for _, p in POOLS)
    assert groups == ["cpu", "default", "gpu", "high", "io", "scheduler"]
    modes = {p.settings.group_id: p.settings.mode for _, p in POOLS}
    assert modes == {
        "cpu": "job-specialized",
        "default": "default",
        "gpu": "default",
        "high": "specialized",
        "io": "job-specialized",
        "scheduler": "scheduler-only",
    }


def test_the_gpu_pool_alone_serves_route_gpu() -> None:
    routes = {p.settings.group_id: p.settings.routing_keys for _, p in POOLS}
    assert routes.pop("gpu") == ("gpu",)
    assert set(routes.values()) == {("default",)}
    deployment = next(d for d, p in POOLS if p.settings.group_id == "gpu")
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("item", POOLS, ids=[p.where for _, p in POOLS])
def test_pool_deployment(item: tuple[dict[str, Any], Pool]) -> None:
    deployment, pool = item
    app = example_app()
    check_pool_against_app(pool, app)
    settings = pool.settings
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert len(pod["containers"]) == 1

    # SIGTERM -> drain within SHUTDOWN_TIMEOUT -> exit; SIGKILL only after the grace period
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_timeout, pool.where
    assert "preStop" not in container.get("lifecycle", {}), "a preStop hook delays the drain"

    # probes on the health server's port and paths
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.health_port != 0
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{pool.where} {probe}"
        port = http["port"]
        assert ports.get(port, port) == settings.health_port, f"{pool.where} {probe} port"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == settings.health_port
    assert annotations["prometheus.io/path"] == "/metrics"
    assert settings.health_host == "0.0.0.0", "probes come from the kubelet, not loopback"

    # resources and the image's user
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), f"{pool.where} {kind}"
    assert cpu_quantity(resources["requests"]["cpu"]) <= cpu_quantity(resources["limits"]["cpu"])
    user = next(i for i in dockerfile_instructions() if i.keyword == "USER").args
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert f"{security['runAsUser']}:{security['runAsGroup']}" == user
    assert container["securityContext"]["allowPrivilegeEscalation"] is False

    # rolling update never lowers capacity: a new pod first, then drain an old one
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1

    # selector and pod labels agree
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert settings.broker_url and settings.broker_url.startswith("redis://")


def test_all_pools_share_one_image() -> None:
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d, _ in POOLS}
    assert len(images) == 1, images


def test_every_job_type_is_taken_and_one_scheduler_deployment() -> None:
    pools = [p for _, p in POOLS]
    check_coverage(pools, example_app(), "deploy/k8s")
    schedulers = [p for p in pools if p.settings.enable_scheduler]
    assert [p.settings.mode for p in schedulers] == ["scheduler-only"]


def test_scheduler_runs_two_replicas_with_a_pdb() -> None:
    (deployment, _pool) = next((d, p) for d, p in POOLS if p.settings.mode == "scheduler-only")
    assert deployment["spec"]["replicas"] == 2
    pdb = _pdb_for(deployment)
    assert pdb["spec"]["minAvailable"] == 1


# -- PodDisruptionBudgets and autoscalers ---------------------------------------------
def _pdb_for(deployment: dict[str, Any]) -> dict[str, Any]:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    matches = [
        pdb
        for pdb in by_kind(DOCS, "PodDisruptionBudget").values()
        if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(matches) == 1, f"{deployment['metadata']['name']}: {len(matches)} PDBs"
    return matches[0]


def _scale_targets(kind: str) -> dict[str, dict[str, Any]]:
    return {d["spec"]["scaleTargetRef"]["name"]: d for d in by_kind(DOCS, kind).values()}


@pytest.mark.parametrize("item", POOLS, ids=[p.where for _, p in POOLS])
def test_pdb_allows_draining(item: tuple[dict[str, Any], Pool]) -> None:
    deployment, _ = item
    name = deployment["metadata"]["name"]
    pdb = _pdb_for(deployment)
    hpa = _scale_targets("HorizontalPodAutoscaler").get(name)
    keda = _scale_targets("ScaledObject").get(name)
    assert not (hpa and keda), f"{name}: HPA and KEDA would fight over replicas"
    if hpa or keda:
        assert "replicas" not in deployment["spec"], f"{name}: apply would reset the autoscaler"
        floor = hpa["spec"]["minReplicas"] if hpa else keda["spec"]["minReplicaCount"]
    else:
        floor = deployment["spec"]["replicas"]
    spec = pdb["spec"]
    if "minAvailable" in spec:
        assert spec["minAvailable"] < floor, f"{name}: the PDB would block every eviction"
    else:
        assert spec["maxUnavailable"] >= 1


def test_cpu_hpa_targets_existing_deployments() -> None:
    hpas = by_kind(DOCS, "HorizontalPodAutoscaler")
    deployments = by_kind(DOCS, "Deployment")
    assert hpas
    for name, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments, name
        metrics = hpa["spec"]["metrics"]
        assert [m["resource"]["name"] for m in metrics if m["type"] == "Resource"] == ["cpu"]
        container = deployments[target["name"]]["spec"]["template"]["spec"]["containers"][0]
        assert "cpu" in container["resources"]["requests"], "Utilization needs a CPU request"
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# -- KEDA ----------------------------------------------------------------------------
SCALED = list(by_kind(DOCS, "ScaledObject").values())


def test_keda_scales_the_io_and_gpu_pools() -> None:
    assert sorted(so["spec"]["scaleTargetRef"]["name"] for so in SCALED) == [
        "bananas-worker-gpu",
        "bananas-worker-io",
    ]


@pytest.mark.parametrize("so", SCALED, ids=[so["metadata"]["name"] for so in SCALED])
def test_keda_scaled_object_scales_a_pool_on_its_own_lists(so: dict[str, Any]) -> None:
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    target = spec["scaleTargetRef"]["name"]
    _deployment, pool = next((d, p) for d, p in POOLS if d["metadata"]["name"] == target)
    assert spec.get("scaleTargetRef", {}).get("kind", "Deployment") == "Deployment"
    # A pool of the default route keeps one replica: its workers also route SDK
    # records off the plain lists, which its triggers do not see. A routed pool
    # may sleep: the other pools route those records into its ready lists.
    named_route = pool.settings.routing_keys != ("default",)
    floor = 0 if named_route else 1
    assert floor <= spec["minReplicaCount"] <= spec["maxReplicaCount"]

    # exactly the lists the pool's jobs can wait in: the ready lists of the
    # queues it takes that jobs reach (each type on its own route), and on a
    # named route the Go scheduler's list of it (only that route's workers
    # move those on: with zero replicas they must wake the pool)
    keys = Keys(pool.settings.prefix)
    app = example_app()
    expected = {keys.ready(*q) for q in pool.takes(app) & reachable(app)}
    named = [r for r in pool.settings.routing_keys if r != "default"]
    expected |= {keys.route_queue(r, p) for r in named for p in PRIORITIES}
    triggers = spec["triggers"]
    assert {t["type"] for t in triggers} == {"redis"}
    assert {t["metadata"]["listName"] for t in triggers} == expected
    assert len(triggers) == len(expected) >= len(PRIORITIES)

    # the formula sums every trigger (plain triggers would take the max)
    modifiers = spec["advanced"]["scalingModifiers"]
    names = [t["name"] for t in triggers]
    assert sorted(x.strip() for x in modifiers["formula"].split("+")) == sorted(names)
    assert modifiers["metricType"] == "AverageValue"
    assert float(modifiers["target"]) > 0
    for trigger in triggers:
        assert set(trigger) <= {"type", "name", "metadata", "authenticationRef", "metricType"}
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), "strings only"
        assert float(trigger["metadata"]["listLength"]) > 0


@pytest.mark.parametrize("so", SCALED, ids=[so["metadata"]["name"] for so in SCALED])
def test_keda_reaches_the_same_redis_as_the_workers(so: dict[str, Any]) -> None:
    auths = by_kind(DOCS, "TriggerAuthentication")
    secrets = by_kind(DOCS, "Secret")
    _, pool = next(
        (d, p) for d, p in POOLS if d["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"]
    )
    url = urlsplit(str(pool.settings.broker_url))
    for trigger in so["spec"]["triggers"]:
        auth = auths[trigger["authenticationRef"]["name"]]
        params = {}
        for ref in auth["spec"]["secretTargetRef"]:
            data = secret_data(secrets[ref["name"]])
            assert ref["key"] in data, ref
            params[ref["parameter"]] = data[ref["key"]]
        assert params["address"] == f"{url.hostname}:{url.port}"
        assert params["password"] == (url.password or "")
        assert trigger["metadata"]["databaseIndex"] == (url.path.strip("/") or "0")


# -- Redis -------------------------------------------------------------------------------
def test_in_cluster_redis_is_durable() -> None:
    conf_map = by_kind(DOCS, "ConfigMap")["bananas-redis-conf"]["data"]["redis.conf"]
    conf = dict(
        line.split(None, 1) for line in conf_map.splitlines() if line and not line.startswith("#")
    )
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] == "everysec"
    assert conf["maxmemory-policy"] == "noeviction"
    statefulset = by_kind(DOCS, "StatefulSet")["bananas-redis"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]]
    assert mounts[claims[0]] == conf["dir"] == "/data"
    assert container["image"].startswith("redis:7")
    service = by_kind(DOCS, "Service")["bananas-redis"]
    _, pool = POOLS[0]
    host = urlsplit(str(pool.settings.broker_url)).hostname or ""
    assert host.split(".")[0] == service["metadata"]["name"]
    assert host.split(".")[1] == service["metadata"]["namespace"]
