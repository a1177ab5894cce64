"""Alpha-matting errors exactly as the Deep Image Matting (DIM) evaluation code.

Every matting paper since DIM (Xu et al., CVPR 2017) reports SAD, MSE, Grad and Conn with the
MATLAB scripts released with the Composition-1k benchmark (``compute_sad_loss.m``,
``compute_mse_loss.m``, ``compute_gradient_loss.m`` with ``gaussgradient.m``,
``compute_connectivity_error.m``) and the scaling of their driver script.  This module computes the
same numbers.  The conventions, all taken from those scripts:

* Only the unknown region counts: pixels where ``trimap == 128``.  Pixels marked 0 or 255 are
  ignored whatever the prediction there (copy the known regions into the prediction before
  evaluating, as the matting methods do, if they should count as correct).
* Alphas are in [0, 1]: a ``uint8`` array is divided by 255 (the scripts read 8-bit PNGs), a float
  array is used as is.  To reproduce numbers of a pipeline that saves predictions as PNG, pass the
  ``uint8`` prediction (``round(255 * pred)``).
* ``sad = sum |pred - alpha| / 1000``.
* ``mse = sum (pred - alpha)^2 / #unknown`` (not scaled; 0.0 when there is no unknown pixel, where
  the MATLAB script would give NaN).
* ``grad = sum (|G * pred'| - |G * alpha'|)^2 / 1000`` where ``'`` is MATLAB's ``mat2gray`` (each
  matte stretched to [0, 1] by its own minimum and maximum over the whole image; a constant matte has
  zero gradient) and ``G`` the first-derivative-of-Gaussian filter pair of ``gaussgradient`` with
  sigma 1.4: a 9 x 9 kernel ``g(i) g'(j)`` (half size ``ceil(sigma sqrt(-2 ln(sqrt(2 pi) sigma
  0.01)))``), divided by its L2 norm, applied with replicated borders.
* ``conn = sum |phi(pred) - phi(alpha)| / 1000`` with threshold step 0.1, theta 0.15 and p = 1: for
  each threshold ``t = 0.1, ..., 1.0`` the largest 4-connected component of
  ``(pred >= t) & (alpha >= t)`` is found (ties go to the component whose first pixel comes first
  in column-major order, as MATLAB's ``bwconncomp`` numbers them); a pixel gets level ``l`` = the
  threshold before the first one at which it falls outside that component (1 if it never does),
  and ``phi(x) = 1 - d * [d >= 0.15]`` with ``d = x - l``.

The per-image numbers are what the papers average over the test set.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "UNKNOWN",
    "check_trimap",
    "connectivity_error",
    "gaussian_gradient_kernels",
    "gradient_error",
    "matting_metrics",
    "mse_error",
    "sad_error",
]

UNKNOWN = 128  # trimap value of the unknown region; 0 is background, 255 foreground
_TRIMAP_VALUES = (0, 128, 255)


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch.Tensor, on any device
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"argument `{name}`: expected a numpy array or a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3 and x.shape[0] == 1:  # 1 x H x W, as a single-channel tensor
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"argument `{name}`: expected an H x W (or 1 x H x W) array, got shape {tuple(x.shape)}")
    return x


def _as_alpha(x: Any, name: str) -> np.ndarray:
    """``x`` as float64 in [0, 1]: uint8 is divided by 255, floats must already be in [0, 1]."""
    x = _to_numpy(x, name)
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"argument `{name}`: expected uint8 (0..255) or a float array in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"argument `{name}`: expected finite values in [0, 1], got NaN or inf")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(
            f"argument `{name}`: expected float values in [0, 1], got range [{x.min():.4g}, {x.max():.4g}] "
            "(clip the prediction, or pass uint8 for 0..255)"
        )
    return x


def check_trimap(trimap: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``trimap`` as an ``H x W`` integer array with values 0/128/255, or raise naming it."""
    trimap = _to_numpy(trimap, "trimap")
    if not np.issubdtype(trimap.dtype, np.integer):
        raise ValueError(
            f"argument `trimap`: expected an integer (uint8) array with values 0/128/255, got dtype {trimap.dtype}"
        )
    if shape is not None and trimap.shape != tuple(shape):
        raise ValueError(f"argument `trimap`: expected shape {tuple(shape)} (the image size), got {trimap.shape}")
    bad = ~np.isin(trimap, _TRIMAP_VALUES)
    if bad.any():
        values = sorted(int(v) for v in np.unique(trimap[bad])[:5])
        raise ValueError(
            f"argument `trimap`: expected values 0 (background), 128 (unknown), 255 (foreground), got {values}"
        )
    return trimap


