"""Strip pooling (Hou, Zhang, Cheng and Feng, CVPR 2020): SPNet's SPM and MPM.

Both modules reproduce the official code (houqb/SPNet, formerly Andrew-Qibin/SPNet)
layer for layer with the same state-dict keys, so its checkpoints load with
``load_state_dict``: the strip pooling module is ``SPBlock`` in ``models/resnet.py``, the
mixed pooling module is the class confusingly named ``StripPooling`` in
``models/customize.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int
from ..functional.adaptive_pool import adaptive_avg_pool2d
from ..registry import register_block
from .base import Block

__all__ = ["StripPooling", "MixedPoolingModule"]


def _conv_bn(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], padding: int | tuple[int, int], relu: bool
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@register_block(
    "strip_pooling", example={"channels": 8}, summary="SPNet strip pooling module (SPM): 1xN/Nx1 pools gate the input"
)
class StripPooling(Block):
    """Strip pooling module (SPM), official ``SPBlock(C, C)``, applied as a gate: ``x * gate(x)``.

    ``gate(x)`` (the official module's output) is

    * a column strip: the mean over the width (``H x 1``), a ``3 x 1`` conv (``conv1``,
      ``C -> C``, no bias, full channel mixing) and BN (``bn1``);
    * a row strip: the mean over the height (``1 x W``), a ``1 x 3`` conv (``conv2``) and
      BN (``bn2``);
    * both broadcast (``expand``, not interpolation) to ``H x W`` and summed, ReLU, a 1x1
      conv with bias (``conv3``) and a sigmoid.

    In SPNet the caller multiplies (``out = out * self.spm(out)`` inside the bottleneck,
    after ``conv2/bn2/relu``); this block returns that product.

    Args:
        channels: ``C`` (input, strip and output channels, as the official ``SPBlock(planes, planes)``).

    Shape:
        ``N x C x H x W`` -> ``N x C x H x W``.

    Example:
        >>> spm = StripPooling(8)
        >>> spm(torch.randn(2, 8, 5, 7)).shape
        torch.Size([2, 8, 5, 7])
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=(3, 1), padding=(1, 0), bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=(1, 3), padding=(0, 1), bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=1, bias=True)

    def gate(self, x: Tensor) -> Tensor:
        """The official ``SPBlock`` output: a ``N x C x H x W`` gate in ``(0, 1)``."""
        self.check_input(x)
        n, c, h, w = x.shape
        column = self.bn1(self.conv1(x.mean(dim=-1, keepdim=True)))  # N C H 1
        row = self.bn2(self.conv2(x.mean(dim=-2, keepdim=True)))  # N C 1 W
        fused = F.relu(column.expand(-1, -1, h, w) + row.expand(-1, -1, h, w))
        return torch.sigmoid(self.conv3(fused))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


@register_block(
    "mixed_pooling_module",
    example={"channels": 8},
    summary="SPNet mixed pooling module (MPM): pyramid pools (20, 12) + strip pools, residual",
)
class MixedPoolingModule(Block):
    """Mixed pooling module (MPM), the official ``StripPooling(C, pool_size, BatchNorm2d, up_kwargs)``.

    With ``C_i = C // 4``, ``conv1_1``/``conv1_2`` (1x1, BN, ReLU) split the input into two
    branches.  Short range, on the first: a 3x3 conv + BN (``conv2_0``) plus, for each of
    the two pyramid sizes, an adaptive average pool to ``s x s``, a 3x3 conv + BN
    (``conv2_1``, ``conv2_2``) and bilinear upsampling back to ``H x W``; summed, ReLU,
    3x3 conv + BN + ReLU (``conv2_5``).  Long range, on the second: strip pools to
    ``1 x W`` and ``H x 1``, a ``1x3`` / ``3x1`` conv + BN (``conv2_3`` / ``conv2_4``),
    upsampled, summed, ReLU, 3x3 conv + BN + ReLU (``conv2_6``).  The two are concatenated,
    projected back to ``C`` (``conv3``: 1x1 + BN) and added to the input, then ReLU.

    ``pool_sizes = (20, 12)`` is the official choice for a dilated backbone (output
    stride 8: 60 x 60 maps at 480 x 480 crops); smaller maps are pooled "up" (adaptive
    bins repeat pixels), exactly as the official code does.  Bilinear upsampling uses
    ``align_corners = True`` as the official ``up_kwargs``.  The adaptive pools export to
    ONNX for any size (see :mod:`resamplers.functional.adaptive_pool`).

    Args:
        channels: ``C`` (at least 4).
        pool_sizes: the two pyramid sizes (default ``(20, 12)``).
        align_corners: of the bilinear upsampling (default True, the official setting).

    Shape:
        ``N x C x H x W`` -> ``N x C x H x W``.

    Example:
        >>> mpm = MixedPoolingModule(16)
        >>> mpm(torch.randn(1, 16, 9, 11)).shape
        torch.Size([1, 16, 9, 11])
    """

    def __init__(self, channels: int, pool_sizes: Sequence[int] = (20, 12), align_corners: bool = True) -> None:
        super().__init__(check_int(channels, "channels", minimum=4))
        if len(pool_sizes) != 2:
            raise ValueError(f"argument `pool_sizes`: expected two pyramid sizes, got {pool_sizes!r}")
        self.pool_sizes = tuple(check_int(s, "pool_sizes", minimum=1) for s in pool_sizes)
        if not isinstance(align_corners, bool):
            raise TypeError(f"argument `align_corners`: expected a bool, got {align_corners!r}")
        self.align_corners = align_corners
        inter = channels // 4
        self.conv1_1 = _conv_bn(channels, inter, 1, 0, relu=True)
        self.conv1_2 = _conv_bn(channels, inter, 1, 0, relu=True)
        self.conv2_0 = _conv_bn(inter, inter, 3, 1, relu=False)
        self.conv2_1 = _conv_bn(inter, inter, 3, 1, relu=False)
        self.conv2_2 = _conv_bn(inter, inter, 3, 1, relu=False)
        self.conv2_3 = _conv_bn(inter, inter, (1, 3), (0, 1), relu=False)
        self.conv2_4 = _conv_bn(inter, inter, (3, 1), (1, 0), relu=False)
        self.conv2_5 = _conv_bn(inter, inter, 3, 1, relu=True)
        self.conv2_6 = _conv_bn(inter, inter, 3, 1, relu=True)
        self.conv3 = _conv_bn(2 * inter, channels, 1, 0, relu=False)

    def _up(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        size = (x.shape[-2], x.shape[-1])
        short, long = self.conv1_1(x), self.conv1_2(x)
        local = self.conv2_0(short)
        pyramid_a = self._up(self.conv2_1(adaptive_avg_pool2d(short, self.pool_sizes[0])), size)
        pyramid_b = self._up(self.conv2_2(adaptive_avg_pool2d(short, self.pool_sizes[1])), size)
        row = self._up(self.conv2_3(adaptive_avg_pool2d(long, (1, None))), size)
        column = self._up(self.conv2_4(adaptive_avg_pool2d(long, (None, 1))), size)
        short = self.conv2_5(F.relu(local + pyramid_a + pyramid_b))
        long = self.conv2_6(F.relu(column + row))
        return F.relu(x + self.conv3(torch.cat([short, long], dim=1)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pool_sizes={self.pool_sizes}, align_corners={self.align_corners}"
