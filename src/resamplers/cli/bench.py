"""Benchmark registered operators: parameters, MACs, latency, peak memory, baseline ratios."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..bench import BenchConfig, resolve_ops, run_bench
from ..console import print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--op",
        action="append",
        metavar="NAME",
        help="operator to run (repeatable); 'kind:name' or a bare name; default: all registered",
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--scale", type=int, default=2, help="scale factor")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--no-roofline",
        action="store_true",
        help="skip measuring the machine's bandwidth and FLOP rate (no lower-bound columns)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _bound_ratios(forward_ms: float, forward_bound: float | None, train_ms: float, train_bound: float | None) -> str:
    """``measured / bound`` for the forward and the forward+backward pass."""
    if forward_bound is None or train_bound is None:
        return "n/a"
    return f"{forward_ms / forward_bound:.1f} / {train_ms / train_bound:.1f}"


def run(args: argparse.Namespace) -> int:
    for name in ("batch", "channels", "height", "width", "scale", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"argument `--{name}`: expected an int >= 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    ops = resolve_ops(args.op)
    config = BenchConfig(
        batch=args.batch,
        channels=args.channels,
        height=args.height,
        width=args.width,
        scale_factor=args.scale,
        repeats=args.repeats,
        warmup=args.warmup,
        dtype=args.dtype,
        roofline=not args.no_roofline,
    )
    progress = _progress(len(ops))
    report = run_bench(ops, config, progress=progress.step)
    progress.close()
    shape = f"{config.batch}x{config.channels}x{config.height}x{config.width}"
    native = (
        f"{report.machine['native_isa']} on {report.machine['native_threads']}"
        if report.machine["native_kernels"]
        else "not built"
    )
    print_table(
        f"resamplers bench: input {shape}, scale {config.scale_factor}, {config.dtype}, "
        f"{report.machine['threads']} threads, native kernels: {native}",
        ["operator", "params", "MMACs", "output", "forward ms", "fwd+bwd ms", "x bound fwd / fwd+bwd", "peak MiB"],
        [
            [
                r.op,
                f"{r.params:,}",
                _fmt(r.macs / 1e6),
                "x".join(map(str, r.output_shape)),
                _fmt(r.forward_ms, 2),
                _fmt(r.train_ms, 2),
                _bound_ratios(r.forward_ms, r.forward_bound_ms, r.train_ms, r.train_bound_ms),
                _fmt(r.peak_mib),
            ]
            for r in report.ops
        ],
    )
    if report.limits is not None:
        limits = report.limits
        print(
            f"roofline: measured in this run, {limits.bandwidth_gbs:.1f} GB/s streaming copy (read + write), "
            f"{limits.gflops:.0f} GFLOP/s {limits.dtype} matrix product, {limits.threads} threads; "
            "x bound = measured time / max(bytes / bandwidth, FLOPs / FLOP rate). "
            "Core rows count their tensors exactly; operator rows count only inputs, outputs and "
            "parameters (a loose bound)."
        )
    if report.baselines:
        print_table(
            "Against the common formulation (interleaved runs, same process; speed-up = baseline / ours)",
            [
                "operator",
                "baseline",
                "fwd ms ours / base",
                "fwd+bwd ms ours / base",
                "speed-up fwd",
                "speed-up fwd+bwd",
                "peak MiB ours / base",
                "max |diff|",
            ],
            [
                [
                    b.op,
                    b.baseline,
                    f"{b.ours_forward_ms:.2f} / {b.baseline_forward_ms:.2f}",
                    f"{b.ours_train_ms:.2f} / {b.baseline_train_ms:.2f}",
                    f"{b.forward_speedup:.2f}x",
                    f"{b.train_speedup:.2f}x",
                    f"{_fmt(b.ours_peak_mib)} / {_fmt(b.baseline_peak_mib)}",
                    f"{b.max_abs_diff:.1e}",
                ]
                for b in report.baselines
            ],
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
        print(f"wrote {args.json}")
    return 0


class _progress:
    """A rich progress bar on a terminal; nothing when rich is missing."""

    def __init__(self, total: int) -> None:
        try:
            from rich.progress import Progress
        except ImportError:
            self._bar = None
            return
        self._bar = Progress(transient=True)
        self._task = self._bar.add_task("benchmarking", total=total)
        self._bar.start()
        self._started = False

    def step(self, name: str) -> None:
        if self._bar is None:
            return
        if self._started:
            self._bar.advance(self._task)
        self._started = True
        self._bar.update(self._task, description=f"benchmarking {name}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)
            self._bar.stop()
