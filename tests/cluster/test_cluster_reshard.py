"""Issue 16 acceptance: a slot migration (`redis-cli --cluster reshard`)
during a drain, with a producer enqueueing through it: nothing lost (every
job runs at least once; duplicates are printed), no worker dies. Jobs of a
type no worker serves yet are queued through the migration too, so keys
that hold work certainly move, whatever the drain's pace.

The slots moved are the first 2,000 of the primary serving slot 0, which
hold partitions 0 and 1 and the home keys (registry, types) of the default
16 partitions: the test checks that partitions did change primary."""

from __future__ import annotations

import signal
import time
from collections import Counter

from support import wait_for

from cluster.bed import (
    Bed,
    Producer,
    crashes,
    enqueue_ticks,
    layout,
)

N = 10_000
PARKED = 2_000  # `late` jobs: no worker takes them until the migration is over
SLOTS = 2_000
AFTER = 400  # enqueues acknowledged after the migration before the producer stops


def test_slot_migration_during_drain_loses_nothing(bed: Bed) -> None:
    before = enqueue_ticks(N, prefix="b")
    parked = enqueue_ticks(PARKED, prefix="late", job_type="late")
    lay = layout(bed.cluster)
    source = lay.owner[0]
    target = max(p for p in bed.cluster.primaries() if p != source)
    producer = Producer("p")
    producer.start()
    try:
        workers = [bed.start_worker("--concurrency", "10", LOG_LEVEL="warning") for _ in range(2)]
        wait_for(lambda: bed.ran() >= 500, 60, interval=0.01, message="the drain under way")
        t0, began_at = time.monotonic(), time.time()
        bed.cluster.reshard(source, target, SLOTS)
        reshard_s = time.monotonic() - t0
        moved_at = time.time()
        wait_for(
            lambda: producer.acked_since(moved_at) >= AFTER,
            60,
            interval=0.05,
            message=f"{AFTER} enqueues acknowledged after the migration",
        )
    finally:
        producer.stop()
    assert producer.unexpected == [], producer.unexpected
    now = layout(bed.cluster)
    moved = [p for p, slot in enumerate(lay.slots) if lay.owner[slot] != now.owner[slot]]
    assert moved and all(now.owner[lay.slots[p]] == target for p in moved), moved
    acked = {key: job_id for key, job_id, _ in producer.acked}
    # Queued jobs moved with their partitions' keys (whatever the drain's
    # pace: the `late` jobs wait for a worker of their own)...
    view = bed.view()
    assert view.count("queued", "late") == PARKED
    in_moved = [k for k, job_id in parked.items() if lay.part(job_id) in moved]
    assert in_moved
    # ...and are served from the new primary.
    workers.append(bed.start_worker(app="apps.clustered:later", LOG_LEVEL="warning"))

    keys = list(before) + list(acked) + list(parked)
    ids = {**before, **acked, **parked}

    def settled() -> bool:
        idle = sum(view.count(s) for s in ("queued", "running", "scheduled")) == 0
        return idle and not bed.runlog(keys).lost

    wait_for(settled, 60, interval=0.2, message="every job run and none pending")
    for w in workers:
        assert w.proc.poll() is None, f"worker {w.pid} died:\n{w.output()[-3000:]}"
    for w in workers:
        w.signal(signal.SIGTERM)
        assert w.wait(30) == 0, w.output()[-3000:]
        assert crashes(w) == [], crashes(w)
    log = bed.runlog(keys)
    assert log.lost == []
    assert [k for k in parked if len(log.runs[k]) != 1] == []
    # The drain went on while slots moved, on the moved partitions too.
    during = [k for k, runs in log.runs.items() if began_at <= runs[0][1] <= moved_at]
    during_moved = [k for k in during if lay.part(ids[k]) in moved]
    assert during, f"no job ran during the {reshard_s:.1f} s migration"
    late_moved = [
        k for k, job_id, at in producer.acked if at >= moved_at and lay.part(job_id) in moved
    ]
    assert late_moved, "no job enqueued after the migration landed on a moved partition"
    repeats = bed.workers.repeat_causes()
    causes = Counter(str(e.get("event")) for e in repeats)
    errors = sorted({str(e.get("error"))[:300] for e in repeats if e.get("error")})
    print(
        f"\nCLUSTER reshard: {SLOTS} slots {source} -> {target} in {reshard_s:.1f} s during a "
        f"drain of {N} + {len(acked)} produced ({producer.failed} enqueues refused, slowest "
        f"{producer.longest:.2f} s); partitions moved {moved} with {len(in_moved)} parked jobs, "
        f"{len(during)} jobs ran during it ({len(during_moved)} of moved partitions); "
        f"lost {len(log.lost)}, "
        f"ran more than once {len(log.duplicated)}; why a job can run again: "
        f"{dict(causes)} {errors}"
    )
