"""Find the job handlers: the --app / BANANAS_APP target plus every entry point
in the `bananas.processors` group, so adding a processor needs no other change.

An entry point may name a Bananas app (its handlers are taken), a callable
taking the app (it registers handlers itself), or a module (every Bananas app
defined in it is taken).
"""

from __future__ import annotations

import importlib
import sys
import traceback
import types
from importlib.metadata import entry_points
from pathlib import Path

from .app import Bananas
from .errors import AppLoadError

ENTRY_POINT_GROUP = "bananas.processors"
# Frames in these are not where an app's error is: Bananas' own code, and the
# import machinery between `load_app` and the app module.
_NOT_THE_APP = (Path(__file__).resolve().parent, Path(importlib.__file__).resolve().parent)


def load_app(target: str | None) -> Bananas:
    """Import `module:attribute` (attribute defaults to `app`) and merge processors."""
    app = _import_target(target) if target else Bananas()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:
            raise AppLoadError(
                f"processor entry point {entry.name!r} ({entry.value}) failed to load: "
                f"{describe_error(exc)}"
            ) from exc
        _merge(app, loaded, entry.name)
    return app


def _import_target(target: str) -> Bananas:
    module_name, _, attribute = target.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: the current directory is importable
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        # Whatever the module raises while it is imported (a syntax error, a
        # BananasError from @app.job, a missing dependency) is a configuration
        # error: one line naming where, never a traceback through click.
        raise AppLoadError(
            f"--app {target!r}: cannot import module {module_name!r}: {describe_error(exc)}"
        ) from exc
    obj: object = module
    for part in (attribute or "app").split("."):
        if not hasattr(obj, part):
            raise AppLoadError(f"--app {target!r}: module {module_name!r} has no {part!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, Bananas):
        raise AppLoadError(f"--app {target!r} is a {type(obj).__name__}, not a Bananas app")
    return obj


def describe_error(exc: BaseException) -> str:
    """`Type: message (file:line)`, one line. The place is the app's code: the
    offending line of a syntax error, else the innermost frame outside Bananas
    and the import machinery (none for a module that does not exist)."""
    message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    text = " ".join(f"{type(exc).__name__}: {message}".split())
    where = _location(exc)
    return f"{text} ({where})" if where else text


def _location(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    place = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        if name.startswith("<"):  # "<frozen importlib._bootstrap>" and the like
            continue
        if any(Path(name).resolve().is_relative_to(d) for d in _NOT_THE_APP):
            continue
        place = f"{name}:{frame.lineno}"
    return place


def _merge(app: Bananas, loaded: object, name: str) -> None:
    if isinstance(loaded, Bananas):
        app.include(loaded)
    elif isinstance(loaded, types.ModuleType):
        for value in vars(loaded).values():
            if isinstance(value, Bananas) and value is not app:
                app.include(value)
    elif callable(loaded):
        loaded(app)
    else:
        raise AppLoadError(
            f"processor entry point {name!r} is a {type(loaded).__name__}: expected a Bananas "
            "app, a module or a function taking the app"
        )
