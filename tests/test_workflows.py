"""Workflows with real worker processes (docs/workflows.md), on Redis and
SQLite: a chain passing results along, group and chord results in order,
and every way a member can end: failed for good, dead-lettered by
MAX_STALLS, cancelled, deleted from the dead letters, the last two members
finishing together on two workers, a worker SIGKILLed right after a
member's handler returned. Each ends
in its documented final state, the callback run once or not at all.
(RESULT_TTL shorter than the workflow: RESULT_TTL is at least 5 minutes for
a worker, so that pitfall is proven at the broker, with result_ttl=1, in
tests/conformance/test_workflow.py.)"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas import Bananas, BananasError, WorkflowFailed, chain, chord, group
from bananas.config import Settings

pytestmark = pytest.mark.timeout(180)

APP_PATH = "apps.workflows:app"


def client() -> Bananas:
    return Bananas(settings=Settings.load())


def runs(target: Backend, name: str, k: str) -> int:
    return int(target.sink.hget(f"test:{name}", k) or 0)


@both_brokers
def test_a_chain_of_five_passes_results_along(workers: WorkerFactory, target: Backend) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "4")
    flow = chain(*(app.spec("add", x=x) for x in (1, 2, 3, 4, 5)))
    handle = flow.enqueue()
    assert handle.result(timeout=30) == 15
    view = handle.status()
    assert view is not None and view.state == "completed"
    assert [s.state for s in view.steps] == ["completed"] * 5
    assert [len(s.depends_on) for s in view.steps] == [0, 1, 1, 1, 1]
    assert all(s.attempts == 1 and s.finished_at for s in view.steps)
    assert [runs(target, "add", str(x)) for x in (1, 2, 3, 4, 5)] == [1] * 5

    async def from_async() -> object:
        second = await chain(app.spec("add", x=10), app.spec("add", x=5)).enqueue_async()
        return await second.wait(timeout=30)

    assert asyncio.run(from_async()) == 15


@both_brokers
def test_group_and_chord_results_are_in_spec_order(workers: WorkerFactory, target: Backend) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "8")
    assert group([app.spec("square", i=i) for i in range(10)]).enqueue().result(30) == [
        i * i for i in range(10)
    ]
    flow = chord([app.spec("square", i=i) for i in range(10)], app.spec("collect", k="c"))
    assert flow.enqueue().result(timeout=30) == [i * i for i in range(10)]
    assert runs(target, "callback", "c") == 1
    # Nesting: a chain inside a chord, a group as a chain step.
    nested = chain(
        app.spec("add", x=1),
        group([app.spec("add", x=10), app.spec("add", x=20)]),
        chord(
            [chain(app.spec("ident", i=3), app.spec("add", x=1)), app.spec("ident", i=7)],
            app.spec("collect", k="n"),
        ),
    )
    assert nested.enqueue().result(timeout=30) == [4, 7]


@both_brokers
def test_a_member_that_fails_for_good_fails_the_chord(
    workers: WorkerFactory, target: Backend
) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "4")
    members = [app.spec("slow", k=f"m{i}", seconds=0.0) for i in range(3)]
    flow = chord([*members, app.spec("boom", k="b")], app.spec("collect", k="never"))
    handle = flow.enqueue()
    with pytest.raises(WorkflowFailed, match="boom b") as failed:
        handle.result(timeout=30)
    assert failed.value.state == "failed"
    assert failed.value.step == handle.step_ids[3]
    callback = handle.steps[-1]
    wait_for(lambda: callback.info() is not None, 10, message="the callback cancelled")
    info = callback.info()
    assert info is not None and info.status == "cancelled"
    time.sleep(0.3)  # a callback released by mistake would have run by now
    assert runs(target, "callback", "never") == 0


@both_brokers
def test_on_failure_continue_runs_the_callback_with_the_error(
    workers: WorkerFactory, target: Backend
) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "4")
    flow = chord([app.spec("ident", i=1), app.spec("boom", k="c")], app.spec("collect", k="cont"))
    handle = flow.enqueue(on_failure="continue")
    first, error = handle.result(timeout=30)
    assert first == 1
    assert error == {"error": "ValueError: boom c", "step": handle.step_ids[1], "state": "failed"}
    assert runs(target, "callback", "cont") == 1


@both_brokers
def test_a_member_dead_lettered_by_max_stalls_fails_the_workflow(
    workers: WorkerFactory, target: Backend
) -> None:
    app = client()
    env = {"LEASE_TIMEOUT": "1s", "MAX_STALLS": "2", "LOG_LEVEL": "warning"}
    handle = chord(
        [app.spec("ident", i=1), app.spec("suicide", k="s")], app.spec("collect", k="stall")
    ).enqueue()
    deadline = time.monotonic() + 60
    current = workers.start(APP_PATH, **env)
    while handle.app.broker.sync.get_result(handle.id) is None:
        assert time.monotonic() < deadline, "the workflow never failed"
        if current.proc.poll() is not None:
            current = workers.start(APP_PATH, **env)
        time.sleep(0.05)
    with pytest.raises(WorkflowFailed, match="MAX_STALLS=2") as failed:
        handle.result(timeout=5)
    assert failed.value.step == handle.step_ids[1]
    assert runs(target, "suicide", "s") == 2
    assert runs(target, "callback", "stall") == 0


@both_brokers
def test_a_cancelled_member_fails_the_workflow(workers: WorkerFactory, target: Backend) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "4")
    handle = chain(app.spec("slow", k="long", seconds=30.0), app.spec("add", x=1)).enqueue()
    wait_for(lambda: runs(target, "started", "long") == 1, 30, message="the member running")
    assert handle.steps[0].cancel().value == "cancel_requested"
    with pytest.raises(WorkflowFailed, match="cancelled") as failed:
        handle.result(timeout=10)
    assert failed.value.step == handle.step_ids[0]
    assert runs(target, "add", "1") == 0
    assert runs(target, "finished", "long") == 0


@both_brokers
def test_a_workflow_cancel_stops_what_runs_and_what_waits(
    workers: WorkerFactory, target: Backend
) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "4")
    handle = chord(
        [app.spec("slow", k="w1", seconds=30.0), app.spec("slow", k="w2", seconds=30.0)],
        app.spec("collect", k="wcancel"),
    ).enqueue()
    wait_for(lambda: runs(target, "started", "w1") + runs(target, "started", "w2") == 2, 30)
    assert handle.cancel() == "cancelled"
    with pytest.raises(WorkflowFailed, match="cancelled"):
        handle.result(timeout=5)

    def stopped() -> bool:
        infos = [h.info() for h in handle.steps]
        return all(i is not None and i.status == "cancelled" for i in infos)

    wait_for(stopped, 10, message="every step cancelled")
    assert runs(target, "finished", "w1") + runs(target, "finished", "w2") == 0
    assert runs(target, "callback", "wcancel") == 0


@both_brokers
def test_deleting_a_dead_member_keeps_the_workflow_final(
    workers: WorkerFactory, target: Backend
) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "4")
    handle = chord(
        [app.spec("boom", k="d"), app.spec("ident", i=2)], app.spec("collect", k="deleted")
    ).enqueue()
    with pytest.raises(WorkflowFailed, match="boom d"):
        handle.result(timeout=30)
    dead = handle.step_ids[0]
    done = workers.cli("dlq", "delete", dead)
    assert done.returncode == 0, done.stderr
    view = handle.status()
    assert view is not None and view.state == "failed" and view.done == view.total
    assert runs(target, "callback", "deleted") == 0


@both_brokers
def test_the_last_two_members_finishing_together_fire_the_callback_once(
    workers: WorkerFactory, target: Backend
) -> None:
    """Two workers of one slot each, no prefetch: each takes one member of
    a two-member chord; both return at the same instant (a barrier)."""
    app = client()
    for _ in range(2):
        workers.start(APP_PATH, "--concurrency", "1", WORKER_PREFETCH="0")
    for n in range(10):
        members = [app.spec("barrier", k=f"{n}-{i}", group_key=str(n), size=2) for i in range(2)]
        handle = chord(members, app.spec("collect", k=f"together-{n}")).enqueue()
        assert handle.result(timeout=60) == [f"{n}-0", f"{n}-1"]
    assert [runs(target, "callback", f"together-{n}") for n in range(10)] == [1] * 10
    assert [runs(target, "barrier", f"{n}-{i}") for n in range(10) for i in range(2)] == [1] * 20


@both_brokers
def test_a_worker_killed_right_after_a_member_returned(
    workers: WorkerFactory, target: Backend
) -> None:
    app = client()
    env = {"LEASE_TIMEOUT": "1s"}
    handle = chord(
        [app.spec("die_after_return", k="dying"), app.spec("ident", i=5)],
        app.spec("collect", k="killed"),
    ).enqueue()
    first = workers.start(APP_PATH, **env)
    assert first.wait(30) == -signal.SIGKILL
    workers.start(APP_PATH, **env)
    assert handle.result(timeout=30) == ["dying", 5]
    assert runs(target, "callback", "killed") == 1


@both_brokers
def test_a_workflow_over_two_pools_and_two_routes(workers: WorkerFactory, target: Backend) -> None:
    app = client()
    workers.start(
        APP_PATH,
        "--mode",
        "job-specialized",
        "--job-types",
        "render",
        WORKER_ROUTING_KEYS="gpu",
        TEST_POOL="gpu",
    )
    workers.start(APP_PATH, "--mode", "job-specialized", "--job-types", "upload", TEST_POOL="cpu")
    flow = chain(app.spec("render", k="a", _route="gpu"), app.spec("upload", k="a"))
    assert flow.enqueue().result(timeout=30) == "upload:a:render:a"
    assert runs(target, "pool", "a:gpu") == 1 and runs(target, "pool", "a:cpu") == 1


@both_brokers
def test_a_job_enqueued_with_depends_on_waits_for_a_workflows_steps(
    workers: WorkerFactory, target: Backend
) -> None:
    app = client()
    workers.start(APP_PATH, "--concurrency", "4")
    flow = chain(app.spec("slow", k="dep", seconds=1.0), app.spec("upload", k="c"))
    handle = flow.enqueue()
    first = handle.steps[0]
    after = app.enqueue("upload", k="after", _depends_on=[first])
    assert after.workflow_id == handle.id
    assert after.result(timeout=30) == "upload:after:dep"
    assert handle.result(timeout=30) == "upload:c:dep"  # the chain's own output is unchanged
    with pytest.raises(BananasError, match="already completed"):
        app.enqueue("upload", k="late", _depends_on=[handle])
    with pytest.raises(BananasError, match="not a step of a workflow"):
        app.enqueue("upload", k="plain", _depends_on=[app.enqueue("ident", i=1)])

    async def from_async() -> object:
        second = await chain(app.spec("slow", k="dep2", seconds=0.5)).enqueue_async()
        job = await app.enqueue_async("upload", k="a2", _depends_on=[second])
        return await job.wait(timeout=30)

    assert asyncio.run(from_async()) == "upload:a2:dep2"
