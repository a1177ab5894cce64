"""IndexNet pairs: official layout and parameter counts, the spec's normalisation, limits, sharing."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import index_block_reference, index_normalization_loop
from resamplers import create_downsampler, create_pair
from resamplers.guided import IndexNetPair, SharedIndexFilters, indexnet_pairs

MODES = ["holistic", "o2o", "m2o"]
VARIANTS = list(itertools.product(MODES, (False, True), (False, True)))
VARIANT_IDS = [f"{m}-{'nl' if n else 'lin'}-{'ctx' if c else 'noctx'}" for m, n, c in VARIANTS]


def official_parameter_count(mode: str, c: int, nonlinear: bool, context: bool) -> int:
    """The official blocks' parameter counts (reference notes, section 1.2)."""
    k2 = 16 if context else 4
    return {
        ("holistic", False): 4 * c * k2,
        ("holistic", True): 2 * c * c * k2 + 12 * c,
        ("o2o", False): 4 * c * k2,
        ("o2o", True): 4 * (c * k2 + 3 * c),
        ("m2o", False): 4 * c * c * k2,
        ("m2o", True): 4 * (c * c * k2 + c * c + 2 * c),
    }[(mode, nonlinear)]


def official_state_dict(mode: str, c: int, nonlinear: bool, context: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the official block's keys and shapes (written from the notes)."""
    g = torch.Generator().manual_seed(seed)
    k = 4 if context else 2
    depthwise_in = 1 if mode == "o2o" else c

    def bn(prefix: str, n: int) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.weight": torch.rand(n, generator=g) + 0.5,
            f"{prefix}.bias": torch.randn(n, generator=g) * 0.3,
            f"{prefix}.running_mean": torch.randn(n, generator=g) * 0.3,
            f"{prefix}.running_var": torch.rand(n, generator=g) + 0.5,
            f"{prefix}.num_batches_tracked": torch.tensor(7),
        }

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.3

    if mode == "holistic":
        if not nonlinear:
            return {"indexnet.weight": w(4, c, k, k)}
        return {
            "indexnet.0.weight": w(2 * c, c, k, k),
            **bn("indexnet.1", 2 * c),
            "indexnet.3.weight": w(4, 2 * c, 1, 1),
        }
    state: dict[str, torch.Tensor] = {}
    for j in range(1, 5):
        state[f"indexnet{j}.0.weight"] = w(c, depthwise_in, k, k)
        if nonlinear:
            state.update(bn(f"indexnet{j}.1", c))
            state[f"indexnet{j}.3.weight"] = w(c, depthwise_in, 1, 1)
    return state


@pytest.mark.parametrize("mode, nonlinear, context", VARIANTS, ids=VARIANT_IDS)
class TestOfficialBlocks:
    def test_parameter_count_and_keys(self, mode, nonlinear, context):
        for c in (24, 32):
            pair = create_pair("indexnet", channels=c, index_mode=mode, nonlinear=nonlinear, context=context)
            assert sum(p.numel() for p in pair.parameters()) == official_parameter_count(mode, c, nonlinear, context)
            state = official_state_dict(mode, c, nonlinear, context)
            assert set(pair.state_dict()) == set(state)
            assert {k: v.shape for k, v in pair.state_dict().items()} == {k: v.shape for k, v in state.items()}

    def test_official_weights_give_the_specified_operator(self, mode, nonlinear, context):
        c = 6
        state = official_state_dict(mode, c, nonlinear, context, seed=1)
        pair = create_pair("indexnet", channels=c, index_mode=mode, nonlinear=nonlinear, context=context).double()
        pair.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
        pair.eval()
        x = torch.randn(2, c, 8, 6, dtype=torch.float64)
        with torch.no_grad():
            logits = index_block_reference(x, {k: v.double() for k, v in state.items()}, mode, nonlinear, context)
            en, de = index_normalization_loop(logits)
            y, guide = pair.down(x)
            d = torch.randn(2, c, 4, 3, dtype=torch.float64)
            z = pair.up(d, guide)
        assert_close(y, 4 * F.avg_pool2d(en * x, 2))
        assert_close(guide.skip, en * x)
        assert_close(z, de * F.interpolate(d, size=(8, 6), mode="nearest"))
        assert_close(guide.tensors["encoder_index"], en.expand_as(guide.tensors["encoder_index"]))

    def test_zero_weights_give_average_pooling_and_half_nearest(self, mode, nonlinear, context):
        pair = create_pair("indexnet", channels=4, index_mode=mode, nonlinear=nonlinear, context=context).eval()
        for p in pair.parameters():
            torch.nn.init.zeros_(p)
        x = torch.randn(1, 4, 6, 8)
        y, guide = pair.down(x)
        assert_close(y, F.avg_pool2d(x, 2))
        assert_close(guide.skip, x / 4)
        d = torch.randn(1, 4, 3, 4)
        assert_close(pair.up(d, guide), 0.5 * F.interpolate(d, scale_factor=2.0))


def test_initialisation_is_the_official_one():
    torch.manual_seed(0)
    pair = create_pair("indexnet", channels=64, index_mode="m2o")
    conv = pair.indexnet1[0]
    assert abs(conv.weight.std().item() - (2.0 / (16 * 64)) ** 0.5) < 0.003
    assert torch.equal(pair.indexnet1[1].weight, torch.ones(64)) and torch.equal(
        pair.indexnet1[1].bias, torch.zeros(64)
    )


