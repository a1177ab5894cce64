"""The IndexNet matting network built from registry names."""

from __future__ import annotations

import pytest
import torch

from resamplers.complexity import count_parameters
from resamplers.models import convert_official_state_dict, create_matting_model, matting_inputs
from resamplers.models.matting import PAIRED_LAYERS
from resamplers.registry import PAIRS

# Parameter totals of the official model (hlMobileNetV2UNetDecoderIndexLearning with ASPP,
# output stride 32, decoder kernel 5, nonlinear context index blocks; the max-unpooling
# "unet_style" baseline has no index parameters).
OFFICIAL_COUNTS = {
    "indexnet_m2o": 5_953_515,
    "indexnet_o2o": 3_776_971,
    "indexnet_hin": 4_791_243,
    "maxunpool": 3_753_259,
}


@pytest.mark.parametrize("pair, count", OFFICIAL_COUNTS.items())
def test_parameter_counts_equal_the_official_model(pair, count):
    assert count_parameters(create_matting_model(pair)) == count


def test_official_checkpoint_keys_map_onto_the_model():
    model = create_matting_model("indexnet_m2o")
    ours = model.state_dict()
    # names of the released checkpoint (saved from nn.DataParallel) and their shapes
    official = {
        "module.layer0.0.weight": (32, 4, 3, 3),
        "module.layer7.0.conv.6.weight": (320, 960, 1, 1),
        "module.index0.indexnet1.0.weight": (32, 32, 4, 4),
        "module.index6.indexnet4.3.weight": (160, 160, 1, 1),
        "module.dconv_pp.aspp2.atrous_conv.3.weight": (256, 320, 1, 1),
        "module.dconv_pp.global_avg_pool.1.weight": (256, 320, 1, 1),
        "module.dconv_pp.bottleneck_conv.0.weight": (160, 1280, 1, 1),
        "module.decoder_layer6.dconv.0.weight": (96, 320, 5, 5),
        "module.decoder_layer0.dconv.1.running_var": (32,),
        "module.pred.0.0.weight": (1, 32, 5, 5),
        "module.pred.1.weight": (1, 1, 5, 5),
    }
    converted = convert_official_state_dict({k: torch.zeros(s) for k, s in official.items()})
    for key, value in converted.items():
        assert key in ours and ours[key].shape == value.shape, key
    # every key of ours has an official name: invert the map and convert back
    inverse = {"encoder.": "", "context.": "dconv_pp.", "head.": "pred."}
    renamed = {}
    for key, value in ours.items():
        name = key
        if key.startswith("pairs."):
            index, rest = key[len("pairs.") :].split(".", 1)
            name = f"index{PAIRED_LAYERS[int(index)]}.{rest}"
        elif key.startswith("decoder."):
            name = "decoder_layer" + key[len("decoder.") :]
        else:
            for ours_prefix, theirs in inverse.items():
                if key.startswith(ours_prefix):
                    name = theirs + key[len(ours_prefix) :]
        renamed["module." + name] = value
    model.load_state_dict(convert_official_state_dict(renamed), strict=True)
    with pytest.raises(ValueError, match="not a key of the official"):
        convert_official_state_dict({"module.classifier.weight": torch.zeros(1)})


def test_skip_connections_carry_what_the_pair_says():
    torch.manual_seed(0)
    model = create_matting_model("indexnet_m2o", width=0.25).eval()
    x = torch.randn(1, 4, 64, 64)
    seen = {}
    model.decoder["0"].register_forward_hook(lambda m, args, out: seen.setdefault("skip", args[1]))
    with torch.no_grad():
        model(x)
        stem = model.encoder.layer0(x)
        _, guide = model.pairs[0].down(stem)
    torch.testing.assert_close(seen["skip"], guide.skip)
    assert not torch.allclose(guide.skip, stem)  # the index-weighted feature, not the raw one


