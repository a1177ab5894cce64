"""Build a registered operator, export it, and check what was written.

The steps, each a function, in the order :func:`export_operator` runs them:

``build``
    :func:`build_operator`: the registry entry by name (``kind:name``, or a bare name that
    one family has), at ``channels`` (and ``scale_factor`` where the operator takes one),
    with the weights of a checkpoint if given (:func:`load_state_dict`).
``export``
    :func:`export_onnx` (``torch.onnx.export`` with ``dynamo=True``; dynamic batch, height
    and width through ``torch.export`` shapes from the operator's contract) or
    :func:`export_torchscript` (``torch.jit.trace``).  The dynamo exporter, because the
    TorchScript-based one rejects A2U once height and width are dynamic.
``check``
    :func:`check_onnx`: strict shape inference, then ``onnx.checker`` with ``full_check``.
``simplify``
    :func:`simplify_onnx`: onnxslim, then the checker again.
``run``
    The written file in ONNX Runtime (CPU) or reloaded with ``torch.jit.load``, at two
    input sizes (the second another size when the export is dynamic).
``compare``
    The outputs against eager PyTorch: the maximum absolute difference per size, which must
    be within ``tolerance * (1 + max |eager|)``.

A step that fails raises :class:`ExportError` naming it; arguments that cannot work (an
unknown name, ``channels=0``) raise ``ValueError`` naming the argument before any step.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

from .._checks import did_you_mean
from ..base import Operator
from ..registry import BLOCKS, DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS, Registry
from .inputs import dynamic_shapes, example_inputs, export_sizes

__all__ = [
    "STEPS",
    "FORMATS",
    "REGISTRIES",
    "ExportError",
    "SizeCheck",
    "ExportReport",
    "resolve_name",
    "example_keywords",
    "load_state_dict",
    "build_operator",
    "check_sizes",
    "export_onnx",
    "check_onnx",
    "simplify_onnx",
    "onnx_op_types",
    "run_onnx",
    "export_torchscript",
    "run_torchscript",
    "max_abs_difference",
    "export_operator",
]

STEPS = ("build", "export", "check", "simplify", "run", "compare")
FORMATS = ("onnx", "torchscript")
REGISTRIES: dict[str, Registry] = {r.kind: r for r in (UPSAMPLERS, DOWNSAMPLERS, PAIRS, POOLS, BLOCKS)}

Progress = Callable[[str, str], None]  # (step, text)


class ExportError(RuntimeError):
    """A step of the export failed; :attr:`step` is one of :data:`STEPS`."""

    def __init__(self, step: str, message: str) -> None:
        if step not in STEPS:
            raise ValueError(f"argument `step`: expected one of {', '.join(STEPS)}, got {step!r}")
        self.step = step
        self.detail = message
        super().__init__(f"step `{step}` failed: {message}")


@dataclass(frozen=True)
class SizeCheck:
    """One input size the written file was run at, and how far it is from eager."""

    shapes: tuple[tuple[int, ...], ...]  # the input shapes
    max_abs_diff: float
    max_abs_eager: float


@dataclass
class ExportReport:
    name: str  # kind:name
    format: str
    path: Path
    dynamic: bool
    opset: int | None = None  # ONNX only
    simplified: bool = False
    nodes: tuple[int, int] | None = None  # ONNX nodes before and after simplification
    op_types: list[str] = field(default_factory=list)  # ONNX only
    checks: list[SizeCheck] = field(default_factory=list)
    tolerance: float = 1e-4

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)


# -- build ----------------------------------------------------------------------------------


def resolve_name(name: str, *, argument: str = "name") -> tuple[str, str]:
    """``(kind, bare name)`` for ``kind:name`` or a bare name registered in one family only.

    An unknown name, an unknown kind, or a bare name several families register (``carafe``
    is an upsampler, a downsampler and a pair) raises ``ValueError`` naming ``argument``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"argument `{argument}`: expected an operator name such as upsampler:carafe, got {name!r}")
    if ":" in name:
        kind, bare = name.split(":", 1)
        if kind not in REGISTRIES:
            raise ValueError(
                f"argument `{argument}`: unknown kind {kind!r}{did_you_mean(kind, list(REGISTRIES))} "
                f"Kinds: {', '.join(REGISTRIES)}"
            )
        REGISTRIES[kind].entry(bare, argument=argument)  # raises, naming close matches
        return kind, bare
    kinds = [kind for kind, registry in REGISTRIES.items() if name in registry]
    if len(kinds) == 1:
        return kinds[0], name
    if kinds:
        choices = ", ".join(f"{kind}:{name}" for kind in kinds)
        raise ValueError(f"argument `{argument}`: {name!r} is registered in several families; write one of {choices}")
    every = [f"{kind}:{n}" for kind, registry in REGISTRIES.items() for n in registry.names()]
    bare_names = sorted({q.split(":", 1)[1] for q in every})
    hint = did_you_mean(name, bare_names + every)
    raise ValueError(f"argument `{argument}`: unknown operator {name!r}{hint} `resamplers ops` lists them")


