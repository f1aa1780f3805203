"""complete.lua's Redis CPU per job, HEAD's script against another commit's.

Both scripts are loaded into one private redis-server and called in
alternation with the same batches (fresh leases each time); SLOWLOG with a
threshold of 0 gives the server-side microseconds of every EVALSHA. The
per-job ARGV each version takes is built by `_args`: change it with the
script's header.

    .venv/bin/python -m bench.complete_ab [BASE_REV] [ROUNDS]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from bench.harness.redis_server import free_port

LUA = Path("src/bananas/brokers/lua")
BATCH = 20  # a busy worker's acks per call (a real drain averages about 20)
RECORD = (
    b'{"id":"x","name":"add","description":"","status":"completed","priority":"normal",'
    b'"created_at":"2026-12-01T10:00:00.000Z","updated_at":"2026-12-01T10:00:01.000Z",'
    b'"attempts":1,"payload":{"a":1,"b":2}}'
)


def _expand(text_of: Callable[[str], str]) -> str:
    lines = []
    for line in text_of("complete.lua").splitlines():
        name = line.removeprefix("-- @include ").strip()
        lines.append(text_of(name) if line.startswith("-- @include ") else line)
    return "\n".join(lines) + "\n"


def _at(rev: str) -> Callable[[str], str]:
    def text_of(name: str) -> str:
        return subprocess.run(
            ["git", "show", f"{rev}:{LUA}/{name}"], capture_output=True, text=True, check=True
        ).stdout

    return text_of


def _args(source: str, job_id: str) -> list[object]:
    common: list[object] = [job_id, "tok", RECORD, "2026-12-01T10:00:01.000Z"]
    if "duration_us" in source:
        durations: list[object] = ["1", "1045"]
    else:
        durations = ["1.045"]
    return [*common, *durations, b"3", f"bananas:result:notify:{job_id}"]


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else "main"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
    sources = {base: _expand(_at(base)), "HEAD": _expand(lambda n: (LUA / n).read_text())}
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.mkdtemp(),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        r = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        r.config_set("slowlog-log-slower-than", 0)
        usec = dict.fromkeys(sources, 0)
        names = list(sources)
        for n in range(rounds):
            if n % 50 == 0:
                r.flushdb()
                shas = {name: r.script_load(src) for name, src in sources.items()}
            for name in names if n % 2 else reversed(names):
                ids = [str(uuid.uuid4()) for _ in range(BATCH)]
                pipe = r.pipeline(transaction=False)
                for i in ids:
                    pipe.zadd("bananas:active", {i: 9e15})
                    pipe.hset("bananas:leases", i, "tok bananas:ready:normal:add")
                pipe.execute()
                keys = ["bananas:active", "bananas:leases", "bananas:stalls", "bananas:completed"]
                args: list[object] = [86400, "bananas:throughput:", 7200]
                for i in ids:
                    keys += [f"bananas:job:{i}", f"bananas:result:{i}"]
                    args += _args(sources[name], i)
                r.slowlog_reset()
                r.evalsha(shas[name], len(keys), *keys, *args)
                usec[name] += sum(
                    e["duration"]
                    for e in r.slowlog_get(5)
                    if e["command"].split()[0].lower() == b"evalsha"
                )
        jobs = rounds * BATCH
        figures = "  ".join(f"{name} {usec[name] / jobs:.3f}" for name in names)
        print(f"complete.lua, Redis usec per job ({jobs} jobs each, batches of {BATCH}): {figures}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
