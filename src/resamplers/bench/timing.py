"""Timing and machine facts, shared by ``bench`` and ``compare``.

Latencies are medians over repeated runs after warm-up (the median ignores passing
machine load better than the mean).  Candidates compared with each other run
interleaved, so noise hits them alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from ..functional import native_available, native_isa, native_threads

__all__ = ["time_interleaved", "median_ms", "machine_info"]


def time_interleaved(candidates: Sequence[Callable[[], object]], repeats: int, warmup: int) -> list[float]:
    """Median milliseconds of each candidate, running them alternately."""
    for _ in range(warmup):
        for fn in candidates:
            fn()
    samples: list[list[float]] = [[] for _ in candidates]
    for _ in range(repeats):
        for i, fn in enumerate(candidates):
            start = time.perf_counter()
            fn()
            samples[i].append(time.perf_counter() - start)
    return [1000.0 * statistics.median(s) for s in samples]


def median_ms(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    return time_interleaved([fn], repeats, warmup)[0]


def machine_info() -> dict[str, object]:
    """What a timing depends on: versions, threads, CPUs, processor, native kernels."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "system": platform.system(),
        "native_kernels": native_available(),
        "native_isa": native_isa(),
        "native_threads": native_threads(),
    }
