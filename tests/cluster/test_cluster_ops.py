"""Operating Bananas on a Redis Cluster: `bananas status` and /metrics add
up the partitions, /readyz follows a primary lost and promoted, and the
refusals (SDK lists holding work, a bad cluster URL) are one clear error
each, never showing a password. A changed REDIS_PARTITIONS: see
test_cluster_partition_count.py."""

from __future__ import annotations

import json
import time

import redis
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, wait_for

from cluster.bed import Bed, app, configure, http_get, layout

PARKED = 300  # "parked" jobs at normal priority: no worker here serves that type
URGENT = 40  # and at high priority
CHOSEN = 5  # with ids the caller chose: all in partition 0


def park(bed: Bed) -> list[str]:
    """Jobs of a type the workers do not serve, so they stay queued; the
    generated ids spread them over every partition."""
    configure()
    specs = [app.spec("parked", n=i) for i in range(PARKED)]
    specs += [app.spec("parked", n=i, _priority="high") for i in range(URGENT)]
    specs += [app.spec("parked", n=i, _job_id=f"order-{i}") for i in range(CHOSEN)]
    ids = [h.id for h in app.enqueue_many(specs)]
    lay = layout(bed.cluster)
    assert lay.count > 1
    assert len({lay.part(i) for i in ids}) == lay.count  # all of them
    return ids


def test_status_sums_partitions_and_lists_workers(shared_bed: Bed) -> None:
    park(shared_bed)
    worker = shared_bed.start_worker()
    worker_id = worker.events("worker.started")[0]["worker_id"]
    wait_for(
        lambda: worker_id in shared_bed.workers.cli("status").stdout,
        15,
        interval=0.2,
        message="the worker in bananas status",
    )
    done = shared_bed.workers.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    depths = {(q["priority"], q["job_type"]): q["depth"] for q in data["queues"]}
    assert depths[("normal", "parked")] == PARKED + CHOSEN
    assert depths[("high", "parked")] == URGENT
    assert [w["id"] for w in data["workers"]] == [worker_id]
    assert data["broker"] == shared_bed.cluster.url
    text = shared_bed.workers.cli("status")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert f"normal     {PARKED + CHOSEN}" in lines
    assert f"high       {URGENT}" in lines
    assert "WORKERS (1)" in lines
    assert any(line.split() == ["normal", "parked", str(PARKED + CHOSEN)] for line in lines)


def test_metrics_of_a_worker_on_a_cluster(shared_bed: Bed) -> None:
    park(shared_bed)
    port = free_port()
    shared_bed.start_worker(HEALTH_PORT=str(port))
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 15, message="/readyz 200")

    def depth() -> dict[tuple[str, str], float]:
        code, body = http_get(port, "/metrics")
        assert code == 200
        out = {}
        for family in text_string_to_metric_families(body):
            if family.name == "bananas_queue_depth":
                for s in family.samples:
                    out[(s.labels["priority"], s.labels["job_type"])] = s.value
            if family.name == "bananas_broker_up":
                assert family.samples[0].value == 1
        return out

    # The snapshot behind /metrics is read every 2 s: the first may predate the jobs.
    got = wait_for(
        lambda: (d := depth()).get(("normal", "parked")) == PARKED + CHOSEN and d,
        15,
        interval=0.2,
        message="bananas_queue_depth summed over the partitions",
    )
    assert got[("high", "parked")] == URGENT


def _role(client: redis.Redis) -> str | None:
    try:
        return str(client.execute_command("ROLE")[0])
    except redis.RedisError:
        return None


