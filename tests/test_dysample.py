"""DySample: the sampler against a loop, the module against its formulas, checkpoints, ONNX."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import dynamic_sample_loop
from resamplers import create_upsampler
from resamplers.functional import dynamic_sample, sub_pixel_positions
from resamplers.upsampling import DySample

VARIANTS = [("lp", False), ("lp", True), ("pl", False), ("pl", True)]


def _randomise(module: torch.nn.Module, std: float = 0.5, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)


class TestDynamicSample:
    @pytest.mark.parametrize(
        "scale, groups, size", [(2, 1, (3, 4)), (2, 2, (2, 5)), (3, 2, (3, 3)), (1, 1, (4, 2)), (4, 1, (1, 1))]
    )
    def test_slow_loop_with_far_offsets(self, scale, groups, size):
        g = torch.Generator().manual_seed(scale * 10 + groups)
        x = torch.randn(2, 4, *size, generator=g, dtype=torch.float64)
        # Offsets up to +-3 pixels reach past the border, which replicates it.
        offsets = (torch.rand(2, 2 * groups * scale * scale, *size, generator=g, dtype=torch.float64) - 0.5) * 6
        assert_close(dynamic_sample(x, offsets, scale, groups), dynamic_sample_loop(x, offsets, scale, groups))

    @pytest.mark.parametrize("scale", [1, 2, 3, 4])
    def test_sub_pixel_positions_give_bilinear(self, scale):
        x = torch.randn(2, 6, 5, 3, dtype=torch.float64)
        offsets = sub_pixel_positions(scale, 3, dtype=torch.float64).expand(2, -1, 5, 3)
        expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        assert_close(dynamic_sample(x, offsets, scale, 3), expected)

    def test_sub_pixel_positions_values(self):
        # Layout (xy, G, s, s): x offsets vary along the sub-column j, y offsets along i.
        pos = sub_pixel_positions(3, 2, dtype=torch.float64).reshape(2, 2, 3, 3)
        third = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64) / 3
        assert_close(pos[0, 1], third.expand(3, 3))
        assert_close(pos[1, 0], third[:, None].expand(3, 3))

    def test_integer_offset_moves_by_whole_pixels(self):
        x = torch.randn(1, 2, 4, 6, dtype=torch.float64)
        offsets = sub_pixel_positions(2, dtype=torch.float64).expand(1, -1, 4, 6).clone()
        offsets[:, :4] += 1.0  # one pixel to the right in x
        shifted = torch.cat([x[..., 1:], x[..., -1:]], dim=-1)  # border replicated
        expected = F.interpolate(shifted, scale_factor=2, mode="bilinear", align_corners=False)
        # Output column 0 reads x at 0.75, which the shifted map clamps to its first pixel.
        assert_close(dynamic_sample(x, offsets, 2)[..., 1:], expected[..., 1:])

    def test_groups_are_contiguous_channel_blocks(self):
        x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
        offsets = sub_pixel_positions(2, 2, dtype=torch.float64).expand(1, -1, 3, 3).clone()
        offsets[:, 4:8] += 1.0  # x offsets of group 1 only
        out = dynamic_sample(x, offsets, 2, 2)
        bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        assert_close(out[:, :2], bilinear[:, :2])
        assert (out[:, 2:] - bilinear[:, 2:]).abs().max() > 0.1

    @pytest.mark.parametrize(
        "offsets_shape, groups, argument",
        [((1, 32, 3, 3), 4, "groups"), ((1, 6, 3, 3), 1, "offsets"), ((1, 8, 3, 4), 1, "offsets")],
    )
    def test_errors_name_the_argument(self, offsets_shape, groups, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            dynamic_sample(torch.randn(1, 6, 3, 3), torch.randn(offsets_shape), 2, groups)


def _reference_offsets(module: DySample, x: torch.Tensor) -> torch.Tensor:
    """Offsets from the published formulas, with pixel (un)shuffle written as index maps."""
    s, style = module.scale_factor, module.style
    weight = module.offset.weight[:, :, 0, 0].double()
    bias = module.offset.bias.double()
    scope = module.scope.weight[:, :, 0, 0].double() if module.dyscope else None
    scope_bias = module.scope.bias.double() if module.dyscope and module.scope.bias is not None else 0.0
    xd = x.double()
    n, c, h, w = x.shape
    if style == "pl":  # x'[c', s*h + i, s*w + j] = x[c'*s*s + i*s + j, h, w]
        xd = xd.reshape(n, c // (s * s), s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // (s * s), s * h, s * w)
    raw = torch.einsum("oc,nchw->nohw", weight, xd) + bias[:, None, None]
    if scope is not None:
        scope_bias = scope_bias[:, None, None] if torch.is_tensor(scope_bias) else scope_bias
        raw = raw * torch.sigmoid(torch.einsum("oc,nchw->nohw", scope, xd) + scope_bias)
    if style == "pl":  # O[o*s*s + i*s + j, h, w] = O'[o, s*h + i, s*w + j]
        o = raw.shape[1]
        raw = raw.reshape(n, o, h, s, w, s).permute(0, 1, 3, 5, 2, 4).reshape(n, o * s * s, h, w)
    factor = 0.5 if module.dyscope else 0.25
    steps = (torch.arange(s, dtype=torch.float64) - (s - 1) / 2) / s
    g = module.groups
    init = torch.stack([steps.view(1, 1, s).expand(g, s, s), steps.view(1, s, 1).expand(g, s, s)]).reshape(1, -1, 1, 1)
    return raw * factor + init


class TestDySampleModule:
    @pytest.mark.parametrize("scale", [2, 3, 4])
    @pytest.mark.parametrize("style, dyscope", VARIANTS)
    def test_zero_offset_conv_is_bilinear(self, scale, style, dyscope):
        up = DySample(8 * scale * scale, scale, style=style, groups=4, dyscope=dyscope).double()
        _randomise(up)
        with torch.no_grad():
            up.offset.weight.zero_()
            up.offset.bias.zero_()
        x = torch.randn(2, 8 * scale * scale, 5, 6, dtype=torch.float64)
        expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        # init_pos is a float32 buffer (as in the official code): thirds are rounded.
        assert_close(up(x), expected, scale=1.0 if scale != 3 else 1e3)

    @pytest.mark.parametrize(
        "name, params",
        [("dysample", 8_224), ("dysample_plus", 16_416), ("dysample_s", 520), ("dysample_s_plus", 1_032)],
    )
    def test_parameter_counts_match_reference_table(self, name, params):
        up = create_upsampler(name, channels=256, scale_factor=2)
        assert sum(p.numel() for p in up.parameters()) == params

    @pytest.mark.parametrize(
        "name, style, dyscope",
        [
            ("dysample", "lp", False),
            ("dysample_plus", "lp", True),
            ("dysample_s", "pl", False),
            ("dysample_s_plus", "pl", True),
        ],
    )
    def test_named_variants(self, name, style, dyscope):
        up = create_upsampler(name, channels=16)
        assert (up.style, up.dyscope, up.groups) == (style, dyscope, 4)

    @pytest.mark.parametrize("scale", [2, 3])
    @pytest.mark.parametrize("style, dyscope", VARIANTS)
    def test_pipeline_against_formulas_and_loop(self, scale, style, dyscope):
        up = DySample(4 * scale * scale, scale, style=style, groups=2, dyscope=dyscope).double()
        _randomise(up, std=0.3, seed=scale)
        x = torch.randn(1, 4 * scale * scale, 3, 4, dtype=torch.float64)
        offsets = _reference_offsets(up, x)
        assert_close(up.offsets(x), offsets, scale=1e3)  # float32-rounded init_pos
        assert_close(up(x), dynamic_sample_loop(x, up.offsets(x), scale, 2))

    def test_initial_state_is_bilinear_up_to_tiny_offsets(self):
        torch.manual_seed(0)
        up = DySample(32, 2, dyscope=True)
        assert torch.count_nonzero(up.scope.weight) == 0 and torch.count_nonzero(up.offset.bias) == 0
        assert 0.0005 < up.offset.weight.std() < 0.002
        x = torch.randn(1, 32, 6, 6)
        assert (up(x) - F.interpolate(x, scale_factor=2, mode="bilinear")).abs().max() < 0.05

    def test_official_state_dict_keys(self):
        assert set(DySample(16).state_dict()) == {"init_pos", "offset.weight", "offset.bias"}
        assert set(DySample(16, dyscope=True).state_dict()) == {
            "init_pos",
            "offset.weight",
            "offset.bias",
            "scope.weight",
        }
        assert DySample(16, 2, groups=4).init_pos.shape == (1, 32, 1, 1)

    def test_state_dict_with_scope_bias_loads_and_is_used(self):
        donor = DySample(16, 2, dyscope=True).double()
        _randomise(donor, seed=3)
        state = dict(donor.state_dict())
        state["scope.bias"] = torch.linspace(-2, 2, 32, dtype=torch.float64)
        up = DySample(16, 2, dyscope=True).double()
        up.load_state_dict(state, strict=True)
        assert up.scope.bias is not None
        x = torch.randn(1, 16, 3, 5, dtype=torch.float64)
        assert_close(up.offsets(x), _reference_offsets(up, x))
        assert_close(up(x), dynamic_sample_loop(x, _reference_offsets(up, x), 2, 4))
        # ... and a bias-free state dict afterwards means a zero scope bias.
        up.load_state_dict(donor.state_dict(), strict=True)
        assert torch.count_nonzero(up.scope.bias) == 0
        assert_close(up(x), donor(x))

    def test_scope_keys_into_a_static_module_are_unexpected(self):
        with pytest.raises(RuntimeError, match="scope.weight"):
            DySample(16).load_state_dict(DySample(16, dyscope=True).state_dict())

    def test_legacy_onnx_exporter_with_dynamic_axes_is_right_at_another_size(self, tmp_path):
        """The official code bakes H and W into the graph under the TorchScript exporter."""
        ort = pytest.importorskip("onnxruntime")
        up = DySample(16, 2).eval()
        _randomise(up, std=0.5)
        path = tmp_path / "dysample.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    up,
                    (torch.randn(2, 16, 6, 7),),
                    str(path),
                    dynamo=False,
                    opset_version=16,
                    input_names=["x"],
                    dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}},
                )
        except Exception as error:  # pragma: no cover - exporter availability varies
            pytest.skip(f"TorchScript ONNX exporter unavailable: {error}")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for size in ((6, 7), (9, 5)):
            x = torch.randn(1, 16, *size)
            (got,) = session.run(None, {"x": x.numpy()})
            with torch.no_grad():
                assert_close(torch.from_numpy(got), up(x))

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            (dict(style="xy"), "style"),
            (dict(groups=3), "groups"),
            (dict(channels=18, scale_factor=2, style="pl", groups=2), "channels"),
            (dict(scale_factor=0), "scale_factor"),
        ],
    )
    def test_constructor_errors(self, kwargs, argument):
        kwargs = {"channels": 16, **kwargs}
        with pytest.raises(ValueError, match=f"`{argument}`"):
            DySample(**kwargs)
