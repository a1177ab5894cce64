"""Export an operator to ONNX with dynamic height and width, run it in ONNX Runtime, compare to eager.

Under export the reassembly core takes its portable torch path (plain Pad / Slice / Mul /
Add), so the ONNX model holds only standard operators and runs in ``onnxruntime`` as it
is.  The model is exported at one size and run at others: the height and width axes are
dynamic.  This script uses the TorchScript-based exporter (``dynamo=False``, with
``dynamic_axes``); the README shows the dynamo exporter (``dynamic_shapes``) as well.

    python docs/tutorials/export_onnx.py                          # carafe, dysample, fade, sapa
    python docs/tutorials/export_onnx.py --smoke                  # carafe and dysample, small sizes
    python docs/tutorials/export_onnx.py --kind downsampler --ops carafe,softpool --out onnx/
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import resamplers
from resamplers.registry import DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS

REGISTRIES = {"upsampler": UPSAMPLERS, "downsampler": DOWNSAMPLERS, "pair": PAIRS, "pool": POOLS}


def inputs_at(module: resamplers.Operator, height: int, width: int) -> list[torch.Tensor]:
    """Random inputs of the shapes the operator's contract states (``d`` and ``encoder`` for FADE/SAPA)."""
    return [torch.randn(*shape) for shape in module.input_shapes(1, height, width)]


def export(module: resamplers.Operator, path: Path, height: int, width: int) -> list[str]:
    names = list(module.input_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            tuple(inputs_at(module, height, width)),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["out"],
            # batch, height and width of every input are dynamic (each input has its own size).
            dynamic_axes={name: {0: "n", 2: f"h_{name}", 3: f"w_{name}"} for name in names},
            opset_version=17,
        )
    return names


def check(kind: str, name: str, folder: Path, sizes: list[tuple[int, int]], channels: int) -> float:
    torch.manual_seed(0)
    module = REGISTRIES[kind].create(name, channels=channels).eval()
    path = folder / f"{kind}-{name}.onnx"
    names = export(module, path, *sizes[0])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for height, width in sizes:  # the export size, then others: the graph is not tied to one size
        inputs = inputs_at(module, height, width)
        (got,) = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})
        with torch.no_grad():
            expected = module(*inputs).numpy()
        assert got.shape == expected.shape, f"{name}: onnxruntime gave {got.shape}, eager {expected.shape}"
        difference = float(np.abs(got - expected).max())
        worst = max(worst, difference)
        print(
            f"  {name} at {height} x {width}: output {'x'.join(map(str, got.shape))}, max |ort - eager| {difference:.2e}"
        )
    assert worst < 1e-4, f"{name}: onnxruntime and eager differ by {worst}"
    print(f"{kind} {name}: {path.name}, {path.stat().st_size / 1024:.0f} KiB, max difference {worst:.2e}")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="upsampler", choices=sorted(REGISTRIES), help="the operator family")
    parser.add_argument("--ops", default="carafe,dysample,fade,sapa", help="comma-separated names")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the .onnx files here (default: a temporary folder)"
    )
    parser.add_argument("--smoke", action="store_true", help="carafe and dysample at small sizes (seconds)")
    args = parser.parse_args(argv)
    names = ["carafe", "dysample"] if args.smoke else args.ops.split(",")
    sizes = [(12, 16), (7, 9), (20, 12)] if args.smoke else [(32, 48), (17, 23), (64, 40)]
    if args.kind in ("downsampler", "pair"):  # sizes the scale divides, so every operator accepts them
        sizes = [(h - h % 2, w - w % 2) for h, w in sizes]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            check(args.kind, name, folder, sizes, args.channels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
