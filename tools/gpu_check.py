"""The checks that need a GPU, in one short run: the Triton path on CUDA against the torch
path, then its speed next to the torch path and the whole CARAFE module.

Run by ``tools/gpu_check.sh`` on a machine with a CUDA device; it writes
``gpu_check.json`` and ``gpu_check.md`` into the folder given as its argument.  With
``--dry-run`` it runs the same code on small CPU tensors in Triton's interpreter (set
``TRITON_INTERPRET=1``), so the script itself is tested without a GPU; its timings then
mean nothing and are labelled so.

Correctness: every geometry of ``tests/test_core_triton.py`` in float32 and float64,
forward and both gradients of the reassembly and the window similarity, against the torch
path on the same device, plus float16 and bfloat16 against float32, and
``torch.compile(fullgraph=True)`` capturing the Triton op.  Speed: medians of interleaved
runs (CUDA-synchronised) of the Triton and torch paths at the bench's standard input,
reported as ratios measured side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from resamplers.bench.timing import machine_info, time_interleaved  # noqa: E402
from resamplers.functional import reassemble, triton_available, window_similarity  # noqa: E402
from test_core_triton import (  # noqa: E402
    GEOMETRIES,
    SIMILARITY_GEOMETRIES,
    _call,
    _reassembly_case,
    _similarity_case,
)

TOLERANCE = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-4, 1e-5), torch.float16: (2e-3, 1e-3)}
TOLERANCE[torch.bfloat16] = (1.6e-2, 1e-2)


def _grads(fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], grad: torch.Tensor):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return (out, *torch.autograd.grad(out, leaves, grad))


def _max_rel_error(got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...]) -> float:
    return max(float((a.double() - b.double()).abs().max() / (1 + b.double().abs().max())) for a, b in zip(got, want))


def correctness(device: str, dry_run: bool) -> list[dict]:
    """One row per case: the largest error of output and gradients, relative to ``1 + max|ref|``
    (a dry run takes the first three geometries of each kind)."""
    rows = []
    count = 3 if dry_run else None
    cases = [("reassemble", g, _reassembly_case, reassemble) for g in GEOMETRIES[:count]]
    cases += [("window_similarity", g, _similarity_case, window_similarity) for g in SIMILARITY_GEOMETRIES[:count]]
    for kind, geometry, make, fn in cases:
        for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            first, second, grad, geo = make(*geometry, dtype=torch.float64)
            kw = _call(geo)
            compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
            inputs = tuple(t.to(device, dtype) for t in (first, second))
            row = {"op": kind, "geometry": str(geometry), "dtype": str(dtype).removeprefix("torch.")}
            try:
                got = _grads(
                    lambda a, b, fn=fn, kw=kw: fn(a, b, **kw, backend="triton"), inputs, grad.to(device, dtype)
                )
                want = _grads(
                    lambda a, b, fn=fn, kw=kw: fn(a, b, **kw, backend="torch"),
                    tuple(t.to(compute) for t in inputs),
                    grad.to(device, compute),
                )
                error = _max_rel_error(tuple(t.detach() for t in got), tuple(t.detach() for t in want))
                rtol, _ = TOLERANCE[dtype]
                row.update(error=error, passed=error <= rtol and all(t.dtype == dtype for t in got))
            except Exception:  # a failing case is a row of the report, not the end of the run
                row.update(error=None, passed=False, traceback=traceback.format_exc(limit=3))
            rows.append(row)
    return rows


def compiled_capture(device: str) -> dict:
    """``torch.compile(fullgraph=True)`` of a reassembly on the Triton path runs and agrees."""
    x = torch.randn(1, 8, 5, 6, device=device)
    k = torch.rand(1, 9, 10, 12, device=device)

    def call(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return reassemble(a, b, 3, scale_factor=2, backend="triton")

    try:
        got = torch.compile(call, fullgraph=True)(x, k)
        error = float((got - call(x, k)).abs().max())
        return {"passed": error == 0.0, "error": error}
    except Exception:
        return {"passed": False, "traceback": traceback.format_exc(limit=3)}


def _synced(fn: Callable[[], object], device: str) -> Callable[[], None]:
    def run() -> None:
        fn()
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def speed(device: str, dry_run: bool) -> list[dict]:
    """Triton and torch paths side by side: forward and forward+backward, medians in ms."""
    from resamplers import create_upsampler

    shapes = [(1, 256, 64, 64), (8, 256, 128, 128)] if not dry_run else [(1, 4, 4, 4)]
    repeats, warmup = (30, 5) if not dry_run else (1, 1)
    rows = []
    for dtype in (torch.float32, torch.float16) if not dry_run else (torch.float32,):
        for n, c, h, w in shapes:
            x = torch.randn(n, c, h, w, device=device, dtype=dtype, requires_grad=True)
            k = torch.rand(n, 25, 2 * h, 2 * w, device=device, dtype=dtype).softmax(1).requires_grad_()
            for mode in ("forward", "forward+backward"):
                fns = []
                for backend in ("triton", "torch"):

                    def step(
                        backend: str = backend, mode: str = mode, x: torch.Tensor = x, k: torch.Tensor = k
                    ) -> None:
                        with torch.set_grad_enabled(mode != "forward"):
                            out = reassemble(x, k, 5, scale_factor=2, backend=backend)
                            if mode != "forward":
                                out.sum().backward()

                    fns.append(_synced(step, device))
                triton_ms, torch_ms = time_interleaved(fns, repeats, warmup)
                rows.append(
                    {
                        "case": f"core:reassemble {n}x{c}x{h}x{w} k5 up2",
                        "dtype": str(dtype).removeprefix("torch."),
                        "mode": mode,
                        "triton_ms": triton_ms,
                        "torch_ms": torch_ms,
                        "speed_up": torch_ms / triton_ms,
                    }
                )
    c, size = (4, 4) if dry_run else (256, 64)
    module = create_upsampler("carafe", channels=c, scale_factor=2).to(device)
    x = torch.randn(1, c, size, size, device=device, requires_grad=True)
    fn = _synced(lambda: module(x).sum().backward(), device)
    (ms,) = time_interleaved([fn], repeats, warmup)
    rows.append(
        {
            "case": f"CARAFE module 1x{c}x{size}x{size}, auto backend",
            "dtype": "float32",
            "mode": "forward+backward",
            "ms": ms,
        }
    )
    return rows


def _markdown(report: dict) -> str:
    failed = [r for r in report["correctness"] if not r["passed"]]
    lines = [
        "# GPU check",
        "",
        f"Run {report['finished']} on {report['device']}; {'DRY RUN on the CPU interpreter: timings mean nothing' if report['dry_run'] else 'CUDA'}.",
        "",
        f"- correctness: {len(report['correctness']) - len(failed)} of {len(report['correctness'])} cases passed",
        f"- torch.compile(fullgraph=True) capture: {'passed' if report['compile']['passed'] else 'FAILED'}",
        "",
        "| case | dtype | mode | triton ms | torch ms | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["speed"]:
        if "triton_ms" in r:
            lines.append(
                f"| {r['case']} | {r['dtype']} | {r['mode']} | {r['triton_ms']:.3f} | {r['torch_ms']:.3f} | {r['speed_up']:.1f}x |"
            )
        else:
            lines.append(f"| {r['case']} | {r['dtype']} | {r['mode']} | {r['ms']:.3f} | | |")
    for r in failed:
        lines += ["", f"FAILED {r['op']} {r['geometry']} {r['dtype']}: error {r.get('error')}", r.get("traceback", "")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--dry-run", action="store_true", help="CPU tensors in Triton's interpreter, tiny sizes")
    args = parser.parse_args(argv)
    device = "cpu" if args.dry_run else "cuda"
    if not triton_available():
        print("gpu_check: triton does not import; install the gpu extra", file=sys.stderr)
        return 2
    if device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 2
    start = time.perf_counter()
    report: dict = {
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)",
        "machine": machine_info(),
        "triton": __import__("triton").__version__,
    }
    report["correctness"] = correctness(device, args.dry_run)
    report["compile"] = compiled_capture(device)
    report["speed"] = speed(device, args.dry_run)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (args.out / "gpu_check.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0 if all(r["passed"] for r in report["correctness"]) and report["compile"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
