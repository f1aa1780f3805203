"""Loading the Lua state transitions (lua/*.lua), once per process.

A script may contain `-- @include <file>.lua`, replaced by that file's text,
so shared helpers (routing, burying, the clock) have one source. The typed
wrapper of each script is in scripts.py (a job's own transitions) or
upkeep_scripts.py (the ones around them), slot_* in slots.py; all build their calls with `call`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str


@dataclass(frozen=True, slots=True)
class Call:
    """One EVALSHA: the script and its KEYS / ARGV."""

    script: LuaScript
    keys: list[str]
    args: list[Any]


def read_source(name: str) -> str:
    """The text of lua/<name> as stored (includes not expanded)."""
    return resources.files("bananas.brokers").joinpath("lua", name).read_text(encoding="utf-8")


@cache
def load(name: str) -> LuaScript:
    lines = []
    for line in read_source(f"{name}.lua").splitlines():
        if line.startswith("-- @include "):
            lines.append(read_source(line.removeprefix("-- @include ").strip()))
        else:
            lines.append(line)
    source = "\n".join(lines) + "\n"
    return LuaScript(name, source, hashlib.sha1(source.encode()).hexdigest())


def call(name: str, keys: list[str], args: list[Any]) -> Call:
    return Call(load(name), keys, args)


def flat(groups: Sequence[Sequence[Any]]) -> list[Any]:
    """A repeated KEYS / ARGV group (`per lease: id, token`) as sent."""
    return [value for group in groups for value in group]


# Every state transition in lua/ (the files not named `_*`, which are included
# ones); tests/test_broker_redis.py checks this against the files and that each
# has exactly one wrapper.
SCRIPT_NAMES = (
    "enqueue",
    "enqueue_unique",
    "dequeue",
    "extend",
    "complete",
    "retry",
    "bury",
    "requeue",
    "progress",
    "recover",
    "fail_stalled",
    "move_due",
    "route_plain",
    "replay",
    "delete_dead",
    "heartbeat",
    "prune_workers",
    "claim",
    "cancel",
    "cancelled",
    "cancel_check",
    "wf_enqueue",
    "wf_complete",
    "wf_cancel",
    "wf_add",
    "slot_acquire",
    "slot_release",
    "slot_extend",
    "slot_park",
    "slot_resume",
    "rate_admit",
    "rate_park",
)
