"""Time the native core's three ops on torch's OpenMP threads against the loader's pool.

Where the kernels run is fixed when the library loads (``RESAMPLERS_NATIVE_THREADS``), so
each side runs in a child process of its own, alternating round by round (team, pool,
team, ...) so that both see the same machine load.  Each child times the forward
reassembly, the feature gradient and the kernel gradient at the bench input (1x256x64x64,
K = 5, scale 2, float32), ``--calls`` calls each at every thread count, and reports the
median and the fastest call; the table gives the median over rounds of both.

    python tools/bench_native_threads.py [--rounds 3] [--calls 30] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

OPS = ("reassemble", "reassemble_grad_features", "reassemble_grad_kernels")
SIDES = {"torch": "torch's OpenMP threads", "pool": "thread pool"}


def _child(calls: int, thread_counts: list[int]) -> None:
    import torch

    from resamplers.core.native import native_threads

    torch.manual_seed(0)
    x, kernels, grad = torch.randn(1, 256, 64, 64), torch.randn(1, 25, 128, 128), torch.randn(1, 256, 128, 128)
    geometry = [5, 1, 2, 1, 2, 2]
    ops = torch.ops.resamplers
    runs = {
        "reassemble": lambda: ops.reassemble(x, kernels, geometry),
        "reassemble_grad_features": lambda: ops.reassemble_grad_features(grad, x, kernels, geometry),
        "reassemble_grad_kernels": lambda: ops.reassemble_grad_kernels(grad, x, kernels, geometry),
    }
    result: dict[str, object] = {"threads_backend": native_threads()}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for name, run in runs.items():
            run(), run()
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                run()
                times.append((time.perf_counter() - start) * 1e3)
            result[f"{name}@{threads}"] = (statistics.median(times), min(times))
    print(json.dumps(result))


def _run_side(side: str, calls: int, thread_counts: list[int]) -> dict[str, object]:
    env = {**os.environ, "RESAMPLERS_NATIVE_THREADS": side}
    command = [sys.executable, __file__, "--child", "--calls", str(calls), "--threads", *map(str, thread_counts)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {side} child failed:\n{done.stderr[-2000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["threads_backend"] != SIDES[side]:
        raise SystemExit(f"the {side} child ran on {result['threads_backend']!r}, not {SIDES[side]!r}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1 or args.calls < 1 or min(args.threads) < 1:
        raise SystemExit("arguments `--rounds`, `--calls` and `--threads`: expected positive integers")
    if args.child:
        _child(args.calls, args.threads)
        return
    rounds: dict[str, list[dict[str, object]]] = {side: [] for side in SIDES}
    for r in range(args.rounds):
        for side in SIDES:
            print(f"round {r + 1}/{args.rounds}: {SIDES[side]}", file=sys.stderr, flush=True)
            rounds[side].append(_run_side(side, args.calls, args.threads))
    print(f"ms a call, median over {args.rounds} rounds of the median (fastest) of {args.calls} calls\n")
    print("| op | threads | torch's OpenMP threads | thread pool | pool / team (medians) |")
    print("|---|---|---|---|---|")
    for threads in args.threads:
        for name in OPS:
            key = f"{name}@{threads}"
            cells = {
                side: tuple(statistics.median(float(run[key][i]) for run in rounds[side]) for i in (0, 1))  # type: ignore[index]
                for side in SIDES
            }
            team, pool = cells["torch"], cells["pool"]
            print(
                f"| {name} | {threads} | {team[0]:.2f} ({team[1]:.2f}) | {pool[0]:.2f} ({pool[1]:.2f}) | {pool[0] / team[0]:.2f}x |"
            )


if __name__ == "__main__":
    main()
