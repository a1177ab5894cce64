"""The pair API, checked on every registered pair (the round trip is in the shared matrix)."""

from __future__ import annotations

import pytest
import torch

import resamplers
from resamplers.base import Downsampler, Upsampler
from resamplers.guided import Guide, ResamplerPair
from resamplers.registry import PAIRS

PAIR_NAMES = PAIRS.names()


def _build(name: str, **overrides) -> ResamplerPair:
    torch.manual_seed(0)
    entry = PAIRS.entry(name)
    return PAIRS.create(name, **entry.example_kwargs(**overrides)).eval()


@pytest.mark.parametrize("name", PAIR_NAMES)
class TestPairAPI:
    def test_down_returns_low_resolution_map_and_guide(self, name):
        pair = _build(name)
        s = pair.scale_factor
        x = torch.randn(2, pair.channels, 4 * s, 2 * s)
        y, guide = pair.down(x)
        assert isinstance(guide, Guide)
        assert tuple(y.shape[-2:]) == (4, 2) == tuple(guide.low_size)
        assert tuple(guide.size) == (4 * s, 2 * s)
        assert guide.skip.shape[0] == 2 and tuple(guide.skip.shape[-2:]) == (4 * s, 2 * s)
        assert pair.skip(guide) is guide.skip

    def test_guide_of_wrong_size_is_rejected_with_expected_sizes(self, name):
        pair = _build(name)
        s = pair.scale_factor
        _, guide = pair.down(torch.randn(1, pair.channels, 4 * s, 4 * s))
        d = torch.randn(1, pair.up_channels, 3, 4)
        with pytest.raises(ValueError, match="`d`.*4 x 4"):
            pair.up(d, guide)

    def test_up_accepts_decoder_channels_different_from_encoder(self, name):
        channels = PAIRS.entry(name).example_kwargs().get("channels", 8)
        if _build(name).up_channels_tied:
            # A per-channel guide cannot serve another channel count: both places say so.
            with pytest.raises(ValueError, match="`up_channels`.*per encoder channel"):
                _build(name, up_channels=2 * channels)
            pair = _build(name)
            _, guide = pair.down(torch.randn(1, channels, 2 * pair.scale_factor, 3 * pair.scale_factor))
            with pytest.raises(ValueError, match=f"`d`.*{channels} channels"):
                pair.up(torch.randn(1, 2 * channels, 2, 3), guide)
            return
        if getattr(_build(name).upsampler, "fusion", None) == "add":
            # FreqFusion adds the encoder feature to the upsampled one: equal counts only.
            with pytest.raises(ValueError, match="`guide_channels`.*fusion='none'"):
                _build(name, up_channels=2 * channels)
            return
        pair = _build(name, up_channels=2 * channels)
        s = pair.scale_factor
        x = torch.randn(1, pair.channels, 2 * s, 3 * s)
        _, guide = pair.down(x)
        d = torch.randn(1, pair.up_channels, 2, 3)
        assert pair.up(d, guide).shape == (1, pair.up_channels, 2 * s, 3 * s)

    def test_up_rejects_a_non_guide(self, name):
        pair = _build(name)
        with pytest.raises(TypeError, match="`guide`"):
            pair.up(torch.randn(1, pair.up_channels, 2, 2), {"size": (4, 4)})


def test_unguided_pair_with_chosen_downsampler():
    pair = resamplers.create_pair("carafe", channels=8, down="avg")
    x = torch.randn(1, 8, 6, 4)
    y, _ = pair.down(x)
    torch.testing.assert_close(y, torch.nn.functional.avg_pool2d(x, 2))


def test_every_upsampler_is_a_pair():
    assert set(resamplers.list_upsamplers()) <= set(resamplers.list_pairs())


def test_guided_downsamplers_alone_have_no_up_step():
    for name in ("indexnet", "a2u", "max_index"):
        down = resamplers.create_downsampler(name, **resamplers.registry.DOWNSAMPLERS.entry(name).example)
        assert not isinstance(down, ResamplerPair)
        assert "up_channels" not in resamplers.registry.DOWNSAMPLERS.entry(name).accepted_keywords()
    a2u = resamplers.create_downsampler("a2u", channels=32)
    assert not any(key.startswith("bconv_UP") for key in a2u.state_dict())
    assert sum(p.numel() for p in a2u.parameters()) < sum(
        p.numel() for p in resamplers.create_pair("a2u", channels=32).parameters()
    )


def test_a2u_downsampler_equals_the_pairs_down_step_and_loads_its_weights():
    pair = resamplers.create_pair("a2u", channels=32).eval()
    down = resamplers.create_downsampler("a2u", channels=32).eval()
    down.load_state_dict(pair.state_dict())  # the up step's bconv_UP keys are skipped
    x = torch.randn(2, 32, 8, 6)
    torch.testing.assert_close(down(x), pair.down(x)[0], rtol=0, atol=0)


def test_pair_is_a_composition_of_a_down_and_an_up_step():
    for name in resamplers.list_pairs():
        pair = PAIRS.create(name, **PAIRS.entry(name).example_kwargs())
        assert isinstance(pair.downsampler, Downsampler) and isinstance(pair.upsampler, Upsampler), name


def test_a_guide_from_another_pair_is_named_in_the_error():
    x = torch.randn(1, 32, 8, 8)
    a2u, indexnet = resamplers.create_pair("a2u", channels=32), resamplers.create_pair("indexnet_hin", channels=32)
    y, indexnet_guide = indexnet.down(x)
    with pytest.raises(ValueError, match="`guide`.*A2U's up step.*'up_kernels'.*IndexedPooling"):
        a2u.up(y, indexnet_guide)
    y, a2u_guide = a2u.down(x)
    with pytest.raises(ValueError, match="`guide`.*decoder_index.*A2UDownsample"):
        indexnet.up(y, a2u_guide)


def test_feature_guided_upsamplers_are_creatable_alone_with_the_encoder_feature():
    for name in ("fade", "sapa"):
        up = resamplers.create_upsampler(name, channels=16, guide_channels=32)
        d, encoder = torch.randn(2, 16, 3, 5), torch.randn(2, 32, 6, 10)
        assert up(d, encoder).shape == (2, 16, 6, 10)
        with pytest.raises(ValueError, match="`encoder`.*6 x 10"):
            up(d, torch.randn(2, 32, 6, 9))


def test_composed_pairs_take_any_downsampler_and_the_upsamplers_keywords():
    pair = resamplers.create_pair(
        "fade", channels=8, up_kernel=3, down="indexnet", down_kwargs={"index_mode": "holistic"}
    )
    assert pair.upsampler.up_kernel == 3 and type(pair.downsampler).__name__ == "IndexedPooling"
    assert pair(torch.randn(1, 8, 6, 4)).shape == (1, 8, 6, 4)
    with pytest.raises(TypeError, match="'up_kernal'.*did you mean 'up_kernel'"):
        resamplers.create_pair("fade", channels=8, up_kernal=3)


def test_create_pair_takes_channels_as_a_keyword():
    with pytest.raises(TypeError):
        resamplers.create_pair("bilinear", 8)  # type: ignore[misc]
