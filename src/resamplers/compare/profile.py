"""Where a training step's time goes, per operator.

For each operator, the task's network as a run starts it (:meth:`Task.step_parts` with
``trained=False``: the preset's width, crop and batch) takes a few optimisation steps under
``torch.profiler``; every profiled op's self CPU time is put into one category by its name
(:func:`categorise`), so the categories add up to the profiled step.  Step times come from
a separate phase that interleaves the operators round by round (as the cost phase of
``compare`` does), with the ratio to the first operator (bilinear by default).

The resampling custom ops are named ``resamplers::*`` (native and Triton paths), so their
share is read directly; an operator on the torch path shows up as elementwise work and
convolutions instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._checks import check_choice
from .costs import summarise, time_rounds
from .measure import AMP_DTYPES, train_step_probe
from .tasks import RunSpec, get_task

__all__ = ["CATEGORIES", "categorise", "profile_call", "profile_training", "profile_markdown"]

# (category, substrings of the op name that put an op in it); the first match wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # The custom ops, and their autograd wrappers (which hold the forward kernels' time).
    ("resampling ops", ("resamplers::", "_resamplers_")),
    ("convolution", ("conv", "mkldnn_convolution", "thnn_conv")),
    ("normalisation", ("batch_norm", "layer_norm", "group_norm", "instance_norm")),
    ("interpolation and sampling", ("upsample", "grid_sampler", "pixel_shuffle", "pixel_unshuffle", "interpolate")),
    ("pooling", ("pool",)),
    ("optimiser", ("_foreach_", "optimizer", "adam")),
    ("matrix products", ("mm", "matmul", "linear", "bmm")),
    ("copies and layout", ("copy_", "clone", "contiguous", "cat", "to_copy", "empty_strided", "pad", "fill_", "zero_")),
)
OTHER = "elementwise and other"


def categorise(name: str) -> str:
    """The category of a profiled op (``aten::convolution`` -> ``convolution``)."""
    lowered = name.lower()
    for category, needles in CATEGORIES:
        if any(needle in lowered for needle in needles):
            return category
    return OTHER


def profile_call(call: Callable[[], object], steps: int = 3, warmup: int = 1, top: int = 8) -> dict[str, Any]:
    """Self CPU milliseconds per call of ``call`` by category and for the ``top`` ops.

    Returns ``{"categories": {category: ms}, "top": [{"op", "ms", "calls"}], "profiled_ms"}``
    (per call; ``profiled_ms`` is the sum of the categories).
    """
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        call()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            call()
    categories: dict[str, float] = {}
    ops: list[dict[str, Any]] = []
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1000.0 / steps
        if ms <= 0.0:
            continue
        category = categorise(event.key)
        categories[category] = categories.get(category, 0.0) + ms
        ops.append({"op": event.key, "ms": ms, "calls": event.count / steps, "category": category})
    ops.sort(key=lambda o: -o["ms"])
    ordered = dict(sorted(categories.items(), key=lambda kv: -kv[1]))
    return {"categories": ordered, "top": ops[:top], "profiled_ms": float(sum(categories.values()))}


def profile_training(
    task_name: str,
    preset_name: str,
    ops: Sequence[str],
    *,
    data: str = "auto",
    data_root: str | None = None,
    steps: int = 3,
    rounds: int = 7,
    warmup: int = 2,
    amp: str = "none",
    channels_last: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Profile and time one training step of each operator's network (see the module).

    ``amp`` (``"none"`` or ``"bf16"``) runs forward and loss under autocast;
    ``channels_last`` converts the networks and batches to that memory format.

    Returns a JSON-able record: per operator the step-time summary (median and quartiles
    over ``rounds`` interleaved rounds), the ratio of its median to the first operator's,
    and :func:`profile_call`'s breakdown.
    """
    from .runner import resolve_data

    if not ops:
        raise ValueError("argument `ops`: expected at least one operator")
    task = get_task(task_name)
    presets = task.presets()
    if preset_name not in presets:
        raise ValueError(f"argument `preset`: expected one of {sorted(presets)}, got {preset_name!r}")
    preset = presets[preset_name]
    amp_dtype = AMP_DTYPES[check_choice(amp, "amp", list(AMP_DTYPES))]
    data = resolve_data(data, data_root, task)
    with tempfile.TemporaryDirectory(prefix="resamplers-profile-") as scratch:
        root = Path(scratch)
        probes: dict[str, dict[str, Callable[[], object]]] = {}
        for op in ops:
            spec = RunSpec(task_name, op, 0, preset, root / op, root / "shared", data, data_root)
            parts = task.step_parts(spec, trained=False)
            if parts is None:
                raise ValueError(f"argument `task`: task {task_name!r} offers no training step to profile")
            step = train_step_probe(parts.model, parts.loss, parts.batch, amp=amp_dtype, channels_last=channels_last)
            probes[op] = {"step": step}
        log(f"profile: timing {len(ops)} operator(s), {rounds} interleaved rounds after {warmup} warm-up rounds")
        timings = time_rounds(probes, rounds, warmup)
        record: dict[str, Any] = {
            "task": task_name,
            "preset": preset_name,
            "data": data,
            "threads": torch.get_num_threads(),
            "batch_size": preset.batch_size,
            "crop": preset.crop,
            "width": preset.width,
            "amp": amp,
            "channels_last": channels_last,
            "ops": {},
        }
        first = float(np.median(timings[ops[0]]["step"]))
        for op in ops:
            log(f"profile: {op}")
            timing = summarise(timings[op]["step"]).to_dict()
            record["ops"][op] = {
                "step": timing,
                "ratio": timing["median_ms"] / first,
                "profile": profile_call(probes[op]["step"], steps=steps),
            }
    return record


