"""Peak memory of a CPU workload, from the process's resident-set high-water mark.

PyTorch's CPU allocator uses ``malloc``.  While a peak is measured, glibc serves blocks
above 128 KiB with ``mmap`` and returns them on ``free`` (the mmap threshold fixed low,
the freed heap trimmed first), so the growth of the kernel's high-water mark (``VmHWM``,
reset through ``/proc/self/clear_refs``) over the resident set before the run is the run's
peak extra memory.  Linux only: elsewhere the measure is ``None``.

Timings need the opposite: with the threshold fixed low, every large tensor is fresh
memory and its page faults are timed with it (about 0.4 ms a MiB here), which a training
process, whose glibc has raised its threshold, does not pay.  So between measurements the
bench holds glibc's steady-state thresholds (:func:`steady_state_malloc`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from pathlib import Path

__all__ = ["fix_malloc_mmap_threshold", "peak_extra_bytes", "steady_state_malloc"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# glibc's caps on its dynamic mmap threshold (64-bit): a long-running process that
# frees large blocks settles at 32 MiB, and trims the heap above twice that.
_STEADY_MMAP_THRESHOLD, _STEADY_TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _mallopt(settings: dict[int, int]) -> bool:
    libc = _libc()
    try:
        return libc is not None and all(bool(libc.mallopt(key, value)) for key, value in settings.items())
    except AttributeError:  # not glibc
        return False


def fix_malloc_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """Stop glibc from raising its mmap threshold, so freed large blocks leave the RSS
    (the trim threshold back at glibc's default too)."""
    return _mallopt({_M_MMAP_THRESHOLD: threshold, _M_TRIM_THRESHOLD: 128 * 1024})


def steady_state_malloc() -> bool:
    """Fix glibc's thresholds where a training process's dynamic ones settle, so that
    timed calls reuse freed blocks up to 32 MiB as they would there, instead of mapping
    (and page-faulting) fresh memory for every tensor above 128 KiB."""
    return _mallopt({_M_MMAP_THRESHOLD: _STEADY_MMAP_THRESHOLD, _M_TRIM_THRESHOLD: _STEADY_TRIM_THRESHOLD})


def _status_bytes(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_extra_bytes(fn: Callable[[], object]) -> int | None:
    """Peak memory ``fn()`` adds over what is resident before it runs (``None`` if
    unsupported).  Leaves glibc's mmap threshold fixed low: call
    :func:`steady_state_malloc` before timing anything after it."""
    # Large blocks come from mmap and leave the resident set when freed; the freed heap
    # is handed back first, so reused resident memory does not hide the peak.
    fix_malloc_mmap_threshold()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    try:
        _CLEAR_REFS.write_text("5")
        before = _status_bytes("VmRSS:")
    except (OSError, KeyError):
        return None
    fn()
    return max(0, _status_bytes("VmHWM:") - before)
