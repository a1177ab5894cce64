"""PSNR and SSIM against independent references (closed forms and a SciPy implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from resamplers.metrics import psnr, ssim


def test_psnr_closed_form():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01
    y[1, 0, 0, 0] = 1.0  # MSE 1/48
    expected = torch.tensor([20.0, 10 * math.log10(48.0)], dtype=torch.float64)
    torch.testing.assert_close(psnr(y, x), expected)
    assert torch.isinf(psnr(x, x)).all()


def _ssim_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM with a Gaussian window (sigma 1.5, truncated to 11 taps), valid region only."""
    from scipy.ndimage import correlate1d

    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(img: np.ndarray) -> np.ndarray:
        return correlate1d(correlate1d(img, taps, axis=0, mode="constant"), taps, axis=1, mode="constant")[5:-5, 5:-5]

    c1, c2 = 0.01**2, 0.03**2
    values = []
    for ch in range(a.shape[0]):
        x, y = a[ch].astype(np.float64), b[ch].astype(np.float64)
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        values.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_an_independent_scipy_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 24, 19, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    ours = ssim(b, a)
    for i in range(2):
        assert ours[i].item() == pytest.approx(_ssim_scipy(b[i].numpy(), a[i].numpy()), abs=1e-10)


def test_ssim_limits_and_errors():
    x = torch.rand(1, 1, 16, 16)
    assert ssim(x, x).item() == pytest.approx(1.0)
    assert ssim(1 - x, x).item() < 0
    with pytest.raises(ValueError, match="`pred`.*11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="`pred`.*shape"):
        psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
