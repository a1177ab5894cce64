"""``resamplers compare``: which resampler wins on my task, and what does it cost?"""

from .runner import run_compare
from .tasks import TASKS, Task, get_task, register_task

__all__ = ["TASKS", "Task", "get_task", "register_task", "run_compare"]