def load_state_dict(path: str | Path, *, argument: str = "checkpoint") -> dict[str, Tensor]:
    """A state dict from ``path``: safetensors (``.safetensors``) or a file ``torch.load``
    reads with ``weights_only=True`` (a state dict, or a dict holding one as ``state_dict``
    or ``model``).  A missing or unreadable file raises ``ValueError`` naming ``argument``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"argument `{argument}`: no such file {path}")
    if path.suffix == ".safetensors":
        from ..storage import load_model_state

        try:
            tensors, _ = load_model_state(path)
        except (ValueError, ImportError) as error:
            raise ValueError(f"argument `{argument}`: {error}") from error
        return dict(tensors)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights-only errors have no common type
        raise ValueError(
            f"argument `{argument}`: {path} is not a state dict torch.load reads with weights_only=True ({error})"
        ) from error
    for candidate in (loaded, *(loaded.get(key) for key in ("state_dict", "model") if isinstance(loaded, dict))):
        if isinstance(candidate, Mapping) and candidate and all(isinstance(v, Tensor) for v in candidate.values()):
            return {str(k): v for k, v in candidate.items()}
    raise ValueError(f"argument `{argument}`: {path} holds no state dict (a mapping of names to tensors)")


def example_keywords(name: str) -> dict[str, Any]:
    """The registry's example construction keywords of ``name`` (small channel counts; the
    documentation, the benchmark and the shared test matrix build operators with them)."""
    kind, bare = resolve_name(name)
    return REGISTRIES[kind].entry(bare).example_kwargs()


def _check_channels(channels: object) -> None:
    values = channels if isinstance(channels, tuple) else (channels,)
    if not values or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in values):
        raise ValueError(f"argument `channels`: expected an int >= 1 (or a tuple of them), got {channels!r}")


def build_operator(
    name: str,
    *,
    channels: int | tuple[int, ...],
    scale_factor: float | None = None,
    options: Mapping[str, Any] | None = None,
    checkpoint: str | Path | Mapping[str, Tensor] | None = None,
) -> Operator:
    """The registered operator ``name`` in eval mode, at ``channels`` and, where given,
    ``scale_factor``; ``options`` are further constructor keywords; ``checkpoint`` a state
    dict or a file for :func:`load_state_dict`, loaded strictly.

    Arguments that cannot work raise ``ValueError`` naming them; a constructor or a state
    dict that fails raises :class:`ExportError` (step ``build``).
    """
    kind, bare = resolve_name(name)
    _check_channels(channels)
    entry = REGISTRIES[kind].entry(bare)
    kwargs: dict[str, Any] = {**dict(options or {}), "channels": channels}
    if scale_factor is not None:
        if "scale_factor" not in entry.accepted_keywords():
            raise ValueError(f"argument `scale_factor`: {kind}:{bare} takes no scale factor")
        if isinstance(scale_factor, bool) or not isinstance(scale_factor, int | float) or scale_factor <= 0:
            raise ValueError(f"argument `scale_factor`: expected a number > 0, got {scale_factor!r}")
        kwargs["scale_factor"] = scale_factor
    state = load_state_dict(checkpoint) if isinstance(checkpoint, str | Path) else checkpoint
    call = f"{kind}:{bare}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        module = REGISTRIES[kind].create(bare, **kwargs)
    except Exception as error:
        raise ExportError("build", f"{call}: {error}") from error
    if not isinstance(module, Operator):
        raise ExportError("build", f"{call} is a {type(module).__name__}, not a resamplers.base.Operator")
    if state is not None:
        try:
            module.load_state_dict(dict(state), strict=True)
        except Exception as error:
            raise ExportError("build", f"the checkpoint does not fit {call}: {error}") from error
    return module.eval()


# -- sizes ------------------------------------------------------------------------------------


def check_sizes(module: Operator, dynamic: bool) -> list[tuple[int, int, int]]:
    """``(batch, height, width)`` of the export (the first) and of the second run: another
    batch and size when ``dynamic``, the same with other values otherwise.  Export uses a
    batch of 2 (a batch of 1 would be specialised)."""
    first = (2, *export_sizes(module))
    return [first, (1, *export_sizes(module, second=True)) if dynamic else first]


def _feeds(module: Operator, sizes: Sequence[tuple[int, int, int]]) -> list[tuple]:
    return [example_inputs(module, *size, seed=seed) for seed, size in enumerate(sizes)]


def _shapes(inputs: object) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(t.shape) for t in tree_flatten(inputs)[0])


# -- export -----------------------------------------------------------------------------------


# The exporter's registration notes (torchvision ops it skips), onnxscript's version
# converter (which logs a traceback when it falls back) and onnxslim's progress.
_CHATTY_LOGGERS = (
    "torch.onnx",
    "torch.onnx._internal.exporter._registration",
    "onnxscript",
    "onnxscript.version_converter",
    "onnx_ir",
    "onnxslim",
)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Exporter chatter (tracer and deprecation warnings, progress lines, info logs) out of
    the way; what it printed is kept for an error message."""
    buffer = io.StringIO()
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buffer):
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _short(error: BaseException, lines: int = 12) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()
    more = f"\n... ({len(text) - lines} more lines)" if len(text) > lines else ""
    return "\n".join(text[:lines]) + more


