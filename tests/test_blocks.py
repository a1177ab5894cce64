"""Blocks: SPNet's SPM/MPM, the selective kernel unit, HRNet's exchange unit and backbone.

Each block is checked against its formula written step by step with ``torch.nn.functional``
from the block's own state dict (random weights, float64, eval mode).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from resamplers import create_block, create_upsampler, list_blocks
from resamplers.backbones import HRNET_CONFIGS, HRNetStage
from resamplers.blocks import HRNetFuse


def _x(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def randomized(module, seed=0):
    """``module`` in float64, eval mode, with random weights and BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    module = module.double().eval()
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(
                    torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5
                    if "running_var" in name
                    else 0.4 * torch.randn(t.shape, generator=g, dtype=t.dtype)
                )
    return module


def bn(x, state, prefix):
    return F.batch_norm(
        x,
        state[f"{prefix}.running_mean"],
        state[f"{prefix}.running_var"],
        state[f"{prefix}.weight"],
        state[f"{prefix}.bias"],
    )


def test_registered_blocks():
    assert set(list_blocks()) >= {"strip_pooling", "mixed_pooling_module", "selective_kernel", "hrnet_fuse", "hrnet"}


class TestStripPooling:
    def test_official_keys(self):
        keys = {k.rsplit(".", 1)[0] for k in create_block("strip_pooling", channels=4).state_dict()}
        assert keys == {"conv1", "bn1", "conv2", "bn2", "conv3"}

    @pytest.mark.parametrize("size", [(5, 7), (1, 1), (8, 3)])
    def test_formula(self, size):
        spm = randomized(create_block("strip_pooling", channels=4))
        s = spm.state_dict()
        x = _x((2, 4, *size))
        h, w = size
        column = bn(F.conv2d(x.mean(3, keepdim=True), s["conv1.weight"], padding=(1, 0)), s, "bn1")
        row = bn(F.conv2d(x.mean(2, keepdim=True), s["conv2.weight"], padding=(0, 1)), s, "bn2")
        gate = torch.sigmoid(
            F.conv2d(F.relu(column.repeat(1, 1, 1, w) + row.repeat(1, 1, h, 1)), s["conv3.weight"], s["conv3.bias"])
        )
        assert_close(spm.gate(x), gate)
        assert_close(spm(x), x * gate)


class TestMixedPoolingModule:
    def test_official_keys(self):
        keys = {k.rsplit(".", 1)[0] for k in create_block("mixed_pooling_module", channels=8).state_dict()}
        expected = {f"conv1_{i}.{j}" for i in (1, 2) for j in (0, 1)}
        expected |= {f"conv2_{i}.{j}" for i in range(7) for j in (0, 1)} | {"conv3.0", "conv3.1"}
        assert keys == expected

    @pytest.mark.parametrize("size", [(9, 11), (25, 30), (1, 1)])
    def test_formula(self, size):
        mpm = randomized(create_block("mixed_pooling_module", channels=8))
        s = mpm.state_dict()
        x = _x((2, 8, *size))

        def cbr(t, name, padding=0, relu=False):
            out = bn(F.conv2d(t, s[f"{name}.0.weight"], padding=padding), s, f"{name}.1")
            return F.relu(out) if relu else out

        def up(t):
            return F.interpolate(t, size=size, mode="bilinear", align_corners=True)

        x1, x2 = cbr(x, "conv1_1", relu=True), cbr(x, "conv1_2", relu=True)
        short = (
            cbr(x1, "conv2_0", 1)
            + up(cbr(F.adaptive_avg_pool2d(x1, 20), "conv2_1", 1))
            + up(cbr(F.adaptive_avg_pool2d(x1, 12), "conv2_2", 1))
        )
        long = up(cbr(F.adaptive_avg_pool2d(x2, (size[0], 1)), "conv2_4", (1, 0))) + up(
            cbr(F.adaptive_avg_pool2d(x2, (1, size[1])), "conv2_3", (0, 1))
        )
        out = torch.cat([cbr(F.relu(short), "conv2_5", 1, True), cbr(F.relu(long), "conv2_6", 1, True)], 1)
        assert_close(mpm(x), F.relu(x + cbr(out, "conv3")))

    def test_pool_sizes_and_validation(self):
        assert create_block("mixed_pooling_module", channels=8).pool_sizes == (20, 12)
        with pytest.raises(ValueError, match="`pool_sizes`"):
            create_block("mixed_pooling_module", channels=8, pool_sizes=(4,))
        with pytest.raises(ValueError, match="`channels`"):
            create_block("mixed_pooling_module", channels=2)


