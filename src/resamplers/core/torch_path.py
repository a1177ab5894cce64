"""The portable torch path of the core: a loop over the ``K*K`` taps of broadcasted
multiply-adds on strided views (:mod:`.taps`), accumulated in place, and its hand-written
eager backward pass."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .geometry import Geometry
from .taps import padded_features, splits_groups, tap_kernels, tap_sources, tap_weight, tap_windows

__all__ = ["reassemble_torch", "similarity_torch", "inside_taps", "TorchReassembly"]


def reassemble_torch(features: Tensor, kernels: Tensor, geometry: Geometry) -> Tensor:
    """Pure-PyTorch reassembly: a sum over taps of strided views times kernel slices,
    accumulated in place (the forward pass holds one output-sized tensor).

    Shapes: features ``N x C x H x W``, kernels ``N x (G*K*K) x H_out x W_out`` -> ``N x C x H_out x W_out``.
    """
    n, c, _, _ = features.shape
    h_out, w_out = kernels.shape[-2:]
    up = geometry.up
    hq, wq = h_out // up, w_out // up
    split = splits_groups(geometry.groups, c)
    taps = tap_kernels(kernels, geometry)
    inside = inside_taps((features.shape[-2], features.shape[-1]), geometry, hq, wq, kernels.device)
    out: Tensor | None = None
    for tap, source in tap_sources(features, geometry, hq, wq):
        # Taps outside the image are skipped, not multiplied by the zero padding: a
        # non-finite weight there must contribute nothing (0 * inf would be NaN).
        weight = torch.where(inside[tap], tap_weight(taps, tap, split), 0.0)  # N G [1] Hq [up] Wq [up]
        out = source * weight if out is None else out.addcmul_(source, weight)
    assert out is not None
    return out.reshape(n, c, h_out, w_out) if split or up > 1 else out


def inside_taps(size_in: tuple[int, int], geometry: Geometry, hq: int, wq: int, device: torch.device) -> Tensor:
    """``K^2 x Hq [x 1] x Wq [x 1]`` booleans: whether tap ``a*K + b`` of output block
    ``(i, j)`` reads a pixel inside the image (the size-1 axes when upsampling, to
    broadcast against ``up x up`` blocks)."""
    k, s = geometry.kernel_size, geometry.stride
    offsets = torch.arange(k, device=device)
    rows = torch.arange(hq, device=device) * s - geometry.pad_top + offsets[:, None]  # K x Hq
    cols = torch.arange(wq, device=device) * s - geometry.pad_left + offsets[:, None]  # K x Wq
    row_ok = (rows >= 0) & (rows < size_in[0])
    col_ok = (cols >= 0) & (cols < size_in[1])
    inside = row_ok[:, None, :, None] & col_ok[None, :, None, :]  # K x K x Hq x Wq
    if geometry.up > 1:
        return inside.reshape(k * k, hq, 1, wq, 1)
    return inside.reshape(k * k, hq, wq)


def similarity_torch(query: Tensor, keys: Tensor, geometry: Geometry) -> Tensor:
    """Pure-PyTorch window similarity, one query-sized temporary per tap.

    Shapes: query ``N x C x H_out x W_out``, keys ``N x C x H x W`` -> ``N x (G*K*K) x H_out x W_out``.
    """
    n, c = keys.shape[:2]
    h_out, w_out = query.shape[-2:]
    groups, up = geometry.groups, geometry.up
    hq, wq = h_out // up, w_out // up
    block = (hq, up, wq, up) if up > 1 else (hq, wq)
    split = splits_groups(groups, c)
    q = query.reshape((n, groups, c // groups, *block) if split else (n, c, *block))
    sims = []
    for _, source in tap_sources(keys, geometry, hq, wq):
        product = source * q
        # Sum over each group's channels (none to sum with one channel per group).
        sims.append(product.sum(2) if split else product.sum(1, keepdim=True) if groups == 1 else product)
    return torch.stack(sims, dim=2).reshape(n, groups * geometry.kernel_size**2, h_out, w_out)


def _sub_pixels(up: int) -> list[tuple[int, int] | None]:
    """The ``up x up`` output phases ``(i, j)`` of an upsampling reassembly (``[None]`` for none)."""
    return [(i, j) for i in range(up) for j in range(up)] if up > 1 else [None]


def _phase(t: Tensor, phase: tuple[int, int] | None) -> Tensor:
    """The ``... x Hq x Wq`` view of a ``... x Hq x up x Wq x up`` tensor at one output phase."""
    return t if phase is None else t.select(-1, phase[1]).select(-2, phase[0])


class TorchReassembly(torch.autograd.Function):
    """The torch path with a hand-written backward pass for training in eager mode.

    Autograd through :func:`reassemble_torch` keeps, per tap, an output-sized product and
    a padded-input-sized scatter of the strided view's gradient alive at once (about 3x
    the output at peak), and reduces over the ``up x up`` block axes, whose innermost
    length of ``up`` defeats vectorisation.  This backward works one output phase
    ``(i, j)`` of one tap at a time: the feature gradient is an in-place multiply-add into
    the tap's window of the padded gradient, the kernel gradient a product summed over the
    channels.  Temporaries are ``1 / up^2`` of the output (a quarter of the channels at a
    time without upsampling), so peak memory stays within 2x the output.  Used only in
    eager mode; compile and export trace the plain composite.
    """

    @staticmethod
    def forward(ctx: Any, features: Tensor, kernels: Tensor, geometry: Geometry) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(features, kernels)
        ctx.geometry = geometry
        return reassemble_torch(features, kernels, geometry)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        features, kernels = ctx.saved_tensors
        geometry: Geometry = ctx.geometry
        if torch.is_grad_enabled():
            # create_graph=True: a second derivative is wanted, so build the gradients from
            # differentiable ops (the in-place loop below is not).
            return (*_differentiable_gradients(grad, features, kernels, geometry, ctx.needs_input_grad), None)
        groups, up = geometry.groups, geometry.up
        pad_top, pad_left = geometry.pad_top, geometry.pad_left
        n, c, h_in, w_in = features.shape
        h_out, w_out = kernels.shape[-2:]
        hq, wq = h_out // up, w_out // up
        split = splits_groups(groups, c)
        need_features, need_kernels = ctx.needs_input_grad[:2]

        # The gradient laid out like the forward's products: N [G C/G | C] Hq [up] Wq [up].
        channel_shape = (groups, c // groups) if split else (c,)
        grad = grad.reshape(n, *channel_shape, hq, up, wq, up) if up > 1 else grad.reshape(n, *channel_shape, hq, wq)
        channel_axis = 2 if split else 1
        per_channel = not split and groups == c > 1  # kernel groups line up with channels
        channel_slices = 4 if up == 1 else 1  # one phase is already 1 / up^2 of the output
        slice_size = -(-grad.shape[channel_axis] // channel_slices)

        padded = padded_features(features, geometry)
        grad_padded = torch.zeros_like(padded) if need_features else None
        taps = tap_kernels(kernels, geometry)
        grad_taps = torch.empty_like(taps) if need_kernels else None
        windows = tap_windows(padded, (h_in, w_in), geometry, hq, wq)
        grad_windows = tap_windows(grad_padded, (h_in, w_in), geometry, hq, wq) if grad_padded is not None else None
        for tap, window in windows:
            grad_window = next(grad_windows)[1] if grad_windows is not None else None
            for phase in _sub_pixels(up):
                grad_phase = _phase(grad, phase)
                weight = _phase(tap_weight(taps, tap, split), phase)
                grad_weight = _phase(tap_weight(grad_taps, tap, split), phase) if grad_taps is not None else None
                for start in range(0, grad.shape[channel_axis], slice_size):
                    index = (slice(None),) * channel_axis + (slice(start, start + slice_size),)
                    grad_part = grad_phase[index]
                    if grad_window is not None:
                        grad_window[index].addcmul_(grad_part, weight[index] if per_channel else weight)
                    if grad_weight is not None:
                        product = grad_part * window[index]
                        if per_channel:
                            grad_weight[index].copy_(product)
                        elif start == 0:
                            torch.sum(product, channel_axis, keepdim=True, out=grad_weight)
                        else:
                            grad_weight.add_(product.sum(channel_axis, keepdim=True))
        grad_features = None
        if grad_padded is not None:
            grad_padded = grad_padded.reshape(n, c, grad_padded.shape[-2], grad_padded.shape[-1])
            grad_features = grad_padded[..., pad_top : pad_top + h_in, pad_left : pad_left + w_in]
        grad_kernels = grad_taps.reshape(kernels.shape) if grad_taps is not None else None
        return grad_features, grad_kernels, None


def _differentiable_gradients(
    grad: Tensor, features: Tensor, kernels: Tensor, geometry: Geometry, needs: tuple[bool, ...]
) -> tuple[Tensor | None, Tensor | None]:
    """Both gradients of a reassembly as differentiable functions of ``grad``, ``features``
    and ``kernels``: the kernel gradient is the window similarity of ``grad`` with the
    features (masked like the forward's outside taps), the feature gradient the
    vector-Jacobian product of the (linear) composite."""
    grad_features = grad_kernels = None
    if needs[0]:
        with torch.enable_grad():
            probe = features.detach().requires_grad_()
            (grad_features,) = torch.autograd.grad(
                reassemble_torch(probe, kernels, geometry), probe, grad, create_graph=True
            )
    if needs[1]:
        n, c = features.shape[:2]
        h_out, w_out = grad.shape[-2:]
        hq, wq = h_out // geometry.up, w_out // geometry.up
        inside = inside_taps((features.shape[-2], features.shape[-1]), geometry, hq, wq, grad.device)
        sim = similarity_torch(grad, features, geometry)
        taps = tap_kernels(sim, geometry)  # N G K^2 Hq [up] Wq [up]
        grad_kernels = torch.where(inside, taps, 0.0).reshape(kernels.shape)
    return grad_features, grad_kernels