def _default_opset(model: Any) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def export_onnx(module: Operator, inputs: tuple, *, dynamic: bool, opset: int | None = None) -> Any:
    """``module`` at ``inputs`` as an ``onnx.ModelProto`` (``torch.onnx.export``, dynamo),
    with dynamic batch, height and width when ``dynamic``.  ``opset`` is the default-domain
    opset to write (the exporter's default when ``None``); an exporter that writes another
    one, or fails, raises :class:`ExportError` (step ``export``)."""
    _require("onnx", "onnxscript")
    shapes = dynamic_shapes(module) if dynamic else None
    kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
    with _quiet() as printed:
        try:
            program = torch.onnx.export(
                module, inputs, None, dynamo=True, dynamic_shapes=shapes, verbose=False, **kwargs
            )
            model = program.model_proto
        except Exception as error:
            tail = printed.getvalue().strip().splitlines()[-5:]
            hint = ("\nexporter output:\n" + "\n".join(tail)) if tail else ""
            raise ExportError("export", f"torch.onnx.export (dynamo) failed: {_short(error)}{hint}") from error
    written = _default_opset(model)
    if opset is not None and written != opset:
        raise ExportError(
            "export",
            f"asked for opset {opset}, the exporter wrote opset {written} (it could not convert the graph); "
            f"ask for opset {written} or higher",
        )
    return model