class TestSelectiveKernel:
    def test_paper_defaults(self):
        sk = create_block("selective_kernel", channels=128)
        assert [p.conv.dilation for p in sk.paths] == [(1, 1), (2, 2)]
        assert all(p.conv.kernel_size == (3, 3) and p.conv.groups == 32 for p in sk.paths)
        # d = max(C / r, L) with r = 16, L = 32: 32, 32, 32, 64 for SKNet-50's widths.
        widths = [create_block("selective_kernel", channels=c).attn_channels for c in (128, 256, 512, 1024)]
        assert widths == [32, 32, 32, 64]
        assert sk.attn.fc_reduce.bias is None and sk.attn.fc_select.bias is None
        # 2 x (grouped 3x3 + BN) + fc1 + BN + fc2 at C = 128 (conv2_1 of SKNet-50).
        assert sum(p.numel() for p in sk.parameters()) == 2 * (128 * 4 * 9 + 256) + 128 * 32 + 64 + 32 * 256

    @pytest.mark.parametrize("stride, split", [(1, False), (2, False), (1, True)])
    def test_formula(self, stride, split):
        sk = randomized(create_block("selective_kernel", channels=64, stride=stride, split_input=split))
        s = sk.state_dict()
        x = _x((2, 64, 9, 7))
        inputs = torch.chunk(x, 2, 1) if split else (x, x)
        paths = [
            F.relu(
                bn(
                    F.conv2d(xi, s[f"paths.{m}.conv.weight"], stride=stride, padding=m + 1, dilation=m + 1, groups=32),
                    s,
                    f"paths.{m}.bn",
                )
            )
            for m, xi in enumerate(inputs)
        ]
        u = (paths[0] + paths[1]).mean((2, 3), keepdim=True)
        z = F.relu(bn(F.conv2d(u, s["attn.fc_reduce.weight"]), s, "attn.bn"))
        logits = F.conv2d(z, s["attn.fc_select.weight"])  # N x 2C: branch-major
        a = torch.softmax(torch.stack([logits[:, :64], logits[:, 64:]], 0), 0)
        assert_close(sk(x), a[0] * paths[0] + a[1] * paths[1])
        weights = sk.branch_weights(x)
        assert weights.shape == (2, 2, 64, 1, 1)
        assert_close(weights.sum(1), torch.ones(2, 64, 1, 1, dtype=torch.float64))

    def test_real_kernels_and_output_size(self):
        sk = create_block("selective_kernel", channels=32, out_channels=64, stride=2, dilate=False, num_paths=3).eval()
        assert [p.conv.kernel_size for p in sk.paths] == [(3, 3), (5, 5), (7, 7)]
        assert sk(torch.randn(1, 32, 9, 8)).shape == (1, 64, 5, 4)

    def test_groups_must_divide(self):
        with pytest.raises(ValueError, match="`groups`"):
            create_block("selective_kernel", channels=48)


def _fuse_reference(fuse, xs, upsample):
    """Sum of the paths written out from the state dict; ``upsample(t, size, scale)`` as chosen."""
    s = fuse.state_dict()
    outs = []
    for i in range(fuse.num_outputs):
        size = xs[i].shape[-2:]
        y = 0
        for j, x in enumerate(xs):
            p = f"fuse_layers.{i}.{j}"
            if j > i:
                t = bn(F.conv2d(x, s[f"{p}.0.weight"]), s, f"{p}.1")
                y = y + upsample(t, size, 2 ** (j - i))
            elif j == i:
                y = y + x
            else:
                t = x
                for step in range(i - j):
                    t = bn(F.conv2d(t, s[f"{p}.{step}.0.weight"], stride=2, padding=1), s, f"{p}.{step}.1")
                    t = F.relu(t) if step < i - j - 1 else t
                y = y + t
        outs.append(F.relu(y))
    return outs


