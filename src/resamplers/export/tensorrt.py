"""TensorRT on paper: which ONNX op types TensorRT's ONNX parser accepts, and the checkable
restrictions, read against an exported graph.  Nothing here runs TensorRT.

The data is TensorRT's published operator support list, ``docs/operators.md`` of
`onnx/onnx-tensorrt <https://github.com/onnx/onnx-tensorrt>`_ at its *ONNX-TensorRT 10.1
GA* release (commit ``96e7811``, June 2024), whose header covers TensorRT 10.0 and opsets 9
to 20 (:data:`TENSORRT_VERSION`, :data:`TENSORRT_OPSETS`).  :data:`SUPPORTED` holds the op
types this package's graphs use and common neighbours, each with the restriction that list
states (paraphrased); :data:`UNSUPPORTED` the ones it marks as not supported.  An op type
in neither is unknown to this table: :func:`tensorrt_findings` says so rather than guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "TENSORRT_VERSION",
    "TENSORRT_OPSETS",
    "TENSORRT_SOURCE",
    "SUPPORTED",
    "UNSUPPORTED",
    "tensorrt_status",
    "tensorrt_findings",
    "tensorrt_row",
    "render_tensorrt_tables",
]

TENSORRT_VERSION = "10.0"
TENSORRT_OPSETS = (9, 20)
TENSORRT_SOURCE = (
    "onnx/onnx-tensorrt `docs/operators.md` at the ONNX-TensorRT 10.1 GA release "
    "(commit 96e7811, June 2024; its header: TensorRT 10.0, opsets 9 to 20)"
)

_POOL = "2-D or 3-D pooling; dilations must be absent or all 1"
_AXES = "`axes` must be an initializer"

# op type -> the restriction the support list states ("" where it states none).
SUPPORTED: Mapping[str, str] = {
    "Abs": "",
    "Add": "",
    "And": "",
    "AveragePool": _POOL,
    "BatchNormalization": "",
    "Cast": "",
    "CastLike": "",
    "Ceil": "",
    "Clip": "",
    "Concat": "",
    "Constant": "no sparse or string values",
    "ConstantOfShape": "",
    "Conv": "",
    "ConvTranspose": "",
    "CumSum": "`axis` must be an initializer",
    "DepthToSpace": "",
    "Div": "",
    "Dropout": "`training_mode` must be a constant false",
    "Einsum": "",
    "Elu": "",
    "Equal": "",
    "Erf": "",
    "Exp": "",
    "Expand": "",
    "Flatten": "",
    "Floor": "",
    "Gather": "",
    "GatherElements": "",
    "GatherND": "",
    "Gelu": "",
    "Gemm": "",
    "GlobalAveragePool": "",
    "GlobalLpPool": "",
    "GlobalMaxPool": "",
    "Greater": "",
    "GreaterOrEqual": "",
    "GridSample": "4-D input only",
    "GroupNormalization": "",
    "HardSigmoid": "",
    "HardSwish": "",
    "Identity": "",
    "InstanceNormalization": "",
    "LayerNormalization": "only the first output (`Y`)",
    "LeakyRelu": "",
    "Less": "",
    "LessOrEqual": "",
    "Log": "",
    "LpPool": "dilations must be absent or all 1",
    "MatMul": "",
    "Max": "",
    "MaxPool": _POOL + "; the `Indices` output is not supported",
    "Min": "",
    "Mod": "",
    "Mul": "",
    "Neg": "",
    "Not": "",
    "Or": "",
    "Pad": _AXES,
    "Pow": "",
    "PRelu": "",
    "Range": "",
    "Reciprocal": "",
    "ReduceL1": _AXES,
    "ReduceL2": _AXES,
    "ReduceLogSumExp": _AXES,
    "ReduceMax": _AXES,
    "ReduceMean": _AXES,
    "ReduceMin": _AXES,
    "ReduceProd": _AXES,
    "ReduceSum": _AXES,
    "ReduceSumSquare": _AXES,
    "Relu": "",
    "Reshape": "",
    "Resize": (
        "modes nearest and linear; coordinate modes half_pixel, pytorch_half_pixel, tf_half_pixel_for_nn, "
        "asymmetric, align_corners; nearest modes floor, ceil, round_prefer_floor, round_prefer_ceil; "
        "aspect-ratio policy stretch; no antialiasing"
    ),
    "Round": "",
    "ScatterElements": "",
    "ScatterND": "no `reduction`",
    "Shape": "",
    "Sigmoid": "",
    "Sign": "",
    "Sin": "",
    "Cos": "",
    "Slice": _AXES,
    "Softmax": "",
    "Softplus": "",
    "SpaceToDepth": "",
    "Split": "",
    "Sqrt": "",
    "Squeeze": _AXES,
    "Sub": "",
    "Sum": "",
    "Tanh": "",
    "Tile": "",
    "TopK": "`sorted` must be 1; `K` below 3840",
    "Transpose": "",
    "Trilu": "",
    "Unsqueeze": "`axes` must be a constant",
    "Where": "",
    "Xor": "",
}

UNSUPPORTED: frozenset[str] = frozenset(
    {
        "AffineGrid",
        "Bernoulli",
        "BitShift",
        "BitwiseAnd",
        "BitwiseNot",
        "BitwiseOr",
        "BitwiseXor",
        "BlackmanWindow",
        "CenterCropPad",
        "Col2Im",
        "Compress",
        "ConcatFromSequence",
        "ConvInteger",
        "DFT",
        "Det",
        "DynamicQuantizeLinear",
        "HammingWindow",
        "HannWindow",
        "ImageDecoder",
        "MatMulInteger",
        "MaxRoiPool",
        "MaxUnpool",
        "MelWeightMatrix",
        "Multinomial",
        "NegativeLogLikelihoodLoss",
        "Optional",
        "OptionalGetElement",
        "OptionalHasElement",
        "QLinearConv",
        "QLinearMatMul",
        "RegexFullMatch",
        "STFT",
        "SequenceAt",
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceErase",
        "SequenceInsert",
        "SequenceLength",
        "SequenceMap",
        "SoftmaxCrossEntropyLoss",
        "SplitToSequence",
        "StringConcat",
        "StringNormalizer",
        "StringSplit",
        "TfIdfVectorizer",
        "Unique",
    }
)

# Input index of `axes` where the support list requires it to be constant.
_CONSTANT_AXES = {"Pad": 3, "Slice": 3, "Squeeze": 1, "Unsqueeze": 1} | {
    op: 1 for op in SUPPORTED if op.startswith("Reduce")
}
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_COORDINATES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
_TOPK_LIMIT = 3840


def tensorrt_status(op_type: str) -> str:
    """``"supported"``, ``"unsupported"`` or ``"unknown"`` (not in this table; a ``domain::Op``
    outside the default ONNX domain is unknown too)."""
    if op_type in SUPPORTED:
        return "supported"
    if op_type in UNSUPPORTED:
        return "unsupported"
    return "unknown"


def _attribute(node: Any, name: str, default: Any) -> Any:
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            value = onnx.helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def tensorrt_findings(model: Any) -> list[str]:
    """What TensorRT's ONNX parser (version :data:`TENSORRT_VERSION`, on paper) would object
    to in ``model`` (an ``onnx.ModelProto``): an opset outside :data:`TENSORRT_OPSETS`, op
    types it does not support or that this table does not know, and the restrictions that
    can be read off the graph (constant ``axes``, pooling dilations, MaxPool's ``Indices``
    output, Resize modes, TopK's ``sorted`` and ``K``, LayerNormalization's extra outputs).
    Sorted and without repeats; empty when the graph is fine on paper."""
    import onnx
    from onnx import numpy_helper

    findings: set[str] = set()
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    low, high = TENSORRT_OPSETS
    if opset is not None and not low <= opset <= high:
        findings.add(f"opset {opset} is outside {low} to {high}")

    graphs = [model.graph] + [
        g for node in _all_nodes(model.graph) for a in node.attribute for g in _subgraphs(a, onnx)
    ]
    for graph in graphs:
        # Initializers and Constant outputs (the parser reads both as weights), with their
        # values where they are tensors.
        constants: dict[str, Any] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                value = _attribute(node, "value", None)
                constants[node.output[0]] = numpy_helper.to_array(value) if value is not None else None
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        for node in graph.node:
            findings.update(_node_findings(node, constants, used))
    return sorted(findings)


def _subgraphs(attribute: Any, onnx: Any) -> Iterable[Any]:
    if attribute.type == onnx.AttributeProto.GRAPH:
        yield attribute.g
    elif attribute.type == onnx.AttributeProto.GRAPHS:
        yield from attribute.graphs


def _all_nodes(graph: Any) -> Iterable[Any]:
    import onnx

    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in _subgraphs(attribute, onnx):
                yield from _all_nodes(sub)


def _node_findings(node: Any, constants: Mapping[str, Any], used: set[str]) -> Iterable[str]:
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
    status = tensorrt_status(op)
    if status == "unsupported":
        yield f"{op}: not supported"
        return
    if status == "unknown":
        yield f"{op}: not in this table (look it up)"
        return
    index = _CONSTANT_AXES.get(op)
    if index is not None and len(node.input) > index and node.input[index] and node.input[index] not in constants:
        yield f"{op}: `axes` is computed, not an initializer"
    if op in ("AveragePool", "MaxPool", "LpPool"):
        dilations = _attribute(node, "dilations", [])
        if any(d != 1 for d in dilations):
            yield f"{op}: dilations {list(dilations)}"
    if op == "MaxPool" and len(node.output) > 1 and node.output[1] in used:
        yield "MaxPool: uses the `Indices` output"
    if op == "LayerNormalization" and any(name in used for name in node.output[1:]):
        yield "LayerNormalization: uses a second or third output"
    if op == "Resize":
        yield from _resize_findings(node)
    if op == "TopK":
        if _attribute(node, "sorted", 1) != 1:
            yield "TopK: `sorted` is 0"
        if len(node.input) < 2 or node.input[1] not in constants:
            yield "TopK: `K` is computed at run time"
        elif constants[node.input[1]] is not None and int(constants[node.input[1]].reshape(-1)[0]) >= _TOPK_LIMIT:
            yield f"TopK: `K` >= {_TOPK_LIMIT}"


def _resize_findings(node: Any) -> Iterable[str]:
    mode = _attribute(node, "mode", "nearest")
    if mode not in _RESIZE_MODES:
        yield f"Resize: mode {mode}"
    coordinates = _attribute(node, "coordinate_transformation_mode", "half_pixel")
    if coordinates not in _RESIZE_COORDINATES:
        yield f"Resize: coordinate mode {coordinates}"
    if mode == "nearest":
        nearest = _attribute(node, "nearest_mode", "round_prefer_floor")
        if nearest not in _RESIZE_NEAREST:
            yield f"Resize: nearest mode {nearest}"
    if _attribute(node, "antialias", 0):
        yield "Resize: antialiasing"
    if _attribute(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        yield "Resize: aspect-ratio policy other than stretch"


def tensorrt_row(model: Any) -> tuple[list[str], list[str]]:
    """``(op types, findings)`` of an ONNX model or file: one row of ``docs/export.md``."""
    import onnx

    from .pipeline import onnx_op_types

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    return onnx_op_types(model), tensorrt_findings(model)


def render_tensorrt_tables(rows: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> str:
    """The two Markdown tables of ``docs/export.md``: one row per operator (``kind:name`` ->
    its op types, its findings), then one row per op type used, with TensorRT's support and
    restriction and how many of the operators use it."""
    from ..console import markdown_table

    per_operator = [
        [f"`{name}`", ", ".join(ops), "; ".join(findings) if findings else "supported"]
        for name, (ops, findings) in rows.items()
    ]
    users: dict[str, int] = {}
    for ops, _ in rows.values():
        for op in ops:
            users[op] = users.get(op, 0) + 1
    per_op = [[f"`{op}`", _STATUS_WORDS[tensorrt_status(op)], _restriction(op), str(users[op])] for op in sorted(users)]
    return "\n".join(
        [
            markdown_table(["operator", "ONNX op types", f"TensorRT {TENSORRT_VERSION} (on paper)"], per_operator),
            "",
            markdown_table(["op type", "TensorRT parser", "restriction", "operators using it"], per_op),
        ]
    )


def _restriction(op: str) -> str:
    if op not in SUPPORTED:
        return "-"
    return SUPPORTED[op] or "none stated"


_STATUS_WORDS = {"supported": "supported", "unsupported": "**not supported**", "unknown": "not in the table"}
