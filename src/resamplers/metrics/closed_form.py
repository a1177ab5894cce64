"""Closed-form matting (Levin, Lischinski and Weiss, PAMI 2008) as a reference row for evaluations."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from .matting import UNKNOWN, check_trimap

__all__ = ["closed_form_alpha"]


def _image_hwc(image: Any) -> np.ndarray:
    """``image`` as ``H x W x 3`` float64 in [0, 1] from a ``3 x H x W`` tensor or an ``H x W x 3`` array."""
    if hasattr(image, "detach"):  # torch: channels first
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] == 3:
            image = image.transpose(1, 2, 0)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"argument `image`: expected a numpy array or a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"argument `image`: expected an H x W x 3 array (or a 3 x H x W tensor), got shape {tuple(image.shape)}"
        )
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"argument `image`: expected uint8 or float in [0, 1], got dtype {image.dtype}")
    if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
        raise ValueError("argument `image`: expected finite float values in [0, 1]")
    return image.astype(np.float64)


def closed_form_alpha(image: Any, trimap: Any, *, epsilon: float = 1e-7, radius: int = 1) -> np.ndarray:
    """Alpha matte by closed-form matting (``pymatting.estimate_alpha_cf``), known regions copied.

    Solves the matting-Laplacian system on the unknown pixels with the trimap's known pixels as
    boundary conditions; the result is clipped to [0, 1] and is exactly 0 / 1 where the trimap is
    0 / 255.  A trimap with known background only (or foreground only) gives 0 (or 1) everywhere,
    the minimiser of the Laplacian energy under those constraints.  Needs ``pymatting`` (the
    ``data`` extra); its first call compiles numba kernels.

    Args:
        image: ``H x W x 3`` array (or ``3 x H x W`` tensor), uint8 or float in [0, 1].
        trimap: ``H x W`` integer array, 0 background / 128 unknown / 255 foreground.
        epsilon: the regulariser of the matting Laplacian (Levin et al.: 1e-7).
        radius: the local window radius (windows of ``(2 radius + 1)^2`` pixels).

    Returns:
        ``H x W`` float64 alpha in [0, 1].

    Example:
        >>> import numpy as np
        >>> alpha = np.tile(np.linspace(0, 1, 12), (8, 1))  # a ramp between two colours
        >>> image = alpha[..., None] * [0.9, 0.2, 0.1] + (1 - alpha[..., None]) * [0.1, 0.3, 0.8]
        >>> trimap = np.full((8, 12), 128, np.uint8); trimap[:, 0] = 0; trimap[:, -1] = 255
        >>> bool(np.abs(closed_form_alpha(image, trimap) - alpha).max() < 1e-3)
        True
    """
    pixels = _image_hwc(image)
    trimap = check_trimap(trimap, pixels.shape[:2])
    alpha = (trimap == 255).astype(np.float64)
    unknown = trimap == UNKNOWN
    if not unknown.any():
        return alpha
    if unknown.all():
        raise ValueError("argument `trimap`: closed-form matting needs some known pixels (0 or 255), got only 128")
    if not (trimap == 255).any() or not (trimap == 0).any():
        # One kind of constraint only: the constant matte has zero Laplacian energy, so it is the minimiser.
        alpha[unknown] = 1.0 if (trimap == 255).any() else 0.0
        return alpha
    try:
        from pymatting import estimate_alpha_cf
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError("closed_form_alpha needs pymatting: pip install 'resamplers[data]'") from error
    with contextlib.redirect_stdout(io.StringIO()):  # pymatting prints a notice when it retries its preconditioner
        estimate = estimate_alpha_cf(
            np.ascontiguousarray(pixels),
            trimap.astype(np.float64) / 255.0,
            laplacian_kwargs={"epsilon": epsilon, "radius": radius},
        )
    alpha[unknown] = np.clip(estimate[unknown], 0.0, 1.0)
    return alpha
