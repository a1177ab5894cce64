"""Export a registered operator to ONNX or TorchScript, and check the file it wrote.

:func:`export_operator` is the ``resamplers export`` command without the printing: build
the operator by name (``kind:name``) at ``channels``, optionally with a checkpoint's
weights; export it (ONNX through the dynamo exporter, with dynamic batch, height and width
if asked, or TorchScript through tracing); check the ONNX graph (strict shape inference,
``onnx.checker`` with ``full_check``) and simplify it with onnxslim; run the written file
in ONNX Runtime (or reload the TorchScript module) at two input sizes and compare it with
eager PyTorch.  A failing step raises :class:`ExportError` naming it.

:mod:`.inputs` holds the example inputs, export sizes and dynamic shapes of an operator
(the shared test matrix reads them from here too); :mod:`.tensorrt` reads an exported
graph against TensorRT's published ONNX operator support list.

The ONNX steps need the ``onnx`` extra (``onnx``, ``onnxruntime``, ``onnxscript``,
``onnxslim``); checkpoints in safetensors need ``safetensors`` (the ``train`` extra).
"""

from .inputs import dynamic_shapes, example_inputs, export_low, export_multiple, export_sizes, output_shapes_at
from .pipeline import (
    FORMATS,
    STEPS,
    ExportError,
    ExportReport,
    SizeCheck,
    build_operator,
    check_onnx,
    check_sizes,
    example_keywords,
    export_onnx,
    export_operator,
    export_torchscript,
    load_state_dict,
    max_abs_difference,
    onnx_op_types,
    resolve_name,
    run_onnx,
    run_torchscript,
    simplify_onnx,
)
from .tensorrt import TENSORRT_OPSETS, TENSORRT_VERSION, tensorrt_findings, tensorrt_row, tensorrt_status

__all__ = [
    "FORMATS",
    "STEPS",
    "ExportError",
    "ExportReport",
    "SizeCheck",
    "build_operator",
    "check_onnx",
    "check_sizes",
    "dynamic_shapes",
    "example_inputs",
    "example_keywords",
    "export_low",
    "export_multiple",
    "export_onnx",
    "export_operator",
    "export_sizes",
    "export_torchscript",
    "load_state_dict",
    "max_abs_difference",
    "onnx_op_types",
    "output_shapes_at",
    "resolve_name",
    "run_onnx",
    "run_torchscript",
    "simplify_onnx",
    "TENSORRT_OPSETS",
    "TENSORRT_VERSION",
    "tensorrt_findings",
    "tensorrt_row",
    "tensorrt_status",
]