def _branches(n, channels, h, w, seed=0):
    xs = []
    for j, c in enumerate(channels):
        xs.append(_x((n, c, h, w), seed + j))
        h, w = -(-h // 2), -(-w // 2)
    return xs


class TestHRNetFuse:
    @pytest.mark.parametrize("size", [(15, 9), (16, 24), (1, 1), (7, 30)])
    def test_bilinear_to_size(self, size):
        fuse = randomized(HRNetFuse((4, 6, 8, 10)))
        xs = _branches(2, (4, 6, 8, 10), *size)
        expected = _fuse_reference(
            fuse, xs, lambda t, sz, s: F.interpolate(t, size=sz, mode="bilinear", align_corners=False)
        )
        for a, b in zip(fuse(xs), expected, strict=True):
            assert_close(a, b)

    def test_align_corners_and_nearest(self):
        xs = _branches(1, (4, 6, 8), 13, 11)
        fuse = randomized(HRNetFuse((4, 6, 8), up_kwargs={"align_corners": True}))
        expected = _fuse_reference(
            fuse, xs, lambda t, sz, s: F.interpolate(t, size=sz, mode="bilinear", align_corners=True)
        )
        for a, b in zip(fuse(xs), expected, strict=True):
            assert_close(a, b)
        # Nearest: the source pixel of output p is floor(p / s), then the top-left crop.
        fuse = randomized(HRNetFuse((4, 6, 8), upsampler="nearest"))
        expected = _fuse_reference(
            fuse, xs, lambda t, sz, s: t.repeat_interleave(s, -2).repeat_interleave(s, -1)[..., : sz[0], : sz[1]]
        )
        for a, b in zip(fuse(xs), expected, strict=True):
            assert_close(a, b)

    def test_nearest_equals_scale_factor_upsampling_on_divisible_sizes(self):
        """The classification code's nn.Upsample(scale_factor, 'nearest'), where it works."""
        fuse = randomized(HRNetFuse((4, 6, 8), upsampler="nearest"))
        xs = _branches(1, (4, 6, 8), 16, 12)
        expected = _fuse_reference(fuse, xs, lambda t, sz, s: F.interpolate(t, scale_factor=s, mode="nearest"))
        for a, b in zip(fuse(xs), expected, strict=True):
            assert_close(a, b)

    def test_learned_upsampler_from_the_registry(self):
        fuse = HRNetFuse((8, 16), upsampler="carafe").double()
        assert type(fuse.fuse_layers[0][1][2]).__name__ == "CARAFEPack"
        outs = fuse(_branches(1, (8, 16), 9, 7))
        assert [tuple(o.shape) for o in outs] == [(1, 8, 9, 7), (1, 16, 5, 4)]

    def test_single_output_and_single_branch(self):
        fuse = HRNetFuse((4, 8, 16), num_outputs=1).double()
        assert len(fuse(_branches(1, (4, 8, 16), 9, 9))) == 1
        assert len(fuse.fuse_layers) == 1
        lone = HRNetFuse((4,))
        x = _x((1, 4, 5, 5))
        assert len(lone.state_dict()) == 0 and torch.equal(lone([x])[0], x)
        assert HRNetFuse(18).channels == (18, 36, 72, 144)

    def test_official_keys(self):
        keys = {k.rsplit(".", 1)[0] for k in HRNetFuse((4, 8, 16)).state_dict()}
        assert "fuse_layers.0.1.0" in keys and "fuse_layers.0.2.1" in keys  # 1x1 conv, BN
        assert "fuse_layers.2.0.0.0" in keys and "fuse_layers.2.0.1.1" in keys  # 2 strided steps
        assert not any(k.startswith("fuse_layers.1.1") for k in keys)  # identity

    def test_size_and_channel_errors(self):
        fuse = HRNetFuse((4, 8))
        with pytest.raises(ValueError, match=r"`features\[1\]`.*5 x 4"):
            fuse([torch.randn(1, 4, 9, 8), torch.randn(1, 8, 4, 4)])
        with pytest.raises(ValueError, match=r"`features\[1\]`.*channels"):
            fuse([torch.randn(1, 4, 9, 8), torch.randn(1, 7, 5, 4)])
        with pytest.raises(ValueError, match="`features`.*2 maps"):
            fuse([torch.randn(1, 4, 9, 8)])
        with pytest.raises(ValueError, match="`upsampler`"):
            HRNetFuse((4, 8), upsampler="bicubic")


class TestUpsampleTo:
    def test_default_crops_the_scaled_map(self):
        up = create_upsampler("nearest", scale_factor=4)
        x = _x((1, 2, 3, 2))
        assert torch.equal(up.upsample_to(x, (10, 7)), up(x)[..., :10, :7])
        with pytest.raises(ValueError, match="`size`"):
            up.upsample_to(x, (13, 7))
        deconv = create_upsampler("deconv", channels=2, scale_factor=2).double()
        assert torch.equal(deconv.upsample_to(x, (5, 3)), deconv(x)[..., :5, :3])
        with pytest.raises(ValueError, match="`size`"):
            deconv.upsample_to(x, (5, 5))

    def test_bilinear_resamples_to_the_size(self):
        up = create_upsampler("bilinear", scale_factor=2, align_corners=True)
        x = _x((1, 2, 3, 4))
        assert_close(up.upsample_to(x, (5, 7)), F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True))


