"""Atrous spatial pyramid pooling with depthwise-separable branches (IndexNet's context module)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ASPP"]

DILATIONS = {32: (1, 2, 4, 8), 16: (1, 6, 12, 18), 8: (1, 12, 24, 36)}


def _separable_branch(inp: int, oup: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, 1, padding=dilation, dilation=dilation, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU6(inplace=True),
        nn.Conv2d(inp, oup, 1, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


class _Branch(nn.Module):
    def __init__(self, body: nn.Sequential) -> None:
        super().__init__()
        self.atrous_conv = body

    def forward(self, x: Tensor) -> Tensor:
        return self.atrous_conv(x)


class ASPP(nn.Module):
    """ASPP: a 1x1 branch, three dilated depthwise-separable 3x3 branches, image pooling,
    a 1x1 bottleneck and dropout 0.5.

    Args:
        inp: input channels.
        oup: output channels.
        mid: channels of each branch (256 in the official model).
        output_stride: 32, 16 or 8; selects the dilations.

    Shape:
        ``N x inp x H x W`` -> ``N x oup x H x W``.
    """

    def __init__(self, inp: int, oup: int, mid: int = 256, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in DILATIONS:
            raise ValueError(f"argument `output_stride`: expected one of {sorted(DILATIONS)}, got {output_stride}")
        d = DILATIONS[output_stride]
        self.aspp1 = _Branch(
            nn.Sequential(nn.Conv2d(inp, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True))
        )
        self.aspp2 = _Branch(_separable_branch(inp, mid, d[1]))
        self.aspp3 = _Branch(_separable_branch(inp, mid, d[2]))
        self.aspp4 = _Branch(_separable_branch(inp, mid, d[3]))
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(inp, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True)
        )
        self.bottleneck_conv = nn.Sequential(
            nn.Conv2d(5 * mid, oup, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU6(inplace=True)
        )
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: Tensor) -> Tensor:
        # Broadcasting the pooled 1x1 map equals nearest interpolation to H x W.
        pooled = self.global_avg_pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        branches = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x), pooled]
        return self.dropout(self.bottleneck_conv(torch.cat(branches, dim=1)))
