"""OpenMMLab integration: the library's operators by name in mmengine / mmcv configs.

Importing this module registers every operator of :mod:`resamplers.registry` in
:data:`MODELS`, a child of mmengine's root ``MODELS`` registry with the scope
``resamplers``.  It is the only module of the package that imports mmengine
(``pip install 'resamplers[mm]'``); ``import resamplers`` does not load it.

Using it in a config
--------------------
Name the module in ``custom_imports`` and the operators by their scoped type::

    custom_imports = dict(imports=["resamplers.integrations.mmengine"], allow_failed_imports=False)
    model = dict(
        neck=dict(
            ...,
            upsample_cfg=dict(type="resamplers.carafe", up_kernel=5, up_group=1,
                              encoder_kernel=3, encoder_dilation=1, compressed_channels=64),
        ),
    )

``Config.fromfile`` imports the ``custom_imports`` modules; with a ``Config`` built from
a dict, call ``mmengine.utils.import_modules_from_strings(**cfg.custom_imports)``.
``resamplers.<name>`` resolves from any scope (mmengine looks the ``resamplers`` child
up from the root).  The plain ``<name>`` resolves to this library when the default scope
is ``resamplers`` (``DefaultScope.get_instance(..., scope_name="resamplers")``,
``mmengine.registry.init_default_scope("resamplers")`` or ``default_scope = "resamplers"``
in a config); the ``resamplers`` registry is searched first, then the root, so names
that mmcv also registers in the root (``carafe`` with mmcv's ops, ``nearest``,
``bilinear``, ``deconv``, ``pixel_shuffle``) mean this library's operators there.

Naming rule
-----------
The registries share names across families (``carafe`` is an upsampler, a downsampler
and a pair; ``gem`` a downsampler and a pool), so each family has a prefix:

==============  ===================  =================================
family          type                 example
==============  ===================  =================================
upsampler       ``<name>``           ``resamplers.carafe``
downsampler     ``down_<name>``      ``resamplers.down_carafe``
pair            ``pair_<name>``      ``resamplers.pair_indexnet_m2o``
pool            ``pool_<name>``      ``resamplers.pool_gem``
block           ``block_<name>``     ``resamplers.block_strip_pooling``
==============  ===================  =================================

Upsamplers keep their plain name because they are what OpenMMLab configs name
(``upsample_cfg`` of mmdet/mmseg necks, mmcv's ``build_upsample_layer``).  The prefix is
joined with ``_``, not ``.``: mmengine reads a dot as a scope separator.  Every entry is
registered, named variants (``dysample_plus``) and pairs derived from upsamplers
included; :func:`type_name` gives the type of an entry.  Each registered object is a
builder that calls the family's ``create`` with the config's keywords, so a misspelt
keyword raises ``TypeError`` listing the accepted ones.  Operators registered later (user
code, plug-ins) are added by calling :func:`register_operators` again; a name that the
rule gives two operators raises ``KeyError``.

mmcv compatibility
------------------
:class:`~resamplers.upsampling.CARAFEPack` takes mmcv's ``CARAFEPack`` arguments with the
same names, order and defaults (``channels, scale_factor, up_kernel=5, up_group=1,
encoder_kernel=3, encoder_dilation=1, compressed_channels=64``; ``scale_factor``
defaults to 2 here) and has mmcv's state-dict keys (``channel_compressor.weight/bias``,
``content_encoder.weight/bias``), so mmcv / mmdetection checkpoints load with
``strict=True``.  ``mmcv.cnn.build_upsample_layer(cfg, *args, **kwargs)`` works with
``type="resamplers.carafe"`` (or ``carafe`` under the ``resamplers`` default scope);
positional arguments are bound to the constructor's parameters in order, as mmcv does.
Necks that pass ``upsample_cfg`` to ``build_upsample_layer`` as it is take
``type="resamplers.carafe"``.  mmdetection's ``FPN_CARAFE`` compares the type with the
literal ``"carafe"`` (it asserts one of five plain names), so there keep ``carafe`` and
build the neck in the ``resamplers`` scope, naming the neck by its own scope::

    neck=dict(type="mmdet.FPN_CARAFE", _scope_="resamplers", ..., upsample_cfg=dict(type="carafe", ...))

While the neck is built, every look-up starts from the ``resamplers`` registry and falls
back to the root, where mmcv's layers (``Conv2d``, ``BN``, ``ReLU``, ...) are.  (Checked
with a stand-in neck, not with mmdetection itself, which needs mmcv's compiled ops.)
``FPN_CARAFE.init_weights`` re-initialises every ``Conv2d`` Xavier-uniform and restores
the ``N(0, 0.001^2)`` content encoder only for mmcv's class: call the upsamplers'
``reset_parameters()`` afterwards to start from mmcv's CARAFE initialisation.

Feature-guided upsamplers (FADE, SAPA and their variants) take two tensors:
``up(decoder_feature, encoder_feature)``, where the decoder feature ``N x C x h x w`` is
the one to upsample and the encoder feature ``N x C_e x sh x sw`` is the skip feature
at the output resolution (``guide_channels=C_e`` when ``C_e != C``).  A neck calls them
as ``up(laterals[i], laterals[i - 1])`` instead of ``up(laterals[i])``.

FLOP counting
-------------
``mmengine.analysis`` (fvcore's counter) traces the model with ``torch.jit`` and counts
the recorded ops it has handles for, one multiply-add as one flop: its "flops" are
:func:`resamplers.complexity.count_macs`' MACs.  While tracing, the library computes the
reassembly on its portable torch path (the graph then holds, per window tap, one
``aten::mul`` and ``aten::addcmul_`` of the output's size, and for the window similarity
one ``aten::mul`` a tap) rather than the ``torch.ops.resamplers`` custom ops, and
mmengine counts none of these.  :func:`register_flop_handles` adds handles that count
them as the custom ops' ``N * C * K^2 * H_out * W_out`` MACs under the operator names
``reassemble`` and ``window_similarity``: a ``mul`` / ``addcmul_`` is counted when the
innermost Python frame that recorded it is the torch path's reassembly or similarity
(its source range), other ``mul`` / ``addcmul_`` nodes go to the handle registered
before (none by default: they count 0, as before, but are no longer listed as
unsupported).  Nodes of the custom ops themselves (``resamplers::reassemble``,
``resamplers::window_similarity``) are counted too.  Call it once before
``get_model_complexity_info``, or pass a ``FlopAnalyzer`` to set the handles on that one
only.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

try:
    from mmengine.registry import MODELS as MMENGINE_MODELS
    from mmengine.registry import Registry
except ImportError as error:  # pragma: no cover - exercised only without mmengine
    raise ImportError(
        "resamplers.integrations.mmengine needs mmengine: pip install 'resamplers[mm]' (mmengine>=0.10)"
    ) from error

from torch import nn

from ..core import torch_path
from ..registry import BLOCKS, DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS
from ..registry import Registry as OperatorRegistry

__all__ = [
    "SCOPE",
    "MODELS",
    "FAMILY_PREFIXES",
    "type_name",
    "register_operators",
    "flop_handles",
    "register_flop_handles",
]

SCOPE = "resamplers"

# A reload (or a second import under another name) finds the child registry already there.
_existing = MMENGINE_MODELS.children.get(SCOPE)  # a Registry is falsy while empty: compare with None
MODELS: Registry = _existing if _existing is not None else Registry("model", parent=MMENGINE_MODELS, scope=SCOPE)

# Family -> prefix of its names in MODELS (see "Naming rule" above).
FAMILY_PREFIXES: dict[str, str] = {
    UPSAMPLERS.kind: "",
    DOWNSAMPLERS.kind: "down_",
    PAIRS.kind: "pair_",
    POOLS.kind: "pool_",
    BLOCKS.kind: "block_",
}
_FAMILIES: dict[str, OperatorRegistry] = {r.kind: r for r in (UPSAMPLERS, DOWNSAMPLERS, PAIRS, POOLS, BLOCKS)}


def type_name(name: str, family: str = "upsampler", *, scoped: bool = True) -> str:
    """The config ``type`` of operator ``name`` of ``family`` (``upsampler``, ``downsampler``,
    ``pair``, ``pool`` or ``block``): ``type_name("carafe", "pair") == "resamplers.pair_carafe"``;
    without the scope prefix when ``scoped`` is false."""
    if family not in FAMILY_PREFIXES:
        raise ValueError(f"argument `family`: expected one of {sorted(FAMILY_PREFIXES)}, got {family!r}")
    key = FAMILY_PREFIXES[family] + name
    return f"{SCOPE}.{key}" if scoped else key


def _bind_positional(parameters: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keywords for ``args`` taken in the order of the constructor's ``parameters`` (as
    ``build_upsample_layer(cfg, *args)`` passes them), merged with ``kwargs``."""
    if len(args) > len(parameters):
        raise TypeError(
            f"expected at most {len(parameters)} positional arguments ({', '.join(parameters)}), got {len(args)}"
        )
    bound = dict(kwargs)
    for key, value in zip(parameters, args):
        if key in bound:
            raise TypeError(f"got multiple values for argument {key!r}")
        bound[key] = value
    return bound