# Pairs whose channel constraints do not fit every stage of the width-0.25 network (stage
# channels 8, 4, 6, ...): DySample needs its 4 groups (and, for style pl, s^2 = 4) to
# divide the channels, SAPA-B's GroupNorm its 32 groups.  FeatUp's JBU pads reflectively by
# its radius (3), which needs 4 pixels a side at the output; the deepest stage of the
# 64 x 32 input is only 2 wide, so radius 1 there.
SMALL_NETWORK_OVERRIDES = {
    **{name: dict(width=0.5) for name in ("dysample", "dysample_plus", "dysample_s", "dysample_s_plus")},
    "sapa_b": dict(width=0.5, norm_groups=4),
    **{name: dict(radius=1) for name in ("featup_jbu", "featup_jbu_stage")},
    # Four channel groups: width 0.25 leaves a 6-channel stage.
    **{name: dict(width=0.5) for name in ("freqfusion_resample", "sapa_deform")},
}


@pytest.mark.parametrize("pair", sorted(PAIRS.names()))
def test_every_pair_builds_a_working_network(pair):
    torch.manual_seed(0)
    model = create_matting_model(pair, **{"width": 0.25, **SMALL_NETWORK_OVERRIDES.get(pair, {})}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 4, 64, 32))
    assert out.shape == (1, 1, 64, 32) and torch.isfinite(out).all()


def test_bad_inputs_are_clear_errors():
    model = create_matting_model("bilinear", width=0.25)
    with pytest.raises(ValueError, match="`x`.*divisible by 32"):
        model(torch.randn(2, 4, 48, 64))
    with pytest.raises(ValueError, match="`x`.*4 channels"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="`width`"):
        create_matting_model("bilinear", width=0)
    with pytest.raises(ValueError, match="did you mean"):
        create_matting_model("bilinearr")


def test_inputs_are_normalised_rgb_and_trimap():
    image = torch.full((1, 3, 2, 2), 0.5)
    trimap = torch.tensor([[[0, 128], [255, 128]]], dtype=torch.uint8)
    x = matting_inputs(image, trimap)
    assert x.shape == (1, 4, 2, 2)
    torch.testing.assert_close(x[0, 3], torch.tensor([[0.0, 128 / 255], [1.0, 128 / 255]]))
    torch.testing.assert_close(x[0, 0, 0, 0], torch.tensor((0.5 - 0.485) / 0.229))


class TestHeadActivation:
    def test_official_head_is_relu6_and_the_others_share_its_weights(self):
        official = create_matting_model("bilinear", width=0.25)
        assert isinstance(official.head[0][2], torch.nn.ReLU6)
        for name in ("leaky_relu", "none"):
            other = create_matting_model("bilinear", width=0.25, head_activation=name)
            assert other.config.head_activation == name
            other.load_state_dict(official.state_dict())  # same keys and shapes
            assert count_parameters(other) == count_parameters(official)

    def test_config_round_trip_rebuilds_the_head(self):
        from resamplers.models.matting import IndexNetMatting, MattingConfig

        model = create_matting_model("bilinear", width=0.25, head_activation="leaky_relu")
        rebuilt = IndexNetMatting(MattingConfig.from_dict(model.config.to_dict()))
        assert isinstance(rebuilt.head[0][2], torch.nn.LeakyReLU)
        # configurations saved before the option existed rebuild the official head
        legacy = {k: v for k, v in model.config.to_dict().items() if k != "head_activation"}
        assert MattingConfig.from_dict(legacy).head_activation == "relu6"

    @pytest.mark.parametrize("name, learns", [("relu6", False), ("leaky_relu", True), ("none", True)])
    def test_a_head_below_zero_blocks_all_gradient_only_with_relu6(self, name, learns):
        """The failure the option exists for: once the one-channel bottleneck is negative
        everywhere, the official head passes no gradient to the rest of the network."""
        torch.manual_seed(0)
        model = create_matting_model("bilinear", width=0.25, head_activation=name).eval()
        with torch.no_grad():
            model.head[0][1].bias.fill_(-100.0)
        model(torch.randn(1, 4, 64, 64)).square().sum().backward()
        encoder_grad = sum(p.grad.abs().sum() for p in model.encoder.parameters() if p.grad is not None)
        assert (encoder_grad > 0) == learns

    def test_unknown_head_activation_is_a_clear_error(self):
        with pytest.raises(ValueError, match="`head_activation`"):
            create_matting_model("bilinear", width=0.25, head_activation="gelu")
