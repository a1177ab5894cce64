"""SAD / MSE / Grad / Conn against hand-derived values, an independent 2-D filter loop, and numbers
produced by the Deep Image Matting MATLAB evaluation scripts (run in GNU Octave)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("scipy")

from resamplers.metrics import (  # noqa: E402
    connectivity_error,
    gaussian_gradient_kernels,
    gradient_error,
    matting_metrics,
    mse_error,
    sad_error,
)


def unknown(shape):
    return np.full(shape, 128, np.uint8)


def golden_case():
    """A 15 x 17 soft disc, a shifted, modulated prediction and a trimap, all uint8, no RNG."""
    yy, xx = np.mgrid[:15, :17].astype(np.float64)
    gt = np.clip(0.5 - (np.hypot(yy - 7.0, xx - 8.0) - 4.5) / 2.0, 0.0, 1.0)
    pred = np.clip(0.5 - (np.hypot(yy - 7.5, xx - 7.0) - 4.0) / 3.0, 0.0, 1.0) * (0.9 + 0.1 * np.cos(xx + 2 * yy))
    gt8 = np.round(gt * 255).astype(np.uint8)
    pred8 = np.round(pred * 255).astype(np.uint8)
    trimap = np.full(gt8.shape, 128, np.uint8)
    trimap[gt8 == 0] = 0
    trimap[np.hypot(yy - 7.0, xx - 8.0) < 2.5] = 255
    trimap[np.hypot(yy - 7.0, xx - 8.0) > 7.5] = 0
    return pred8, gt8, trimap


def test_matches_the_matlab_scripts_on_a_golden_case():
    # compute_{sad,mse}_loss, compute_gradient_loss / 1e3 and compute_connectivity_error(.., 0.1) / 1e3
    # of the DIM evaluation code, run in GNU Octave 7.3 (image package 2.14) on these PNGs.
    # MATLAB sums in single precision, hence the 1e-6 tolerance.
    expected = {"sad": 0.0204941202, "mse": 0.1105214655, "grad": 0.03942242265, "conn": 0.02243921533}
    got = matting_metrics(*golden_case())
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key


def test_sad_and_mse_by_hand():
    alpha = np.array([[0.0, 0.5, 1.0, 1.0]])
    pred = np.array([[0.25, 0.5, 0.0, 1.0]])
    trimap = np.array([[128, 128, 128, 255]], np.uint8)
    assert sad_error(pred, alpha, trimap) == pytest.approx(1.25 / 1000)
    assert mse_error(pred, alpha, trimap) == pytest.approx((0.0625 + 0 + 1) / 3)


def test_only_the_unknown_region_counts():
    alpha = np.zeros((6, 6))
    trimap = np.zeros((6, 6), np.uint8)
    trimap[:, 3:] = 255
    trimap[2:4, 2:4] = 128
    pred = np.ones((6, 6))  # wrong everywhere
    pred[2:4, 2:4] = alpha[2:4, 2:4]  # but right on the unknown pixels
    m = matting_metrics(pred, alpha, trimap)
    assert m["sad"] == 0.0 and m["mse"] == 0.0 and m["conn"] == 0.0
    # Grad filters the whole image, so errors next to the unknown region leak in, as in MATLAB.
    assert m["grad"] > 0.0


def test_empty_unknown_region_gives_zeros():
    alpha = np.eye(4)
    m = matting_metrics(1 - alpha, alpha, np.where(alpha > 0, 255, 0).astype(np.uint8))
    assert m == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}


def test_uint8_is_divided_by_255_and_tensors_are_accepted():
    pred8, gt8, trimap = golden_case()
    as_uint8 = matting_metrics(pred8, gt8, trimap)
    as_float = matting_metrics(pred8 / 255.0, gt8.astype(np.float32) / 255.0, trimap)
    as_tensor = matting_metrics(torch.from_numpy(pred8 / 255.0)[None], torch.from_numpy(gt8), torch.from_numpy(trimap))
    for key in as_uint8:
        assert as_float[key] == pytest.approx(as_uint8[key], rel=1e-6, abs=1e-12)
        assert as_tensor[key] == pytest.approx(as_uint8[key], rel=1e-12, abs=1e-15)


def test_perfect_prediction_scores_zero():
    _, gt8, trimap = golden_case()
    assert matting_metrics(gt8, gt8, trimap) == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}


def test_gaussgradient_kernel_size_and_norm():
    g, d = gaussian_gradient_kernels(1.4)
    half = math.ceil(1.4 * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * 1.4 * 0.01)))
    assert half == 4 and g.shape == d.shape == (9,)
    assert np.allclose(d, -d[::-1]) and np.allclose(g, g[::-1])
    assert np.sum(np.outer(g, d) ** 2) == pytest.approx(1.0)


def _matlab_gradient_magnitude(image: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """gaussgradient.m written out: the 2-D kernel by a double loop, imfilter(.., 'replicate', 'conv')."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 0.01)))
    size = 2 * half + 1

    def gauss(x):
        return math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))

    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = gauss(i - half) * (-(j - half) * gauss(j - half) / sigma**2)
    hx /= math.sqrt((hx**2).sum())
    hy = hx.T
    h, w = image.shape
    padded = np.pad(image, half, mode="edge")
    gx = np.zeros_like(image)
    gy = np.zeros_like(image)
    for y in range(h):
        for x in range(w):
            for i in range(size):
                for j in range(size):
                    # convolution: the kernel is flipped
                    value = padded[y + half - (i - half), x + half - (j - half)]
                    gx[y, x] += hx[i, j] * value
                    gy[y, x] += hy[i, j] * value
    return np.sqrt(gx**2 + gy**2)


