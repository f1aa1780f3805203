"""Load the Lua state transitions from lua/*.lua, once per process.

A script may contain `-- @include <file>.lua`, replaced by that file's text,
so shared helpers (routing, burying) have one source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


@cache
def load(name: str) -> LuaScript:
    lines = []
    for line in _read(f"{name}.lua").splitlines():
        if line.startswith("-- @include "):
            lines.append(_read(line.removeprefix("-- @include ").strip()))
        else:
            lines.append(line)
    source = "\n".join(lines) + "\n"
    return LuaScript(name, source, hashlib.sha1(source.encode()).hexdigest())


SCRIPT_NAMES = (
    "enqueue",
    "dequeue",
    "extend",
    "complete",
    "retry",
    "bury",
    "requeue",
    "recover",
    "move_due",
    "route_plain",
    "replay",
    "delete_dead",
    "prune_workers",
)
