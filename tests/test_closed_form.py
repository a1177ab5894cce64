"""Closed-form matting wrapper: exact on a two-colour ramp, known regions copied, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pymatting")

from resamplers.metrics import closed_form_alpha, matting_metrics  # noqa: E402

FG = np.array([0.9, 0.7, 0.1])
BG = np.array([0.1, 0.2, 0.8])


def two_colour_ramp(h=10, w=16):
    """alpha is an affine function of the colour, so the closed-form solution recovers it exactly."""
    alpha = np.tile(np.clip(np.linspace(-0.3, 1.3, w), 0, 1), (h, 1))
    image = alpha[..., None] * FG + (1 - alpha[..., None]) * BG
    trimap = np.full((h, w), 128, np.uint8)
    trimap[:, :2] = 0
    trimap[:, -2:] = 255
    return image, alpha, trimap


def test_recovers_a_linear_two_colour_matte():
    image, alpha, trimap = two_colour_ramp()
    estimate = closed_form_alpha(image, trimap)
    assert estimate.shape == alpha.shape and estimate.dtype == np.float64
    assert np.abs(estimate - alpha).max() < 1e-3
    assert matting_metrics(estimate, alpha, trimap)["sad"] < 1e-4


def test_known_regions_are_copied_and_inputs_may_be_uint8_or_tensors():
    image, alpha, trimap = two_colour_ramp()
    trimap[0, 5] = 255  # a wrong hint: the result must still be 1 there
    image8 = np.round(image * 255).astype(np.uint8)
    from_uint8 = closed_form_alpha(image8, trimap)
    from_tensor = closed_form_alpha(torch.from_numpy(image8 / 255.0).permute(2, 0, 1), trimap)
    assert from_uint8[0, 5] == 1.0 and (from_uint8[trimap == 0] == 0).all()
    np.testing.assert_allclose(from_uint8, from_tensor, atol=1e-9)
    assert ((from_uint8 >= 0) & (from_uint8 <= 1)).all()


def test_no_unknown_pixels_needs_no_solve():
    image, _, trimap = two_colour_ramp()
    trimap = np.where(trimap == 255, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(closed_form_alpha(image, trimap), trimap / 255.0)


def test_one_kind_of_known_pixels_gives_a_constant_matte():
    image, _, trimap = two_colour_ramp()
    only_background = np.where(trimap == 255, 128, trimap).astype(np.uint8)
    assert (closed_form_alpha(image, only_background) == 0).all()
    only_foreground = np.where(trimap == 0, 128, trimap).astype(np.uint8)
    assert (closed_form_alpha(image, only_foreground)[:, 2:] == 1).all()


@pytest.mark.parametrize(
    "image, trimap, message",
    [
        (np.zeros((4, 4, 3)), np.full((4, 5), 128, np.uint8), "`trimap`: expected shape (4, 4)"),
        (np.zeros((4, 4, 3)), np.full((4, 4), 128, np.uint8), "needs some known pixels"),
        (np.zeros((4, 4)), np.full((4, 4), 128, np.uint8), "`image`: expected an H x W x 3"),
        (np.full((4, 4, 3), 2.0), np.full((4, 4), 128, np.uint8), "`image`: expected finite float values in [0, 1]"),
    ],
)
def test_bad_input(image, trimap, message):
    with pytest.raises(ValueError) as info:
        closed_form_alpha(image, trimap)
    assert message in str(info.value)
