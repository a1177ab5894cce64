"""Taps sampled at offsets: the torch path of the core's deformable window.

With ``offsets`` (``N x (2*G*K*K) x H_out x W_out``), tap ``t = a*K + b`` of output pixel
``(y, x)`` in group ``g`` does not read the grid pixel of the plain window but the input at
the real position

.. math::

    row = \\lfloor y / u \\rfloor s + a - p_t + O[n, 2 (g K^2 + t) + 1, y, x], \\qquad
    col = \\lfloor x / u \\rfloor s + b - p_l + O[n, 2 (g K^2 + t), y, x]

(offsets in input pixel units, column component first; integer coordinates are pixel
centres), interpolated bilinearly with **zero outside the image**: each of the four
corners outside contributes nothing, so a position one pixel or more outside reads 0.
Zero offsets give exactly the plain window.  The window similarity and the reassembly
both read their taps through :func:`sample_tap`, one ``grid_sample`` a tap (a loop over
the ``K*K`` taps as on the plain torch path; nothing of size ``K^2`` times the output is
materialised), so the path traces, exports (ONNX ``GridSample``) and compiles.

Bilinear sampling is not differentiable where a position crosses a pixel row or column;
there the gradient with respect to the offsets is the one-sided derivative of the cell
that ``floor`` picks, as in deformable-convolution kernels.  The native kernels
(:class:`~resamplers.core.native.NativeOffsetTaps`) take ``floor`` of the exact position,
so at a whole pixel they take the cell to the right and below; this path's positions pass
through ``grid_sample``'s normalised coordinates, whose rounding can land a whole pixel a
hair to either side, so at exact whole pixels the two paths' offset gradients may take
opposite cells.  Values and the other gradients agree everywhere.

In eager training, :class:`OffsetTaps` recomputes each tap's samples in backward instead
of keeping ``K^2`` output-sized samples alive (plain autograd through the loop would):
peak extra memory stays a few output sizes.  Compile and export trace the composite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import Geometry

__all__ = [
    "tap_offsets",
    "tap_grid",
    "sample_tap",
    "reassemble_offsets_torch",
    "similarity_offsets_torch",
    "OffsetTaps",
    "TapsCall",
    "composite",
    "composite_gradients",
    "offset_taps_function",
]


def tap_offsets(offsets: Tensor, geometry: Geometry) -> Tensor:
    """``N x (2*G*K*K) x H_out x W_out`` offsets as ``N x G x K^2 x 2 x H_out x W_out`` (a view)."""
    n, _, h_out, w_out = offsets.shape
    return offsets.reshape(n, geometry.groups, geometry.kernel_size**2, 2, h_out, w_out)


def tap_grid(offsets: Tensor, size_in: tuple[Any, Any], geometry: Geometry, tap: int) -> Tensor:
    """``grid_sample`` coordinates of tap ``tap``, ``N*G x H_out x W_out x 2``, from that tap's
    offsets ``N x G x 2 x H_out x W_out`` (a slice of :func:`tap_offsets`).

    Pixel position ``p`` of an axis of size ``L`` becomes ``2 (p + 0.5) / L - 1``
    (``align_corners=False``); the sizes are read from the tensors, so an exported graph
    samples correctly at every size.
    """
    n, groups, _, h_out, w_out = offsets.shape
    k, up, stride = geometry.kernel_size, geometry.up, geometry.stride
    h_in, w_in = size_in
    device, dtype = offsets.device, offsets.dtype
    a, b = divmod(tap, k)
    rows = ((torch.arange(h_out, device=device) // up) * stride + (a - geometry.pad_top)).to(dtype)
    cols = ((torch.arange(w_out, device=device) // up) * stride + (b - geometry.pad_left)).to(dtype)
    grid_x = 2 * (cols[None, None, :] + offsets[:, :, 0] + 0.5) / w_in - 1
    grid_y = 2 * (rows[None, :, None] + offsets[:, :, 1] + 0.5) / h_in - 1
    return torch.stack([grid_x, grid_y], dim=-1).reshape(n * groups, h_out, w_out, 2)


def sample_tap(source: Tensor, grid: Tensor, groups: int) -> Tensor:
    """``source`` (``N x C x H x W``) sampled at the positions of :func:`tap_grid`:
    ``N x G x C/G x H_out x W_out``, contiguous channel groups, bilinear, zero outside."""
    n, c, h, w = source.shape
    h_out, w_out = grid.shape[1], grid.shape[2]
    sampled = F.grid_sample(
        source.reshape(n * groups, c // groups, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return sampled.reshape(n, groups, c // groups, h_out, w_out)


def reassemble_offsets_torch(features: Tensor, kernels: Tensor, offsets: Tensor, geometry: Geometry) -> Tensor:
    """``out[n, c, y, x] = sum_t kernels[n, g K^2 + t, y, x] * features[n, c](position of tap t)``.

    Shapes: features ``N x C x H x W``, kernels ``N x (G*K*K) x H_out x W_out``, offsets
    ``N x (2*G*K*K) x H_out x W_out`` -> ``N x C x H_out x W_out``.
    """
    n, c, h, w = features.shape
    k2, groups = geometry.kernel_size**2, geometry.groups
    h_out, w_out = kernels.shape[-2:]
    per_tap = tap_offsets(offsets, geometry)
    weights = kernels.reshape(n, groups, k2, h_out, w_out)
    out: Tensor | None = None
    for tap in range(k2):
        source = sample_tap(features, tap_grid(per_tap[:, :, tap], (h, w), geometry, tap), groups)
        weight = weights[:, :, tap, None]
        out = source * weight if out is None else out.addcmul_(source, weight)
    assert out is not None
    return out.reshape(n, c, h_out, w_out)


def similarity_offsets_torch(query: Tensor, keys: Tensor, offsets: Tensor, geometry: Geometry) -> Tensor:
    """``sim[n, g K^2 + t, y, x] = sum_{c in g} query[n, c, y, x] * keys[n, c](position of tap t)``.

    Shapes: query ``N x C x H_out x W_out``, keys ``N x C x H x W``, offsets
    ``N x (2*G*K*K) x H_out x W_out`` -> ``N x (G*K*K) x H_out x W_out``.
    """
    n, c, h, w = keys.shape
    k2, groups = geometry.kernel_size**2, geometry.groups
    h_out, w_out = query.shape[-2:]
    per_tap = tap_offsets(offsets, geometry)
    q = query.reshape(n, groups, c // groups, h_out, w_out)
    sims = [
        (sample_tap(keys, tap_grid(per_tap[:, :, tap], (h, w), geometry, tap), groups) * q).sum(2) for tap in range(k2)
    ]
    return torch.stack(sims, dim=2).reshape(n, groups * k2, h_out, w_out)


class TapsCall(NamedTuple):
    """One call of taps sampled at offsets: ``kind`` is ``"reassemble"`` (``sampled`` =
    features, ``other`` = kernels) or ``"similarity"`` (``sampled`` = keys, ``other`` =
    query)."""

    kind: str
    sampled: Tensor
    other: Tensor
    offsets: Tensor
    geometry: Geometry


Gradients = tuple[Tensor | None, Tensor | None, Tensor | None]


def composite(call: TapsCall) -> Tensor:
    """The call's value on the torch path (what compile and export trace)."""
    if call.kind == "reassemble":
        return reassemble_offsets_torch(call.sampled, call.other, call.offsets, call.geometry)
    return similarity_offsets_torch(call.other, call.sampled, call.offsets, call.geometry)


