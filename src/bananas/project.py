"""Where the default embedded broker lives, whatever the working directory.

With no BANANAS_BROKER_URL and no REDIS_URL, every process of one project
must open the same SQLite file: a worker started at the project's top and an
`enqueue` from a sub-folder used to open two different `.bananas/queue.db`
files, silently. The rule, checked from the current directory upwards:

  1. the nearest folder that holds a `pyproject.toml`, a `.git` or an
     existing `.bananas/` folder is the project;
  2. the walk never takes (nor passes) the home directory, the system temp
     directory or the filesystem root: a stray `~/.git` (a dotfiles repo) or
     `/tmp/.bananas` must not join unrelated folders into one project;
  3. with no such folder, the current directory.

The default broker is `<project>/.bananas/queue.db`, always shown as an
absolute URL (`sqlite:////abs/path/.bananas/queue.db`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

MARKERS = ("pyproject.toml", ".git", ".bananas")
DEFAULT_DB = Path(".bananas") / "queue.db"


def _ceilings() -> set[Path]:
    found = {Path(Path.cwd().anchor)}
    for place in (os.environ.get("HOME"), tempfile.gettempdir()):
        if place:
            found.add(Path(place).resolve())
    return found


def project_root(start: Path | None = None, ceilings: Iterable[Path] | None = None) -> Path:
    """The project folder of `start` (default: the current directory)."""
    here = (start or Path.cwd()).resolve()
    stop = set(_ceilings() if ceilings is None else ceilings)
    for folder in (here, *here.parents):
        if folder in stop:
            break
        if any((folder / marker).exists() for marker in MARKERS):
            return folder
    return here


def default_sqlite_url(start: Path | None = None) -> str:
    """The default broker's URL: the project's `.bananas/queue.db`, absolute."""
    return f"sqlite:///{project_root(start) / DEFAULT_DB}"
