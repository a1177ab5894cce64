"""The contract the compiled backends of the core share: argument checks, fake
implementations, autograd and FLOP formulas of their four ``torch.library`` custom ops.

Each backend (the native C kernels in :mod:`.native`, the Triton kernels in
:mod:`.triton_path`) defines four ops on ``(tensor, tensor, geometry)`` arguments, where
``geometry`` is ``[K, G, up, stride, pad_top, pad_left]``:

* ``reassemble(features, kernels)`` -> ``N x C x H_out x W_out``;
* ``grad_features(grad_out, features, kernels)`` -> the shape of ``features``;
* ``grad_kernels(grad_out, features, kernels)`` -> the shape of ``kernels``;
* ``similarity(query, keys)`` -> ``N x (G K^2) x H_out x W_out``.

All four are bilinear, and the gradient of each is again one of the four, so
:func:`register_core_ops` wires their autograd once for every backend and second (and
higher) derivatives are exact.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from .geometry import Geometry

__all__ = [
    "check_geometry_list",
    "check_op_shapes",
    "check_grad_shape",
    "check_similarity_shapes",
    "empty_in_layout",
    "is_channels_last",
    "register_core_ops",
    "takes_pixel_major",
]

# Channels a group from which a native op takes its pixel-major kernel for channels-last
# input.  A pixel-major vector holds channels: fewer than a vector's worth leave it part
# empty, and the kernel gradient sums each vector across its lanes once a tap, which only
# pays when a group spans several vectors (measured with tools/bench_channels_last.py).
PIXEL_MAJOR_MIN_GROUP_CHANNELS = {
    "reassemble": 16,
    "reassemble_grad_features": 16,
    "reassemble_grad_kernels": 64,
    "window_similarity": 64,
}


def is_channels_last(t: Tensor) -> bool:
    """Whether ``t`` is laid out channels-last and not also contiguous (a tensor with one
    channel or one pixel is both, and takes the plane-major kernels)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def takes_pixel_major(op: str, t: Tensor, groups: int) -> bool:
    """Whether native op ``op`` computes on ``t`` (its features, or keys) in channels-last
    layout, returning channels-last outputs; otherwise it computes on planes and returns
    contiguous ones."""
    return is_channels_last(t) and t.shape[1] // groups >= PIXEL_MAJOR_MIN_GROUP_CHANNELS[op]


def empty_in_layout(shape: tuple[int, ...], like: Tensor, channels_last: bool) -> Tensor:
    """``like.new_empty(shape)``, channels-last when ``channels_last``."""
    if channels_last:
        return like.new_empty(shape).contiguous(memory_format=torch.channels_last)
    return like.new_empty(shape)


def check_geometry_list(op: str, geometry: object) -> Geometry:
    """``geometry`` as an op receives it, checked and as a :class:`Geometry`."""
    prefix = f"torch.ops.resamplers.{op}: argument `geometry`"
    if not isinstance(geometry, (list, tuple)) or len(geometry) != 6:
        raise ValueError(f"{prefix}: expected [kernel_size, groups, up, stride, pad_top, pad_left], got {geometry!r}")
    for name, value in zip(Geometry._fields, geometry):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{prefix}: expected int {name}, got {value!r}")
    k, groups, up, stride, pad_top, pad_left = geometry
    for name, value in (("kernel_size", k), ("groups", groups), ("up", up), ("stride", stride)):
        if value < 1:
            raise ValueError(f"{prefix}: expected {name} >= 1, got {value}")
    if up > 1 and stride > 1:
        raise ValueError(f"{prefix}: expected stride 1 when up > 1, got up {up} and stride {stride}")
    for name, value in (("pad_top", pad_top), ("pad_left", pad_left)):
        if not 0 <= value < k:
            raise ValueError(f"{prefix}: expected 0 <= {name} < kernel_size={k}, got {value}")
    return Geometry(*geometry)


