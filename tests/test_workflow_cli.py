"""`bananas workflow [ID] [--json]` against real workers on both brokers: the
tree of a chain and of a chord (nesting as built: chain steps in order,
group members, the chord's header and callback), each step's state,
attempts and duration, a failed workflow's failing step and error; an
unknown id; the list of running workflows with the counts per state; the
workflow line of `bananas status`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import Backend, WorkerFactory, both_brokers, wait_for
from topology import Cluster

from bananas import Bananas, WorkflowFailed, chain, chord, group
from bananas.brokers.redis.partitions import partition_of
from bananas.brokers.workflow_records import StepView
from bananas.config import Settings
from bananas.dashboard.workflow_tree import build_tree

pytestmark = pytest.mark.timeout(120)

APP_PATH = "apps.workflows:app"


def _json(workers: WorkerFactory, *args: str) -> dict[str, Any]:
    shown = workers.cli("workflow", *args, "--json")
    assert shown.returncode == 0, shown.stderr
    data: dict[str, Any] = orjson.loads(shown.stdout)
    return data


@both_brokers
def test_the_tree_of_a_chain_and_of_a_failed_chord(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    workers.start(APP_PATH, "--concurrency", "4")
    ok = chain(
        app.spec("add", x=1),
        group([app.spec("add", x=10), app.spec("add", x=20)]),
        app.spec("ident", i=5),
    ).enqueue()
    ok.result(timeout=30)
    bad = chord(
        [app.spec("square", i=2), app.spec("boom", k="cli"), app.spec("square", i=3)],
        app.spec("collect", k="cli"),
    ).enqueue()
    with pytest.raises(WorkflowFailed):
        bad.result(timeout=30)

    data = _json(workers, ok.id)
    assert (data["id"], data["state"], data["policy"]) == (ok.id, "completed", "fail")
    assert (data["done"], data["total"]) == (4, 4)
    tree = data["tree"]
    assert tree["kind"] == "chain"
    first, middle, last = tree["children"]
    assert first["kind"] == "step" and first["name"] == "add" and first["id"] == ok.step_ids[0]
    assert middle["kind"] == "group" and [c["id"] for c in middle["children"]] == ok.step_ids[1:3]
    assert last["id"] == ok.step_ids[3]
    for step in data["steps"]:
        assert step["state"] == "completed" and step["attempts"] == 1
        assert step["duration_ms"] is not None and step["started_at"] <= step["finished_at"]

    data = _json(workers, bad.id)
    assert data["state"] == "failed"
    failed = bad.step_ids[1]
    assert data["failed_step"] == failed and "boom cli" in data["error"]
    tree = data["tree"]
    assert tree["kind"] == "chord"
    header, callback = tree["children"]
    assert header["kind"] == "group" and [c["id"] for c in header["children"]] == bad.step_ids[:3]
    assert callback["id"] == bad.step_ids[3] and callback["state"] == "cancelled"
    states = {c["id"]: c["state"] for c in header["children"]}
    assert states[failed] == "failed"

    plain = workers.cli("workflow", bad.id)
    assert plain.returncode == 0, plain.stderr
    print(plain.stdout)
    lines = plain.stdout.splitlines()
    assert lines[0] == f"workflow  {bad.id}"
    assert "state     failed (on failure: fail)" in lines
    assert any(
        line.startswith(f"failed    step {failed} (boom): ") and "boom cli" in line
        for line in lines
    ), lines
    tree_lines = lines[lines.index("") + 1 :]
    assert tree_lines[0] == "chord"
    assert tree_lines[1] == "├─ group of 3 (header)"
    assert tree_lines[3].startswith("│  ├─ boom  failed  1 attempt")
    assert f"[{failed}]" in tree_lines[3] and "boom cli" in tree_lines[3]
    assert tree_lines[5].startswith("└─ collect (callback)  cancelled")

    plain = workers.cli("workflow", ok.id)
    tree_lines = plain.stdout.splitlines()[plain.stdout.splitlines().index("") + 1 :]
    assert tree_lines[0] == "chain"
    assert tree_lines[1].startswith("├─ add  completed  1 attempt  ")
    assert tree_lines[2] == "├─ group of 2" and tree_lines[3].startswith("│  ├─ add  completed")
    assert tree_lines[5].startswith("└─ ident  completed")


@both_brokers
def test_an_unknown_workflow_and_the_list(workers: WorkerFactory, target: Backend) -> None:
    shown = workers.cli("workflow", "no-such-workflow")
    assert shown.returncode == 1
    assert "no workflow 'no-such-workflow' on this broker" in shown.stderr
    app = Bananas(settings=Settings.load())
    # No worker yet: the workflow stays running, listed.
    handle = chain(app.spec("add", x=1), app.spec("add", x=2)).enqueue()
    listing = _json(workers)
    assert listing["running"] == [
        {"id": handle.id, "state": "running", "policy": "fail", "total": 2, "done": 0}
    ]
    assert listing["counts"]["running"] == 1
    plain = workers.cli("workflow")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[0].startswith("workflows  1 running, 0 completed")
    assert handle.id in plain.stdout
    status = workers.cli("status")
    assert "workflows  1 running, 0 completed, 0 failed, 0 cancelled" in status.stdout
    workers.start(APP_PATH)
    assert handle.result(timeout=30) == 3
    wait_for(lambda: _json(workers)["running"] == [], 10, message="the list emptied")
    status_json = orjson.loads(workers.cli("status", "--json").stdout)
    assert status_json["workflows"] == {"running": 0, "completed": 1, "failed": 0, "cancelled": 0}


@both_brokers
def test_nesting_is_read_back_as_built(workers: WorkerFactory, target: Backend) -> None:
    """A chain inside a chord, a group as a chain step, a chord as a chain
    step (no worker: read back from the broker's steps and edges)."""
    app = Bananas(settings=Settings.load())
    handle = chain(
        app.spec("add", x=1),
        group([app.spec("add", x=10), app.spec("add", x=20)]),
        chord(
            [chain(app.spec("ident", i=3), app.spec("add", x=1)), app.spec("ident", i=7)],
            app.spec("collect", k="n"),
        ),
        app.spec("ident", i=0).immutable(),
    ).enqueue()
    ids = handle.step_ids
    tree = _json(workers, handle.id)["tree"]

    def shape(node: dict[str, Any]) -> Any:
        if node["kind"] == "step":
            return ids.index(node["id"])
        return {node["kind"]: [shape(c) for c in node["children"]]}

    assert shape(tree) == {
        "chain": [
            0,
            {"group": [1, 2]},
            {"chord": [{"group": [{"chain": [3, 4]}, 5]}, 6]},
            7,
        ]
    }
    assert [s["state"] for s in _json(workers, handle.id)["steps"]] == ["queued"] + ["waiting"] * 7


def _step(i: int, deps: list[int], inputs: str = "") -> StepView:
    return StepView(str(i), "t", "waiting", tuple(str(d) for d in deps), inputs=inputs)


def test_big_trees_are_read_back_fast() -> None:
    """10,000 chain steps (no recursion limit), a 10,000-member chord."""
    started = time.monotonic()
    long_chain = build_tree([_step(i, [i - 1] if i else []) for i in range(10_000)])
    assert long_chain.kind == "chain" and len(long_chain.children) == 10_000
    members = [_step(i, []) for i in range(10_000)]
    big = build_tree([*members, _step(10_000, list(range(10_000)), "results")])
    assert big.kind == "chord"
    header, callback = big.children
    assert header.kind == "group" and len(header.children) == 10_000
    assert callback.step is not None and callback.step.id == "10000"
    dag = build_tree([_step(0, []), _step(1, []), _step(2, [0]), _step(3, [0, 1])])
    assert dag.kind == "steps" and len(dag.children) == 4  # a DAG that is no canvas: listed
    assert time.monotonic() - started < 5


def test_the_cli_on_a_redis_cluster(redis_cluster: Cluster, tmp_path: Path) -> None:
    """Workflows in several partitions: each tree read from its own, the
    counts and the running list gathered over all of them."""
    redis_cluster.flushall()
    factory = WorkerFactory(redis_cluster.url, tmp_path, sink_url=f"sqlite:///{tmp_path}/sink.db")
    app = Bananas(settings=Settings(broker_url=redis_cluster.url))
    try:
        waiting = [chain(app.spec("add", x=i), app.spec("add", x=1)).enqueue() for i in range(6)]
        assert len({partition_of(h.id, 3) for h in waiting}) > 1
        listing = _json(factory)
        assert sorted(r["id"] for r in listing["running"]) == sorted(h.id for h in waiting)
        assert listing["counts"]["running"] == 6
        factory.start(APP_PATH, "--concurrency", "4")
        bad = chord([app.spec("boom", k="cl"), app.spec("square", i=1)], app.spec("collect"))
        failed = bad.enqueue()
        with pytest.raises(WorkflowFailed):
            failed.result(timeout=30)
        assert [h.result(timeout=30) for h in waiting] == [i + 1 for i in range(6)]
        data = _json(factory, failed.id)
        assert data["state"] == "failed" and data["failed_step"] == failed.step_ids[0]
        assert data["tree"]["kind"] == "chord"
        assert _json(factory, waiting[0].id)["tree"]["kind"] == "chain"
        status = orjson.loads(factory.cli("status", "--json").stdout)
        assert status["workflows"] == {"running": 0, "completed": 6, "failed": 1, "cancelled": 0}
    finally:
        factory.stop_all()
