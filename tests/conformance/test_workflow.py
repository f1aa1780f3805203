"""Workflows (docs/workflows.md): the broker transitions of a member's final
state reaching its workflow, on every backend: release of dependents,
the failure policies, cancel, MAX_STALLS, dead-letter deletion, the read
API the views build on, and results kept past RESULT_TTL."""

from __future__ import annotations

from typing import Any

import orjson

from bananas import Bananas, chain, chord, group
from bananas.brokers import Broker
from bananas.brokers.base import CancelOutcome, DeadInfo, Delivery
from bananas.brokers.workflow_records import PlannedStep, WorkflowPlan, member_of
from bananas.config import Settings
from bananas.workflows.canvas import Canvas
from bananas.workflows.plan import plan_of

from .conftest import Brokers
from .kit import expire, fields, lease_one, until

APP = Bananas(settings=Settings())


def t(**payload: Any) -> Any:
    return APP.spec("t", **payload)


async def start(broker: Broker, canvas: Canvas, policy: str = "fail") -> WorkflowPlan:
    await broker.prepare_workflows()
    plan = plan_of(APP, broker, canvas, policy)
    await broker.enqueue_workflow(plan)
    return plan


async def lease(broker: Broker) -> Delivery:
    delivery = await lease_one(broker)
    delivery.workflow = member_of(fields(delivery.raw)) or None  # as the runner does
    return delivery


async def finish(broker: Broker, delivery: Delivery, value: Any) -> bool:
    return await broker.complete(delivery, delivery.raw or b"", orjson.dumps(value), 1.0)


async def bury(broker: Broker, delivery: Delivery, error: str = "ValueError: no") -> bool:
    info = DeadInfo(reason="failed 1 times", error=error, name="t", priority="normal")
    return await broker.bury(delivery, None, info, 1.0)


async def queued(broker: Broker) -> int:
    return sum((await broker.stats()).ready.values())


async def state(broker: Broker, plan: WorkflowPlan) -> str:
    head = await broker.workflow_head(plan.id)
    assert head is not None
    return head.state


async def test_a_chain_releases_each_step_with_the_previous_result(broker: Broker) -> None:
    plan = await start(broker, chain(t(x=1), t(x=2), t(x=3).immutable()))
    a, b, c = (s.id for s in plan.steps)
    assert await queued(broker) == 1  # only the first step is in a ready list
    first = await lease(broker)
    assert first.id == a
    assert await broker.workflow_inputs(plan.id, a) is None
    assert await finish(broker, first, {"n": 1})
    second = await lease(broker)
    assert second.id == b
    assert fields(second.raw)["payload"] == {"x": 2}
    assert await broker.workflow_inputs(plan.id, b) == ("previous", {"n": 1})
    assert await finish(broker, second, 2)
    third = await lease(broker)
    assert await broker.workflow_inputs(plan.id, c) is None  # immutable: nothing
    assert await state(broker, plan) == "running"
    assert await finish(broker, third, "three")
    head = await broker.workflow_head(plan.id)
    assert head is not None and (head.state, head.done, head.total) == ("completed", 3, 3)
    assert await broker.workflow_output(head) == "three"
    done = await broker.get_result(plan.id)  # what a workflow handle waits on
    assert done is not None and done.status == "completed"
    assert await broker.count_workflows("completed") == 1
    assert await broker.count_workflows("running") == 0


async def test_a_chord_fires_its_callback_once_after_the_last_member(broker: Broker) -> None:
    plan = await start(broker, chord(group([t(i=i) for i in range(4)]), t(cb=1)))
    members = [s.id for s in plan.steps[:4]]
    callback = plan.steps[4].id
    leased = [await lease(broker) for _ in range(4)]
    assert await queued(broker) == 0
    for n, d in enumerate(sorted(leased, key=lambda d: members.index(d.id), reverse=True)):
        assert await finish(broker, d, members.index(d.id) * 10)
        assert await finish(broker, d, -1)  # the same ack again (a lost reply): applied once
        if n < 3:
            assert await queued(broker) == 0, "released before its last dependency"
    cb = await lease(broker)
    assert cb.id == callback
    assert await broker.workflow_inputs(plan.id, callback) == ("results", [0, 10, 20, 30])
    assert await finish(broker, cb, "sum")
    head = await broker.workflow_head(plan.id)
    assert head is not None and (head.state, head.done) == ("completed", 5)
    assert await broker.workflow_output(head) == "sum"
    assert await queued(broker) == 0