def composite_gradients(call: TapsCall, grad: Tensor, needs: tuple[bool, ...]) -> Gradients:
    """The gradients of the composite at ``grad``, as differentiable functions of the inputs
    (``create_graph=True``): the second-derivative path of every backend's offset taps."""
    inputs = [t for t, need in zip((call.sampled, call.other, call.offsets), needs) if need]
    found = iter(torch.autograd.grad(composite(call), inputs, grad, create_graph=True, allow_unused=True))
    sampled, other, offsets = (next(found) if need else None for need in needs)
    return sampled, other, offsets


def offset_taps_function(
    name: str,
    values: Callable[[TapsCall], Tensor],
    first_gradients: Callable[[TapsCall, Tensor, tuple[bool, ...]], Gradients],
    doc: str,
) -> type[torch.autograd.Function]:
    """An autograd function ``apply(kind, sampled, other, offsets, geometry)`` for one
    backend of the offset taps: ``values`` computes the forward, ``first_gradients`` the
    backward (gradients of sampled, other and offsets, ``None`` where not needed).  A
    backward that must itself be differentiable (``create_graph``) differentiates the
    torch composite instead, so every backend has exact second derivatives."""

    def forward(ctx: Any, kind: str, sampled: Tensor, other: Tensor, offsets: Tensor, geometry: Geometry) -> Tensor:
        ctx.save_for_backward(sampled, other, offsets)
        ctx.kind, ctx.geometry = kind, geometry
        return values(TapsCall(kind, sampled, other, offsets, geometry))

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        sampled, other, offsets = ctx.saved_tensors
        call = TapsCall(ctx.kind, sampled, other, offsets, ctx.geometry)
        needs = tuple(ctx.needs_input_grad[1:4])
        gradients = composite_gradients if torch.is_grad_enabled() else first_gradients
        return (None, *gradients(call, grad, needs), None)

    members = {"forward": staticmethod(forward), "backward": staticmethod(backward), "__doc__": doc}
    return type(name, (torch.autograd.Function,), members)


