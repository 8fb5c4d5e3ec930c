"""Eval tasks: built-in benchmarks (one module per vertical + general + held-out) and user task files.

Names are imported on first use, so `domainlm.evals.tasks.base` (what prompts and backends need) loads without the
config machinery.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Item": "base", "Task": "base", "TaskFile": "files", "load_task_file": "files",
    "TaskContext": "registry", "build_task": "registry", "register_task": "registry", "task_names": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
