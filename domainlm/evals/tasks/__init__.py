"""Eval tasks: built-in benchmarks (one module per vertical + general + held-out) and user task files."""

from domainlm.evals.tasks.base import Item, Task
from domainlm.evals.tasks.files import TaskFile, load_task_file
from domainlm.evals.tasks.registry import TaskContext, build_task, register_task, task_names

__all__ = ["Item", "Task", "TaskContext", "TaskFile", "build_task", "load_task_file", "register_task", "task_names"]
