"""Time the core's taps sampled at offsets on the native kernels against the torch path.

The two calls SAPA-Deform makes at the bench input (``resamplers bench``'s 1 x 256 x 64 x
64, scale 2; SAPA-Deform's defaults: 3 x 3 points, 4 groups, 32 embedding channels): the
window similarity of a 32-channel query at 128 x 128 with keys at 64 x 64, and the
reassembly of the 256-channel map with its 36 attention maps.  Forward and
forward+backward, median of interleaved rounds (native, torch, native, ...), so that both
see the same machine load; the ratio is what to read.  ``--module`` times the whole
SAPA-Deform upsampler instead, in child processes started alternately with and without the
native kernels (``RESAMPLERS_NATIVE=0``: the path is chosen when the library loads).

    python tools/bench_offset_taps.py [--threads 2] [--rounds 5] [--module]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from resamplers.functional import native_available, reassemble, window_similarity

K, GROUPS, SCALE = 3, 4, 2


def _inputs(channels: int, embed: int, size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = size * SCALE
    taps = GROUPS * K * K
    return {
        "features": torch.randn(1, channels, size, size, generator=g),
        "keys": torch.randn(1, embed, size, size, generator=g),
        "query": torch.randn(1, embed, out, out, generator=g),
        "kernels": torch.randn(1, taps, out, out, generator=g).softmax(1),
        "offsets": torch.randn(1, 2 * taps, out, out, generator=g) * 0.5,
    }


def _calls(inputs: dict[str, torch.Tensor]) -> dict[str, Callable[[str], torch.Tensor]]:
    def similarity(backend: str) -> torch.Tensor:
        return window_similarity(
            inputs["query"], inputs["keys"], K, GROUPS, scale_factor=SCALE, offsets=inputs["offsets"], backend=backend
        )

    def reassembly(backend: str) -> torch.Tensor:
        return reassemble(
            inputs["features"],
            inputs["kernels"],
            K,
            GROUPS,
            scale_factor=SCALE,
            offsets=inputs["offsets"],
            backend=backend,
        )

    return {"window_similarity": similarity, "reassemble": reassembly}


def _time(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def _module_times(threads: int, repeats: int) -> dict[str, float]:
    """This process's SAPA-Deform upsampler at the bench input: median forward and
    forward+backward milliseconds over ``repeats`` runs after one warm-up."""
    import resamplers

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    module = resamplers.create_upsampler("sapa_deform", channels=256)
    d = torch.randn(1, 256, 64, 64, requires_grad=True)
    encoder = torch.randn(1, 256, 128, 128, requires_grad=True)

    def forward() -> None:
        with torch.no_grad():
            module(d, encoder)

    def both() -> None:
        module(d, encoder).sum().backward()

    out = {}
    for name, run in (("forward", forward), ("forward+backward", both)):
        run()
        out[name] = statistics.median(_time(run) for _ in range(repeats))
    return out


def _module_comparison(threads: int, rounds: int) -> None:
    times: dict[str, list[dict[str, float]]] = {"native": [], "torch": []}
    for _ in range(rounds):
        for path in times:
            env = {**os.environ, "RESAMPLERS_NATIVE": "1" if path == "native" else "0"}
            code = f"import json, bench_offset_taps as b; print(json.dumps(b._module_times({threads}, 3)))"
            done = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                cwd=os.path.dirname(os.path.abspath(__file__)),
                capture_output=True,
                text=True,
                check=True,
            )
            times[path].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"SAPA-Deform upsampler, 1x256x64x64 -> 128x128, threads {threads}, rounds {rounds} (alternating processes)")
    print("| pass | native ms | torch ms | torch / native |")
    print("|---|---|---|---|")
    for mode in ("forward", "forward+backward"):
        native = statistics.median(t[mode] for t in times["native"])
        torch_ms = statistics.median(t[mode] for t in times["torch"])
        print(f"| {mode} | {native:.1f} | {torch_ms:.1f} | {torch_ms / native:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--module", action="store_true", help="time the whole SAPA-Deform upsampler instead")
    args = parser.parse_args()
    if not native_available():
        raise SystemExit("the native kernels are not built: nothing to compare")
    if args.module:
        _module_comparison(args.threads, args.rounds)
        return
    torch.set_num_threads(args.threads)
    inputs = _inputs(args.channels, 32, args.size)
    print(
        f"threads {args.threads}, rounds {args.rounds}, features 1x{args.channels}x{args.size}x{args.size}, "
        f"scale {SCALE}, K {K}, groups {GROUPS}"
    )
    print("| call | pass | native ms | torch ms | torch / native |")
    print("|---|---|---|---|---|")
    for name, call in _calls(inputs).items():
        for mode in ("forward", "forward+backward"):

            def run(backend: str, call: Callable[[str], torch.Tensor] = call, mode: str = mode) -> None:
                if mode == "forward":
                    with torch.no_grad():
                        call(backend)
                    return
                for tensor in inputs.values():
                    tensor.requires_grad_(True)
                call(backend).sum().backward()
                for tensor in inputs.values():
                    tensor.grad = None
                    tensor.requires_grad_(False)

            run("native"), run("torch")  # warm-up
            times: dict[str, list[float]] = {"native": [], "torch": []}
            for _ in range(args.rounds):
                for backend in times:
                    times[backend].append(_time(lambda backend=backend: run(backend)))
            native, torch_ms = statistics.median(times["native"]), statistics.median(times["torch"])
            print(f"| {name} | {mode} | {native:.1f} | {torch_ms:.1f} | {torch_ms / native:.2f}x |")


if __name__ == "__main__":
    main()
