"""CARAFE: the functional reassembly against mmcv's formula, and the CARAFEPack module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import carafe_gather, reassemble_loop
from resamplers import create_upsampler
from resamplers.functional import carafe, native_available
from resamplers.upsampling import CARAFEPack

BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not native_available(), reason="no native build"))]


def _inputs(n, c, h, w, k, groups, scale, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    masks = torch.rand(n, groups * k * k, h * scale, w * scale, generator=g, dtype=dtype)
    return x, masks


class TestCarafeFunctional:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize(
        "k, groups, scale, size",
        [
            (5, 1, 2, (3, 4)),
            (3, 2, 3, (2, 5)),
            (1, 4, 2, (3, 3)),
            (5, 4, 1, (4, 3)),
            (7, 1, 2, (2, 2)),
            (3, 1, 4, (1, 1)),
        ],
    )
    def test_slow_loop(self, k, groups, scale, size, backend):
        x, masks = _inputs(2, 8, *size, k, groups, scale)
        assert_close(
            carafe(x, masks, k, groups, scale, backend=backend), reassemble_loop(x, masks, k, groups, up=scale)
        )

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_mmcv_golden_configuration(self, backend):
        """mmcv's stored case: feat 2x64x3x3, sigmoid masks 2x100x6x6, k=5, G=4, s=2, ones upstream.

        The expected output and both gradients come from an independent derivation (a
        gather over an explicit source-index table), in float64.
        """
        g = torch.Generator().manual_seed(2019)
        feat = torch.randn(2, 64, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
        mask = torch.randn(2, 100, 6, 6, generator=g, dtype=torch.float64).sigmoid().requires_grad_()
        ours = carafe(feat, mask, 5, 4, 2, backend=backend)
        ours_grads = torch.autograd.grad(ours.sum(), (feat, mask))
        expected = carafe_gather(feat, mask, 5, 4, 2)
        expected_grads = torch.autograd.grad(expected.sum(), (feat, mask))
        assert_close(ours, expected)
        for a, b in zip(ours_grads, expected_grads):
            assert_close(a, b)
        # mmcv's masks are un-normalised sigmoids whose 25 taps sum to ~11-16.
        sums = mask.detach().reshape(2, 4, 25, 6, 6).sum(2)
        assert 8 < sums.mean() < 17

    def test_classic_wrong_variants_differ(self):
        k, groups, scale = 5, 4, 2
        x, masks = _inputs(2, 64, 3, 3, k, groups, scale, seed=3)
        reference = carafe_gather(x, masks, k, groups, scale)
        n, c = x.shape[:2]
        # Interleaved groups: channel c uses group c % G instead of c // (C / G).
        perm = torch.arange(c).reshape(c // groups, groups).t().reshape(-1)
        interleaved = carafe_gather(x[:, perm], masks, k, groups, scale)[:, torch.argsort(perm)]
        # Transposed taps: mask channel g*k*k + dx*k + dy instead of dy*k + dx.
        transposed_masks = masks.reshape(n, groups, k, k, *masks.shape[-2:]).transpose(2, 3).reshape(masks.shape)
        transposed = carafe_gather(x, transposed_masks, k, groups, scale)
        ours = carafe(x, masks, k, groups, scale)
        assert_close(ours, reference)
        assert (interleaved - reference).abs().max() > 1.0
        assert (transposed - reference).abs().max() > 1.0

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("k, scale", [(5, 2), (3, 3), (7, 1)])
    def test_uniform_mask_is_zero_padded_box_filter_then_nearest(self, k, scale, backend):
        x, _ = _inputs(2, 6, 5, 4, k, 1, scale)
        masks = torch.full((2, k * k, 5 * scale, 4 * scale), 1.0 / k**2, dtype=torch.float64)
        box = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=True)
        expected = F.interpolate(box, scale_factor=scale, mode="nearest")
        assert_close(carafe(x, masks, k, 1, scale, backend=backend), expected)

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_one_hot_centre_is_nearest(self, backend):
        x, _ = _inputs(1, 4, 3, 5, 5, 2, 2)
        masks = torch.zeros(1, 2 * 25, 6, 10, dtype=torch.float64)
        masks[:, 12] = masks[:, 25 + 12] = 1.0
        assert_close(carafe(x, masks, 5, 2, 2, backend=backend), F.interpolate(x, scale_factor=2, mode="nearest"))

    def test_linear_in_mask(self):
        x, m1 = _inputs(1, 4, 3, 3, 3, 1, 2, seed=1)
        _, m2 = _inputs(1, 4, 3, 3, 3, 1, 2, seed=2)
        assert_close(carafe(x, 2 * m1 - m2, 3, 1, 2), 2 * carafe(x, m1, 3, 1, 2) - carafe(x, m2, 3, 1, 2))

    @pytest.mark.parametrize(
        "args, argument",
        [
            ((4, 1, 2), "kernel_size"),
            ((3, 0, 2), "group_size"),
            ((3, 1, 0), "scale_factor"),
            ((3, 3, 2), "masks"),
            ((5, 1, 2), "masks"),
        ],
    )
    def test_errors_name_the_argument(self, args, argument):
        x, masks = _inputs(1, 6, 3, 3, 3, 1, 2)
        with pytest.raises(ValueError, match=f"`{argument}`"):
            carafe(x, masks, *args)

    def test_wrong_mask_size(self):
        x, masks = _inputs(1, 6, 3, 3, 3, 1, 2)
        with pytest.raises(ValueError, match="`masks`.*6 x 6"):
            carafe(x, masks[..., :5], 3, 1, 2)

    def test_group_size_must_divide_channels(self):
        x, masks = _inputs(1, 6, 3, 3, 3, 4, 2)
        with pytest.raises(ValueError, match="`group_size`"):
            carafe(x, masks, 3, 4, 2)


class TestCARAFEPack:
    def test_parameter_count_matches_paper(self):
        # CARAFE paper / mmdet: 74K parameters at C=256 with the defaults.
        assert sum(p.numel() for p in create_upsampler("carafe", channels=256).parameters()) == 74_148

    def test_state_dict_keys_are_mmcv_keys(self):
        keys = set(CARAFEPack(16).state_dict())
        assert keys == {
            "channel_compressor.weight",
            "channel_compressor.bias",
            "content_encoder.weight",
            "content_encoder.bias",
        }

    def test_initial_kernels_are_nearly_uniform(self):
        torch.manual_seed(0)
        up = CARAFEPack(32, up_kernel=5, up_group=2)
        kernels = up.kernels(torch.randn(1, 32, 6, 6))
        # Encoder weights ~ N(0, 0.001^2): logits stay within a few hundredths of zero.
        assert (kernels * 25 - 1).abs().max() < 0.2
        assert_close(kernels.reshape(1, 2, 25, 12, 12).sum(2), torch.ones(1, 2, 12, 12))

    @pytest.mark.parametrize("scale, k, groups, k_enc, dilation", [(2, 5, 1, 3, 1), (3, 3, 2, 5, 2), (1, 5, 4, 3, 1)])
    def test_pipeline_from_state_dict(self, scale, k, groups, k_enc, dilation):
        """An mmcv-layout state dict loads, and the output follows mmcv's pipeline step by step."""
        g = torch.Generator().manual_seed(0)
        c, cm = 8, 6
        state = {
            "channel_compressor.weight": torch.randn(cm, c, 1, 1, generator=g, dtype=torch.float64),
            "channel_compressor.bias": torch.randn(cm, generator=g, dtype=torch.float64),
            "content_encoder.weight": torch.randn(
                scale**2 * k**2 * groups, cm, k_enc, k_enc, generator=g, dtype=torch.float64
            ),
            "content_encoder.bias": torch.randn(scale**2 * k**2 * groups, generator=g, dtype=torch.float64),
        }
        up = CARAFEPack(c, scale, k, groups, k_enc, dilation, cm).double()
        up.load_state_dict(state, strict=True)
        x = torch.randn(2, c, 3, 4, generator=g, dtype=torch.float64)
        compressed = F.conv2d(x, state["channel_compressor.weight"], state["channel_compressor.bias"])
        logits = F.conv2d(
            compressed,
            state["content_encoder.weight"],
            state["content_encoder.bias"],
            padding=(k_enc - 1) * dilation // 2,
            dilation=dilation,
        )
        # Encoder channel (g*k^2 + t)*s^2 + i*s + j at (h, w) -> mask channel g*k^2 + t at (s*h+i, s*w+j).
        n, _, h, w = logits.shape
        masks = logits.reshape(n, groups * k * k, scale, scale, h, w).permute(0, 1, 4, 2, 5, 3)
        masks = masks.reshape(n, groups, k * k, h * scale, w * scale).softmax(2).reshape(n, -1, h * scale, w * scale)
        assert_close(up(x), reassemble_loop(x, masks, k, groups, up=scale))

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_low_precision_softmax_in_input_dtype(self, dtype):
        up = CARAFEPack(8).to(dtype)
        x = torch.randn(1, 8, 4, 4, dtype=dtype)
        assert up.kernels(x).dtype == dtype
        assert up(x).dtype == dtype

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            (dict(up_kernel=4), "up_kernel"),
            (dict(up_group=3), "up_group"),
            (dict(encoder_kernel=2), "encoder_kernel"),
            (dict(scale_factor=0), "scale_factor"),
            (dict(compressed_channels=0), "compressed_channels"),
        ],
    )
    def test_constructor_errors(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            CARAFEPack(8, **kwargs)
