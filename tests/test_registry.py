"""Registry and factories: names, close matches, keyword checking, variants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resamplers
from resamplers.registry import Registry


def test_lists_are_sorted_and_complete():
    names = resamplers.list_upsamplers()
    assert names == sorted(names)
    assert set(names) >= {"bilinear", "carafe", "deconv", "nearest", "pixel_shuffle"}
    assert set(names) >= {"dysample", "dysample_plus", "dysample_s", "dysample_s_plus"}
    assert set(resamplers.list_downsamplers()) >= {"max", "avg", "strided_conv"}


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="did you mean 'bilinear'"):
        resamplers.create_upsampler("billinear")


def test_wrong_keyword_is_type_error_naming_it():
    with pytest.raises(TypeError, match="'align_corner'.*did you mean 'align_corners'"):
        resamplers.create_upsampler("bilinear", align_corner=True)


def test_every_operator_is_typed_and_documented():
    for registry in (resamplers.registry.UPSAMPLERS, resamplers.registry.DOWNSAMPLERS):
        for entry in registry:
            assert issubclass(entry.cls, nn.Module)
            assert "Shape:" in (entry.cls.__doc__ or ""), entry.name
            keywords = entry.accepted_keywords()
            assert keywords[:2] == ["channels", "scale_factor"], entry.name
            annotations = entry.cls.__init__.__annotations__
            assert all(k in annotations for k in keywords), entry.name


def test_variants_fix_their_defaults():
    registry = Registry("widget")

    class Widget(nn.Module):
        def __init__(self, channels: int, flag: bool = False) -> None:
            super().__init__()
            self.flag = flag

    registry.add("widget", Widget)
    registry.add("widget_flag", Widget, defaults={"flag": True})
    assert registry.create("widget_flag", channels=3).flag is True
    with pytest.raises(TypeError, match="fixed"):
        registry.create("widget_flag", channels=3, flag=False)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("widget", Widget)
    with pytest.raises(TypeError, match="not arguments"):
        registry.add("bad", Widget, defaults={"nope": 1})


def test_bilinear_align_corners_is_explicit():
    x = torch.randn(1, 2, 3, 4)
    a = resamplers.create_upsampler("bilinear")(x)
    b = resamplers.create_upsampler("bilinear", align_corners=True)(x)
    assert not torch.allclose(a, b)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(a, expected)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_deconv_and_pixel_shuffle_give_exact_scale(scale):
    x = torch.randn(1, 4, 5, 3)
    for name in ("deconv", "pixel_shuffle"):
        assert resamplers.create_upsampler(name, channels=4, scale_factor=scale)(x).shape == (
            1,
            4,
            5 * scale,
            3 * scale,
        )


def test_overlapping_pool_windows():
    x = torch.randn(1, 3, 9, 8)
    pool = resamplers.create_downsampler("max", kernel_size=3, stride=2, padding=1)
    torch.testing.assert_close(pool(x), torch.nn.functional.max_pool2d(x, 3, 2, 1))
    with pytest.raises(ValueError, match="`padding`"):
        resamplers.create_downsampler("avg", kernel_size=2, padding=2)