def profile_markdown(record: dict[str, Any]) -> str:
    """The record as Markdown: step times and ratios, then each operator's breakdown."""
    ops = record["ops"]
    names = list(ops)
    lines = [
        f"# Training step profile: {record['task']} / {record['preset']}",
        "",
        f"Batch {record['batch_size']} of crops of {record['crop']}, width {record['width']}, "
        f"{record['threads']} thread(s), {record['data']} data, autocast {record['amp']}, "
        f"{'channels-last' if record['channels_last'] else 'contiguous (NCHW)'} layout; "
        "step = forward, loss, backward and AdamW step.",
        "",
        f"| operator | step ms (median [IQR]) | x {names[0]} |",
        "|---|---|---|",
    ]
    for op in names:
        t = ops[op]["step"]
        flag = " †" if t["unreliable"] else ""
        lines.append(
            f"| `{op}` | {t['median_ms']:.0f} [{t['q1_ms']:.0f}-{t['q3_ms']:.0f}]{flag} | {ops[op]['ratio']:.2f} |"
        )
    categories = sorted({c for op in names for c in ops[op]["profile"]["categories"]})
    categories.sort(key=lambda c: -max(ops[op]["profile"]["categories"].get(c, 0.0) for op in names))
    lines += [
        "",
        "Self CPU ms per step under the profiler, by category (columns: operators):",
        "",
        "| category | " + " | ".join(f"`{op}`" for op in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for c in categories:
        lines.append(
            f"| {c} | " + " | ".join(f"{ops[op]['profile']['categories'].get(c, 0.0):.1f}" for op in names) + " |"
        )
    lines.append(
        "| **profiled total** | " + " | ".join(f"{ops[op]['profile']['profiled_ms']:.1f}" for op in names) + " |"
    )
    for op in names:
        lines += [
            "",
            f"Top ops of `{op}`:",
            "",
            "| op | category | ms per step | calls per step |",
            "|---|---|---|---|",
        ]
        for o in ops[op]["profile"]["top"]:
            lines.append(f"| `{o['op']}` | {o['category']} | {o['ms']:.1f} | {o['calls']:.0f} |")
    lines += ["", "† the interquartile range exceeds 25% of the median: other load came and went."]
    return "\n".join(lines) + "\n"