class TestHRNet:
    def test_parameter_counts_match_the_paper(self):
        """HRNetV2-W18-Small-v1/v2 backbones (the paper's 1.5M / 3.9M include a small seg head)."""
        counts = {
            name: sum(p.numel() for p in create_block("hrnet", config=name).parameters())
            for name in ("w18_small_v1", "w18_small_v2")
        }
        assert counts == {"w18_small_v1": 1_477_920, "w18_small_v2": 3_860_720}

    @pytest.mark.parametrize("size", [(61, 45), (64, 96), (33, 17), (1, 1)])
    def test_any_input_size(self, size):
        net = create_block("hrnet").eval()
        shapes = [tuple(f.shape) for f in net(torch.randn(1, 3, *size))]
        assert shapes == net.output_shapes([(1, 3, *size)])
        h = math.ceil(math.ceil(size[0] / 2) / 2)  # two stride-2 stem convolutions
        assert shapes[0][2] == h and [s[1] for s in shapes] == [16, 32, 64, 128]

    def test_official_top_level_keys(self):
        keys = {k.split(".")[0] for k in create_block("hrnet").state_dict()}
        assert keys == {
            "conv1",
            "bn1",
            "conv2",
            "bn2",
            "layer1",
            "transition1",
            "transition2",
            "transition3",
            "stage2",
            "stage3",
            "stage4",
        }
        sd = create_block("hrnet", config="w18_small_v2").state_dict()
        assert "stage3.2.fuse_layers.2.0.1.0.weight" in sd and "transition3.3.0.0.weight" in sd
        assert "stage4.1.branches.3.1.conv2.weight" in sd and "layer1.0.downsample.0.weight" in sd

    def test_stage_by_stage(self):
        """The backbone is stem -> layer1 -> (transition, stage) with the documented wiring."""
        config = (
            HRNetStage(1, (1,), (4,), "bottleneck"),
            HRNetStage(1, (1, 1), (4, 8)),
            HRNetStage(2, (1, 1, 1), (4, 8, 16)),
        )
        net = randomized(create_block("hrnet", config=config))
        x = _x((1, 3, 21, 14))
        with torch.no_grad():
            y = F.relu(net.bn2(net.conv2(F.relu(net.bn1(net.conv1(x))))))
            y = [net.layer1(y)]
            y = net.stage2([net.transition1[0](y[0]), net.transition1[1](y[0])])
            y = net.stage3([y[0], y[1], net.transition2[2](y[1])])
            for a, b in zip(net(x), y, strict=True):
                assert_close(a, b)
        assert isinstance(net.transition2[0], torch.nn.Identity)

    def test_configs(self):
        assert set(HRNET_CONFIGS) >= {"w18_small_v1", "w18_small_v2", "w18", "w32", "w48"}
        assert HRNET_CONFIGS["w48"][3].widths == (48, 96, 192, 384)
        with pytest.raises(ValueError, match="`config`"):
            create_block("hrnet", config="w99")
        with pytest.raises(ValueError, match="`config`"):
            create_block("hrnet", config=(HRNetStage(1, (1, 1), (4, 8)),))