def test_gradient_error_against_a_direct_2d_loop():
    pred8, gt8, trimap = golden_case()
    pred8, gt8, trimap = pred8[2:11, 3:12], gt8[2:11, 3:12], trimap[2:11, 3:12]
    p, a = pred8 / 255.0, gt8 / 255.0
    p = (p - p.min()) / (p.max() - p.min())  # mat2gray
    a = (a - a.min()) / (a.max() - a.min())
    expected = ((_matlab_gradient_magnitude(p) - _matlab_gradient_magnitude(a)) ** 2)[trimap == 128].sum() / 1000
    assert gradient_error(pred8, gt8, trimap) == pytest.approx(expected, rel=1e-10)


def test_gradient_error_stretches_each_matte_like_mat2gray():
    _, gt8, trimap = golden_case()
    alpha = gt8 / 255.0
    squashed = 0.25 + 0.5 * alpha  # range [0.25, 0.75]: mat2gray maps it back onto alpha
    assert gradient_error(squashed, alpha, trimap) == pytest.approx(0.0, abs=1e-12)
    assert sad_error(squashed, alpha, trimap) > 0  # SAD is not stretched
    assert gradient_error(np.full_like(alpha, 0.3), alpha, trimap) == pytest.approx(
        (_matlab_gradient_magnitude(alpha) ** 2)[trimap == 128].sum() / 1000, rel=1e-10
    )  # a constant matte has zero gradient


def test_connectivity_by_hand():
    # Intersection {0, 1} | {3, 4} at every threshold: a tie, the first (left) component wins.  Pixels
    # 2..4 get level 0, pixels 0..1 level 1; only pixel 2 differs: phi(pred) = 1, phi(alpha) = 0.
    pred = np.array([[1.0, 1.0, 0.0, 1.0, 1.0]])
    assert connectivity_error(pred, np.ones((1, 5)), unknown((1, 5))) == pytest.approx(1 / 1000)


def test_connectivity_ties_go_to_the_first_component_in_column_major_order():
    # Two singletons tie at thresholds 0.1..0.7; MATLAB's bwconncomp numbers (2, 0) before (0, 2).
    # Levels: (2, 0) -> 1, everything else -> 0.  |phi| differences: 1 at the 7 zero pixels of pred,
    # 1 - 200/255 at (0, 2), 0 at (2, 0).  (Row-major order would pick (0, 2) and give 7.3.)
    pred = np.array([[0, 0, 200], [0, 0, 0], [255, 0, 0]], np.uint8)
    alpha = np.full((3, 3), 255, np.uint8)
    assert connectivity_error(pred, alpha, unknown((3, 3))) == pytest.approx((7 + 55 / 255) / 1000)


def test_connectivity_threshold_is_inclusive_at_exact_multiples_of_the_step():
    # 153/255 == 0.6 exactly: pixel 1 stays in the component up to t = 0.6 and gets level 0.6, so
    # its differences are d(pred) = 0 -> phi 1 and d(alpha) = 0.4 -> phi 0.6.  Pixel 2 (level 0):
    # phi(pred) = 1, phi(alpha) = 0.  Total 1.4.  (np.arange thresholds give 0.6000000000000001
    # and 1.5.)
    pred = np.array([[255, 153, 0]], np.uint8)
    alpha = np.full((1, 3), 255, np.uint8)
    assert connectivity_error(pred, alpha, unknown((1, 3))) == pytest.approx(1.4 / 1000, rel=1e-12)


@pytest.mark.parametrize(
    "pred, alpha, trimap, message",
    [
        (np.zeros((4, 5)), np.zeros((4, 4)), unknown((4, 4)), "`pred`: expected shape (4, 4)"),
        (np.zeros((4, 4)), np.zeros((4, 4)), unknown((4, 5)), "`trimap`: expected shape (4, 4)"),
        (np.zeros((4, 4)), np.zeros((4, 4)), np.full((4, 4), 127, np.uint8), "got [127]"),
        (np.zeros((4, 4)), np.zeros((4, 4)), np.full((4, 4), 0.5), "`trimap`: expected an integer"),
        (np.full((4, 4), 1.5), np.zeros((4, 4)), unknown((4, 4)), "`pred`: expected float values in [0, 1]"),
        (np.full((4, 4), np.nan), np.zeros((4, 4)), unknown((4, 4)), "`pred`: expected finite"),
        (np.zeros((4, 4), np.int16), np.zeros((4, 4)), unknown((4, 4)), "`pred`: expected uint8"),
        (np.zeros((4, 4)), np.zeros((2, 4, 4)), unknown((4, 4)), "`alpha`: expected an H x W"),
    ],
)
def test_bad_input_is_a_clear_error(pred, alpha, trimap, message):
    with pytest.raises(ValueError) as info:
        matting_metrics(pred, alpha, trimap)
    assert message in str(info.value)


def test_connectivity_rejects_a_step_that_does_not_divide_one():
    with pytest.raises(ValueError, match="`step`"):
        connectivity_error(np.zeros((2, 2)), np.zeros((2, 2)), unknown((2, 2)), step=0.3)