async def test_a_group_result_is_the_list_in_spec_order(broker: Broker) -> None:
    plan = await start(broker, group([t(i=i) for i in range(3)]))
    order = [s.id for s in plan.steps]
    for _ in range(3):
        d = await lease(broker)
        await finish(broker, d, order.index(d.id))
    head = await broker.workflow_head(plan.id)
    assert head is not None and head.state == "completed"
    assert await broker.workflow_output(head) == [0, 1, 2]


async def test_a_nested_chain_in_a_chord_and_a_group_as_a_chain_step(broker: Broker) -> None:
    canvas = chain(t(s=0), group([t(g=1), t(g=2)]), chord([chain(t(c=1), t(c=2)), t(c=3)], t(cb=1)))
    plan = await start(broker, canvas)
    s0, g1, g2, c1, c2, c3, cb = (s.id for s in plan.steps)
    values = {s0: "s0", g1: "g1", g2: "g2", c1: "c1", c2: "c2", c3: "c3", cb: "cb"}
    seen: list[str] = []
    while len(seen) < 7:
        d = await lease(broker)
        seen.append(d.id)
        await finish(broker, d, values[d.id])
    assert await broker.workflow_inputs(plan.id, g1) == ("previous", "s0")
    assert await broker.workflow_inputs(plan.id, c1) == ("previous", ["g1", "g2"])
    assert await broker.workflow_inputs(plan.id, c2) == ("previous", "c1")
    assert await broker.workflow_inputs(plan.id, cb) == ("results", ["c2", "c3"])
    assert seen.index(cb) == 6 and seen.index(s0) == 0
    assert await state(broker, plan) == "completed"


async def test_a_dead_member_fails_the_workflow_and_cancels_the_rest(broker: Broker) -> None:
    plan = await start(broker, chord(group([t(i=i) for i in range(3)]), t(cb=1)))
    a, b, c, cb = (s.id for s in plan.steps)
    first = await lease(broker)  # running
    second = await lease(broker)  # running: it will be buried
    assert await bury(broker, second)
    head = await broker.workflow_head(plan.id)
    assert head is not None
    assert (head.state, head.failed_step, head.error) == ("failed", second.id, "ValueError: no")
    assert await queued(broker) == 0  # the third member was taken out of its ready list
    third = ({a, b, c} - {first.id, second.id}).pop()
    for gone in (third, cb):
        result = await broker.get_result(gone)
        assert result is not None and result.status == "cancelled"
    assert await broker.cancel_requests([first.id]) == [first.id]  # the running one: told
    assert await broker.settle_cancelled(first, None, 1.0)
    view = await broker.workflow(plan.id)
    assert view is not None
    states = {s.id: s.state for s in view.steps}
    assert states == {
        first.id: "cancelled",
        second.id: "failed",
        third: "cancelled",
        cb: "cancelled",
    }
    assert view.done == view.total == 4
    assert await broker.count_workflows("failed") == 1
    done = await broker.get_result(plan.id)
    assert done is not None and done.status == "failed"


async def test_on_failure_continue_runs_the_callback_with_the_error(broker: Broker) -> None:
    plan = await start(broker, chord(group([t(i=0), t(i=1)]), t(cb=1)), policy="continue")
    a, _, cb = (s.id for s in plan.steps)
    one, two = await lease(broker), await lease(broker)
    await bury(broker, one)
    assert await state(broker, plan) == "running"
    await finish(broker, two, "fine")
    callback = await lease(broker)
    assert callback.id == cb
    kind, results = await broker.workflow_inputs(plan.id, cb) or ("", None)
    failed = {"error": "ValueError: no", "step": one.id, "state": "failed"}
    assert kind == "results"
    assert results == ([failed, "fine"] if one.id == a else ["fine", failed])
    await finish(broker, callback, 1)
    assert await state(broker, plan) == "completed"


async def test_a_member_cancelled_by_its_id_fails_the_workflow(broker: Broker) -> None:
    plan = await start(broker, chain(t(x=1), t(x=2)))
    a, b = (s.id for s in plan.steps)
    assert await broker.cancel(a) == CancelOutcome.CANCELLED
    head = await broker.workflow_head(plan.id)
    assert head is not None and (head.state, head.failed_step) == ("failed", a)
    result = await broker.get_result(b)
    assert result is not None and result.status == "cancelled"
    assert await queued(broker) == 0


