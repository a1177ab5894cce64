"""Point sampling at predicted positions: the resampling step of DySample.

Each output pixel reads the input at a predicted, continuous position by bilinear
interpolation, instead of applying a predicted kernel to a fixed window.  Positions are
offsets in *input pixel units* relative to the input pixel centre the output pixel
belongs to, laid out as DySample lays them out, and the sampling grid is built from the
input's shape with traceable ops, so an exported model (ONNX, ``torch.export``) with
dynamic height and width samples correctly at every size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature, check_int, check_same_dtype_device
from ..core.api import autocast_dtype

__all__ = ["sub_pixel_positions", "dynamic_sample"]


def sub_pixel_positions(
    scale_factor: int, groups: int = 1, *, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> Tensor:
    """Offsets that make :func:`dynamic_sample` equal to bilinear upsampling.

    Output pixel ``(s*h + i, s*w + j)`` of bilinear upsampling (``align_corners=False``)
    reads the input at ``(h + (i - (s - 1) / 2) / s, w + (j - (s - 1) / 2) / s)``; these are
    the offsets ``((j - (s - 1) / 2) / s, (i - (s - 1) / 2) / s)`` (x first), repeated for
    every group.  DySample adds them to its predicted offsets (its ``init_pos`` buffer).

    Args:
        scale_factor: integer ``s >= 1``.
        groups: number of sampling groups ``G``.
        dtype: dtype of the result (default: torch's default dtype); the values are
            computed in float64 first.
        device: device of the result.

    Returns:
        ``1 x (2*G*s*s) x 1 x 1`` with channel ``(xy*G + g)*s*s + i*s + j``.

    Example:
        >>> sub_pixel_positions(2).flatten()
        tensor([-0.2500,  0.2500, -0.2500,  0.2500, -0.2500, -0.2500,  0.2500,  0.2500])
    """
    s = check_int(scale_factor, "scale_factor", minimum=1)
    g = check_int(groups, "groups", minimum=1)
    steps = (torch.arange(s, dtype=torch.float64) - (s - 1) / 2) / s
    along_x = steps.view(1, 1, s).expand(g, s, s)  # varies with the sub-column j
    along_y = steps.view(1, s, 1).expand(g, s, s)  # varies with the sub-row i
    positions = torch.stack([along_x, along_y]).reshape(1, 2 * g * s * s, 1, 1)
    return positions.to(dtype=dtype or torch.get_default_dtype(), device=device)


def _check_offsets(features: Tensor, offsets: Tensor, scale_factor: int, groups: int, same_dtype: bool) -> None:
    check_feature(features, "features")
    check_feature(offsets, "offsets")
    if same_dtype:
        check_same_dtype_device(features, "features", offsets, "offsets")
    elif features.device != offsets.device:
        raise ValueError(
            f"argument `offsets`: expected device {features.device} (the device of `features`), got {offsets.device}"
        )
    s = check_int(scale_factor, "scale_factor", minimum=1)
    g = check_int(groups, "groups", minimum=1)
    n, c, h, w = features.shape
    if c % g != 0:
        raise ValueError(f"argument `groups`: expected a divisor of the {c} feature channels, got {g}")
    expected = (n, 2 * g * s * s, h, w)
    if tuple(offsets.shape) != expected:
        raise ValueError(
            f"argument `offsets`: expected shape N x 2*G*s*s x H x W = {expected} for features {tuple(features.shape)}, "
            f"groups={g} and scale_factor={s}, got {tuple(offsets.shape)}"
        )


def dynamic_sample(features: Tensor, offsets: Tensor, scale_factor: int, groups: int = 1) -> Tensor:
    """Upsample by sampling each output pixel at a predicted position (DySample's sampler).

    Output pixel ``(s*h + i, s*w + j)`` of channel ``c`` in group ``g = c // (C / G)``
    (contiguous channel groups) is the bilinear interpolation of ``features[n, c]`` at
    column ``w + offsets[n, (0*G + g)*s*s + i*s + j, h, w]`` and row
    ``h + offsets[n, (1*G + g)*s*s + i*s + j, h, w]``, where integer coordinates are pixel
    centres.  Positions outside the image are clamped to its border (``grid_sample`` with
    ``padding_mode='border'``, ``align_corners=False``): the border pixels are replicated.
    With ``offsets = sub_pixel_positions(s, G)`` this is exactly bilinear upsampling with
    ``align_corners=False``.

    The sampling grid is built from the input's shape with traceable ops (no shape baked
    in as a constant), so exported models stay correct at every input size.

    Args:
        features: ``N x C x H x W``.
        offsets: ``N x (2*G*s*s) x H x W`` in input pixel units, x (width) components first.
        scale_factor: integer ``s >= 1``.
        groups: ``G``, a divisor of ``C``; each group shares one set of sampling positions.

    Precision: outside autocast ``features`` and ``offsets`` share one dtype.  Under
    autocast (where the offset predictor and the layer before may return different
    low-precision dtypes) both are sampled in float32 (float64 if either is), as the
    reassembly core does, and the output comes back in the dtype of ``features``.

    Returns:
        ``N x C x sH x sW``, dtype of ``features``.

    Shape:
        ``features``: ``N x C x H x W``; ``offsets``: ``N x 2Gs^2 x H x W``; output ``N x C x sH x sW``.

    Example:
        >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
        >>> y = dynamic_sample(x, sub_pixel_positions(2).expand(1, 8, 2, 3), 2)
        >>> torch.allclose(y, torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear"))
        True
    """
    compute = autocast_dtype(features, offsets)
    _check_offsets(features, offsets, scale_factor, groups, same_dtype=compute is None)
    if compute is not None:
        with torch.autocast(features.device.type, enabled=False):
            return _sample(features.to(compute), offsets.to(compute), scale_factor, groups).to(features.dtype)
    return _sample(features, offsets, scale_factor, groups)


def _sample(features: Tensor, offsets: Tensor, scale_factor: int, groups: int) -> Tensor:
    n, c, h, w = features.shape
    s, g = scale_factor, groups
    # Normalised grid coordinates u = 2 * (p + 0.5) / size - 1 of position p; the sizes are
    # read from the tensor (symbolic under export), never stored as constants.
    offsets = offsets.reshape(n, 2, g * s * s, h, w)
    cols = (torch.arange(w, device=features.device) + 0.5).to(features.dtype).view(1, 1, 1, w)
    rows = (torch.arange(h, device=features.device) + 0.5).to(features.dtype).view(1, 1, h, 1)
    grid_x = 2 * (cols + offsets[:, 0]) / w - 1
    grid_y = 2 * (rows + offsets[:, 1]) / h - 1
    grid = torch.stack([grid_x, grid_y], dim=1).reshape(n, 2 * g * s * s, h, w)
    grid = (
        F.pixel_shuffle(grid, s).reshape(n, 2, g, s * h, s * w).permute(0, 2, 3, 4, 1).reshape(n * g, s * h, s * w, 2)
    )
    sampled = F.grid_sample(
        features.reshape(n * g, c // g, h, w), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled.reshape(n, c, s * h, s * w)