def _builder(family: OperatorRegistry, name: str) -> Callable[..., nn.Module]:
    entry = family.entry(name)

    def build(*args: Any, **kwargs: Any) -> nn.Module:
        if args:
            kwargs = _bind_positional(family.entry(name).own_keywords(), args, kwargs)
        return family.create(name, **kwargs)

    # mmengine's log names the class and module that the built object comes from.
    build.__name__ = build.__qualname__ = entry.cls.__name__
    build.__module__ = entry.cls.__module__
    build.__doc__ = f"Build the resamplers {family.kind} {name!r} ({entry.cls.__name__}): {entry.summary}"
    build.resamplers_operator = (family.kind, name)  # type: ignore[attr-defined]
    return build


def register_operators() -> list[str]:
    """Register in :data:`MODELS` every operator not registered yet; returns the names added.

    Called when the module is imported; call it again after registering more operators.
    Raises ``KeyError`` when the naming rule gives one name to two operators.
    """
    added = []
    for kind, prefix in FAMILY_PREFIXES.items():
        family = _FAMILIES[kind]
        for name in family.names():
            key = prefix + name
            existing = MODELS.module_dict.get(key)
            if existing is not None:
                if getattr(existing, "resamplers_operator", None) == (kind, name):
                    continue
                owner = getattr(existing, "resamplers_operator", existing)
                raise KeyError(f"{SCOPE}.{key}: {kind} {name!r} and {owner} would share this mmengine name")
            MODELS.register_module(name=key, module=_builder(family, name))
            added.append(key)
    return added