async def test_a_running_member_cancelled_settles_its_workflow(broker: Broker) -> None:
    plan = await start(broker, chain(t(x=1), t(x=2)))
    d = await lease(broker)
    assert await broker.cancel(d.id) == CancelOutcome.REQUESTED
    assert await state(broker, plan) == "running"
    assert await broker.settle_cancelled(d, None, 1.0)
    assert await state(broker, plan) == "failed"


async def test_a_member_buried_by_max_stalls_fails_the_workflow(broker: Broker) -> None:
    plan = await start(broker, chain(t(x=1), t(x=2)))
    d = await lease_one(broker, lease=0.05)
    recovered = await expire(broker, max_stalls=1)
    assert recovered.buried == [d.id]
    head = await broker.workflow_head(plan.id)
    assert head is not None and (head.state, head.failed_step) == ("failed", d.id)
    assert "MAX_STALLS=1" in (head.error or "")


async def test_deleting_a_dead_member_leaves_its_workflow_final(broker: Broker) -> None:
    plan = await start(broker, group([t(i=0), t(i=1)]), policy="continue")
    one = await lease(broker)
    await bury(broker, one)
    assert await broker.delete_dead(one.id)
    view = await broker.workflow(plan.id)
    assert view is not None and view.done == 1  # the bury counted it; the delete did not again
    two = await lease(broker)
    await finish(broker, two, 2)
    head = await broker.workflow_head(plan.id)
    assert head is not None and (head.state, head.done) == ("completed", 2)


async def test_a_workflow_cancel_stops_everything_not_finished(broker: Broker) -> None:
    plan = await start(broker, chord(group([t(i=0), t(i=1)]), t(cb=1)))
    running = await lease(broker)
    assert await broker.cancel_workflow(plan.id) == "cancelled"
    assert await broker.cancel_workflow(plan.id) == "cancelled"  # final already
    assert await queued(broker) == 0
    assert await broker.cancel_requests([running.id]) == [running.id]
    assert await finish(broker, running, 1)  # it finished anyway: the workflow stays cancelled
    view = await broker.workflow(plan.id)
    assert view is not None and view.state == "cancelled" and view.done == 3
    assert await broker.cancel_workflow("0c3c7d4e-0000-4000-8000-000000000000") is None


async def test_the_views_read_api(broker: Broker) -> None:
    plan = await start(broker, chain(t(x=1), t(x=2)))
    a, b = (s.id for s in plan.steps)
    view = await broker.workflow(plan.id)
    assert view is not None
    assert (view.state, view.policy, view.total, view.done) == ("running", "fail", 2, 0)
    first, second = view.steps
    assert (first.id, first.name, first.state, first.depends_on) == (a, "t", "queued", ())
    assert (second.id, second.state, second.depends_on, second.job_state) == (
        b,
        "waiting",
        (a,),
        None,
    )
    assert await broker.list_workflows() == [plan.id]
    assert await broker.count_workflows("running") == 1
    d = await lease(broker)
    await finish(broker, d, 1)
    view = await broker.workflow(plan.id)
    assert view is not None
    assert view.steps[0].job_state == "completed" and view.steps[0].finished_at
    assert view.steps[1].state == "queued" and view.steps[1].job_state == "queued"
    assert view.to_dict()["steps"][0]["id"] == a
    assert await broker.workflow("0c3c7d4e-0000-4000-8000-000000000000") is None


async def test_results_a_workflow_needs_outlive_result_ttl(brokers: Brokers) -> None:
    broker = brokers.new(result_ttl=1)
    plan = await start(broker, chord(group([t(i=0), t(i=1)]), t(cb=1)))
    one = await lease(broker)
    await finish(broker, one, "kept")

    async def gone() -> bool:
        return await broker.get_result(one.id) is None

    await until(gone, timeout=10, message="the member's own result to expire")
    two = await lease(broker)
    await finish(broker, two, "second")
    cb = await lease(broker)
    _, results = await broker.workflow_inputs(plan.id, cb.id) or ("", [])
    assert isinstance(results, list) and sorted(results) == ["kept", "second"]
    await finish(broker, cb, "done")
    assert await state(broker, plan) == "completed"

    async def released() -> bool:
        return await broker.workflow_head(plan.id) is None or (
            await broker.workflow_values(plan.id, [one.id]) == {}
        )

    if not broker.url.startswith("sqlite"):  # SQLite purges at the next workflow's write
        await until(released, timeout=10, message="the workflow's keys to expire")


