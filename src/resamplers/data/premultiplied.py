"""Straight-alpha layers: the operations that must go through premultiplied colour.

A layer is ``color`` ``H x W x 3`` (straight, not premultiplied) and ``alpha`` ``H x W``, float32
in [0, 1].  Filtering or stacking layers is only right on ``(alpha * color, alpha)``; these helpers
do that and divide back.
"""

from __future__ import annotations

import numpy as np

from .images import resize_float

__all__ = ["extend_colors", "over", "resize_premultiplied"]


def over(top_color, top_alpha, bottom_color, bottom_alpha):
    """Porter-Duff *over* of straight-alpha layers: ``a = a_t + (1 - a_t) a_b`` and the same for ``aF``."""
    alpha = top_alpha + (1.0 - top_alpha) * bottom_alpha
    premultiplied = top_color * top_alpha[..., None] + (bottom_color * ((1.0 - top_alpha) * bottom_alpha)[..., None])
    color = np.divide(premultiplied, alpha[..., None], out=np.zeros_like(premultiplied), where=alpha[..., None] > 0)
    return np.clip(color, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32)


def resize_premultiplied(color: np.ndarray, alpha: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize a straight-alpha layer to ``size = (height, width)`` through premultiplied colour."""
    stacked = np.concatenate([color * alpha[..., None], alpha[..., None]], axis=-1).astype(np.float32)
    resized = resize_float(stacked, size)
    raw_alpha = resized[..., 3]
    # The colour is the ratio of the two filtered planes; Lanczos overshoot is clipped afterwards, on
    # the colour and on alpha separately, so that clipping alpha above 1 does not shift the colour.
    new_color = np.divide(
        resized[..., :3], raw_alpha[..., None], out=np.zeros_like(resized[..., :3]), where=raw_alpha[..., None] > 1e-6
    )
    new_color = np.clip(new_color, 0.0, 1.0)
    new_alpha = np.where(raw_alpha > 1e-6, np.clip(raw_alpha, 0.0, 1.0), 0.0).astype(np.float32)
    return new_color, new_alpha


def extend_colors(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``color`` with every pixel where ``alpha == 0`` copied from the nearest pixel with ``alpha > 0``."""
    from scipy.ndimage import distance_transform_edt

    empty = alpha <= 0
    if not empty.any() or empty.all():
        return color
    _, (rows, cols) = distance_transform_edt(empty, return_indices=True)
    return color[rows, cols]