def _prepare(pred: Any, alpha: Any, trimap: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = _as_alpha(pred, "pred")
    a = _as_alpha(alpha, "alpha")
    if p.shape != a.shape:
        raise ValueError(f"argument `pred`: expected shape {a.shape} (the shape of `alpha`), got {p.shape}")
    if a.size == 0:
        raise ValueError(f"argument `alpha`: expected a non-empty H x W matte, got shape {a.shape}")
    return p, a, check_trimap(trimap, a.shape) == UNKNOWN


def sad_error(pred: Any, alpha: Any, trimap: Any) -> float:
    """Sum of absolute differences on the unknown region, divided by 1000 (``compute_sad_loss.m``).

    Example:
        >>> import numpy as np
        >>> alpha = np.ones((4, 5)); trimap = np.full((4, 5), 128, np.uint8)
        >>> sad_error(np.zeros((4, 5)), alpha, trimap)
        0.02
    """
    p, a, unknown = _prepare(pred, alpha, trimap)
    return float(np.abs(p - a)[unknown].sum() / 1000.0)


def mse_error(pred: Any, alpha: Any, trimap: Any) -> float:
    """Mean squared error over the unknown pixels (``compute_mse_loss.m``); 0.0 if there are none.

    Example:
        >>> import numpy as np
        >>> trimap = np.array([[128, 128, 0]], np.uint8)
        >>> mse_error(np.array([[0.5, 0.0, 1.0]]), np.zeros((1, 3)), trimap)
        0.125
    """
    p, a, unknown = _prepare(pred, alpha, trimap)
    count = int(unknown.sum())
    return float(np.square(p - a)[unknown].sum() / count) if count else 0.0


@lru_cache(maxsize=8)
def gaussian_gradient_kernels(sigma: float = 1.4, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D factors ``(g, d)`` of ``gaussgradient``'s kernel ``hx[i, j] = g[i] * d[j]``.

    ``g`` is the Gaussian, ``d`` its first derivative, sampled at ``-h..h`` with
    ``h = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma epsilon)))``, each scaled to unit L2 norm, so that
    their outer product is the MATLAB kernel divided by its Frobenius norm.

    Example:
        >>> import numpy as np
        >>> g, d = gaussian_gradient_kernels(1.4)
        >>> g.shape, round(float((np.outer(g, d) ** 2).sum()), 12)
        ((9,), 1.0)
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    d = -u * g / sigma**2
    g, d = g / np.linalg.norm(g), d / np.linalg.norm(d)
    g.flags.writeable = d.flags.writeable = False  # shared through the cache
    return g, d


def _stretch(x: np.ndarray) -> np.ndarray:
    """MATLAB ``mat2gray``: map the image's minimum to 0 and maximum to 1 (a constant image stays put)."""
    low, high = float(x.min()), float(x.max())
    return (x - low) / (high - low) if high > low else x


