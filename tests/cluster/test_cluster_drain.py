"""Issue 16 acceptance: 20,000 jobs through 2 worker processes on a
3-primary/3-replica Redis Cluster; each runs once, and every primary holds at
least 20 % of them. Nothing here kills or reshards a node: it runs on the
session's shared cluster, flushed (`shared_bed`)."""

from __future__ import annotations

import time

from cluster.bed import (
    Bed,
    enqueue_ticks,
    layout,
    records_per_primary,
    wait_drained,
)

N = 20_000


def test_20000_jobs_two_workers_each_once_spread_over_every_primary(shared_bed: Bed) -> None:
    bed = shared_bed
    t0 = time.monotonic()
    jobs = enqueue_ticks(N)
    enqueued_s = time.monotonic() - t0
    # Where the records are, counted on each primary before any worker runs:
    # SCAN of the node itself, then cross-checked against the partition map.
    stored = records_per_primary(bed.cluster)
    assert sum(stored.values()) == N, stored
    assert len(stored) == 3
    for port, held in stored.items():
        assert held >= 0.20 * N, f"primary {port} holds {held} of {N} jobs: {stored}"
    sample = list(jobs.values())[:200]
    lay = layout(bed.cluster)
    computed = {port: 0 for port in stored}
    for job_id in sample:
        computed[lay.primary(job_id)] += 1
    assert all(computed.values()), computed  # the sample alone reaches every primary

    workers = [bed.start_worker("--concurrency", "50", LOG_LEVEL="warning") for _ in range(2)]
    took = wait_drained(bed, N, timeout=90)
    log = bed.runlog(list(jobs))
    assert log.lost == []
    assert log.duplicated == {}, f"{len(log.duplicated)} ran twice: {bed.workers.repeat_causes()}"
    pids = {pid for entries in log.runs.values() for pid, _ in entries}
    assert pids == {w.pid for w in workers}  # both workers took part
    assert all(w.proc.poll() is None for w in workers)
    share = {port: f"{held / N:.1%}" for port, held in stored.items()}
    print(
        f"\nCLUSTER drain: {N} jobs, 2 workers x 50, enqueue {N / enqueued_s:,.0f} jobs/s, "
        f"drain {took:.2f} s = {N / took:,.0f} jobs/s; records per primary {share}"
    )