def test_holistic_index_accepts_any_decoder_width_depthwise_does_not():
    hin = create_pair("indexnet_hin", channels=8)
    _, guide = hin.down(torch.randn(2, 8, 6, 4))
    assert hin.up(torch.randn(2, 3, 3, 2), guide).shape == (2, 3, 6, 4)
    m2o = create_pair("indexnet_m2o", channels=8)
    _, guide = m2o.down(torch.randn(2, 8, 6, 4))
    with pytest.raises(ValueError, match="`d`.*8 channels"):
        m2o.up(torch.randn(2, 3, 3, 2), guide)
    with pytest.raises(ValueError, match="`up_channels`"):
        create_pair("indexnet_o2o", channels=8, up_channels=16)


def test_guide_of_another_size_is_rejected():
    pair = create_pair("indexnet", channels=4)
    _, guide = pair.down(torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match="`d`.*expected spatial size 4 x 4.*8 x 8"):
        pair.up(torch.randn(1, 4, 5, 4), guide)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`index_mode`"):
        create_pair("indexnet", channels=4, index_mode="o2m")
    with pytest.raises(ValueError, match="`sharing`.*o2o"):
        create_pair("indexnet", channels=4, index_mode="m2o", sharing="stage")
    with pytest.raises(ValueError, match="`scale_factor`"):
        create_pair("indexnet", channels=4, scale_factor=4)
    with pytest.raises(ValueError, match="`shared_index`"):
        create_pair("indexnet_o2o", channels=4, sharing="stage", shared_index=SharedIndexFilters())
    with pytest.raises(ValueError, match="`shared_index`.*nonlinear"):
        create_pair("indexnet_o2o", channels=4, sharing="model", shared_index=SharedIndexFilters(nonlinear=False))
    with pytest.raises(ValueError, match="`x`.*divisible by 2"):
        create_pair("indexnet", channels=4).down(torch.randn(1, 4, 5, 4))


class TestO2OSharing:
    @pytest.mark.parametrize("nonlinear, context", list(itertools.product((False, True), (False, True))))
    def test_shared_stagewise_parameter_count(self, nonlinear, context):
        k2 = 16 if context else 4
        expected = 4 * (k2 + 3) if nonlinear else 4 * k2
        for c in (8, 64):
            pair = create_pair("indexnet_o2o", channels=c, sharing="stage", nonlinear=nonlinear, context=context)
            assert sum(p.numel() for p in pair.parameters()) == expected

    def test_shared_filters_apply_the_same_function_to_every_channel(self):
        pair = create_pair("indexnet_o2o", channels=5, sharing="stage").eval()
        x = torch.randn(2, 5, 8, 6)
        logits = pair.index_logits(x)
        for c in range(5):  # each channel alone, as a one-channel input
            assert_close(logits[:, c : c + 1], pair.shared_index(x[:, c : c + 1]))
        permutation = torch.tensor([3, 0, 4, 1, 2])
        assert_close(pair.index_logits(x[:, permutation]), logits[:, permutation])

    def test_unshared_stagewise_is_the_official_o2o_block(self):
        pair = create_pair("indexnet_o2o", channels=5)
        assert pair.indexnet1[0].groups == 5 and pair.indexnet1[3].groups == 5
        assert not hasattr(pair, "shared_index")

    def test_modelwise_sharing_shares_parameters_and_collects_gradients_from_every_stage(self):
        pairs = indexnet_pairs([4, 8, 6], index_mode="o2o", sharing="model")
        shared = pairs[0].shared_index
        assert all(p.shared_index is shared for p in pairs)
        ids = {id(p) for pair in pairs for p in pair.parameters()}
        assert ids == {id(p) for p in shared.parameters()}
        assert sum(p.numel() for p in pairs.parameters()) == 4 * (16 + 3)  # counted once for the model
        for stage, pair in enumerate(pairs):
            pairs.zero_grad()
            x = torch.randn(2, pair.channels, 8, 8)
            y, guide = pair.down(x)
            (pair.up(y, guide).square().sum() + guide.skip.sum()).backward()
            for name, p in shared.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, (stage, name)

    def test_modelwise_pair_alone_and_family_of_independent_pairs(self):
        alone = create_pair("indexnet_o2o", channels=4, sharing="model")
        assert isinstance(alone.shared_index, SharedIndexFilters)
        independent = indexnet_pairs([4, 8], index_mode="m2o")
        assert {id(p) for p in independent[0].parameters()}.isdisjoint(id(p) for p in independent[1].parameters())
        with pytest.raises(TypeError, match="channels"):
            indexnet_pairs([4], channels=4)


def test_downsampler_is_the_pair_down_step_and_loads_the_same_weights():
    torch.manual_seed(0)
    pair = create_pair("indexnet", channels=8, index_mode="o2o", nonlinear=False).eval()
    pool = create_downsampler("indexnet", channels=8, index_mode="o2o", nonlinear=False).eval()
    pool.load_state_dict(pair.state_dict())
    x = torch.randn(2, 8, 6, 4)
    assert torch.equal(pool(x), pair.down(x)[0])
    assert pool.output_size((6, 4)) == (3, 2)


def test_variants_fix_the_index_mode():
    assert create_pair("indexnet_hin", channels=4).index_mode == "holistic"
    assert create_pair("indexnet_o2o", channels=4).index_mode == "o2o"
    assert create_pair("indexnet_m2o", channels=4).index_mode == "m2o"
    with pytest.raises(TypeError, match="fixed"):
        create_pair("indexnet_m2o", channels=4, index_mode="o2o")


def test_training_mode_batch_norm_uses_batch_statistics():
    pair = IndexNetPair(channels=4, index_mode="holistic").train()
    x = torch.randn(3, 4, 6, 6)
    first = pair.down(x)[0]
    assert pair.indexnet[1].num_batches_tracked.item() == 1
    pair.eval()
    assert not torch.allclose(first, pair.down(x)[0])
