"""The one traversal of the taps of a ``K x K`` window: strided views of a padded input.

Reassembly (both directions of its torch path), window similarity and the local window
pools (median, SoftPool, stochastic pooling, via :func:`window_taps`) all read their
windows through :func:`strided_views`; no path materialises an unfolded tensor except
:func:`window_taps`, whose callers need every value at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import statically_known_true

from .._checks import check_choice
from .geometry import Geometry

__all__ = [
    "PaddingMode",
    "strided_span",
    "every_nth",
    "strided_views",
    "splits_groups",
    "padded_features",
    "tap_windows",
    "tap_sources",
    "tap_kernels",
    "tap_weight",
    "window_taps",
]

PaddingMode = Literal["constant", "reflect", "replicate"]


def strided_span(size_in: int, count: int, stride: int, pad_before: int) -> int:
    """Length ``L`` of the stretch of rows (or columns) that ``count`` taps ``stride`` apart
    cover, ``count = (L - 1) // stride + 1``, written in terms of the input size whenever
    that is provably equal.

    Under ``torch.export`` with dynamic shapes, the output size comes out of a strided
    convolution as a floor division; a span computed from it cannot be proven to stay
    inside the padded input, and export fails, while ``size_in + extra`` can.  The search
    asks :func:`statically_known_true`, so it adds no guards.  Concrete sizes (eager, and
    ``torch.jit.trace``, where sizes are traced 0-d tensors) take the plain formula.
    """
    if not isinstance(size_in, torch.SymInt) and not isinstance(count, torch.SymInt):
        return stride * (count - 1) + 1
    for extra in range(pad_before, -stride, -1):
        if statically_known_true((size_in + extra - 1) // stride + 1 == count):
            return size_in + extra
    return stride * (count - 1) + 1


def every_nth(x: Tensor, dim: int, stride: int) -> Tensor:
    """``x`` sampled at indices ``0, s, 2s, ...`` along ``dim`` (a view).

    ``Tensor.unfold`` gives ``(L - 1) // s + 1`` elements, the same expression as a strided
    convolution's output size, which a ``::s`` slice (``(L + s - 1) // s``) is not always
    proven equal to under symbolic shapes.  Concrete sizes (eager, ``torch.jit.trace``,
    the legacy ONNX exporter, which cannot export ``unfold`` of a traced size) take the
    plain strided slice: the same elements.
    """
    if stride == 1:
        return x
    if isinstance(x.shape[dim], torch.SymInt):
        return x.unfold(dim, 1, stride).squeeze(-1)
    index = [slice(None)] * x.dim()
    index[dim] = slice(None, None, stride)
    return x[tuple(index)]


def strided_views(padded: Tensor, kernel_size: int, stride: int, rows: int, cols: int) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(a*K + b, view)`` for every tap: ``padded[..., a + s*i, b + s*j]`` for
    ``i < (rows - 1) // s + 1``, ``j < (cols - 1) // s + 1`` (no two elements of a view alias)."""
    k = kernel_size
    for a in range(k):
        for b in range(k):
            window = padded[..., a : a + rows, b : b + cols]
            yield a * k + b, every_nth(every_nth(window, -2, stride), -1, stride)


def splits_groups(groups: int, channels: int) -> bool:
    """Whether the torch path needs an explicit group axis.

    Not for one group (the kernels broadcast over the channels) nor for one group per
    channel (kernel groups line up with channels): splitting and merging that axis would
    need shape proofs that ``torch.export`` cannot always make.
    """
    return groups not in (1, channels)