register_operators()


# ----------------------------------------------------------------------------- FLOP handles

# Functions of the torch path whose multiply(-add)s are the reassembly and the similarity.
_TORCH_PATH_OPS = {
    torch_path.reassemble_torch.__name__: "reassemble",
    torch_path.similarity_torch.__name__: "window_similarity",
}
_TORCH_PATH_FILE = os.path.realpath(torch_path.__file__)
_FLOATING = {"Float", "Double", "Half", "BFloat16"}

Handle = Callable[[list[Any], list[Any]], Any]


def _shape(value: Any) -> list[int] | None:
    """The static shape of a traced tensor value, ``None`` when the trace does not know it."""
    return list(value.type().sizes()) if value.isCompleteTensor() else None


def _torch_path_op(node: Any) -> str | None:
    """``reassemble`` / ``window_similarity`` when the innermost Python frame that recorded
    ``node`` is that function of the torch path (from the node's source range)."""
    try:
        frame = node.sourceRange().splitlines()[0]
    except (AttributeError, IndexError, RuntimeError):
        return None
    location, _, function = frame.rpartition("): ")
    path = location.rpartition("(")[0]
    if function not in _TORCH_PATH_OPS or not path or os.path.realpath(path) != _TORCH_PATH_FILE:
        return None
    return _TORCH_PATH_OPS[function]


