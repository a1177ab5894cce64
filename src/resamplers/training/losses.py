"""The matting loss of IndexNet / A2U: Charbonnier alpha and composition terms on the unknown region."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["matting_loss", "unknown_mask"]


def unknown_mask(trimap: Tensor) -> Tensor:
    """``N x 1 x H x W`` float mask of the unknown region (trimap value 128) of a uint8 or float trimap.

    Float trimaps in [0, 1] mark the unknown region with 128/255.
    """
    if trimap.dim() == 3:
        trimap = trimap.unsqueeze(1)
    if trimap.dtype == torch.uint8:
        return (trimap == 128).float()
    return ((trimap * 255).round() == 128).float()


def _charbonnier_mean(diff: Tensor, mask: Tensor, eps: float) -> Tensor:
    """Per-sample ``sum(mask * sqrt(diff^2 + eps^2)) / #unknown`` (channels summed)."""
    per_pixel = torch.sqrt(diff * diff + eps * eps) * mask
    count = mask.sum(dim=(1, 2, 3)).clamp_min(1.0)
    return per_pixel.sum(dim=(1, 2, 3)) / count


def matting_loss(
    pred: Tensor,
    alpha: Tensor,
    trimap: Tensor,
    fg: Tensor,
    bg: Tensor,
    image: Tensor,
    alpha_weight: float = 0.5,
    eps: float = 1e-6,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``alpha_weight * L_alpha + (1 - alpha_weight) * L_comp``, averaged over the batch.

    Both terms are Charbonnier penalties ``sqrt(d^2 + eps^2)`` summed over the unknown
    region (trimap == 128) and divided by each sample's unknown-pixel count (at least 1);
    the composition term compares ``pred * fg + (1 - pred) * bg`` with the image and sums
    its three colour channels.  This is the official IndexNet loss, except that pixels
    outside the unknown region contribute nothing (the official code adds ``eps`` there).

    Args:
        pred: predicted alpha ``N x 1 x H x W`` (unclipped network output).
        alpha: ground truth ``N x 1 x H x W`` in [0, 1].
        trimap: ``N x H x W`` or ``N x 1 x H x W``, uint8 0/128/255 (or float / 255).
        fg, bg, image: ``N x 3 x H x W`` in [0, 1].

    Returns:
        The scalar loss and its parts (``alpha``, ``composition``), detached.
    """
    mask = unknown_mask(trimap).to(pred.dtype)
    loss_alpha = _charbonnier_mean(pred - alpha, mask, eps).mean()
    composite = pred * fg + (1.0 - pred) * bg
    loss_comp = _charbonnier_mean(composite - image, mask, eps).mean()
    loss = alpha_weight * loss_alpha + (1.0 - alpha_weight) * loss_comp
    return loss, {"alpha": loss_alpha.detach(), "composition": loss_comp.detach()}