def check_op_shapes(
    op: str, features: Tensor, kernels_shape: tuple[int, ...], geometry: Geometry, kernels_name: str
) -> None:
    """The checks of :func:`~resamplers.core.geometry.check_reassembly` on an op's arguments:
    everything the kernels need to stay inside their buffers."""
    prefix = f"torch.ops.resamplers.{op}: argument"
    n, c, h_in, w_in = features.shape
    k, groups, up, stride, pad_top, pad_left = geometry
    if c < 1 or c % groups:
        raise ValueError(f"{prefix} `geometry`: expected groups dividing the {c} channels, got {groups}")
    if kernels_shape[0] != n or kernels_shape[1] != groups * k * k:
        raise ValueError(
            f"{prefix} `{kernels_name}`: expected batch {n} and groups * kernel_size**2 = {groups * k * k} "
            f"channels, got shape {tuple(kernels_shape)}"
        )
    h_out, w_out = kernels_shape[-2:]
    if up > 1:
        ok = (h_out, w_out) == (h_in * up, w_in * up)
    else:
        ok = h_out <= (h_in - 1 + pad_top) // stride + 1 and w_out <= (w_in - 1 + pad_left) // stride + 1
    if not ok:
        raise ValueError(
            f"{prefix} `{kernels_name}`: spatial size {h_out} x {w_out} does not fit features {h_in} x {w_in} "
            f"with up {up}, stride {stride} and padding ({pad_top}, {pad_left})"
        )


def check_grad_shape(op: str, grad_out: Tensor, features: Tensor, kernels: Tensor) -> None:
    """``grad_out`` of a gradient op has the forward output's shape."""
    expected = (features.shape[0], features.shape[1], kernels.shape[-2], kernels.shape[-1])
    if tuple(grad_out.shape) != expected:
        raise ValueError(
            f"torch.ops.resamplers.{op}: argument `grad_out`: expected shape {expected}, got {tuple(grad_out.shape)}"
        )


def check_similarity_shapes(op: str, query: Tensor, keys: Tensor, geometry: list[int]) -> None:
    """The window-similarity op's shapes: ``query`` and ``keys`` share batch and channels,
    and the output (``query``'s size) fits ``keys`` as reassembly kernels would."""
    checked = check_geometry_list(op, geometry)
    if tuple(query.shape[:2]) != tuple(keys.shape[:2]):
        raise ValueError(
            f"torch.ops.resamplers.{op}: argument `query`: expected batch and channels "
            f"{tuple(keys.shape[:2])} (those of `keys`), got {tuple(query.shape[:2])}"
        )
    taps = checked.groups * checked.kernel_size**2
    check_op_shapes(op, keys, (keys.shape[0], taps, query.shape[-2], query.shape[-1]), checked, "query")


def _reassembly_flops(features_shape: Any, kernels_shape: Any, geometry: list[int], *args: Any, **kwargs: Any) -> int:
    """FLOPs (2 per multiply-accumulate) so that ``torch.utils.flop_counter`` counts the op."""
    return 2 * features_shape[0] * features_shape[1] * geometry[0] ** 2 * kernels_shape[-2] * kernels_shape[-1]


def _similarity_flops(query_shape: Any, keys_shape: Any, geometry: list[int], *args: Any, **kwargs: Any) -> int:
    """FLOPs (2 per multiply-accumulate): ``N * C * K^2 * H_out * W_out`` MACs."""
    return 2 * query_shape[0] * query_shape[1] * geometry[0] ** 2 * query_shape[-2] * query_shape[-1]


def _save_pair(ctx: Any, inputs: tuple[Tensor, Tensor, list[int]], output: Tensor) -> None:
    first, second, geometry = inputs
    ctx.save_for_backward(first, second)
    ctx.geometry = geometry


