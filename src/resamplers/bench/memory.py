"""Peak memory of a CPU workload, from the process's resident-set high-water mark.

PyTorch's CPU allocator uses ``malloc``; glibc then serves large blocks with ``mmap`` and
returns them on ``free`` once the mmap threshold is fixed, so the growth of the kernel's
high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident set
before the run is the run's peak extra memory.  Linux only: elsewhere the measure is
``None``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from pathlib import Path

__all__ = ["fix_malloc_mmap_threshold", "peak_extra_bytes"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def fix_malloc_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """Stop glibc from raising its mmap threshold, so freed large blocks leave the RSS."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _status_bytes(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_extra_bytes(fn: Callable[[], object]) -> int | None:
    """Peak memory ``fn()`` adds over what is resident before it runs (``None`` if unsupported)."""
    try:
        _CLEAR_REFS.write_text("5")
        before = _status_bytes("VmRSS:")
    except (OSError, KeyError):
        return None
    fn()
    return max(0, _status_bytes("VmHWM:") - before)