def check_onnx(model: Any, *, step: str = "check") -> Any:
    """Strict shape inference (types checked, data propagated), then ``onnx.checker`` with
    ``full_check``; returns the model with inferred shapes.  Failures raise
    :class:`ExportError` naming ``step``."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as error:
        raise ExportError(step, f"strict ONNX shape inference failed: {_short(error)}") from error
    try:
        onnx.checker.check_model(inferred, full_check=True)
    except Exception as error:
        raise ExportError(step, f"onnx.checker (full_check) rejected the model: {_short(error)}") from error
    return inferred


def simplify_onnx(model: Any) -> Any:
    """The graph simplified by onnxslim (constant folding, dead and duplicate node removal,
    fusions), checked again with :func:`check_onnx`.  Failures raise :class:`ExportError`
    (step ``simplify``)."""
    _require("onnxslim", step="simplify", extra="onnx")
    import onnxslim

    with _quiet():
        try:
            simplified = onnxslim.slim(model)
        except Exception as error:
            raise ExportError("simplify", f"onnxslim failed: {_short(error)}") from error
    if simplified is None:
        raise ExportError("simplify", "onnxslim returned no model")
    check_onnx(simplified, step="simplify")
    return simplified


def onnx_op_types(model: Any) -> list[str]:
    """The op types an ONNX model (a ``ModelProto`` or a file) uses, sorted: the nodes of
    its graph, of subgraphs (``If`` / ``Loop`` bodies) and of the local functions it calls
    (expanded: the function's body counts, not the call).  Op types outside the default
    domain are written ``domain::Op``."""
    import onnx

    if isinstance(model, str | Path):
        model = onnx.load(str(model))
    functions = {(f.domain, f.name): f for f in model.functions}
    found: set[str] = set()
    seen: set[tuple[str, str]] = set()

    def visit(nodes: Sequence[Any]) -> None:
        for node in nodes:
            key = (node.domain, node.op_type)
            if key in functions:
                if key not in seen:
                    seen.add(key)
                    visit(functions[key].node)
            else:
                domain = "" if node.domain in ("", "ai.onnx") else f"{node.domain}::"
                found.add(domain + node.op_type)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    visit(attribute.g.node)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    for graph in attribute.graphs:
                        visit(graph.node)

    visit(model.graph.node)
    return sorted(found)


def run_onnx(path: str | Path, feeds: Sequence[tuple]) -> list[list[Tensor]]:
    """The outputs of the ONNX file in ONNX Runtime (CPU) for each feed (forward's positional
    arguments), flattened.  Failures raise :class:`ExportError` (step ``run``)."""
    _require("onnxruntime", step="run")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ExportError("run", f"onnxruntime could not load {path}: {_short(error)}") from error
    names = [i.name for i in session.get_inputs()]
    results = []
    for feed in feeds:
        tensors = tree_flatten(feed)[0]
        if len(tensors) != len(names):
            raise ExportError("run", f"{path} takes {len(names)} inputs ({', '.join(names)}), given {len(tensors)}")
        try:
            outputs = session.run(None, {n: t.numpy() for n, t in zip(names, tensors)})
        except Exception as error:
            raise ExportError("run", f"onnxruntime failed at inputs {_shapes(feed)}: {_short(error)}") from error
        results.append([torch.from_numpy(o) for o in outputs])
    return results


def export_torchscript(module: Operator, inputs: tuple) -> torch.jit.ScriptModule:
    """``module`` traced at ``inputs`` (``torch.jit.trace``; shapes stay symbolic where the
    operator computes them from its input, which :func:`export_operator` checks by running
    another size).  Failures raise :class:`ExportError` (step ``export``)."""
    with _quiet(), torch.no_grad():
        try:
            return torch.jit.trace(module, inputs, check_trace=False)
        except Exception as error:
            raise ExportError("export", f"torch.jit.trace failed: {_short(error)}") from error


def run_torchscript(path: str | Path, feeds: Sequence[tuple]) -> list[list[Tensor]]:
    """The outputs of the saved TorchScript module reloaded from ``path`` for each feed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise ExportError("run", f"torch.jit.load could not load {path}: {_short(error)}") from error
    results = []
    with torch.no_grad():
        for feed in feeds:
            try:
                results.append(tree_flatten(loaded(*feed))[0])
            except Exception as error:
                raise ExportError(
                    "run", f"the TorchScript module failed at inputs {_shapes(feed)}: {_short(error)}"
                ) from error
    return results


def max_abs_difference(got: Sequence[Tensor], expected: Sequence[Tensor]) -> float:
    """The largest absolute difference over all output tensors; a different number of
    outputs or a different shape raises :class:`ExportError` (step ``compare``)."""
    if len(got) != len(expected):
        raise ExportError("compare", f"{len(got)} outputs, eager gives {len(expected)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(got, expected)):
        if tuple(a.shape) != tuple(b.shape):
            raise ExportError("compare", f"output {i} has shape {tuple(a.shape)}, eager {tuple(b.shape)}")
        if a.numel():
            worst = max(worst, float((a.double() - b.double()).abs().max()))
    return worst


def _compare(
    outputs: Sequence[Sequence[Tensor]], eager: Sequence[Sequence[Tensor]], feeds: Sequence[tuple]
) -> list[SizeCheck]:
    checks = []
    for got, want, feed in zip(outputs, eager, feeds):
        scale = max((float(t.abs().max()) for t in want if t.numel()), default=0.0)
        checks.append(SizeCheck(_shapes(feed), max_abs_difference(got, want), scale))
    return checks


def _within(checks: Sequence[SizeCheck], tolerance: float) -> bool:
    return all(c.max_abs_diff <= tolerance * (1.0 + c.max_abs_eager) for c in checks)


def _describe(checks: Sequence[SizeCheck]) -> str:
    return ", ".join(f"{c.max_abs_diff:.2e} at {_shape_text(c.shapes)}" for c in checks)


def _shape_text(shapes: tuple[tuple[int, ...], ...]) -> str:
    return " + ".join("x".join(map(str, s)) for s in shapes)


def _require(*modules: str, step: str = "export", extra: str = "onnx") -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(step, f"needs {', '.join(missing)}: pip install 'resamplers[{extra}]'")


def _save_onnx(model: Any, path: Path) -> None:
    import onnx

    try:
        onnx.save(model, str(path))
    except Exception as error:
        raise ExportError("export", f"cannot write {path}: {_short(error)}") from error


# -- the whole export -------------------------------------------------------------------------


def export_operator(
    name: str,
    path: str | Path,
    *,
    format: str = "onnx",
    channels: int | tuple[int, ...],
    scale_factor: float | None = None,
    dynamic: bool = False,
    checkpoint: str | Path | Mapping[str, Tensor] | None = None,
    opset: int | None = None,
    simplify: bool = True,
    options: Mapping[str, Any] | None = None,
    tolerance: float = 1e-4,
    progress: Progress | None = None,
) -> ExportReport:
    """Build the operator ``name``, export it to ``path`` as ``format`` (``"onnx"`` or
    ``"torchscript"``) and check the file: the steps of this module's docstring.

    ``dynamic`` frees batch, height and width and checks the file at a second, different
    size; ``opset`` and ``simplify`` apply to ONNX.  ``progress(step, text)`` is told what
    each step did.  Returns the :class:`ExportReport`; a failing step raises
    :class:`ExportError` naming it, arguments that cannot work raise ``ValueError``.
    """
    say = progress or (lambda step, text: None)
    if format not in FORMATS:
        raise ValueError(f"argument `format`: expected one of {', '.join(FORMATS)}, got {format!r}")
    if format == "torchscript" and opset is not None:
        raise ValueError("argument `opset`: applies to the ONNX format only")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 1):
        raise ValueError(f"argument `opset`: expected an int >= 1, got {opset!r}")
    if not tolerance >= 0:
        raise ValueError(f"argument `tolerance`: expected a number >= 0, got {tolerance!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"argument `path`: the folder {path.parent} does not exist")

    kind, bare = resolve_name(name)
    module = build_operator(
        f"{kind}:{bare}", channels=channels, scale_factor=scale_factor, options=options, checkpoint=checkpoint
    )
    parameters = sum(p.numel() for p in module.parameters())
    loaded = " with the checkpoint's weights" if checkpoint is not None else ""
    say("build", f"{kind}:{bare}, {parameters:,} parameters{loaded}")

    sizes = check_sizes(module, dynamic)
    feeds = _feeds(module, sizes)
    with torch.no_grad():
        eager = [tree_flatten(module(*feed))[0] for feed in feeds]
    report = ExportReport(name=f"{kind}:{bare}", format=format, path=path, dynamic=dynamic, tolerance=tolerance)
    free = "dynamic batch, height and width" if dynamic else "static sizes"
    if format == "torchscript":
        traced = export_torchscript(module, feeds[0])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of export
                torch.jit.save(traced, str(path))
        except Exception as error:
            raise ExportError("export", f"cannot write {path}: {_short(error)}") from error
        traced_free = "shapes as traced; run again at another size below" if dynamic else "one size"
        say("export", f"torchscript (torch.jit.trace) at {_shape_text(_shapes(feeds[0]))}, {traced_free}")
        outputs = run_torchscript(path, feeds)
        say("run", f"torch.jit.load, at {' and '.join(_shape_text(_shapes(f)) for f in feeds)}")
    else:
        model = export_onnx(module, feeds[0], dynamic=dynamic, opset=opset)
        report.opset = _default_opset(model)
        say("export", f"onnx (dynamo, opset {report.opset}) at {_shape_text(_shapes(feeds[0]))}, {free}")
        check_onnx(model)
        say("check", "strict shape inference and onnx.checker (full_check): passed")
        final = model
        if simplify:
            final = simplify_onnx(model)
            report.simplified = True
            report.nodes = (len(model.graph.node), len(final.graph.node))
            say("simplify", f"onnxslim: {report.nodes[0]} -> {report.nodes[1]} nodes; checker passed again")
        _save_onnx(final, path)
        report.op_types = onnx_op_types(final)
        outputs = run_onnx(path, feeds)
        say("run", f"onnxruntime (CPU), at {' and '.join(_shape_text(_shapes(f)) for f in feeds)}")
        if simplify:
            checks = _compare(outputs, eager, feeds)
            if not _within(checks, tolerance):
                # Which step changed the numbers: the exported graph, or its simplification?
                scratch = path.with_name(path.name + ".unsimplified")
                try:
                    _save_onnx(model, scratch)
                    unsimplified = _compare(run_onnx(scratch, feeds), eager, feeds)
                finally:
                    scratch.unlink(missing_ok=True)
                if _within(unsimplified, tolerance):
                    raise ExportError(
                        "simplify",
                        f"onnxslim changed the outputs: max |onnxruntime - eager| {_describe(checks)} after "
                        f"simplification, {_describe(unsimplified)} before (tolerance {tolerance:g}); "
                        f"export without simplification",
                    )
    report.checks = _compare(outputs, eager, feeds)
    runtime = "torchscript" if format == "torchscript" else "onnxruntime"
    if not _within(report.checks, tolerance):
        raise ExportError(
            "compare",
            f"max |{runtime} - eager| {_describe(report.checks)} exceeds tolerance {tolerance:g} x (1 + max |eager|)",
        )
    say("compare", f"max |{runtime} - eager|: {_describe(report.checks)} (tolerance {tolerance:g})")
    return report
