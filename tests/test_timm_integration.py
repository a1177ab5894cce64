"""resamplers.integrations.timm against the real timm: anti-aliasing layers and classifier pools.

The only torchvision release for torch 2.13 on this machine's index is the CUDA build.  Its
compiled operators cannot load next to the CPU torch, and its Python side registers fake
kernels for two of them (``torchvision::nms``, ``torchvision::qnms``) at import, which then
fails.  :func:`_import_timm` defines those two schemas (no kernels) when, and only when,
that is the failure; timm's models and layers never call them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest
import torch
from torch import nn

from resamplers import create_downsampler, create_pool
from resamplers.export.pipeline import check_onnx, export_onnx


def _import_timm():
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed (pip install 'resamplers[timm]')", allow_module_level=True)
    try:
        return importlib.import_module("timm")
    except RuntimeError as error:
        if "torchvision::nms does not exist" not in str(error):
            raise
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(library)
    for stale in [name for name in list(sys.modules) if name.split(".")[0] in ("torchvision", "timm")]:
        del sys.modules[stale]
    return importlib.import_module("timm")


_KEEP: list[object] = []
timm = _import_timm()
integration = importlib.import_module("resamplers.integrations.timm")
aa_layer, set_global_pool = integration.aa_layer, integration.set_global_pool

AA_POOLS = ["blur", "softpool", "avgmax", "gem", "lp", "max", "median", "mixed"]
CLASSIFIER_POOLS = ["gap", "gmp", "gem", "avgmax", "catavgmax", "netvlad", "spp_bins"]


def _resnet(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=5, **kwargs)


def _ort_outputs(model_proto, x: torch.Tensor) -> torch.Tensor:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: x.numpy()})[0])


@pytest.mark.parametrize("name", AA_POOLS)
def test_aa_layer_builds_into_resnet_forward_and_backward(name: str) -> None:
    model = _resnet(aa_layer=aa_layer(name))
    layers = [m for m in model.modules() if isinstance(m, integration.AntiAliasing)]
    # The stem and the first block of stages 2-4 downsample.
    assert len(layers) == 4
    block = model.layer2[0]
    assert block.conv2.stride == (1, 1) and isinstance(block.aa, integration.AntiAliasing)
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 5)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for parameter in model.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()


def test_aa_layer_is_the_library_downsampler() -> None:
    layer = aa_layer("softpool")(channels=16, stride=2)
    x = torch.randn(2, 16, 12, 12)
    torch.testing.assert_close(layer(x), create_downsampler("softpool", channels=16, scale_factor=2)(x))
    assert layer(x).shape == (2, 16, 6, 6)


def test_aa_layer_blur_equals_timm_blurpool() -> None:
    """timm's own BlurPool2d (binomial filter, reflect padding) and ours with its filter size.

    At odd sizes both pad ``(k - 1) / 2`` a side.  At even sizes they differ on purpose:
    ours pads ``(k - 2) / 2`` before and ``k / 2`` after (the official antialiased-cnns
    code), timm ``k / 2`` on both sides, so timm's output is one larger on odd inputs.
    """
    from timm.layers import BlurPool2d

    x = torch.randn(2, 8, 13, 14)
    for size in (3, 5, 7):
        ours = aa_layer("blur", filt_size=size)(channels=8, stride=2)
        theirs = BlurPool2d(channels=8, filt_size=size, stride=2)
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-6)


def test_aa_layer_keywords_reach_the_operator_and_bad_ones_are_named() -> None:
    layer = aa_layer("gem", p=2.0, learn_p=False)(channels=4, stride=2)
    x = torch.rand(1, 4, 8, 8) + 0.1
    torch.testing.assert_close(layer(x), torch.nn.functional.lp_pool2d(x, 2.0, 2) / 2.0)
    with pytest.raises(ValueError, match="name: 'catavgmax' turns 8 channels into 16"):
        aa_layer("catavgmax")
    with pytest.raises(ValueError, match="softpol"):
        aa_layer("softpol")
    with pytest.raises(TypeError, match="filter_size"):
        aa_layer("blur", filter_size=3)
    with pytest.raises(TypeError, match="'scale_factor' is set by timm"):
        aa_layer("blur", scale_factor=2)
    with pytest.raises(TypeError, match="base class"):
        integration.AntiAliasing(channels=4)


def test_aa_layer_model_exports_to_onnx_and_matches_eager() -> None:
    model = _resnet(aa_layer=aa_layer("blur")).eval()
    x = torch.randn(1, 3, 64, 64)
    proto = check_onnx(export_onnx(model, (x,), dynamic=False))
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(_ort_outputs(proto, x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", CLASSIFIER_POOLS)
def test_global_pool_replaces_the_resnet_classifier_pool(name: str) -> None:
    model = set_global_pool(_resnet(), name)
    features = torch.randn(2, 512, 3, 3, requires_grad=True)
    pool = create_pool(name, channels=512)
    pool.load_state_dict(model.global_pool.pool.state_dict())
    expected = model.get_classifier()(pool(features).flatten(1))
    torch.testing.assert_close(model.forward_head(features), expected)
    assert model.get_classifier().in_features == pool(features).flatten(1).shape[1]
    x = torch.randn(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, 5)
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.global_pool.parameters())
    assert model.get_classifier().weight.grad is not None


def test_global_pool_keeps_4d_heads_and_refuses_what_does_not_fit() -> None:
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=3)
    set_global_pool(model, "gem", p=4.0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ValueError, match="keeps the pooled map 4-D"):
        set_global_pool(model, "netvlad")
    with pytest.raises(ValueError, match="cannot take 'catavgmax'"):
        set_global_pool(model, "catavgmax")
    # A refused pool leaves the model as it was.
    assert model.state_dict().keys() == before.keys()
    assert model.head.global_pool.pool_type == "resamplers.gem"
    with pytest.raises(ValueError, match="must give one vector a map"):
        set_global_pool(_resnet(), "sppf")
    with pytest.raises(ValueError, match="SelectAdaptivePool2d"):
        set_global_pool(timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32), "gem")
    with pytest.raises(TypeError, match="num_features"):
        set_global_pool(_resnet(), "gem", channels=3)


def test_global_pool_model_exports_to_onnx_and_matches_eager() -> None:
    model = set_global_pool(_resnet(), "gem").eval()
    x = torch.randn(1, 3, 64, 64)
    proto = check_onnx(export_onnx(model, (x,), dynamic=False))
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(_ort_outputs(proto, x), expected, rtol=1e-4, atol=1e-4)