def _torch_path_handle(previous: Handle | None) -> Handle:
    """A handle for ``aten::mul`` / ``aten::addcmul_``: one MAC per output element of the
    torch path's tap products; any other node goes to ``previous`` (counts 0 without one)."""

    def handle(inputs: list[Any], outputs: list[Any]) -> Any:
        out = outputs[0]
        op = _torch_path_op(out.node())
        shape = _shape(out)
        if op is not None and shape is not None and len(shape) >= 4 and out.type().scalarType() in _FLOATING:
            return Counter({op: math.prod(shape)})
        return previous(inputs, outputs) if previous is not None else Counter()

    handle.resamplers_handle = True  # type: ignore[attr-defined]
    return handle


def _kernel_size(geometry: Any) -> int:
    """``K``, the first entry of a traced ``geometry`` list of constants."""
    node = geometry.node()
    values = [v.toIValue() for v in node.inputs()] if node.kind() == "prim::ListConstruct" else geometry.toIValue()
    if not values or not isinstance(values[0], int):
        raise ValueError(f"resamplers FLOP handle: the geometry of the traced op is not constant: {node}")
    return values[0]


def _custom_op_handle(op: str) -> Handle:
    """A handle for ``resamplers::<op>`` nodes: ``N * C * K^2 * H_out * W_out`` MACs, read
    from the output shape (reassembly) or the query shape (similarity) and ``geometry[0]``."""

    def handle(inputs: list[Any], outputs: list[Any]) -> Any:
        shape = _shape(outputs[0] if op == "reassemble" else inputs[0])
        if shape is None:
            raise ValueError(f"resamplers FLOP handle: the traced {op} has no static shape")
        k = _kernel_size(inputs[2])
        return Counter({op: math.prod(shape) * k * k})

    handle.resamplers_handle = True  # type: ignore[attr-defined]
    return handle


_CHAINED_OPS = ("aten::mul", "aten::addcmul_")


def flop_handles(previous: dict[str, Handle] | None = None) -> dict[str, Handle]:
    """mmengine/fvcore FLOP handles for the library's reassembly and window similarity
    (one MAC per flop), keyed by traced op name.  ``previous`` holds the handles in force
    for ``aten::mul`` / ``aten::addcmul_``, called for the nodes that are not the library's."""
    previous = previous or {}
    handles: dict[str, Handle] = {
        "resamplers::reassemble": _custom_op_handle("reassemble"),
        "resamplers::window_similarity": _custom_op_handle("window_similarity"),
    }
    for op in _CHAINED_OPS:
        before = previous.get(op)
        handles[op] = before if getattr(before, "resamplers_handle", False) else _torch_path_handle(before)
    return handles


def register_flop_handles(analyzer: Any = None) -> Any:
    """Make ``mmengine.analysis`` count the library's reassembly and similarity.

    With an ``analyzer`` (a ``FlopAnalyzer``), set the handles on it and return it.  Without
    one, add them to mmengine's default FLOP handles, which every ``FlopAnalyzer`` made
    afterwards starts from (``get_model_complexity_info`` included), and return that table.
    Calling it again changes nothing.
    """
    if analyzer is not None:
        current = getattr(analyzer, "_op_handles", {})
        return analyzer.set_op_handle(**flop_handles({op: current.get(op) for op in _CHAINED_OPS}))
    from mmengine.analysis import complexity_analysis

    table: dict[str, Handle] = complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS
    table.update(flop_handles({op: table.get(op) for op in _CHAINED_OPS}))
    return table
