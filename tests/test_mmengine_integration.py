"""resamplers.integrations.mmengine against the real mmengine (and mmcv, where installed)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest
import torch

with warnings.catch_warnings():
    # mmengine.model (imported by MODELS.build) imports torch.distributed, whose import-time
    # torch.jit decorators warn: torch's own code, imported here once, quietly.
    warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
    pytest.importorskip("mmengine")
    import mmengine.model  # noqa: F401
    from mmengine.analysis import FlopAnalyzer, complexity_analysis, get_model_complexity_info
    from mmengine.config import Config
    from mmengine.registry import MODELS as ROOT
    from mmengine.registry import DefaultScope, Registry
    from mmengine.utils import import_modules_from_strings

import resamplers  # noqa: E402
from resamplers.complexity import count_macs  # noqa: E402
from resamplers.functional import native_available  # noqa: E402
from resamplers.guided import FADE, SAPA  # noqa: E402
from resamplers.integrations import mmengine as mm  # noqa: E402
from resamplers.registry import BLOCKS, DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS, Entry  # noqa: E402
from resamplers.upsampling import CARAFEPack, NearestUpsample  # noqa: E402

FAMILIES = {r.kind: r for r in (UPSAMPLERS, DOWNSAMPLERS, PAIRS, POOLS, BLOCKS)}
ENTRIES = [(kind, name) for kind, family in FAMILIES.items() for name in family.names()]

# FPN_CARAFE's upsample_cfg (mmdetection configs/carafe); the neck adds channels and scale_factor.
FPN_UPSAMPLE_CFG = dict(
    type="resamplers.carafe", up_kernel=5, up_group=1, encoder_kernel=3, encoder_dilation=1, compressed_channels=64
)


@pytest.fixture
def restore_default_scope():
    """DefaultScope instances are process-wide (the latest is current): undo the test's."""
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture
def restore_registrations(monkeypatch):
    """Registrations a test adds to the library's registries or to mm.MODELS are undone."""
    for family in FAMILIES.values():
        monkeypatch.setattr(family, "_entries", dict(family._entries))
    monkeypatch.setattr(mm.MODELS, "_module_dict", dict(mm.MODELS._module_dict))


def _mmcv_carafe_state_dict(channels, scale_factor, up_kernel, up_group, encoder_kernel, compressed_channels):
    """mmcv CARAFEPack's parameters by hand: a 1x1 compressor C -> C_m and the content
    encoder C_m -> k^2 G s^2 (k_e x k_e), both with bias."""
    g = torch.Generator().manual_seed(0)
    taps = up_kernel * up_kernel * up_group * scale_factor * scale_factor
    shapes = {
        "channel_compressor.weight": (compressed_channels, channels, 1, 1),
        "channel_compressor.bias": (compressed_channels,),
        "content_encoder.weight": (taps, compressed_channels, encoder_kernel, encoder_kernel),
        "content_encoder.bias": (taps,),
    }
    return {key: torch.randn(shape, generator=g) for key, shape in shapes.items()}


# ----------------------------------------------------------------------------- registry


def test_scoped_type_builds_from_the_root_registry():
    up = ROOT.build(dict(FPN_UPSAMPLE_CFG, channels=64, scale_factor=2))
    assert type(up) is CARAFEPack
    assert (up.channels, up.scale_factor, up.up_kernel, up.up_group) == (64, 2, 5, 1)
    assert (up.encoder_kernel, up.encoder_dilation, up.compressed_channels) == (3, 1, 64)
    assert up(torch.randn(1, 64, 3, 5)).shape == (1, 64, 6, 10)
    assert ROOT.children[mm.SCOPE] is mm.MODELS


