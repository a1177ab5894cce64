"""Index-guided pooling and upsampling (functional) and the max-pooling / unpooling pair."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import index_normalization_loop, indexed_pooling_loop, indexed_upsampling_loop
from resamplers import create_pair
from resamplers.functional import indexed_pooling, indexed_upsampling, max_pool_index, normalize_index


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class TestIndexNormalization:
    def test_matches_cell_by_cell_formula(self):
        logits = _randn(2, 3, 4, 3, 2) * 3
        en, de = normalize_index(logits)
        en_ref, de_ref = index_normalization_loop(logits)
        assert_close(en, en_ref)
        assert_close(de, de_ref)

    def test_softmax_of_sigmoid_bounds_and_cell_sums(self):
        en, de = normalize_index(_randn(1, 2, 4, 5, 5) * 100)  # saturated logits
        cells = F.pixel_unshuffle(en, 2).reshape(1, 2, 4, 5, 5)
        assert_close(cells.sum(2), torch.ones(1, 2, 5, 5, dtype=torch.float64))
        low, high = 1 / (1 + 3 * math.e), math.e / (math.e + 3)  # never hard max pooling
        assert en.min() >= low - 1e-12 and en.max() <= high + 1e-12
        assert en.max() > high - 1e-6 and en.min() < low + 1e-6
        assert de.min() >= 0 and de.max() <= 1

    def test_slot_order_is_row_major_within_the_cell(self):
        logits = torch.full((1, 1, 4, 1, 1), -50.0)
        logits[0, 0, 2] = 50.0  # slot 2 -> sub-pixel (1, 0)
        _, de = normalize_index(logits)
        assert de[0, 0].round().tolist() == [[0.0, 0.0], [1.0, 0.0]]

    def test_rejects_non_square_slots(self):
        with pytest.raises(ValueError, match="`logits`.*square"):
            normalize_index(torch.zeros(1, 1, 3, 2, 2))


class TestIndexedPoolingAndUpsampling:
    @pytest.mark.parametrize("groups, scale", [(1, 2), (4, 2), (2, 3)])
    def test_pooling_matches_loop(self, groups, scale):
        x = _randn(2, 4, 3 * scale, 2 * scale)
        index = _randn(2, groups, 3 * scale, 2 * scale, seed=1).abs()
        assert_close(indexed_pooling(x, index, scale), indexed_pooling_loop(x, index, scale))

    @pytest.mark.parametrize("groups, scale", [(1, 2), (4, 2), (2, 3)])
    def test_upsampling_matches_loop(self, groups, scale):
        d = _randn(2, 4, 3, 2)
        index = _randn(2, groups, 3 * scale, 2 * scale, seed=1)
        assert_close(indexed_upsampling(d, index, scale), indexed_upsampling_loop(d, index, scale))

    def test_constant_indices_give_average_pooling_and_nearest_upsampling(self):
        x = _randn(1, 3, 6, 4)
        assert_close(indexed_pooling(x, torch.full((1, 1, 6, 4), 0.25, dtype=torch.float64)), F.avg_pool2d(x, 2))
        assert_close(4 * F.avg_pool2d(x, 2), indexed_pooling(x, torch.ones(1, 1, 6, 4, dtype=torch.float64)))
        d = _randn(1, 3, 3, 2)
        nearest = F.interpolate(d, scale_factor=2.0, mode="nearest")
        assert torch.equal(indexed_upsampling(d, torch.ones(1, 1, 6, 4, dtype=torch.float64)), nearest)

    def test_official_formulation(self):
        """``4 * avg_pool2d(I * x, 2)`` and ``I * interpolate(d, nearest)``, as in the official code."""
        x, index = _randn(2, 5, 8, 6), _randn(2, 5, 8, 6, seed=2).sigmoid()
        assert_close(indexed_pooling(x, index), 4 * F.avg_pool2d(index * x, 2))
        d = _randn(2, 5, 4, 3, seed=3)
        assert_close(indexed_upsampling(d, index), index * F.interpolate(d, size=(8, 6), mode="nearest"))

    def test_gradients(self):
        x = _randn(1, 2, 4, 6).requires_grad_()
        index = _randn(1, 2, 4, 6, seed=1).requires_grad_()
        d = _randn(1, 2, 2, 3, seed=2).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, i: indexed_pooling(a, i), (x, index))
        assert torch.autograd.gradcheck(lambda a, i: indexed_upsampling(a, i), (d, index))

    def test_errors_name_the_argument_and_expected_size(self):
        x = torch.randn(1, 4, 6, 4)
        with pytest.raises(ValueError, match="`index`.*6 x 4"):
            indexed_pooling(x, torch.rand(1, 1, 4, 4))
        with pytest.raises(ValueError, match="`index`.*divide"):
            indexed_pooling(x, torch.rand(1, 3, 6, 4))
        with pytest.raises(ValueError, match="`x`.*divisible by 2"):
            indexed_pooling(torch.randn(1, 4, 5, 4), torch.rand(1, 1, 5, 4))
        with pytest.raises(ValueError, match="`index`.*8 x 6"):
            indexed_upsampling(torch.randn(1, 4, 4, 3), torch.rand(1, 1, 8, 4))


class TestMaxPoolIndex:
    @pytest.mark.parametrize("scale", [2, 3])
    def test_matches_torch_max_pool_and_unpool_with_ties(self, scale):
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 3, (2, 3, 2 * scale, 3 * scale), generator=g).float()  # many ties
        pooled, index = max_pool_index(x, scale)
        expected, positions = F.max_pool2d(x, scale, return_indices=True)
        assert torch.equal(pooled, expected)
        d = torch.randn(expected.shape, generator=g)
        unpooled = F.max_unpool2d(d, positions, scale, output_size=x.shape[-2:])
        assert torch.equal(indexed_upsampling(d, index, scale), unpooled)
        assert torch.equal(index.reshape(2, 3, -1).sum(-1), torch.full((2, 3), 6.0))  # one per cell

    def test_golden_values(self):
        x = torch.tensor([[[[1.0, 5.0, 0.0, 0.0], [3.0, 2.0, 0.0, -1.0]]]])
        pooled, index = max_pool_index(x)
        assert pooled.tolist() == [[[[5.0, 0.0]]]]
        assert index.tolist() == [[[[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]]  # tie: first in row-major order


class TestMaxUnpoolPair:
    def test_round_trip_is_unpooling(self):
        pair = create_pair("maxunpool", channels=3)
        x = torch.randn(2, 3, 6, 8)
        y, guide = pair.down(x)
        _, positions = F.max_pool2d(x, 2, return_indices=True)
        d = torch.randn_like(y)
        assert torch.equal(pair.up(d, guide), F.max_unpool2d(d, positions, 2, output_size=(6, 8)))
        assert torch.equal(guide.skip, x)

    def test_gradients_flow_to_maxima_and_to_d_only(self):
        pair = create_pair("maxunpool", channels=2, scale_factor=3)
        x = torch.randn(1, 2, 6, 9, requires_grad=True)
        y, guide = pair.down(x)
        y.sum().backward()
        _, index = max_pool_index(x.detach(), 3)
        assert torch.equal(x.grad, index)
        d = torch.randn(1, 2, 2, 3, requires_grad=True)
        pair.up(d, guide).sum().backward()
        assert torch.equal(d.grad, torch.ones_like(d))

    def test_decoder_must_have_encoder_channels(self):
        with pytest.raises(ValueError, match="`up_channels`"):
            create_pair("maxunpool", channels=3, up_channels=6)