def _tap_by_tap_gradients(call: TapsCall, grad: Tensor, needs: tuple[bool, ...]) -> Gradients:
    kind, sampled, other, offsets, geometry = call
    need_sampled, need_other, need_offsets = needs
    n, c, h, w = sampled.shape
    k2, groups = geometry.kernel_size**2, geometry.groups
    h_out, w_out = offsets.shape[-2:]
    channels = (n, groups, c // groups, h_out, w_out)  # a per-channel tensor, by group
    taps = (n, groups, k2, h_out, w_out)  # a per-tap tensor (kernels, similarities)
    if kind == "reassemble":
        weights, grad_out = other.reshape(taps), grad.reshape(channels)
    else:
        weights, grad_out = other.reshape(channels), grad.reshape(taps)
    grad_other = torch.zeros_like(weights) if need_other else None
    per_tap = tap_offsets(offsets, geometry)
    grad_offsets = torch.zeros_like(per_tap) if need_offsets else None
    grad_sampled: Tensor | None = None
    leaf = sampled.detach().requires_grad_(need_sampled)
    for tap in range(k2):
        with torch.enable_grad():
            offset = per_tap[:, :, tap].detach().requires_grad_(need_offsets)
            source = sample_tap(leaf, tap_grid(offset, (h, w), geometry, tap), groups)
        if kind == "reassemble":
            weight, tap_grad = weights[:, :, tap, None], grad_out
            if grad_other is not None:
                grad_other[:, :, tap] = (tap_grad * source.detach()).sum(2)
        else:
            weight, tap_grad = weights, grad_out[:, :, tap, None]
            if grad_other is not None:
                grad_other.addcmul_(tap_grad, source.detach())
        wanted = [t for t, need in ((leaf, need_sampled), (offset, need_offsets)) if need]
        if wanted:
            found = torch.autograd.grad(source, wanted, tap_grad * weight)
            if need_sampled:
                grad_sampled = found[0] if grad_sampled is None else grad_sampled.add_(found[0])
            if grad_offsets is not None:
                grad_offsets[:, :, tap] = found[-1]
    return (
        grad_sampled,
        grad_other.reshape(other.shape) if grad_other is not None else None,
        grad_offsets.reshape(offsets.shape) if grad_offsets is not None else None,
    )


OffsetTaps = offset_taps_function(
    "OffsetTaps",
    composite,
    _tap_by_tap_gradients,
    """The torch path of the offset taps with a backward pass that recomputes one tap at a
    time (eager only).  Backward, per tap: the samples are recomputed by ``grid_sample``
    under autograd, the gradient of ``other`` is a product with them, and ``grid_sample``'s
    own backward gives the gradients of the sampled tensor and of the tap's offsets.
    Temporaries are output-sized; nothing is kept from the forward pass but its inputs.""",
)