@pytest.mark.parametrize(
    "config",
    [
        dict(channels=64, scale_factor=2, up_kernel=5, up_group=1, encoder_kernel=3, compressed_channels=64),
        dict(channels=32, scale_factor=3, up_kernel=3, up_group=4, encoder_kernel=5, compressed_channels=16),
    ],
)
def test_carafe_loads_mmcv_keys_strictly(config):
    up = ROOT.build(dict(type="resamplers.carafe", encoder_dilation=1, **config))
    state = _mmcv_carafe_state_dict(**config)
    assert list(up.state_dict()) == list(state)
    up.load_state_dict(state, strict=True)
    for key, value in up.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_plain_name_under_the_resamplers_default_scope(restore_default_scope):
    DefaultScope.get_instance(f"test-{uuid.uuid4().hex}", scope_name="resamplers")
    up = ROOT.build(dict(type="carafe", channels=16, scale_factor=2, up_kernel=3))
    assert type(up) is CARAFEPack and up.up_kernel == 3
    down = ROOT.build(dict(type="down_carafe", channels=8, down_kernel=3))
    assert type(down) is DOWNSAMPLERS.entry("carafe").cls


def test_config_with_custom_imports():
    cfg = Config(
        dict(
            custom_imports=dict(imports=["resamplers.integrations.mmengine"], allow_failed_imports=False),
            model=dict(neck=dict(type="FPN_CARAFE", out_channels=32, upsample_cfg=FPN_UPSAMPLE_CFG)),
        )
    )
    import_modules_from_strings(**cfg.custom_imports)
    # What FPN_CARAFE does with its upsample_cfg for every top-down step.
    upsample_cfg = cfg.model.neck.upsample_cfg.copy()
    upsample_cfg.update(channels=cfg.model.neck.out_channels, scale_factor=2)
    up = ROOT.build(upsample_cfg)
    assert type(up) is CARAFEPack and up.channels == 32 and up.compressed_channels == 64


def test_config_file_imports_the_integration_in_a_fresh_interpreter(tmp_path):
    config = tmp_path / "config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            custom_imports = dict(imports=["resamplers.integrations.mmengine"], allow_failed_imports=False)
            upsample_cfg = {FPN_UPSAMPLE_CFG!r}
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import sys
        import resamplers
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mmengine", "mmcv"))
        assert not loaded, f"import resamplers loaded {{loaded[:5]}}"
        assert "resamplers.integrations.mmengine" not in sys.modules
        from mmengine.config import Config
        from mmengine.registry import MODELS
        cfg = Config.fromfile({str(config)!r})
        up = cfg.upsample_cfg.copy()
        up.update(channels=16, scale_factor=2)
        print(type(MODELS.build(up)).__name__)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "CARAFEPack"


def test_every_operator_is_registered_under_the_naming_rule():
    expected = {mm.type_name(name, kind, scoped=False) for kind, name in ENTRIES}
    assert set(mm.MODELS.module_dict) == expected
    assert len(expected) == len(ENTRIES)  # the rule gives every operator its own name
    assert mm.type_name("carafe") == "resamplers.carafe"
    assert mm.type_name("carafe", "downsampler") == "resamplers.down_carafe"
    assert mm.type_name("indexnet_m2o", "pair") == "resamplers.pair_indexnet_m2o"
    assert mm.type_name("gem", "pool", scoped=False) == "pool_gem"
    assert mm.register_operators() == []  # idempotent
    with pytest.raises(ValueError, match="family"):
        mm.type_name("carafe", "upsamplers")


@pytest.mark.parametrize("kind, name", ENTRIES, ids=[f"{k}-{n}" for k, n in ENTRIES])
def test_every_operator_builds_its_example(kind, name):
    family = FAMILIES[kind]
    example = dict(family.entry(name).example_kwargs())
    built = ROOT.build(dict(type=mm.type_name(name, kind), **example))
    reference = family.create(name, **example)
    assert type(built) is type(reference)
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_variants_keep_their_fixed_arguments_and_keywords_are_checked():
    plus = ROOT.build(dict(type="resamplers.dysample_plus", channels=8))
    assert plus.style == "lp" and plus.dyscope is True
    with pytest.raises(TypeError, match="did you mean 'up_kernel'"):
        ROOT.build(dict(type="resamplers.carafe", channels=8, up_kernal=5))
    with pytest.raises(TypeError, match="fixed"):
        ROOT.build(dict(type="resamplers.dysample_plus", channels=8, dyscope=False))