def padded_features(features: Tensor, geometry: Geometry) -> Tensor:
    """Zero-padded features, ``N x [G x C/G | C] x H_p x W_p`` (the group axis only when
    :func:`splits_groups`).  ``K - 1`` rows/columns of bottom/right padding always suffice:
    see :func:`~resamplers.core.geometry.check_output_size`."""
    n, c = features.shape[:2]
    k, groups = geometry.kernel_size, geometry.groups
    padded = F.pad(features, (geometry.pad_left, k - 1, geometry.pad_top, k - 1))
    if splits_groups(groups, c):
        padded = padded.reshape(n, groups, c // groups, padded.shape[-2], padded.shape[-1])
    return padded


def tap_windows(
    padded: Tensor, size_in: tuple[int, int], geometry: Geometry, hq: int, wq: int
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(tap, window)`` for every tap ``a*K + b``: the ``... x Hq x Wq`` strided view of
    ``padded`` (see :func:`padded_features`) that the tap reads."""
    rows = strided_span(size_in[0], hq, geometry.stride, geometry.pad_top)
    cols = strided_span(size_in[1], wq, geometry.stride, geometry.pad_left)
    return strided_views(padded, geometry.kernel_size, geometry.stride, rows, cols)


def tap_sources(features: Tensor, geometry: Geometry, hq: int, wq: int) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(tap, source)`` for every tap ``a*K + b``: the strided view of the zero-padded
    features that the tap reads, ``N x [G x C/G | C] x Hq x Wq`` (the group axis only when
    :func:`splits_groups`), with size-1 axes after ``Hq`` and ``Wq`` when upsampling, to
    broadcast against ``up x up`` output blocks.

    Without upsampling no size-1 block dimensions are inserted: their strides would be
    floor-division expressions that export's layout computation cannot order.
    """
    padded = padded_features(features, geometry)
    size_in = (features.shape[-2], features.shape[-1])
    for tap, window in tap_windows(padded, size_in, geometry, hq, wq):
        yield tap, window.unsqueeze(-1).unsqueeze(-3) if geometry.up > 1 else window


def tap_kernels(kernels: Tensor, geometry: Geometry) -> Tensor:
    """Kernels as ``N x G x K^2 x Hq [x up] x Wq [x up]``: tap ``t`` is ``[:, :, t]``."""
    n = kernels.shape[0]
    h_out, w_out = kernels.shape[-2:]
    k2, groups, up = geometry.kernel_size**2, geometry.groups, geometry.up
    if up > 1:
        return kernels.reshape(n, groups, k2, h_out // up, up, w_out // up, up)
    return kernels.reshape(n, groups, k2, h_out, w_out)


def tap_weight(taps: Tensor, tap: int, split: bool) -> Tensor:
    """Tap ``tap`` of :func:`tap_kernels`, shaped to broadcast against a tap source."""
    return taps[:, :, None, tap] if split else taps[:, :, tap]


def window_taps(
    x: Tensor,
    kernel_size: int,
    stride: int,
    padding: int = 0,
    *,
    padding_mode: PaddingMode = "constant",
    value: float = 0.0,
) -> Tensor:
    """Every value of every ``K x K`` window, stacked on a new dimension.

    ``taps[n, c, a*K + b, y, x] = padded[n, c, s*y + a, s*x + b]`` where ``padded`` is
    ``x`` padded by ``padding`` on each side (``padding_mode`` as in ``F.pad``; constant
    padding uses ``value``).  The output size is torch's pooling size.

    Args:
        x: ``N x C x H x W``.
        kernel_size: ``K``.
        stride: ``s``.
        padding: ``p`` on every side.
        padding_mode: ``"constant"``, ``"reflect"`` or ``"replicate"``.
        value: the constant padding value (e.g. ``-inf`` for max-type reductions).

    Shape:
        ``N x C x H x W`` -> ``N x C x K^2 x H_out x W_out``, ``H_out = floor((H + 2p - K) / s) + 1``.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> window_taps(x, 2, 2)[0, 0, :, 0, 0]  # the top-left 2 x 2 window
        tensor([0., 1., 4., 5.])
    """
    check_choice(padding_mode, "padding_mode", ["constant", "reflect", "replicate"])
    k, s, p = kernel_size, stride, padding
    h, w = x.shape[-2], x.shape[-1]
    h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    if padding_mode != "constant" and p > 0:
        x = F.pad(x, (p, p, p, p), mode=padding_mode)
        h, w, p, value = h + 2 * p, w + 2 * p, 0, 0.0
    # Pad (or crop: negative amounts) to exactly the s * (H_out - 1) + K rows the windows
    # read: a size linear in H_out keeps the slices provable under torch.export.
    rows, cols = s * (h_out - 1) + 1, s * (w_out - 1) + 1
    x = F.pad(x, (p, cols + k - 1 - p - w, p, rows + k - 1 - p - h), value=value)
    return torch.stack([view for _, view in strided_views(x, k, s, rows, cols)], dim=2)
