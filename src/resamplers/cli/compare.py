"""Compare resampler pairs on a task under one budget: train, evaluate, report."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..compare import TASKS

    parser.add_argument("--task", default="matting", help=f"one of: {', '.join(TASKS.names())}")
    parser.add_argument("--ops", default=None, help="comma-separated pair names (default: the task's default set)")
    parser.add_argument(
        "--preset", default="quick", help="smoke | quick | standard | full (budget: steps, crop, width, seeds)"
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per operator (default: the preset's)")
    parser.add_argument(
        "--data", default="auto", help="auto | real | synthetic (auto: real when fetched) | folder:PATH (segmentation)"
    )
    parser.add_argument("--layout", default=None, help="layout of folder:PATH data: voc | ade | generic")
    parser.add_argument("--data-root", default=None, help="data cache of `resamplers data fetch`")
    parser.add_argument("--out", type=Path, default=Path("results/compare"), help="results folder")
    parser.add_argument("--shard", default=None, help="i/n: run every n-th job from i (share --out between shards)")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="MINUTES",
        help="then add seeds to the operators not separable from the best until the verdict settles or time is out",
    )
    parser.add_argument(
        "--amp",
        default="none",
        choices=["none", "bf16"],
        help="train under bfloat16 autocast (weights, optimiser and checkpoints stay float32; part of the budget)",
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="train the networks in channels-last layout (part of the budget)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="run N shard processes here in parallel, then report")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's)")
    parser.add_argument(
        "--no-finish", action="store_true", help="train only: leave reference rows, costs and report to another process"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..compare.runner import parse_shard, run_compare

    ops = [o.strip() for o in args.ops.split(",") if o.strip()] if args.ops else None
    report = run_compare(
        args.task,
        args.out,
        ops=ops,
        preset=args.preset,
        seeds=args.seeds,
        data=args.data,
        data_root=args.data_root,
        layout=args.layout,
        amp=args.amp,
        channels_last=args.channels_last,
        shard=parse_shard(args.shard),
        jobs=args.jobs,
        time_budget=args.time_budget,
        threads=args.threads,
        finish=not args.no_finish,
        progress=not args.no_progress,
    )
    if not args.no_finish:
        print(f"report written: {report.with_suffix('.html')}")
    return 0
