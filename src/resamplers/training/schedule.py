"""Learning-rate schedules as pure functions of the step (nothing to checkpoint)."""

from __future__ import annotations

import math

__all__ = ["lr_factor", "SCHEDULES"]

SCHEDULES = ("cosine", "step", "constant")


def lr_factor(step: int, total: int, schedule: str, warmup: int = 0) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps.

    ``cosine`` decays to 0; ``step`` multiplies by 0.1 at 2/3 and again at 13/15 of
    training (the official IndexNet milestones, epochs 20 and 26 of 30); ``constant``
    keeps 1.  A linear warm-up over ``warmup`` steps applies to all three.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** ((step >= total * 2 / 3) + (step >= total * 13 / 15))
    if schedule == "cosine":
        span = max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / span)))
    raise ValueError(f"argument `schedule`: expected cosine, step or constant, got {schedule!r}")