def test_operators_registered_later_are_added_and_clashes_raise(restore_registrations):
    UPSAMPLERS._entries["zz_late"] = Entry(name="zz_late", cls=NearestUpsample)
    assert mm.register_operators() == ["zz_late", "pair_zz_late"]  # every upsampler is a pair
    assert type(ROOT.build(dict(type="resamplers.zz_late", channels=4))) is NearestUpsample
    # An upsampler named like a prefixed downsampler: one mmengine name for two operators.
    UPSAMPLERS._entries["down_zz"] = Entry(name="down_zz", cls=NearestUpsample)
    DOWNSAMPLERS._entries["zz"] = Entry(name="zz", cls=DOWNSAMPLERS.entry("max").cls)
    with pytest.raises(KeyError, match="down_zz"):
        mm.register_operators()


def test_feature_guided_upsamplers_take_decoder_then_encoder_feature():
    d, encoder = torch.randn(1, 16, 4, 6), torch.randn(1, 8, 8, 12)
    for kind in ("fade", "sapa"):
        up = ROOT.build(dict(type=f"resamplers.{kind}", channels=16, guide_channels=8, up_kernel=3))
        assert isinstance(up, (FADE, SAPA))
        assert up(d, encoder).shape == (1, 16, 8, 12)


def test_mmengine_is_imported_only_by_the_integration():
    package = Path(resamplers.__file__).parent
    importers = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            if any(n.split(".")[0] in ("mmengine", "mmcv") for n in names):
                importers.append(str(path.relative_to(package)))
    assert sorted(set(importers)) == ["integrations/mmengine.py"]


# ----------------------------------------------------------------------------- mmcv


def test_mmcv_build_upsample_layer_builds_our_carafe(restore_default_scope):
    cnn = pytest.importorskip("mmcv.cnn")
    up = cnn.build_upsample_layer(dict(FPN_UPSAMPLE_CFG), channels=32, scale_factor=2)
    assert type(up) is CARAFEPack and up.channels == 32
    positional = cnn.build_upsample_layer(dict(type="resamplers.carafe", up_kernel=3), 16, 2)
    assert (positional.channels, positional.scale_factor, positional.up_kernel) == (16, 2, 3)
    with pytest.raises(TypeError, match="multiple values"):
        cnn.build_upsample_layer(dict(type="resamplers.carafe"), 16, channels=16)
    # mmcv's own names in the root registry are untouched ...
    assert cnn.build_upsample_layer(dict(type="nearest", scale_factor=2)).__class__ is torch.nn.Upsample
    # ... and under the resamplers default scope the plain names are ours.
    DefaultScope.get_instance(f"test-{uuid.uuid4().hex}", scope_name="resamplers")
    assert type(cnn.build_upsample_layer(dict(type="carafe"), channels=8, scale_factor=2)) is CARAFEPack
    assert type(cnn.build_upsample_layer(dict(type="nearest"), channels=8)) is NearestUpsample


def test_a_neck_of_another_scope_builds_plain_carafe_in_the_resamplers_scope(restore_default_scope):
    """FPN_CARAFE's route: ``type="<its scope>.<neck>", _scope_="resamplers"`` with the literal ``carafe``."""
    cnn = pytest.importorskip("mmcv.cnn")
    scope = f"zz_det_{uuid.uuid4().hex[:8]}"
    det = Registry("model", parent=ROOT, scope=scope)
    try:

        @det.register_module()
        class Neck(torch.nn.Module):  # the parts of FPN_CARAFE that matter here
            def __init__(self, out_channels, upsample_cfg):
                super().__init__()
                assert upsample_cfg["type"] in ("nearest", "bilinear", "deconv", "pixel_shuffle", "carafe")
                self.up = cnn.build_upsample_layer(dict(upsample_cfg, channels=out_channels, scale_factor=2))
                self.conv = cnn.ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=dict(type="BN"))

        DefaultScope.get_instance(f"test-{uuid.uuid4().hex}", scope_name=scope)  # the runner's default_scope
        neck = ROOT.build(
            dict(
                type=f"{scope}.Neck",
                _scope_="resamplers",
                out_channels=8,
                upsample_cfg=dict(FPN_UPSAMPLE_CFG, type="carafe"),
            )
        )
        assert type(neck) is Neck and type(neck.up) is CARAFEPack
        assert isinstance(neck.conv.conv, torch.nn.Conv2d) and isinstance(neck.conv.bn, torch.nn.BatchNorm2d)
        assert DefaultScope.get_current_instance().scope_name == scope  # switched back
    finally:
        ROOT._children.pop(scope, None)


