"""Comparison tasks.  Importing this package registers the built-in ones."""

from . import matting, reconstruction, segmentation  # noqa: F401  (registration)
from .base import TASKS, Metric, Preset, RunSpec, Task, get_task, register_task

__all__ = ["TASKS", "Metric", "Preset", "RunSpec", "Task", "get_task", "register_task"]