def _save_triple(ctx: Any, inputs: tuple[Tensor, Tensor, Tensor, list[int]], output: Tensor) -> None:
    grad_out, features, kernels, geometry = inputs
    ctx.save_for_backward(grad_out, features, kernels)
    ctx.geometry = geometry


def register_core_ops(
    reassemble: Any, grad_features: Any, grad_kernels: Any, similarity: Any, *, pixel_major: bool = False
) -> None:
    """Register fakes, autograd and FLOP formulas for one backend's four custom ops
    (objects made by ``torch.library.custom_op``).

    ``pixel_major``: the backend computes channels-last features (keys, for the
    similarity) with channels-last kernels where :func:`takes_pixel_major` says so and
    returns those outputs channels-last; otherwise (and always without it) outputs are
    contiguous.  The fakes say which, so that ``torch.compile``
    plans with the real strides."""

    def follows(op: str, t: Tensor, geometry: list[int]) -> bool:
        return pixel_major and takes_pixel_major(op, t, geometry[1])

    @reassemble.register_fake
    def _(features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
        shape = (features.shape[0], features.shape[1], kernels.shape[-2], kernels.shape[-1])
        return empty_in_layout(shape, features, follows("reassemble", features, geometry))

    @grad_features.register_fake
    def _(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
        return empty_in_layout(tuple(features.shape), features, follows("reassemble_grad_features", features, geometry))

    @grad_kernels.register_fake
    def _(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
        return empty_in_layout(tuple(kernels.shape), kernels, follows("reassemble_grad_kernels", features, geometry))

    @similarity.register_fake
    def _(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
        taps = geometry[1] * geometry[0] * geometry[0]
        shape = (keys.shape[0], taps, query.shape[-2], query.shape[-1])
        return empty_in_layout(shape, keys, follows("window_similarity", keys, geometry))

    def reassemble_backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        features, kernels = ctx.saved_tensors
        grad_x = grad_features(grad_out, features, kernels, ctx.geometry) if ctx.needs_input_grad[0] else None
        grad_k = grad_kernels(grad_out, features, kernels, ctx.geometry) if ctx.needs_input_grad[1] else None
        return grad_x, grad_k, None

    def grad_features_backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, None, Tensor | None, None]:
        # grad_x = G_x(grad_out, kernels) is linear in each (features gives only the shape)
        grad_out, features, kernels = ctx.saved_tensors
        d_grad_out = reassemble(v, kernels, ctx.geometry) if ctx.needs_input_grad[0] else None
        d_kernels = grad_kernels(grad_out, v, kernels, ctx.geometry) if ctx.needs_input_grad[2] else None
        return d_grad_out, None, d_kernels, None

    def grad_kernels_backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        # grad_k = G_k(grad_out, features) is linear in each (kernels gives only the shape)
        grad_out, features, kernels = ctx.saved_tensors
        d_grad_out = reassemble(features, v, ctx.geometry) if ctx.needs_input_grad[0] else None
        d_features = grad_features(grad_out, features, v, ctx.geometry) if ctx.needs_input_grad[1] else None
        return d_grad_out, d_features, None, None

    def similarity_backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        # the similarity is the adjoint of reassembly in its kernels
        query, keys = ctx.saved_tensors
        grad_query = reassemble(keys, grad, ctx.geometry) if ctx.needs_input_grad[0] else None
        grad_keys = grad_features(query, keys, grad, ctx.geometry) if ctx.needs_input_grad[1] else None
        return grad_query, grad_keys, None

    reassemble.register_autograd(reassemble_backward, setup_context=_save_pair)
    grad_features.register_autograd(grad_features_backward, setup_context=_save_triple)
    grad_kernels.register_autograd(grad_kernels_backward, setup_context=_save_triple)
    similarity.register_autograd(similarity_backward, setup_context=_save_pair)
    register_flop_formula(reassemble._opoverload.overloadpacket)(_reassembly_flops)
    register_flop_formula(similarity._opoverload.overloadpacket)(_similarity_flops)