# ----------------------------------------------------------------------------- FLOPs


def _carafe_macs(channels, size, up_kernel=5, scale=2, compressed=64):
    """conv MACs (no bias) + reassembly N*C*k^2*sH*sW, batch 1."""
    h, w = size
    taps = up_kernel * up_kernel * scale * scale
    compressor = compressed * channels * h * w
    encoder = taps * compressed * 9 * h * w
    return compressor + encoder + channels * up_kernel * up_kernel * h * scale * w * scale


@pytest.fixture
def default_flop_table(monkeypatch):
    """A private copy of mmengine's default FLOP handles, restored after the test."""
    monkeypatch.setattr(
        complexity_analysis, "_DEFAULT_SUPPORTED_FLOP_OPS", dict(complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS)
    )


def _quiet(analyzer):
    return analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def test_complexity_info_counts_carafe_like_count_macs(default_flop_table):
    up = ROOT.build(dict(type="resamplers.carafe", channels=16)).eval()
    x = torch.randn(1, 16, 8, 8)
    expected = _carafe_macs(16, (8, 8))
    assert count_macs(up, x) == expected
    # Without the handles mmengine misses the reassembly (traced as a torch-path loop).
    assert _quiet(FlopAnalyzer(up, (x,))).total() == expected - 16 * 25 * 16 * 16
    mm.register_flop_handles()
    mm.register_flop_handles()  # idempotent
    info = get_model_complexity_info(up, input_shape=(16, 8, 8), show_table=False, show_arch=False)
    assert info["flops"] == pytest.approx(count_macs(up, x), rel=1e-9)  # fvcore: 1 multiply-add = 1 flop


def test_analyzer_handles_name_the_reassembly_and_the_similarity():
    up = ROOT.build(dict(type="resamplers.carafe", channels=8, up_kernel=3, up_group=2, scale_factor=3)).eval()
    x = torch.randn(2, 8, 4, 5)
    analyzer = _quiet(mm.register_flop_handles(FlopAnalyzer(up, (x,))))
    assert analyzer.by_operator()["reassemble"] == 2 * 8 * 9 * 12 * 15
    assert "aten::addcmul_" not in analyzer.unsupported_ops()
    assert analyzer.total() == count_macs(up, x)

    sapa = ROOT.build(dict(type="resamplers.sapa", channels=32, up_kernel=3, embedding_dim=16)).eval()
    d, encoder = torch.randn(1, 32, 4, 4), torch.randn(1, 32, 8, 8)
    ops = _quiet(mm.register_flop_handles(FlopAnalyzer(sapa, (d, encoder)))).by_operator()
    assert ops["window_similarity"] == 16 * 9 * 8 * 8
    assert ops["reassemble"] == 32 * 9 * 8 * 8
    # mmengine also counts the layer norms, which count_macs does not: compare without them.
    assert sum(ops.values()) - ops["layer_norm"] == count_macs(sapa, d, encoder)


@pytest.mark.skipif(not native_available(), reason="the custom ops need the native build")
def test_custom_op_nodes_are_counted():
    class Direct(torch.nn.Module):
        def forward(self, x, kernels, query):
            y = torch.ops.resamplers.reassemble(x, kernels, [3, 1, 2, 1, 1, 1])
            return y, torch.ops.resamplers.window_similarity(query, x, [3, 1, 2, 1, 1, 1])

    inputs = (torch.randn(1, 4, 5, 6), torch.rand(1, 9, 10, 12), torch.randn(1, 4, 10, 12))
    ops = _quiet(mm.register_flop_handles(FlopAnalyzer(Direct(), inputs))).by_operator()
    assert ops == {"reassemble": 4 * 9 * 10 * 12, "window_similarity": 4 * 9 * 10 * 12}
