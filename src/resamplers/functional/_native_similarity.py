"""Native custom op for the window similarity (see ``window_similarity.py``).

The similarity is the adjoint of reassembly with respect to its kernels, so it runs the
core's ``grad_kernels`` C kernel as a forward pass, and its two gradients are the core's
other two kernels: ``d/d query`` is a reassembly of the keys with the incoming gradient
as kernels, ``d/d keys`` is the features-gradient of that same reassembly.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from ._native_backend import (
    _geometry_tensor,
    _grad_features_op,
    _in_native_dtype,
    _reassemble_op,
    _row_groups,
    _run,
    _setup_context,
)

__all__ = ["native_window_similarity"]


@torch.library.custom_op("resamplers::window_similarity", mutates_args=())
def _similarity_op(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
    query, keys = query.contiguous(), keys.contiguous()
    kernel_size, groups, up = geometry[0], geometry[1], geometry[2]
    n = keys.shape[0]
    h_out, w_out = query.shape[-2:]
    out = torch.zeros((n, groups * kernel_size * kernel_size, h_out, w_out), dtype=keys.dtype)
    if out.numel() and keys.numel():
        geo = _geometry_tensor(keys, out, geometry)
        _run("grad_kernels", keys.dtype, (keys, query, out), geo, n * _row_groups(h_out, up))
    return out


@_similarity_op.register_fake
def _(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
    taps = geometry[1] * geometry[0] * geometry[0]
    return keys.new_empty((keys.shape[0], taps, query.shape[-2], query.shape[-1]))


def _backward(ctx, grad: Tensor):
    query, keys = ctx.saved_tensors
    grad_query = grad_keys = None
    if ctx.needs_input_grad[0]:
        grad_query = _reassemble_op(keys, grad.contiguous(), ctx.geometry)
    if ctx.needs_input_grad[1]:
        grad_keys = _grad_features_op(query, keys, grad, ctx.geometry)
    return grad_query, grad_keys, None


_similarity_op.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.resamplers.window_similarity)
def _similarity_flops(query_shape, keys_shape, geometry, *args, **kwargs) -> int:
    """FLOPs (2 per multiply-accumulate): ``N * C * K^2 * H_out * W_out`` MACs."""
    n, c = query_shape[0], query_shape[1]
    return 2 * n * c * geometry[0] * geometry[0] * query_shape[-2] * query_shape[-1]


def native_window_similarity(
    query: Tensor, keys: Tensor, kernel_size: int, groups: int, up: int, stride: int, pad_top: int, pad_left: int
) -> Tensor:
    """Run the native op; half and bfloat16 inputs are computed in float32."""
    return _in_native_dtype(_similarity_op, query, keys, [kernel_size, groups, up, stride, pad_top, pad_left])
