"""Index-guided pooling and upsampling (IndexNet, max pooling / unpooling).

An *index map* ``I`` has the resolution of the high-resolution feature and one channel
per group (1 for a holistic index shared by every channel, ``C`` for a per-channel one;
channel ``c`` uses index channel ``c // (C / G)``).  With scale ``s``:

* indexed pooling: ``y[n, c, i, j] = sum_{a, b < s} I[n, g, s i + a, s j + b] * x[n, c, s i + a, s j + b]``,
  i.e. IndexNet's ``4 * avgpool2x2(I * x)`` for ``s = 2``;
* indexed upsampling: ``z[n, c, y, x] = I[n, g, y, x] * d[n, c, y // s, x // s]``,
  i.e. ``I * nearest(d)``.

Both are thin callers of the reassembly core: pooling is a stride-``s`` reassembly with
``K = s`` whose kernels are ``pixel_unshuffle(I, s)``; upsampling is an ``up = s``,
``K = 1`` reassembly whose kernels are ``I`` itself.  Max pooling and unpooling are the
special case of a one-hot index (:func:`max_pool_index`); average pooling and nearest
upsampling that of a constant index (``1 / s^2`` and ``1``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature, check_int
from .reassembly import reassemble

__all__ = ["normalize_index", "indexed_pooling", "indexed_upsampling", "max_pool_index"]


def normalize_index(logits: Tensor) -> tuple[Tensor, Tensor]:
    """IndexNet's index normalisation: encoder and decoder index maps from index logits.

    ``S = sigmoid(logits)``; the encoder index is ``softmax(S)`` over the ``s^2`` slots
    of each cell (the softmax of the *sigmoid*, as in the official code, so every value
    lies in ``[1/(1+3e), e/(e+3)]`` for ``s = 2``), the decoder index is ``S`` itself.
    Slot ``j`` of a cell goes to sub-pixel ``(j // s, j % s)`` (``pixel_shuffle``).

    Args:
        logits: ``N x G x s^2 x h x w`` index logits (``G`` index channels, ``s^2`` slots).

    Returns:
        ``(encoder_index, decoder_index)``, each ``N x G x sh x sw`` in the dtype of ``logits``.

    Shape:
        ``N x G x s^2 x h x w`` -> ``(N x G x sh x sw, N x G x sh x sw)``.

    Example:
        >>> en, de = normalize_index(torch.zeros(1, 1, 4, 1, 1))
        >>> en.flatten(), de.flatten()
        (tensor([0.2500, 0.2500, 0.2500, 0.2500]), tensor([0.5000, 0.5000, 0.5000, 0.5000]))
    """
    if not isinstance(logits, Tensor) or logits.dim() != 5:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"argument `logits`: expected a 5-D tensor N x G x s^2 x h x w, got {shape}")
    n, g, slots, h, w = logits.shape
    scale = math.isqrt(slots)
    if scale * scale != slots:
        raise ValueError(f"argument `logits`: dim 2 holds the s^2 slots of a cell; expected a square, got {slots}")
    decoder = torch.sigmoid(logits)
    encoder = torch.softmax(decoder, dim=2)
    return (
        F.pixel_shuffle(encoder.reshape(n, g * slots, h, w), scale),
        F.pixel_shuffle(decoder.reshape(n, g * slots, h, w), scale),
    )


def _check_index(features: Tensor, index: Tensor, size: tuple[int, int], what: str) -> int:
    """Validate an index map against a feature map; return its group count."""
    check_feature(index, "index")
    if index.shape[0] != features.shape[0]:
        raise ValueError(f"argument `index`: expected batch size {features.shape[0]}, got {index.shape[0]}")
    if (index.shape[-2], index.shape[-1]) != size:
        raise ValueError(
            f"argument `index`: expected spatial size {size[0]} x {size[1]} ({what}), "
            f"got {index.shape[-2]} x {index.shape[-1]}"
        )
    groups = index.shape[1]
    if features.shape[1] % groups != 0:
        raise ValueError(
            f"argument `index`: its {groups} channels must divide the {features.shape[1]} feature channels "
            f"(1 for a holistic index, C for a per-channel one)"
        )
    return groups


def indexed_pooling(x: Tensor, index: Tensor, scale_factor: int = 2) -> Tensor:
    """Indexed pooling: the index-weighted sum of every ``s x s`` cell.

    ``y[n, c, i, j] = sum_{a, b < s} index[n, g, s i + a, s j + b] * x[n, c, s i + a, s j + b]``
    with ``g = c // (C / G)``; for ``s = 2`` this is IndexNet's ``4 * avg_pool2d(index * x, 2)``.
    No padding: ``H`` and ``W`` must be multiples of ``s``.  A cell-normalised index gives a
    convex combination of the cell; ``1 / s^2`` everywhere gives average pooling.

    Args:
        x: ``N x C x H x W`` features.
        index: ``N x G x H x W`` index map, ``G`` dividing ``C``.
        scale_factor: the cell size ``s``.

    Returns:
        ``N x C x H/s x W/s``, dtype of ``x`` (``index`` must have the same dtype).

    Shape:
        ``(N x C x H x W, N x G x H x W)`` -> ``N x C x H/s x W/s``.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> indexed_pooling(x, torch.full((1, 1, 4, 4), 0.25))  # average pooling
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
    """
    check_feature(x, "x")
    s = check_int(scale_factor, "scale_factor", minimum=1)
    h, w = x.shape[-2:]
    if h % s or w % s:
        raise ValueError(f"argument `x`: expected height and width divisible by {s}, got {h} x {w}")
    groups = _check_index(x, index, (h, w), "that of `x`")
    return reassemble(x, F.pixel_unshuffle(index, s), s, groups, stride=s, padding=0)


def indexed_upsampling(d: Tensor, index: Tensor, scale_factor: int = 2) -> Tensor:
    """Indexed upsampling: ``index * nearest(d)``.

    ``z[n, c, y, x] = index[n, g, y, x] * d[n, c, y // s, x // s]`` with ``g = c // (C / G)``.
    An all-ones index gives nearest upsampling; a one-hot max-pooling index gives max
    unpooling (zeros off the recorded positions).

    Args:
        d: ``N x C x h x w`` low-resolution features.
        index: ``N x G x sh x sw`` index map, ``G`` dividing ``C``.
        scale_factor: ``s``.

    Returns:
        ``N x C x sh x sw``, dtype of ``d`` (``index`` must have the same dtype).

    Shape:
        ``(N x C x h x w, N x G x sh x sw)`` -> ``N x C x sh x sw``.

    Example:
        >>> d = torch.tensor([[[[1.0, 2.0]]]])
        >>> indexed_upsampling(d, torch.tensor([[[[1.0, 0.5, 0.0, 2.0], [0.0, 1.0, 1.0, 1.0]]]]))
        tensor([[[[1.0000, 0.5000, 0.0000, 4.0000],
                  [0.0000, 1.0000, 2.0000, 2.0000]]]])
    """
    check_feature(d, "d")
    s = check_int(scale_factor, "scale_factor", minimum=1)
    h, w = d.shape[-2:]
    groups = _check_index(d, index, (h * s, w * s), f"that of `d` times scale_factor {s}")
    return reassemble(d, index, 1, groups, scale_factor=s)


def max_pool_index(x: Tensor, scale_factor: int = 2) -> tuple[Tensor, Tensor]:
    """Max pooling over ``s x s`` cells and the one-hot index of each maximum.

    The index is ``1`` at the position ``torch.nn.functional.max_pool2d(...,
    return_indices=True)`` records (the first maximum of each cell in row-major order, NaN
    counting as the maximum) and ``0`` elsewhere, so ``indexed_upsampling(d, index)`` is
    max unpooling (``max_unpool2d``) and ``indexed_pooling(x, index)`` gives back the pooled
    values for finite inputs.  The index is not differentiable.

    Args:
        x: ``N x C x H x W``, ``H`` and ``W`` multiples of ``s``.
        scale_factor: the cell size ``s``.

    Returns:
        ``(pooled N x C x H/s x W/s, index N x C x H x W)``, both of the dtype of ``x``.

    Shape:
        ``N x C x H x W`` -> ``(N x C x H/s x W/s, N x C x H x W)``.

    Example:
        >>> y, index = max_pool_index(torch.tensor([[[[1.0, 5.0], [3.0, 2.0]]]]))
        >>> y.flatten(), index
        (tensor([5.]), tensor([[[[0., 1.],
                  [0., 0.]]]]))
    """
    check_feature(x, "x")
    s = check_int(scale_factor, "scale_factor", minimum=1)
    n, c, h, w = x.shape
    if h % s or w % s:
        raise ValueError(f"argument `x`: expected height and width divisible by {s}, got {h} x {w}")
    pooled, positions = F.max_pool2d(x, s, return_indices=True)  # flat positions h * W + w per channel
    index = torch.zeros(n, c, h * w, dtype=x.dtype, device=x.device).scatter(2, positions.flatten(2), 1.0)
    return pooled, index.view(n, c, h, w)
