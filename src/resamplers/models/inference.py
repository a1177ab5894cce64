"""Whole-image matting inference at any size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .matting import IndexNetMatting, matting_inputs

__all__ = ["predict_alpha", "check_trimap"]


def check_trimap(trimap: Tensor, size: tuple[int, int], name: str = "trimap") -> Tensor:
    """Validate a ``H x W`` uint8 trimap with values 0/128/255 matching ``size``."""
    if trimap.dim() != 2:
        raise ValueError(f"argument `{name}`: expected a single-channel H x W trimap, got shape {tuple(trimap.shape)}")
    if tuple(trimap.shape) != tuple(size):
        raise ValueError(
            f"argument `{name}`: expected size {size[0]} x {size[1]} (that of the image), "
            f"got {trimap.shape[0]} x {trimap.shape[1]}"
        )
    if trimap.dtype != torch.uint8:
        raise ValueError(f"argument `{name}`: expected uint8 values 0/128/255, got dtype {trimap.dtype}")
    bad = ~((trimap == 0) | (trimap == 128) | (trimap == 255))
    if bad.any():
        values = sorted(set(trimap[bad].unique().tolist()))[:5]
        raise ValueError(f"argument `{name}`: expected only the values 0, 128 and 255, found also {values}")
    return trimap


@torch.no_grad()
def predict_alpha(model: IndexNetMatting, image: Tensor, trimap: Tensor) -> Tensor:
    """Alpha matte of one image of any size.

    The image and trimap are padded (reflect, or replicate when the image is smaller than
    the padding) to a multiple of the network's stride, the prediction is cropped back and
    clipped to [0, 1], and the known trimap regions are copied through (0 and 255).

    Args:
        model: a matting network in eval mode.
        image: ``3 x H x W`` float in [0, 1].
        trimap: ``H x W`` uint8 with values 0/128/255.

    Returns:
        ``H x W`` float alpha in [0, 1].
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"argument `image`: expected a 3 x H x W RGB tensor, got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    check_trimap(trimap, (h, w))
    stride = model.stride
    pad_h, pad_w = (-h) % stride, (-w) % stride
    batch = matting_inputs(image[None].float(), trimap[None])
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
    device = next(model.parameters()).device
    alpha = model(batch.to(device))[0, 0, :h, :w].clamp(0.0, 1.0).cpu()
    alpha = torch.where(trimap == 255, torch.ones_like(alpha), alpha)
    return torch.where(trimap == 0, torch.zeros_like(alpha), alpha)
