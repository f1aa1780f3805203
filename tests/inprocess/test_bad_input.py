"""Jobs that can never run as they are (no handler for the type, a payload
that does not fit the signature, an unreadable record, a result that is not
JSON) are dead-lettered with the reason, uncharged by retries; the worker
goes on running good jobs beside them."""

from __future__ import annotations

import pytest

from bananas import Bananas, JobSpec
from bananas.brokers.base import NewJob
from bananas.config import Settings

from .conftest import Harness, until
from .jobs import LEDGER

pytestmark = pytest.mark.timeout(60)
CLIENT = Bananas(settings=Settings())  # encodes records as enqueue does, no broker


def mislabelled(job_id: str) -> NewJob:
    """A record naming a type no worker has, in the `note` queue (as an older
    client or a hand-written record could leave it)."""
    [encoded] = CLIENT.build_jobs([JobSpec("no_such_job", {"k": "ghost"}, "normal", job_id=job_id)])
    record = encoded.record
    return NewJob(job_id, "note", "normal", record)


def unreadable(job_id: str) -> NewJob:
    return NewJob(job_id, "note", "normal", b"{not json at all")


async def test_bad_jobs_are_dead_lettered_and_good_ones_run(harness: Harness) -> None:
    running = await harness.start()
    await harness.broker.enqueue([mislabelled("bad-type"), unreadable("bad-record")])
    # A producer that registers the handlers refuses these at enqueue; one
    # that enqueues by name only (CLIENT, an SDK) cannot, so the worker must.
    await harness.broker.enqueue(
        CLIENT.build_jobs(
            [
                CLIENT.spec("add", a=1, _job_id="missing"),  # b is missing
                CLIENT.spec("note", k="n", colour="red", _job_id="extra"),  # no such parameter
            ]
        )
    )
    missing, extra = "missing", "extra"
    unjson = await harness.enqueue("unserializable")
    good = [await harness.enqueue("add", a=i, b=1) for i in range(5)]
    bad = ["bad-type", "bad-record", missing, extra, unjson]
    for job_id in bad:
        await until(lambda j=job_id: _is_dead(harness, j), 20, message=f"{job_id} dead")
    reasons = {}
    for job_id in bad:
        info = await harness.broker.get_dead_info(job_id)
        assert info is not None
        reasons[job_id] = info.reason
    assert "no handler for job type 'no_such_job'" in reasons["bad-type"]
    assert "invalid job record" in reasons["bad-record"]
    assert reasons[missing].startswith("payload does not match add(")
    assert "missing a required argument: 'b'" in reasons[missing]
    assert "unexpected keyword argument 'colour'" in reasons[extra]
    assert "not JSON-serializable" in reasons[unjson]
    # Never run (and never retried): the handlers were not called at all.
    assert "ghost" not in LEDGER.starts and "n" not in LEDGER.starts
    assert [(await harness.result(j)).value() for j in good] == [1, 2, 3, 4, 5]
    assert running.alive
    assert await harness.broker.count_jobs("dead") == len(bad)


async def test_oversized_record_is_dead_lettered_unrun(harness: Harness) -> None:
    # The client allows 1 MiB; this worker only 1 KiB (plus 4 KiB of record).
    running = await harness.start(max_payload_bytes=1024)
    big = await harness.enqueue("note", k="x" * 8000)
    small = await harness.enqueue("note", k="small")
    await until(lambda: _is_dead(harness, big), 20, message="the oversized job dead-lettered")
    info = await harness.broker.get_dead_info(big)
    assert info is not None and "over MAX_PAYLOAD_BYTES=1024" in info.reason
    assert (await harness.result(small)).value() == "small"
    assert list(LEDGER.starts) == ["small"] and running.alive


async def _is_dead(harness: Harness, job_id: str) -> bool:
    return await harness.state(job_id) == "dead"
