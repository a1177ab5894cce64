"""Trimaps from ground-truth alpha, as in Deep Image Matting.

The foreground core is where alpha is 1 and the background core where alpha is 0 (after rounding
to 8 bits); every pixel within Euclidean distance ``radius`` of a pixel outside a core is unknown
(128), the rest of each core keeps its value (255, 0).  So every fractional pixel is unknown and the
band reaches ``radius`` pixels into both sides of the boundary.  Pixels beyond the image border do
not count as boundary.  The test set uses a fixed radius (7 at 256 x 256); training draws one per
sample.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BACKGROUND", "FOREGROUND", "UNKNOWN", "default_radius", "make_trimap", "random_radius"]

BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255


def default_radius(size: int) -> int:
    """The test-set radius at image size ``size``: 7 at 256, proportional otherwise (at least 1)."""
    return max(1, round(7 * size / 256))


def random_radius(rng: np.random.Generator, size: int) -> int:
    """A training radius, uniform in ``1 .. 2 * default_radius(size) + 1`` (1 .. 15 at 256)."""
    return int(rng.integers(1, 2 * default_radius(size) + 2))


def _core_interior(core: np.ndarray, radius: float) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    if core.all():
        return core.copy()
    if not core.any():
        return core
    return distance_transform_edt(core) > radius


def make_trimap(alpha: np.ndarray, radius: float) -> np.ndarray:
    """The DIM trimap of ``alpha`` with an unknown band of ``radius`` pixels.

    Args:
        alpha: ``H x W`` float alpha in [0, 1] (or uint8 0..255).
        radius: the band half-width in pixels (>= 0; 0 marks only the fractional pixels unknown).

    Returns:
        ``H x W`` uint8 with values 0, 128, 255.

    Example:
        >>> import numpy as np
        >>> alpha = np.zeros((1, 9)); alpha[0, 4:] = 1.0; alpha[0, 4] = 0.5
        >>> make_trimap(alpha, 2)[0].tolist()
        [0, 0, 128, 128, 128, 128, 128, 255, 255]
    """
    alpha = np.asarray(alpha)
    if alpha.ndim != 2:
        raise ValueError(f"argument `alpha`: expected an H x W array, got shape {alpha.shape}")
    if radius < 0:
        raise ValueError(f"argument `radius`: expected a number >= 0, got {radius}")
    alpha8 = alpha if alpha.dtype == np.uint8 else np.rint(np.clip(alpha, 0.0, 1.0) * 255.0)
    trimap = np.full(alpha.shape, UNKNOWN, np.uint8)
    trimap[_core_interior(alpha8 == 255, radius)] = FOREGROUND
    trimap[_core_interior(alpha8 == 0, radius)] = BACKGROUND
    return trimap
