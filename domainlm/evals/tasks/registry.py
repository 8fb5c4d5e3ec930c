"""Built-in tasks register here with one validated call; the runner builds them by name."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from collections.abc import Callable

from domainlm.errors import ConfigError

from domainlm.evals.tasks.base import Task

_BUILDERS: dict[str, tuple[Callable[..., Task], str]] = {}
_MODULES = ("medical", "petrochem", "marine", "general", "heldout", "safety")  # domainlm/evals/tasks/<module>.py
_loaded = False


@dataclass(frozen=True)
class TaskContext:
    vertical: str   # the suite's vertical (general-regression tasks exclude its subjects)
    seed: int       # deterministic sampling


def register_task(name: str, summary: str):
    """Decorator: register `builder(ctx, **params) -> Task` under `name` (lower_snake_case, unique)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"task name {name!r} must be lower_snake_case")

    def wrap(builder: Callable[..., Task]):
        if name in _BUILDERS:
            raise ValueError(f"task {name!r} is registered twice")
        _BUILDERS[name] = (builder, summary)
        return builder

    return wrap


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(f"domainlm.evals.tasks.{module}")
        _loaded = True


def task_names() -> dict[str, str]:
    _load_builtins()
    return {name: summary for name, (_, summary) in sorted(_BUILDERS.items())}


def build_task(name: str, ctx: TaskContext, params: dict | None = None) -> Task:
    _load_builtins()
    if name not in _BUILDERS:
        raise ConfigError(f"unknown task '{name}': built-in tasks are {', '.join(sorted(_BUILDERS))} "
                          "(or give `file: path/to/task.yaml` for your own)")
    builder, _ = _BUILDERS[name]
    try:
        return builder(ctx, **(params or {}))
    except TypeError as exc:
        raise ConfigError(f"task '{name}': bad params {params}: {exc}") from None
