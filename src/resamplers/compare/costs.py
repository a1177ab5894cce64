"""The cost phase of a comparison: timings measured after training, interleaved, repeated.

Training-time figures are taken while other runs (or other programs) share the machine;
they are not comparable. After every run has finished, this phase loads each operator's
trained network and times what the task's probes do (inference at the evaluation
resolution, one training step), round by round: every round times every operator once,
in a rotated order, so passing load hits all of them alike. The median of the rounds is
the figure, the interquartile range its spread; a relative spread above
:data:`UNRELIABLE_SPREAD` marks the figure unreliable (load came and went). The load
average before and after is recorded too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..bench.timing import machine_info

__all__ = ["Timing", "summarise", "time_rounds", "measure_costs", "median_of", "UNRELIABLE_SPREAD", "COSTS_FILE"]

COSTS_FILE = "costs.json"
# (q3 - q1) / median above this: the rounds disagree, so the machine was not steady.
UNRELIABLE_SPREAD = 0.25


@dataclass(frozen=True)
class Timing:
    """Milliseconds of one probe over the rounds: median, quartiles, and whether the
    spread is too large to trust the median."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    rounds: int
    unreliable: bool

    @property
    def relative_spread(self) -> float:
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(samples_ms: Sequence[float], unreliable_spread: float = UNRELIABLE_SPREAD) -> Timing:
    """The :class:`Timing` of repeated measurements in milliseconds."""
    if not samples_ms:
        raise ValueError("argument `samples_ms`: expected at least one measurement")
    q1, median, q3 = (float(v) for v in np.quantile(np.asarray(samples_ms, dtype=np.float64), [0.25, 0.5, 0.75]))
    spread = (q3 - q1) / median if median > 0 else 0.0
    return Timing(median, q1, q3, len(samples_ms), spread > unreliable_spread)


def time_rounds(
    probes: Mapping[str, Mapping[str, Callable[[], object]]],
    rounds: int = 7,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds of every ``probes[operator][probe]()`` call, ``rounds`` times each.

    Each round calls every operator's probes once; the operator order rotates from round
    to round. ``warmup`` untimed rounds come first (allocator and kernel caches).
    """
    names = list(probes)
    samples: dict[str, dict[str, list[float]]] = {op: {p: [] for p in probes[op]} for op in names}
    for round_index in range(-warmup, rounds):
        shift = round_index % len(names) if names else 0
        for op in names[shift:] + names[:shift]:
            for probe, call in probes[op].items():
                start = clock()
                call()
                elapsed = clock() - start
                if round_index >= 0:
                    samples[op][probe].append(1000.0 * elapsed)
    return samples


def measure_costs(
    probes: Mapping[str, Mapping[str, Callable[[], object]]],
    rounds: int = 7,
    warmup: int = 2,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run :func:`time_rounds` and summarise it into the record written as ``costs.json``."""
    load_before = _load_average()
    started = time.perf_counter()
    log(f"costs: timing {len(probes)} operator(s), {rounds} interleaved rounds after {warmup} warm-up rounds")
    samples = time_rounds(probes, rounds, warmup)
    record = {
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - started,
        "rounds": rounds,
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": _load_average()},
        "unreliable_spread": UNRELIABLE_SPREAD,
        "ops": {
            op: {probe: {**summarise(values).to_dict(), "samples_ms": values} for probe, values in by_probe.items()}
            for op, by_probe in samples.items()
        },
    }
    flagged = sorted(
        f"{op} {probe}" for op, by_probe in record["ops"].items() for probe, t in by_probe.items() if t["unreliable"]
    )
    if flagged:
        log(f"costs: spread above {UNRELIABLE_SPREAD:.0%} (other load?) for: {', '.join(flagged)}")
    return record


def _load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # not on every platform
        return None


def median_of(record: Mapping[str, Any], op: str, probe: str) -> float | None:
    """The median of one probe in a ``costs.json`` record (``None`` when not measured)."""
    entry = record.get("ops", {}).get(op, {}).get(probe)
    return None if entry is None else float(entry["median_ms"])
