"""The stride-free MobileNetV2 encoder of the IndexNet matting network.

All native strides are set to 1 (downsampling is left to the resampler pairs placed
between stages), the stem takes 4 channels (RGB + trimap), and every 3x3 convolution is
padded explicitly, as in the official IndexNet code.  A width multiplier scales every
stage for CPU-sized runs.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["conv_bn_relu6", "InvertedResidual", "MobileNetV2Stages", "STAGE_SETTINGS", "scaled"]

# (expand ratio, output channels, blocks) of MobileNetV2's seven bottleneck stages.
STAGE_SETTINGS: tuple[tuple[int, int, int], ...] = (
    (1, 16, 1),
    (6, 24, 2),
    (6, 32, 3),
    (6, 64, 4),
    (6, 96, 3),
    (6, 160, 3),
    (6, 320, 1),
)
STEM_CHANNELS = 32


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (truncated, as the official code)."""
    return max(1, int(channels * width))


def conv_bn_relu6(inp: int, oup: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """``Conv(k, no bias, 'same' padding) -> BN -> ReLU6`` (state-dict keys ``0.*``, ``1.*``)."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel_size, stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck at stride 1: expand 1x1, depthwise 3x3 (explicit padding), project 1x1.

    Shape:
        ``N x inp x H x W`` -> ``N x oup x H x W``; residual when ``inp == oup``.
    """

    def __init__(self, inp: int, oup: int, expand_ratio: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_residual = inp == oup
        self.dilation = dilation
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, 1, 0, dilation, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        pad = self.dilation  # (3 + 2(d - 1) - 1) / 2 on each side
        out = self.conv(F.pad(x, (pad, pad, pad, pad)))
        return x + out if self.use_residual else out


class MobileNetV2Stages(nn.Module):
    """Stem (``layer0``) and the seven bottleneck stages (``layer1`` .. ``layer7``), all at stride 1.

    Args:
        in_channels: input channels (4: RGB + trimap).
        width: width multiplier.

    Attributes:
        channels: output channels of ``layer0`` .. ``layer7``.
    """

    def __init__(self, in_channels: int = 4, width: float = 1.0) -> None:
        super().__init__()
        stem = scaled(STEM_CHANNELS, width)
        self.layer0 = conv_bn_relu6(in_channels, stem, 3, 1)
        self.channels = [stem]
        inp = stem
        for index, (expand, out, blocks) in enumerate(STAGE_SETTINGS, start=1):
            oup = scaled(out, width)
            stage = nn.Sequential(*[InvertedResidual(inp if i == 0 else oup, oup, expand) for i in range(blocks)])
            self.add_module(f"layer{index}", stage)
            self.channels.append(oup)
            inp = oup
