"""The pair API, checked on every registered pair (the round trip is in the shared matrix)."""
from __future__ import annotations

import pytest
import torch

import resamplers
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
