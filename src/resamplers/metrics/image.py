"""Image-reconstruction metrics: PSNR and SSIM (Wang et al. 2004), in torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature

__all__ = ["psnr", "ssim"]


def _pair(pred: Tensor, target: Tensor) -> None:
    check_feature(pred, "pred")
    check_feature(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"argument `pred`: expected the shape of `target` {tuple(target.shape)}, got {tuple(pred.shape)}"
        )


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(range^2 / MSE)`` in dB (``inf`` when equal).

    Shape:
        ``N x C x H x W`` twice -> ``N``.

    Example:
        >>> x = torch.zeros(1, 1, 2, 2); y = x.clone(); y[0, 0, 0, 0] = 0.1
        >>> round(psnr(y, x).item(), 4)  # MSE = 0.01 / 4
        26.0206
    """
    _pair(pred, target)
    mse = (pred.double() - target.double()).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype) -> Tensor:
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image: mean SSIM map over channels and valid positions.

    The standard form: an 11 x 11 Gaussian window with sigma 1.5, ``K1 = 0.01``,
    ``K2 = 0.03``, population (not sample) covariances, and only windows fully inside the
    image (no padding), as scikit-image's ``structural_similarity(gaussian_weights=True)``.

    Shape:
        ``N x C x H x W`` twice (``H, W >= window``) -> ``N``.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
        True
    """
    _pair(pred, target)
    if min(pred.shape[-2:]) < window:
        raise ValueError(f"argument `pred`: SSIM needs height and width >= {window}, got {tuple(pred.shape[-2:])}")
    x, y = pred.double(), target.double()
    c = x.shape[1]
    g = _gaussian_window(window, sigma, x.dtype)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))
