"""The sample every matting dataset here yields: a dict of tensors, ready for the default collate."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["make_sample"]


def _planes(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``H x W x C`` (or ``H x W``) -> float32 ``C x H x W`` in [0, 1]."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    # numpy, not torch: a tensor op here would start intra-op threads in the main process
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0))


def make_sample(
    name: str,
    image: np.ndarray,
    alpha: np.ndarray,
    trimap: np.ndarray,
    *,
    fg: np.ndarray | None = None,
    bg: np.ndarray | None = None,
    thin: bool = False,
) -> dict:
    """Build the sample dict from uint8 arrays.

    Returns:
        ``image`` float32 ``3 x H x W`` in [0, 1], ``alpha`` float32 ``1 x H x W``, ``trimap`` uint8
        ``H x W`` (0 / 128 / 255), ``fg`` and ``bg`` float32 ``3 x H x W`` (only when given), ``name``
        str, ``thin`` bool.

    Example:
        >>> import numpy as np
        >>> s = make_sample("a", np.zeros((4, 6, 3), np.uint8), np.full((4, 6), 255, np.uint8),
        ...                 np.full((4, 6), 128, np.uint8))
        >>> s["image"].shape, s["alpha"].max().item(), s["trimap"].dtype
        (torch.Size([3, 4, 6]), 1.0, torch.uint8)
    """
    sample = {
        "image": _planes(image),
        "alpha": _planes(alpha),
        "trimap": torch.from_numpy(np.array(trimap, dtype=np.uint8)),  # a copy: decoded arrays are read-only
        "name": name,
        "thin": bool(thin),
    }
    if fg is not None:
        sample["fg"] = _planes(fg)
    if bg is not None:
        sample["bg"] = _planes(bg)
    return sample