def _gradient_magnitude(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import correlate1d

    g, d = gaussian_gradient_kernels(sigma)
    # imfilter(..., 'conv') flips the kernel: correlate with the reversed derivative.  mode
    # 'nearest' is MATLAB's 'replicate' border.
    gx = correlate1d(correlate1d(x, g, axis=0, mode="nearest"), d[::-1], axis=1, mode="nearest")
    gy = correlate1d(correlate1d(x, d[::-1], axis=0, mode="nearest"), g, axis=1, mode="nearest")
    return np.sqrt(gx**2 + gy**2)


def gradient_error(pred: Any, alpha: Any, trimap: Any, sigma: float = 1.4) -> float:
    """Gradient error (``compute_gradient_loss.m`` / 1000): squared difference of Gaussian-derivative
    gradient magnitudes (sigma 1.4) of the ``mat2gray``-stretched mattes, summed on the unknown region.

    Example:
        >>> import numpy as np
        >>> alpha = np.zeros((8, 8)); alpha[:, 4:] = 1.0
        >>> trimap = np.full((8, 8), 128, np.uint8)
        >>> gradient_error(alpha, alpha, trimap)
        0.0
    """
    p, a, unknown = _prepare(pred, alpha, trimap)
    error = np.square(_gradient_magnitude(_stretch(p), sigma) - _gradient_magnitude(_stretch(a), sigma))
    return float(error[unknown].sum() / 1000.0)


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 4-connected component of ``mask``, ties to the first in column-major order."""
    from scipy.ndimage import label

    # Labelling the transpose numbers components in column-major order of their first pixel, as
    # MATLAB's bwconncomp does; argmax keeps the first of equal sizes, as MATLAB's max does.
    labels, count = label(mask.T)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    return (labels == int(np.argmax(sizes)) + 1).T


def _connectivity_levels(p: np.ndarray, a: np.ndarray, steps: int) -> np.ndarray:
    level = np.full(p.shape, -1.0)
    for i in range(1, steps + 1):
        # i / steps is the correctly rounded threshold, so that e.g. 153/255 >= 0.6 holds as in MATLAB
        # (numpy's arange gives 0.6000000000000001 there).
        threshold = i / steps
        omega = _largest_component((p >= threshold) & (a >= threshold))
        if omega is None:
            continue
        level[(level == -1.0) & ~omega] = (i - 1) / steps
    level[level == -1.0] = 1.0
    return level


def connectivity_error(pred: Any, alpha: Any, trimap: Any, step: float = 0.1, theta: float = 0.15) -> float:
    """Connectivity error (``compute_connectivity_error.m`` / 1000), threshold step 0.1, theta 0.15, p 1.

    Example:
        >>> import numpy as np
        >>> alpha = np.ones((1, 5)); pred = np.array([[1.0, 1.0, 0.0, 1.0, 1.0]])
        >>> connectivity_error(pred, alpha, np.full((1, 5), 128, np.uint8))
        0.001
    """
    steps = round(1.0 / step)
    if steps < 1 or abs(steps * step - 1.0) > 1e-9:
        raise ValueError(f"argument `step`: expected 1/n for an integer n >= 1 (0.1 as DIM), got {step}")
    p, a, unknown = _prepare(pred, alpha, trimap)
    level = _connectivity_levels(p, a, steps)
    p_d, a_d = p - level, a - level
    p_phi = 1.0 - p_d * (p_d >= theta)
    a_phi = 1.0 - a_d * (a_d >= theta)
    return float(np.abs(p_phi - a_phi)[unknown].sum() / 1000.0)


def matting_metrics(pred: Any, alpha: Any, trimap: Any) -> dict[str, float]:
    """SAD, MSE, Grad and Conn of one predicted matte, as the DIM evaluation code computes them.

    Args:
        pred: the predicted alpha, ``H x W`` (or ``1 x H x W``), uint8 0..255 or float in [0, 1];
            numpy array or torch tensor.
        alpha: the ground-truth alpha, same shape and conventions.
        trimap: ``H x W`` integer array with 0 (background), 128 (unknown), 255 (foreground);
            only the unknown pixels count.

    Returns:
        ``{"sad": ..., "mse": ..., "grad": ..., "conn": ...}`` with the scaling papers report:
        SAD, Grad and Conn divided by 1000, MSE not scaled.

    Example:
        >>> import numpy as np
        >>> alpha = np.zeros((6, 6)); alpha[:, 3:] = 1.0
        >>> trimap = np.full((6, 6), 128, np.uint8)
        >>> m = matting_metrics(np.full((6, 6), 0.5), alpha, trimap)
        >>> m["sad"], m["mse"]
        (0.018, 0.25)
    """
    p, a, unknown = _prepare(pred, alpha, trimap)
    tri = np.where(unknown, UNKNOWN, 0).astype(np.uint8)  # already validated: skip re-checking
    return {
        "sad": sad_error(p, a, tri),
        "mse": mse_error(p, a, tri),
        "grad": gradient_error(p, a, tri),
        "conn": connectivity_error(p, a, tri),
    }
