"""Time the native core's four ops on channels-last input against contiguous input.

For each shape, the forward reassembly, the feature gradient, the kernel gradient and the
window similarity (queries at the output size with the features' channels, one group)
run on the same values in both layouts, interleaved round by round (contiguous,
channels-last, contiguous, ...), so both see the same machine load; the ratio is what to
read.  A channels-last call takes the pixel-major kernel where
``PIXEL_MAJOR_MIN_GROUP_CHANNELS`` allows and the plane-major one after a layout change
otherwise; the last column says which ran.  Shapes are ``NxCxH`` (square, K = 5, scale 2):
by default the bench input and two decoder stages of the quick matting network.

    python tools/bench_channels_last.py [--threads 1] [--rounds 7] [--shape 8x64x48 ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from resamplers.core.custom_ops import takes_pixel_major
from resamplers.functional import native_available

K, SCALE = 5, 2
GEOMETRY = [K, 1, SCALE, 1, (K - 1) // 2, (K - 1) // 2]
DEFAULT_SHAPES = ("1x256x64", "8x64x48", "8x32x96")


def _parse(shape: str) -> tuple[int, int, int]:
    try:
        n, c, h = (int(v) for v in shape.lower().split("x"))
    except ValueError:
        raise SystemExit(f"argument `--shape`: expected NxCxH such as 8x64x48, got {shape!r}") from None
    return n, c, h


def _calls(n: int, c: int, h: int, layout: torch.memory_format) -> dict[str, Callable[[], object]]:
    g = torch.Generator().manual_seed(0)
    out = h * SCALE

    def make(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).contiguous(memory_format=layout)

    x, kernels, grad = make(n, c, h, h), make(n, K * K, out, out), make(n, c, out, out)
    ops = torch.ops.resamplers
    return {
        "reassemble": lambda: ops.reassemble(x, kernels, GEOMETRY),
        "reassemble_grad_features": lambda: ops.reassemble_grad_features(grad, x, kernels, GEOMETRY),
        "reassemble_grad_kernels": lambda: ops.reassemble_grad_kernels(grad, x, kernels, GEOMETRY),
        "window_similarity": lambda: ops.window_similarity(grad, x, GEOMETRY),
    }


def _time(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--shape", action="append", help=f"NxCxH, repeatable (default: {', '.join(DEFAULT_SHAPES)})")
    args = parser.parse_args()
    if not native_available():
        raise SystemExit("the native kernels are not built: nothing to compare")
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, rounds {args.rounds}, K {K}, scale {SCALE}, one group, float32; median ms")
    print("| shape | op | contiguous | channels-last | contiguous / channels-last | channels-last kernel |")
    print("|---|---|---|---|---|---|")
    for shape in args.shape or DEFAULT_SHAPES:
        n, c, h = _parse(shape)
        planes = _calls(n, c, h, torch.contiguous_format)
        pixels = _calls(n, c, h, torch.channels_last)
        probe = torch.empty(n, c, h, h).contiguous(memory_format=torch.channels_last)
        for name in planes:
            planes[name](), pixels[name]()  # warm-up
            times: dict[str, list[float]] = {"planes": [], "pixels": []}
            for _ in range(args.rounds):
                times["planes"].append(_time(planes[name]))
                times["pixels"].append(_time(pixels[name]))
            a, b = statistics.median(times["planes"]), statistics.median(times["pixels"])
            kernel = "pixel-major" if takes_pixel_major(name, probe, 1) else "planes (after a layout change)"
            print(f"| {shape} | `{name}` | {a:.1f} | {b:.1f} | {a / b:.2f}x | {kernel} |")


if __name__ == "__main__":
    main()
