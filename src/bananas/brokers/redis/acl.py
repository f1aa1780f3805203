"""What a Redis user must be allowed to run, per role, and the start-up probe
that finds what it lacks (docs/deployment.md gives the matching ACL rules).

Redis 7 checks a script's commands one by one as the script runs, so a user
missing one of them fails a transition midway. A worker (and a producer, and
the dashboard) therefore probes at start: every command its role needs, run
once on a throw-away probe key under the key prefix (harmless: a wrong-type
reply is fine, only NOPERM counts), a PUBLISH or SUBSCRIBE on the result
channel pattern, and SCRIPT LOAD + EVALSHA of a no-op script. `ACL DRYRUN`
would say the same but needs an admin user. The commands inside the scripts
are read from the scripts themselves, so the probe follows them.

One pipeline at start; nothing on the hot path.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from enum import StrEnum
from functools import cache
from typing import Any

from redis.exceptions import NoPermissionError

from ...errors import ConfigError
from ...keys import Keys
from .script_loader import SCRIPT_NAMES, load


class Role(StrEnum):
    WORKER = "worker"
    PRODUCER = "producer"
    DASHBOARD = "dashboard"


ROLE_SCRIPTS: dict[Role, tuple[str, ...]] = {
    # Operator actions (the CLI, the dashboard) are not probed at a worker's start.
    Role.WORKER: tuple(n for n in SCRIPT_NAMES if n not in ("replay", "delete_dead", "cancel")),
    Role.PRODUCER: ("enqueue", "enqueue_unique", "wf_enqueue", "wf_add"),
    Role.DASHBOARD: ("prune_workers",),  # the workers page drops silent entries
}
# Commands sent outside the scripts.
ROLE_DIRECT: dict[Role, tuple[str, ...]] = {
    # HSET / HDEL: the rate limits a worker declares at start; ZCOUNT: their use (rates.py).
    Role.WORKER: (
        *("PING", "TIME", "BZPOPMIN", "BLMOVE", "HGETALL", "EXISTS"),
        *("HSET", "HDEL", "ZCOUNT"),
    ),
    # HMGET: a workflow handle's result (its steps' results, docs/workflows.md).
    Role.PRODUCER: ("PING", "HGETALL", "GET", "HMGET"),
    # The pages' reads (redis_inspect.py); replay / delete are the worker's rule.
    Role.DASHBOARD: (
        *("PING", "TIME", "GET", "MGET", "EXISTS", "HGET", "HMGET", "HGETALL", "HVALS"),
        "HEXISTS",  # a workflow's steps: is each one leased (redis/workflows.py)
        *("LLEN", "LRANGE", "LINDEX", "ZCARD", "ZSCORE", "ZRANGE", "ZREVRANGE", "SMEMBERS"),
        "ZCOUNT",  # limits' use: concurrency slots (slots.py), throttled jobs (rates.py)
    ),
}

_CALL = re.compile(r"(?:redis\.p?call|bulk)\('([A-Z]+)'")

# A harmless call per command: K is the probe key (a string), K2 another probe
# key, C a channel under the result-notification prefix.
_PROBES: dict[str, tuple[str, ...]] = {
    "SET": ("K", "1", "PX", "5000"),
    "GET": ("K",),
    "MGET": ("K",),
    "EXISTS": ("K",),
    "EXPIRE": ("K2", "5"),
    "PERSIST": ("K2",),
    "HSET": ("K", "f", "v"),
    "HGET": ("K", "f"),
    "HMGET": ("K", "f"),
    "HDEL": ("K", "f"),
    "HEXISTS": ("K", "f"),
    "HINCRBY": ("K", "f", "1"),
    "HSETNX": ("K", "f", "v"),
    "HLEN": ("K",),
    "HKEYS": ("K",),
    "HGETALL": ("K",),
    "HVALS": ("K",),
    "ZADD": ("K", "0", "m"),
    "ZREM": ("K", "m"),
    "ZSCORE": ("K", "m"),
    "ZCARD": ("K",),
    "ZCOUNT": ("K", "0", "1"),
    "ZRANGE": ("K", "0", "-1"),
    "ZREVRANGE": ("K", "0", "-1"),
    "ZREMRANGEBYRANK": ("K", "0", "-1"),
    "ZREMRANGEBYSCORE": ("K", "0", "0"),
    "ZPOPMIN": ("K",),
    "RPUSH": ("K", "v"),
    "LPUSH": ("K", "v"),
    "RPOP": ("K",),
    "LMPOP": ("1", "K", "RIGHT"),
    "LREM": ("K", "0", "v"),
    "LLEN": ("K",),
    "LRANGE": ("K", "0", "-1"),
    "LINDEX": ("K", "0"),
    "SADD": ("K", "m"),
    "SMEMBERS": ("K",),
    "BZPOPMIN": ("K", "0.01"),
    "BLMOVE": ("K", "K2", "RIGHT", "LEFT", "0.01"),
    "PING": (),
    "TIME": (),
    "PUBLISH": ("C", "probe"),
    "DEL": ("K", "K2"),
}
_NOOP = "#!lua flags=no-writes\nreturn 1\n"
_NOOP_SHA = hashlib.sha1(_NOOP.encode()).hexdigest()


@cache
def script_commands(name: str) -> frozenset[str]:
    """The Redis commands a script calls (includes expanded)."""
    found = set(_CALL.findall(load(name).source))
    if "bulk_mget(" in load(name).source:
        found.add("MGET")
    return frozenset(found)


def needed(role: Role) -> list[str]:
    """The commands a role runs, probe order: SET first and DEL last for the
    roles that write (the probe key is a string that expires), reads on a
    missing key for the read-only dashboard."""
    names = set(ROLE_DIRECT[role])
    for script in ROLE_SCRIPTS[role]:
        names |= script_commands(script)
    if "SET" not in names:
        return sorted(names)
    return ["SET", *sorted(names - {"SET", "DEL"}), "DEL"]


def probe_calls(keys: Keys, role: Role) -> list[tuple[str, ...]]:
    probe = f"{keys.prefix}:probe:{uuid.uuid4().hex}"
    values = {"K": probe, "K2": probe + ":2", "C": keys.notify_channel("probe")}
    return [(name, *(values.get(a, a) for a in _PROBES[name])) for name in needed(role)]


def refusal(user: str, role: Role, call: tuple[str, ...], error: str, keys: Keys) -> str:
    name = call[0]
    if name in ("PUBLISH", "SUBSCRIBE"):
        what = f"channel {keys.notify_prefix}* ({name})"
    elif "key" in error:
        what = f"keys {keys.prefix}:* ({name})"
    else:
        what = f"command {name}"
    return (
        f"Redis user {user!r} may not use {what}, which a {role} needs: {error} "
        f"(the ACL rules per role are in docs/deployment.md)"
    )


def _user(reply: Any) -> str:
    if isinstance(reply, Exception):
        return "?"
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _check(
    user: str, role: Role, calls: list[tuple[str, ...]], replies: list[Any], keys: Keys
) -> None:
    for call, reply in zip(calls, replies, strict=True):
        if isinstance(reply, NoPermissionError):
            raise ConfigError(refusal(user, role, call, str(reply), keys))


def _probe_pipeline(client: Any, calls: list[tuple[str, ...]]) -> Any:
    """One pipeline (sync or asyncio client alike): who am I, can I load and
    run a script, then each probe call; replies are read with errors kept."""
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("ACL", "WHOAMI")
    pipe.execute_command("SCRIPT", "LOAD", _NOOP)
    pipe.execute_command("EVALSHA", _NOOP_SHA, 0)
    for call in calls:
        pipe.execute_command(*call)
    return pipe


async def check_async(client: Any, keys: Keys, role: Role) -> None:
    """Raise ConfigError naming the first permission `role` lacks."""
    calls = probe_calls(keys, role)
    pipe = _probe_pipeline(client, calls)
    whoami, *replies = await pipe.execute(raise_on_error=False)
    user = _user(whoami)
    _check(user, role, [("SCRIPT LOAD",), ("EVALSHA",), *calls], replies, keys)
    if role is Role.PRODUCER:  # result waits subscribe
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(keys.notify_channel("probe"))
            await pubsub.get_message(timeout=0.5)
        except NoPermissionError as exc:
            raise ConfigError(refusal(user, role, ("SUBSCRIBE",), str(exc), keys)) from exc
        finally:
            await pubsub.aclose()


def check_sync(client: Any, keys: Keys, role: Role) -> None:
    """check_async for the sync client (producers calling `app.enqueue`)."""
    calls = probe_calls(keys, role)
    pipe = _probe_pipeline(client, calls)
    whoami, *replies = pipe.execute(raise_on_error=False)
    user = _user(whoami)
    _check(user, role, [("SCRIPT LOAD",), ("EVALSHA",), *calls], replies, keys)
    if role is Role.PRODUCER:  # result waits subscribe
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(keys.notify_channel("probe"))
            pubsub.get_message(timeout=0.5)
        except NoPermissionError as exc:
            raise ConfigError(refusal(user, role, ("SUBSCRIBE",), str(exc), keys)) from exc
        finally:
            pubsub.close()
