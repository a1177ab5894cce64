"""A2U (affinity-aware upsampling, Dai et al., CVPR 2021): the stateless steps.

A2U predicts, from the high-resolution encoder feature ``x`` (``N x C x H x W``), a
``2s x 2s`` kernel per low-resolution pixel (downsampling ``x``) and an ``s x s`` kernel
per high-resolution pixel (upsampling a decoder feature later), both from one rank-1
"affinity" map ``A = sum_c (XU * XV) / sqrt(C)`` of two per-sample dynamic depthwise
convolutions.  The parameterised parts (the U/V/P generators and the GroupNorms) live in
:class:`resamplers.pairs.A2UPair`; this module holds the tensor-in, tensor-out pieces:

* :func:`dynamic_depthwise_conv2d`: per-sample ``k x k`` filters applied depthwise;
* :func:`affinity_kernels`: ``A * P`` turned into the normalised down and up kernels;
* :func:`a2u_downsample` / :func:`a2u_upsample`: the two reassemblies, thin callers of
  the reassembly core (``reassemble_down`` with a ``2s x 2s`` window, ``carafe``).

Kernel layout is group-major (channel ``g * T + t`` for group ``g`` and tap ``t``), the
layout the reassembly consumes.  The official code normalises its ``g > 1`` kernels in a
kernel-major layout (``t * G + g``) but reassembles them group-major;
``official_group_order=True`` reproduces that mismatch (it is immaterial for ``G = 1``,
the released configuration).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature, check_int
from .kernel_norm import softmax_kernels
from .reassembly import carafe, reassemble_down

__all__ = ["dynamic_depthwise_conv2d", "affinity_kernels", "a2u_downsample", "a2u_upsample"]


def dynamic_depthwise_conv2d(x: Tensor, filters: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """Depthwise convolution with per-sample filters (no bias, zero padding).

    ``out[n, c, i, j] = sum_{a, b < k} filters[n, r(c), a, b] * x[n, c, stride i + a - p, stride j + b - p]``
    with ``r(c) = 0`` for one filter shared by every channel (``R = 1``) or ``r(c) = c``
    (``R = C``).  Vectorised over the batch as one grouped convolution (``N * C`` groups).
    A symbolic batch size (export with a dynamic batch) cannot set a group count, so
    there every sample is convolved with every sample's filters (``C`` groups) and the
    matching pairs are kept: the same result, ``N`` times the work of this step (none
    extra at batch 1).

    Args:
        x: ``N x C x H x W``.
        filters: ``N x R x k x k`` with ``R`` in ``{1, C}``.
        stride: convolution stride.
        padding: zero padding on every side, ``0 <= padding < k``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'``, ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> dynamic_depthwise_conv2d(x, torch.ones(1, 1, 2, 2), stride=2)
        tensor([[[[10., 18.],
                  [42., 50.]]]])
    """
    check_feature(x, "x")
    check_int(stride, "stride", minimum=1)
    n, c, h, w = x.shape
    if not isinstance(filters, Tensor) or filters.dim() != 4 or filters.shape[0] != n or filters.shape[1] not in (1, c):
        shape = tuple(filters.shape) if isinstance(filters, Tensor) else type(filters).__name__
        raise ValueError(f"argument `filters`: expected shape {n} x (1 or {c}) x k x k, got {shape}")
    k = filters.shape[-1]
    if filters.shape[-2] != k:
        raise ValueError(f"argument `filters`: expected square k x k filters, got {filters.shape[-2]} x {k}")
    check_int(padding, "padding", minimum=0)
    if padding >= k:
        raise ValueError(f"argument `padding`: expected 0 <= padding < {k} (the filter size), got {padding}")
    h_out, w_out = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"argument `x`: spatial size {h} x {w} is smaller than the {k} x {k} filter with padding {padding}"
        )
    if isinstance(n, int):
        weight = filters.expand(n, c, k, k).reshape(n * c, 1, k, k)
        out = F.conv2d(x.reshape(1, n * c, h, w), weight, stride=stride, padding=padding, groups=n * c)
        return out.reshape(n, c, h_out, w_out)
    # Weight row g * N + j is sample j's filter for channel g, so output channel g * N + j
    # of sample i is x[i, g] convolved with sample j's filter; keep i == j.
    weight = filters.expand(n, c, k, k).transpose(0, 1).reshape(c * n, 1, k, k)
    out = F.conv2d(x, weight, stride=stride, padding=padding, groups=c).reshape(n, c, n, h_out, w_out)
    samples = torch.arange(n, device=x.device)
    return out[samples, :, samples]


def _softmax_kernel_major(logits: Tensor, groups: int) -> Tensor:
    """Softmax over taps laid out kernel-major (channel ``t * G + g``), as the official code does."""
    n, c, h, w = logits.shape
    return logits.reshape(n, c // groups, groups, h, w).softmax(dim=1).reshape(n, c, h, w)


def affinity_kernels(
    xu: Tensor,
    xv: Tensor,
    p_up: Tensor | None,
    p_down: Tensor,
    up_kernel: int,
    groups: int = 1,
    official_group_order: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """A2U's down and up kernels from the two embeddings and the dynamic ``P`` weights.

    With ``A = sum_c (xu * xv) / sqrt(C)`` (``N x 1 x h x w``):

    * down: ``softmax(A * p_down)`` over the ``(2s)^2`` taps of each group, at ``h x w``;
    * up: ``pixel_shuffle(A * p_up, 2)`` (``N x s^2 G x 2h x 2w``), then
      ``softmax(sigmoid(.))`` over the ``s^2`` taps of each group (just ``sigmoid`` for
      ``s = 1``, as the official code).

    Args:
        xu, xv: ``N x C x h x w`` normalised embeddings.
        p_up, p_down: ``N x (4 s^2 G)`` per-sample ``P`` weights (or ``N x 4s^2G x 1 x 1``);
            ``p_up=None`` computes the down kernels only (and returns ``None`` for the up ones).
        up_kernel: ``s``.
        groups: ``G``.
        official_group_order: normalise kernel-major as the official code (see module doc).

    Returns:
        ``(down_kernels N x (4 s^2 G) x h x w, up_kernels N x (s^2 G) x 2h x 2w)``,
        group-major as the reassembly reads them.

    Shape:
        ``(N x C x h x w, N x C x h x w, N x 4s^2G, N x 4s^2G)`` -> ``(N x 4s^2G x h x w, N x s^2G x 2h x 2w)``.

    Example:
        >>> z = torch.zeros(1, 32, 2, 3)
        >>> down, up = affinity_kernels(z, z, torch.zeros(1, 36), torch.zeros(1, 36), up_kernel=3)
        >>> down.shape, up.shape, round(float(down[0, 0, 0, 0]) * 36, 6), round(float(up[0, 0, 0, 0]) * 9, 6)
        (torch.Size([1, 36, 2, 3]), torch.Size([1, 9, 4, 6]), 1.0, 1.0)
    """
    check_feature(xu, "xu")
    check_feature(xv, "xv")
    s = check_int(up_kernel, "up_kernel", minimum=1)
    g = check_int(groups, "groups", minimum=1)
    if xu.shape != xv.shape:
        raise ValueError(f"argument `xv`: expected the shape of `xu` {tuple(xu.shape)}, got {tuple(xv.shape)}")
    n, c = xu.shape[:2]
    taps = 4 * s * s * g
    for p, name in ((p_up, "p_up"), (p_down, "p_down")):
        if p is None and name == "p_up":
            continue
        if not isinstance(p, Tensor) or p.numel() != n * taps:
            raise ValueError(f"argument `{name}`: expected N x 4 s^2 G = {n} x {taps} values, got {tuple(p.shape)}")
    affinity = (xu * xv).sum(dim=1, keepdim=True) / math.sqrt(c)
    down_logits = affinity * p_down.reshape(n, taps, 1, 1)
    normalise = _softmax_kernel_major if official_group_order else softmax_kernels
    if p_up is None:
        return normalise(down_logits, g), None
    up_logits = F.pixel_shuffle(affinity * p_up.reshape(n, taps, 1, 1), 2)
    up_kernels = torch.sigmoid(up_logits)
    if s > 1:  # one tap: the official code keeps the bare sigmoid
        up_kernels = normalise(up_kernels, g)
    return normalise(down_logits, g), up_kernels


def a2u_downsample(x: Tensor, kernels: Tensor, kernel_size: int, groups: int = 1) -> Tensor:
    """A2U downsampling by 2: a ``K x K`` window (``K`` even) centred on each ``2 x 2`` cell.

    ``y[n, c, i, j] = sum_{a, b < K} kernels[n, g K^2 + a K + b, i, j] * x[n, c, 2i - (K-2)/2 + a, 2j - (K-2)/2 + b]``
    with contiguous channel groups and zero padding (taps outside the image skipped, no
    renormalisation), exactly the official ``bidownsample_naive`` op.

    Args:
        x: ``N x C x H x W`` with even ``H`` and ``W``.
        kernels: ``N x (G K^2) x H/2 x W/2``.
        kernel_size: even ``K`` (``2s``; 6 in the released model).
        groups: ``G``, a divisor of ``C``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H/2 x W/2``.

    Example:
        >>> x = torch.ones(1, 1, 4, 4)
        >>> a2u_downsample(x, torch.full((1, 36, 2, 2), 1 / 36), 6)  # box kernel: border taps lost
        tensor([[[[0.4444, 0.4444],
                  [0.4444, 0.4444]]]])
    """
    check_feature(x, "x")
    k = check_int(kernel_size, "kernel_size", minimum=2)
    if k % 2:
        raise ValueError(f"argument `kernel_size`: expected an even window (2 * up_kernel), got {k}")
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"argument `x`: expected even height and width, got {h} x {w}")
    if tuple(kernels.shape[-2:]) != (h // 2, w // 2):
        raise ValueError(
            f"argument `kernels`: expected spatial size {h // 2} x {w // 2} (half of `x`), "
            f"got {kernels.shape[-2]} x {kernels.shape[-1]}"
        )
    return reassemble_down(x, kernels, k, groups, stride=2, padding=(k - 2) // 2)


def a2u_upsample(d: Tensor, kernels: Tensor, kernel_size: int, groups: int = 1) -> Tensor:
    """A2U upsampling by 2: CARAFE reassembly of ``d`` with the predicted ``s x s`` kernels.

    ``z[n, c, y, x] = sum_{a, b < s} kernels[n, g s^2 + a s + b, y, x] * d[n, c, y//2 + a - r, x//2 + b - r]``
    with ``r = (s - 1) / 2``, zero padding and no renormalisation: exactly the official
    ``biupsample_naive`` op.
    ``d`` may have any channel count divisible by ``G``.

    Args:
        d: ``N x C_d x h x w`` decoder feature.
        kernels: ``N x (G s^2) x 2h x 2w``.
        kernel_size: odd ``s``.
        groups: ``G``, a divisor of ``C_d``.

    Shape:
        ``N x C_d x h x w`` -> ``N x C_d x 2h x 2w``.

    Example:
        >>> d = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> a2u_upsample(d, torch.full((1, 9, 4, 4), 1 / 9), 3)[0, 0, 0]
        tensor([0.6667, 0.6667, 0.6667, 0.6667])
    """
    return carafe(d, kernels, kernel_size, groups, 2)
