"""Anti-aliased downsampling: a binomial low-pass filter, then subsampling (Zhang, ICML 2019)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_feature, check_int

__all__ = ["binomial_filter", "blur_pad", "blur_pool2d"]

PAD_MODES = ("reflect", "replicate", "constant")


def binomial_filter(filt_size: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None) -> Tensor:
    """The normalised ``f x f`` binomial filter (outer product of Pascal's row ``f - 1``).

    Example:
        >>> binomial_filter(3) * 16
        tensor([[1., 2., 1.],
                [2., 4., 2.],
                [1., 2., 1.]])
    """
    f = check_int(filt_size, "filt_size", minimum=1)
    row = torch.tensor([math.comb(f - 1, i) for i in range(f)], dtype=torch.float64)
    return (torch.outer(row, row) / row.sum() ** 2).to(dtype=dtype or torch.get_default_dtype(), device=device)


def blur_pad(filt_size: int) -> tuple[int, int]:
    """(before, after) padding of the reference: ``floor((f - 1) / 2)``, ``ceil((f - 1) / 2)``."""
    return (filt_size - 1) // 2, filt_size // 2


def blur_pool2d(
    x: Tensor,
    filt_size: int = 4,
    stride: int = 2,
    pad_mode: str = "reflect",
    *,
    weight: Tensor | None = None,
) -> Tensor:
    """BlurPool: depthwise binomial blur, then keep every ``stride``-th pixel.

    Exactly adobe/antialiased-cnns ``BlurPool(channels, pad_type, filt_size, stride)``:
    the input is padded by ``floor((f-1)/2)`` before and ``ceil((f-1)/2)`` after each axis
    (asymmetric for even ``f``) with ``pad_mode``, convolved with the normalised
    ``f x f`` binomial filter per channel and subsampled from the first pixel.
    ``filt_size = 1`` is plain subsampling ``x[..., ::s, ::s]``.  The output is
    ``ceil(H / s) x ceil(W / s)`` for every ``f``.

    Args:
        x: ``N x C x H x W``.
        filt_size: ``f`` in ``1 .. 7`` (the reference's sizes; default 4 as in its models).
        stride: subsampling factor ``s``.
        pad_mode: ``"reflect"`` (the reference's default; needs ``H, W > ceil((f-1)/2)``),
            ``"replicate"`` or ``"constant"`` (zeros).
        weight: precomputed ``C x 1 x f x f`` filter (a module's buffer); default built here.

    Shape:
        ``N x C x H x W`` -> ``N x C x ceil(H/s) x ceil(W/s)``.

    Example:
        >>> blur_pool2d(torch.ones(1, 2, 5, 5), filt_size=3).shape
        torch.Size([1, 2, 3, 3])
    """
    check_feature(x, "x")
    f = check_int(filt_size, "filt_size", minimum=1)
    if f > 7:
        raise ValueError(f"argument `filt_size`: expected 1 to 7 (the reference's binomial filters), got {f}")
    s = check_int(stride, "stride", minimum=1)
    check_choice(pad_mode, "pad_mode", PAD_MODES)
    before, after = blur_pad(f)
    if f == 1:
        return x[..., ::s, ::s]
    if pad_mode == "reflect" and after >= min(x.shape[-2], x.shape[-1]):
        raise ValueError(
            f"argument `x`: reflect padding by {after} needs height and width > {after}, got "
            f"{x.shape[-2]} x {x.shape[-1]} (use pad_mode='replicate' for tiny maps)"
        )
    c = x.shape[1]
    if weight is None:
        weight = binomial_filter(f, dtype=x.dtype, device=x.device).expand(c, 1, f, f)
    padded = F.pad(x, (before, after, before, after), mode=pad_mode)
    return F.conv2d(padded, weight.to(x.dtype), stride=s, groups=c)
