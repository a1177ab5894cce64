"""Time this tree's native kernels against another build's, interleaved in one process.

Both shared objects are loaded with ctypes and called on the same tensors, so both see the
same machine load: each round times the forward reassembly, the feature gradient and the
kernel gradient at the bench input (1x256x64x64, K = 5, scale 2, float32) with the old
build, then the new (the order alternates round by round), ``--calls`` calls each, and the
table gives the median time and the median and quartiles of the per-round ratio new / old.
With more than one thread the row ranges run on Python threads (ctypes releases the GIL)
for both builds alike.  The other build is a ``_native*.so`` compiled from another
checkout (``python setup.py build_ext --build-lib <dir>``); ABI 7 builds (before the
feature gradient regrouped its kernels) take zero-padded kernels, which this tool prepares.

    python tools/bench_native_ab.py --old <other>/_native.so [--threads 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import threading
import time
from collections.abc import Callable

import torch

from resamplers.core import native

GEOMETRY = [5, 1, 2, 1, 2, 2]  # K, groups, up, stride, pad_top, pad_left: CARAFE's
VECTOR_LANES = 16  # the padding ABI 7 builds need past a row's phases


def _kernel(lib: ctypes.CDLL, name: str, arity: int) -> Callable[..., int]:
    fn = getattr(lib, name)
    fn.argtypes = [ctypes.c_void_p] * (arity + 1) + [ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def _split(fn: Callable[..., int], pointers: list[int], tasks: int, threads: int) -> None:
    """Run ``fn`` over ``tasks`` tasks in ``threads`` contiguous ranges; raise on a code."""
    bounds = [tasks * i // threads for i in range(threads + 1)]
    codes = [0] * threads

    def run(i: int) -> None:
        codes[i] = fn(*pointers, bounds[i], bounds[i + 1])

    workers = [threading.Thread(target=run, args=(i,)) for i in range(1, threads)]
    for w in workers:
        w.start()
    run(0)
    for w in workers:
        w.join()
    if any(codes):
        raise SystemExit(f"a kernel returned code {max(codes)}")


def _calls(
    lib: ctypes.CDLL, tensors: dict[str, torch.Tensor]
) -> dict[str, tuple[Callable[..., int], list[torch.Tensor]]]:
    """The three kernels of ``lib`` with their tensor arguments for its ABI."""
    x, k, go = tensors["features"], tensors["kernels"], tensors["grad_out"]
    geo = native._geometry_tensor(x, k, GEOMETRY)
    kernels_for_grad, geo_for_grad = k, geo
    if lib.reassemble_abi_version() < 8:
        kernel_size, _, up, stride = GEOMETRY[:4]
        reach = (kernel_size - 1) // stride
        w_out = k.shape[-1]
        phase_len = up * (-(-w_out // up) + reach)
        left, right = up * reach, max(0, phase_len + VECTOR_LANES - w_out)
        kernels_for_grad = torch.nn.functional.pad(k, (left, right))
        geo_for_grad = torch.cat([geo, torch.tensor([left + w_out + right, left])])
    out, gx, gk = tensors["out"], tensors["grad_x"], tensors["grad_k"]
    return {
        "forward": (_kernel(lib, "reassemble_forward_f32", 3), [x, k, out, geo]),
        "feature gradient": (_kernel(lib, "reassemble_grad_features_f32", 3), [kernels_for_grad, go, gx, geo_for_grad]),
        "kernel gradient": (_kernel(lib, "reassemble_grad_kernels_f32", 3), [x, go, gk, geo]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the other build's _native*.so")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    if args.threads < 1 or args.rounds < 4 or args.calls < 1:
        raise SystemExit("arguments `--threads`, `--calls`: expected positive integers; `--rounds`: at least 4")
    if native._LIB is None:
        raise SystemExit("this tree's native kernels are not built")
    builds = {"old": ctypes.CDLL(args.old), "new": native._LIB}
    torch.manual_seed(0)
    tensors = {
        "features": torch.randn(1, 256, 64, 64),
        "kernels": torch.randn(1, 25, 128, 128),
        "grad_out": torch.randn(1, 256, 128, 128),
        "out": torch.empty(1, 256, 128, 128),
        "grad_x": torch.empty(1, 256, 64, 64),
        "grad_k": torch.zeros(1, 25, 128, 128),
    }
    tasks = 64  # row groups (forward, kernel gradient) and source rows (feature gradient)
    calls = {side: _calls(lib, tensors) for side, lib in builds.items()}
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for op in calls["new"]:
            for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
                fn, arguments = calls[side][op]
                pointers = [t.data_ptr() for t in arguments]
                _split(fn, pointers, tasks, args.threads)
                start = time.perf_counter()
                for _ in range(args.calls):
                    _split(fn, pointers, tasks, args.threads)
                times.setdefault((side, op), []).append((time.perf_counter() - start) / args.calls * 1e3)
    print(f"{args.threads} thread(s), {args.rounds} rounds of {args.calls} calls, ms a call")
    print("| kernel | old | new | new / old: median [quartiles] |")
    print("|---|---|---|---|")
    for op in calls["new"]:
        old, new = times[("old", op)], times[("new", op)]
        ratios = [b / a for a, b in zip(old, new)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(
            f"| {op} | {statistics.median(old):.2f} | {statistics.median(new):.2f} "
            f"| {statistics.median(ratios):.3f} [{q1:.3f}-{q3:.3f}] |"
        )


if __name__ == "__main__":
    main()