def test_hrnet_loads_a_checkpoint_with_a_head():
    net = create_block("hrnet")
    state = {
        **net.state_dict(),
        "classifier.weight": torch.zeros(3, 3),
        "incre_modules.0.0.conv1.weight": torch.zeros(1),
    }
    assert sorted(create_block("hrnet").load_backbone_state_dict(state)) == [
        "classifier.weight",
        "incre_modules.0.0.conv1.weight",
    ]
    del state["conv1.weight"]
    with pytest.raises(RuntimeError, match="conv1.weight"):
        create_block("hrnet").load_backbone_state_dict(state)


def test_every_pool_and_block_is_typed_and_documented():
    from resamplers.base import Operator
    from resamplers.registry import BLOCKS, POOLS

    for registry in (POOLS, BLOCKS):
        for entry in registry:
            doc = entry.cls.__doc__ or ""
            assert "Shape:" in doc and "Args:" in doc and "Example:" in doc, entry.name
            keywords = entry.accepted_keywords()
            assert keywords[0] == "channels", entry.name
            assert all(k in entry.cls.__init__.__annotations__ for k in keywords), entry.name
            assert issubclass(entry.cls, Operator), entry.name


@pytest.mark.parametrize("upsampler", ["nearest", "deconv"])
def test_hrnet_exports_at_odd_sizes_with_other_upsamplers(upsampler):
    """Crop-based upsample_to (nearest: index gather; learned: negative padding) exports with dynamic odd sizes."""
    config = (HRNetStage(1, (1,), (4,), "bottleneck"), HRNetStage(1, (1, 1), (4, 8)))
    net = create_block("hrnet", config=config, upsampler=upsampler).eval()
    dims = {"x": {2: torch.export.Dim("h", min=9, max=512), 3: torch.export.Dim("w", min=9, max=512)}}
    program = torch.export.export(net, (torch.randn(2, 3, 17, 19),), dynamic_shapes=dims)
    x = torch.randn(2, 3, 41, 23)
    with torch.no_grad():
        for a, b in zip(program.module()(x), net(x), strict=True):
            assert_close(a, b)


def test_hrnet_with_carafe_exports_at_multiples_of_its_stride():
    """CARAFE fusion exports with dynamic sizes constrained to multiples of the stride (the
    documented way: at odd sizes export cannot prove the kernel map splits into blocks)."""
    config = (HRNetStage(1, (1,), (4,), "bottleneck"), HRNetStage(1, (1, 1), (4, 8)))
    net = create_block("hrnet", config=config, upsampler="carafe").eval()
    blocks_h, blocks_w = torch.export.Dim("blocks_h", min=2, max=64), torch.export.Dim("blocks_w", min=2, max=64)
    program = torch.export.export(
        net, (torch.randn(2, 3, 16, 24),), dynamic_shapes={"x": {2: 8 * blocks_h, 3: 8 * blocks_w}}
    )
    x = torch.randn(2, 3, 40, 24)
    with torch.no_grad():
        for a, b in zip(program.module()(x), net(x), strict=True):
            assert_close(a, b)
