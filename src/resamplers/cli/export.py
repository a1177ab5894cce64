"""Export a registered operator to ONNX or TorchScript and check the file against eager PyTorch.

Steps, each printed: build (the registry entry, optionally with a checkpoint's weights),
export (ONNX through the dynamo exporter, or torch.jit.trace), check (strict shape inference
and onnx.checker with full_check), simplify (onnxslim, checked again), run (ONNX Runtime, or
torch.jit.load, at two input sizes; the second another size with --dynamic) and compare (max
|file - eager| per size).  A failing step exits with status 1 and names the step; bad
arguments exit with status 2 and name the argument.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..export import ExportError, export_operator
from ..export.tensorrt import TENSORRT_VERSION, tensorrt_findings

# The library's argument names -> this command's.
FLAGS = {
    "name": "NAME",
    "channels": "--channels",
    "scale_factor": "--scale-factor",
    "checkpoint": "--checkpoint",
    "opset": "--opset",
    "path": "--output",
    "format": "--format",
    "tolerance": "--tolerance",
}


def _channels(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or comma-separated ints, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected ints >= 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def _scale(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return int(value) if value.is_integer() else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        metavar="NAME",
        help="the operator, kind:name (upsampler:carafe, pair:a2u); a bare name where one family has it",
    )
    parser.add_argument(
        "--channels", type=_channels, required=True, metavar="C", help="input channels (HRNet fusion: C1,C2,C3)"
    )
    parser.add_argument(
        "--scale-factor", type=_scale, default=None, metavar="S", help="scale factor (default: the operator's)"
    )
    parser.add_argument(
        "--dynamic", action="store_true", help="dynamic batch, height and width; checked at a second size"
    )
    parser.add_argument("--format", choices=["onnx", "torchscript"], required=True)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the file to write")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="PATH",
        help="weights to load: a state dict in .safetensors, or a file torch.load reads with weights_only=True",
    )
    parser.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: the exporter's)")
    parser.add_argument("--no-simplify", action="store_true", help="ONNX: write the graph without onnxslim")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest accepted max |file - eager|, times 1 + max |eager| (default: 1e-4)",
    )


def _flag_names(message: str) -> str:
    """``argument `scale_factor`: ...`` as ``argument `--scale-factor`: ...``."""
    return re.sub(r"argument `(\w+)`", lambda m: f"argument `{FLAGS.get(m.group(1), m.group(1))}`", message)


def run(args: argparse.Namespace) -> int:
    if args.format == "torchscript" and args.opset is not None:
        raise ValueError("argument `--opset`: applies to --format onnx only")
    if args.format == "torchscript" and args.no_simplify:
        raise ValueError("argument `--no-simplify`: applies to --format onnx only")
    if args.opset is not None and args.opset < 1:
        raise ValueError(f"argument `--opset`: expected an int >= 1, got {args.opset}")
    if not args.tolerance >= 0:
        raise ValueError(f"argument `--tolerance`: expected a number >= 0, got {args.tolerance}")

    def progress(step: str, text: str) -> None:
        print(f"{step:<9} {text}", flush=True)

    try:
        report = export_operator(
            args.name,
            args.output,
            format=args.format,
            channels=args.channels,
            scale_factor=args.scale_factor,
            dynamic=args.dynamic,
            checkpoint=args.checkpoint,
            opset=args.opset,
            simplify=not args.no_simplify,
            tolerance=args.tolerance,
            progress=progress,
        )
    except ValueError as error:
        raise ValueError(_flag_names(str(error))) from error
    except ExportError as error:
        print(f"resamplers export: error: {error}", file=sys.stderr)
        return 1
    size = report.path.stat().st_size / 1024
    if report.format == "onnx":
        import onnx

        count = len(report.op_types)
        kinds = f"{count} op type{'' if count == 1 else 's'}: {', '.join(report.op_types)}"
        print(f"wrote     {report.path} ({size:,.1f} KiB), {kinds}")
        findings = tensorrt_findings(onnx.load(str(report.path)))
        verdict = "; ".join(findings) if findings else "every op type supported, no stated restriction hit"
        print(f"tensorrt  {TENSORRT_VERSION} ONNX parser, on paper: {verdict}")
    else:
        print(f"wrote     {report.path} ({size:,.1f} KiB)")
    return 0
