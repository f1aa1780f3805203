"""Client side of a benchmark, run inside one library's virtualenv.

    python client.py LIB enqueue --task noop --n 20000 --mode single|batch [--queue Q]
    python client.py LIB rate --task stamp --n 2000 --rate 200 [--queue Q] [--go-key K]
        [--stop-key K]

LIB names a module `<LIB>_app` next to this file exposing `Client` (sync) or
`AsyncClient` (asyncio) with `send(task, queue, t)`, `send_many(task, queue, count)`
(only where the library has a batch API; `HAS_BATCH` says) and `close()`.
Prints one JSON line with the figures; the harness reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
from typing import Any

import redis

CHUNK = 1000  # jobs per batch call


def enqueue(client: Any, args: argparse.Namespace, has_batch: bool) -> dict[str, Any]:
    if args.warmup:  # connect, load scripts, warm caches: not timed
        client.send(args.task, args.queue, time.time())
    batch = args.mode == "batch" or (args.mode == "fastest" and has_batch)
    if batch and not has_batch:
        return {"error": "no batch enqueue API"}
    started = time.perf_counter()
    if batch:
        left = args.n
        while left > 0:
            size = min(CHUNK, left)
            client.send_many(args.task, args.queue, size)
            left -= size
    else:
        for _ in range(args.n):
            client.send(args.task, args.queue, time.time())
    return {"n": args.n, "seconds": time.perf_counter() - started}


async def enqueue_async(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    if args.mode == "batch":
        return {"error": "no batch enqueue API"}
    if args.warmup:
        await client.send(args.task, args.queue, time.time())
    started = time.perf_counter()
    for _ in range(args.n):
        await client.send(args.task, args.queue, time.time())
    return {"n": args.n, "seconds": time.perf_counter() - started}


def _stopper(args: argparse.Namespace) -> redis.Redis | None:
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]) if args.stop_key else None


def _wait_go(args: argparse.Namespace) -> None:
    """Block until the harness sets the go key (so this process's start-up is not timed)."""
    if not args.go_key:
        return
    r = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    deadline = time.monotonic() + 120
    while not r.exists(args.go_key) and time.monotonic() < deadline:
        time.sleep(0.002)


def rate(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Send at a steady rate on an absolute schedule, each job carrying its send time."""
    stop = _stopper(args)
    client.send("noop", "default", time.time())  # warm the connection
    _wait_go(args)
    period, late, sent = 1.0 / args.rate, 0.0, 0
    started = time.perf_counter()
    for i in range(args.n):
        pause = started + i * period - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            late = max(late, -pause)
        if stop is not None and i % 10 == 0 and stop.exists(args.stop_key):
            break
        client.send(args.task, args.queue, time.time())
        sent += 1
    return {"sent": sent, "seconds": time.perf_counter() - started, "max_late_s": late}


async def rate_async(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    stop = _stopper(args)
    await client.send("noop", "default", time.time())
    _wait_go(args)
    period, late, sent = 1.0 / args.rate, 0.0, 0
    started = time.perf_counter()
    for i in range(args.n):
        pause = started + i * period - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        else:
            late = max(late, -pause)
        if stop is not None and i % 10 == 0 and stop.exists(args.stop_key):
            break
        await client.send(args.task, args.queue, time.time())
        sent += 1
    return {"sent": sent, "seconds": time.perf_counter() - started, "max_late_s": late}


async def run_async(module: Any, args: argparse.Namespace) -> dict[str, Any]:
    client = module.AsyncClient()
    await client.start()
    try:
        if args.op == "enqueue":
            return await enqueue_async(client, args)
        return await rate_async(client, args)
    finally:
        await client.close()


def run_sync(module: Any, args: argparse.Namespace) -> dict[str, Any]:
    client = module.Client()
    try:
        if args.op == "enqueue":
            return enqueue(client, args, bool(getattr(module, "HAS_BATCH", False)))
        return rate(client, args)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("lib")
    parser.add_argument("op", choices=("enqueue", "rate"))
    parser.add_argument("--task", default="noop")
    parser.add_argument("--queue", default="default")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--mode", choices=("single", "batch", "fastest"), default="single")
    parser.add_argument("--warmup", action="store_true")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--stop-key", default="")
    parser.add_argument("--go-key", default="")
    args = parser.parse_args()
    module = importlib.import_module(f"{args.lib}_app")
    if hasattr(module, "AsyncClient"):
        out = asyncio.run(run_async(module, args))
    else:
        out = run_sync(module, args)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