def test_readyz_503_while_a_primary_is_down_200_after_promotion(bed: Bed) -> None:
    port = free_port()
    worker = bed.start_worker(HEALTH_PORT=str(port))
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 15, message="/readyz 200")
    victim = bed.cluster.primaries()[0]
    replica = bed.cluster.replica_of(victim)
    killed_at = time.monotonic()
    bed.cluster.kill(victim)
    # Each round: /readyz, then the replica's role. A sample taken before a
    # round that still saw the replica as a replica was taken while no primary
    # served the killed one's partition.
    samples: list[tuple[float, int, object]] = []
    still_replica_at = killed_at
    promoted_at = ready_at = None
    deadline = killed_at + 30
    with bed.cluster.client(replica, timeout=1) as rc:
        while ready_at is None:
            assert time.monotonic() < deadline, f"not ready again 30 s after the kill: {samples}"
            code, body = http_get(port, "/readyz")
            sampled = time.monotonic()
            samples.append((sampled, code, body))
            role = _role(rc)
            if role == "slave":
                still_replica_at = time.monotonic()
            elif role == "master" and promoted_at is None:
                promoted_at = time.monotonic()
            if promoted_at is not None and code == 200 and sampled > promoted_at:
                ready_at = sampled
            time.sleep(0.05)  # a sampling period, not a wait for an outcome
    assert promoted_at is not None
    down = [t for t, code, _ in samples if code == 503]
    assert down and down[0] < still_replica_at, f"/readyz not 503 before the promotion: {samples}"
    # From the first 503 until the promotion, never ready while a partition was out of reach.
    unserved = [(t, code) for t, code, _ in samples if down[0] <= t <= still_replica_at]
    assert {code for _, code in unserved} == {503}, unserved
    assert any("broker unreachable" in str(body) for _, code, body in samples if code == 503)
    assert http_get(port, "/livez")[0] == 200  # alive all along, only not ready
    assert worker.proc.poll() is None
    bed.cluster.wait_failover(victim, timeout=30)
    print(
        f"\nCLUSTER readiness: kill -> 503 {down[0] - killed_at:.2f} s, kill -> promotion "
        f"(ROLE master) {promoted_at - killed_at:.2f} s, promotion -> 200 "
        f"{ready_at - promoted_at:.2f} s (not ready for {ready_at - down[0]:.2f} s)"
    )


def test_worker_refuses_sdk_list_holding_work(shared_bed: Bed) -> None:
    with shared_bed.cluster.cluster_client() as c:
        c.lpush("bananas:queue:normal", "sdk-job-1")
    worker = shared_bed.start_worker(wait=False)
    assert worker.wait(30) == 2
    refused = worker.events("worker.refused")
    assert len(refused) == 1, worker.output()
    assert refused[0]["error"].startswith(
        "Redis Cluster: the SDK list bananas:queue:normal holds 1 job(s)"
    )
    said = [line for line in worker.output().splitlines() if "SDK list" in line]
    assert len(said) == 1, worker.output()
    assert not worker.events("worker.started")
    # An empty SDK list is no reason to refuse.
    with shared_bed.cluster.cluster_client() as c:
        c.delete("bananas:queue:normal")
    shared_bed.start_worker()


BAD_URLS = {  # the URL -> what the error must say is wrong
    "redis+cluster://u:s3cret@127.0.0.1:notaport": "has a bad port 'notaport'",
    "redis+cluster://:s3cret@127.0.0.1:7000/2": "Redis Cluster has only database 0",
    "redis+cluster://u:s3cret@": "no host",
    "redis+cluster://u:s3cret@127.0.0.1:7000,:7001": "host ':7001' has no name",
}


def test_invalid_cluster_url_is_a_clear_error_without_the_password(shared_bed: Bed) -> None:
    worker = ["worker", "--app", "apps.clustered:app"]
    for n, (url, reason) in enumerate(BAD_URLS.items()):
        # status for each; a worker (the same parser, a slower start) for two
        for command in (["status"], worker) if n < 2 else (["status"],):
            done = shared_bed.workers.cli(*command, REDIS_URL=url)
            out = done.stdout + done.stderr
            assert done.returncode == 2, (url, command, out)
            assert reason in out, (url, command, out)
            assert "redis+cluster://[user:password@]host:port[,host:port...]" in out  # allowed
            assert "s3cret" not in out, out
    # Valid, but no node answers: the error names the nodes, not the password.
    done = shared_bed.workers.cli(
        "status", REDIS_URL=f"redis+cluster://u:s3cret@127.0.0.1:{free_port()}"
    )
    assert done.returncode == 1
    assert "no Redis Cluster node answered CLUSTER SLOTS" in done.stderr, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