async def test_the_ids_of_a_workflow_share_one_partition(broker: Broker) -> None:
    await broker.prepare_workflows()
    first, ids = broker.new_workflow_ids(50)
    assert len(set(ids)) == 50 and first not in ids
    count = getattr(broker, "count", 0)
    if count:
        from bananas.brokers.redis.partitions import partition_of

        assert {partition_of(i, count) for i in [first, *ids]} == {partition_of(first, count)}


def added(broker: Broker, plan: WorkflowPlan, deps: list[str]) -> PlannedStep:
    step_id = broker.new_member_id(plan.id)
    raw = orjson.loads(APP.build_jobs([APP.spec("t", late=1, _job_id=step_id)])[0].record)
    raw.update({"wf": plan.id, "wf_in": "previous"})
    shape: Any = deps[0] if len(deps) == 1 else deps
    return PlannedStep(step_id, "t", "normal", orjson.dumps(raw), deps, "previous", shape, 99)


async def test_a_step_added_after_running_steps_waits_for_them(broker: Broker) -> None:
    plan = await start(broker, group([t(i=0), t(i=1)]))
    a, b = (s.id for s in plan.steps)
    late = added(broker, plan, [a, b])
    assert await broker.add_step(plan.id, late) == "added"
    assert await broker.add_step(plan.id, late) == "added"  # sent again: once
    first = await lease(broker)
    await finish(broker, first, "x")
    second = await lease(broker)
    assert await queued(broker) == 0
    await finish(broker, second, "y")
    third = await lease(broker)
    assert third.id == late.id
    kind, value = await broker.workflow_inputs(plan.id, late.id) or ("", None)
    assert kind == "previous" and isinstance(value, list) and sorted(value) == ["x", "y"]
    assert await state(broker, plan) == "running"  # the added step counts
    await finish(broker, third, "z")
    head = await broker.workflow_head(plan.id)
    assert head is not None and (head.state, head.total, head.done) == ("completed", 3, 3)


async def test_a_step_added_after_finished_steps_is_ready_at_once(broker: Broker) -> None:
    plan = await start(broker, chain(t(i=0), t(i=1)))
    a, _ = (s.id for s in plan.steps)
    await finish(broker, await lease(broker), "a")
    assert await broker.add_step(plan.id, added(broker, plan, [a])) == "released"
    assert await queued(broker) == 2  # the chain's second step and the added one
    ghost = added(broker, plan, ["0c3c7d4e-0000-4000-8000-000000000000"])
    assert await broker.add_step(plan.id, ghost) == "no_step"


async def test_a_final_workflow_takes_no_step_and_a_failing_one_cancels_it(
    broker: Broker,
) -> None:
    plan = await start(broker, chain(t(i=0), t(i=1)))
    a, _ = (s.id for s in plan.steps)
    late = added(broker, plan, [a])
    assert await broker.add_step(plan.id, late) == "added"
    await bury(broker, await lease(broker))
    result = await broker.get_result(late.id)
    assert result is not None and result.status == "cancelled"
    assert await broker.add_step(plan.id, added(broker, plan, [a])) == "failed"


async def test_a_member_buried_by_max_stalls_settles_even_if_the_upkeep_dies_then(
    broker: Broker, monkeypatch: Any
) -> None:
    """On Redis, recover.lua buries and a second script (fail_stalled.lua)
    writes the failed record: an upkeep killed between the two must not
    leave the workflow waiting on a dead step. Here the second never runs."""
    from bananas.brokers.redis.redis_upkeep import RedisUpkeep

    async def killed_before_the_record(self: object, dead: object) -> None:
        return None

    monkeypatch.setattr(RedisUpkeep, "_fail_stalled", killed_before_the_record)
    plan = await start(broker, chord(group([t(i=0), t(i=1)]), t(cb=1)))
    d = await lease_one(broker, lease=0.05)
    recovered = await expire(broker, max_stalls=1)
    assert recovered.buried == [d.id]
    head = await broker.workflow_head(plan.id)
    assert head is not None and (head.state, head.failed_step) == ("failed", d.id)
    assert "MAX_STALLS=1" in (head.error or "")
