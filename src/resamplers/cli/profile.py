"""Profile one training step of each operator's network: where the time goes, and step-time ratios.

Builds each operator's network as a `compare` run of the task and preset starts it, times
its training step (forward, loss, backward, AdamW step) in interleaved rounds, then runs a
few steps under torch.profiler and sums every op's self CPU time by category (resampling
custom ops, convolution, normalisation, ...).  Prints the Markdown summary; --out also
writes it and the JSON record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..storage import write_json_atomic, write_text_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="matting", help="comparison task (default: matting)")
    parser.add_argument("--preset", default="quick", help="the task's preset whose width, crop and batch to use")
    parser.add_argument(
        "--ops", default=None, help="comma-separated operators, the first the reference (default: the preset's)"
    )
    parser.add_argument("--data", default="auto", help="auto, real or synthetic (as for compare)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps per operator")
    parser.add_argument("--rounds", type=int, default=7, help="timed interleaved rounds")
    parser.add_argument("--amp", default="none", choices=["none", "bf16"], help="autocast of forward and loss")
    parser.add_argument("--channels-last", action="store_true", help="networks and batches in channels-last layout")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="folder for profile.md and profile.json")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..compare.profile import profile_markdown, profile_training
    from ..compare.tasks import get_task

    for name in ("steps", "rounds"):
        if getattr(args, name) < 1:
            raise ValueError(f"argument `--{name}`: expected an int >= 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    presets = task.presets()
    if args.preset not in presets:
        raise ValueError(f"argument `--preset`: expected one of {sorted(presets)}, got {args.preset!r}")
    preset = presets[args.preset]
    ops = [op for op in args.ops.split(",") if op] if args.ops else list(preset.ops or task.default_ops)
    record = profile_training(
        args.task,
        args.preset,
        ops,
        data=args.data,
        data_root=args.data_root,
        steps=args.steps,
        rounds=args.rounds,
        amp=args.amp,
        channels_last=args.channels_last,
    )
    text = profile_markdown(record)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "profile.md", text)
        write_json_atomic(args.out / "profile.json", json.loads(json.dumps(record)))
        print(f"written: {args.out / 'profile.md'} and profile.json")
    return 0
