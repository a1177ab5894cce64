"""Selective kernel convolution (Li, Wang, Hu and Yang, CVPR 2019): SKNet's SK unit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import check_int
from ..registry import register_block
from .base import Block

__all__ = ["SelectiveKernel", "SelectiveKernelAttention"]


class _ConvNormAct(nn.Sequential):
    """``conv`` (no bias) -> ``bn`` -> ReLU, with timm's ``ConvNormAct`` attribute names."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, dilation: int, groups: int):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()


class SelectiveKernelAttention(nn.Module):
    """Fuse and select: ``softmax_M(fc_select(relu(bn(fc_reduce(GAP(sum_m U_m))))))``.

    Takes the stacked branch outputs ``N x M x C x H x W`` and returns per-branch channel
    weights ``N x M x C x 1 x 1`` that sum to 1 over ``M``.  One ``1 x 1`` convolution with
    ``M*C`` outputs (SKNet's ``fc2``) is the paper's per-branch matrices ``A, B``
    concatenated; both 1x1 convolutions have no bias (BN follows ``fc_reduce``).
    """

    def __init__(self, channels: int, num_paths: int, attn_channels: int) -> None:
        super().__init__()
        self.num_paths = num_paths
        self.fc_reduce = nn.Conv2d(channels, attn_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(attn_channels)
        self.act = nn.ReLU()
        self.fc_select = nn.Conv2d(attn_channels, channels * num_paths, kernel_size=1, bias=False)

    def forward(self, paths: Tensor) -> Tensor:
        s = paths.sum(dim=1).mean(dim=(2, 3), keepdim=True)  # global average of U = sum of branches
        z = self.act(self.bn(self.fc_reduce(s)))
        logits = self.fc_select(z)
        n, mc = logits.shape[0], logits.shape[1]
        return logits.reshape(n, self.num_paths, mc // self.num_paths, 1, 1).softmax(dim=1)


@register_block(
    "selective_kernel",
    example={"channels": 32},
    summary="SKNet selective kernel unit: 3x3 and dilated 3x3 branches, softmax attention across branches",
)
class SelectiveKernel(Block):
    """SK convolution with the paper's defaults: SK[M=2, G=32, r=16], L=32.

    Split: ``M`` grouped ``3 x 3`` convolutions (``G`` groups) of the *full* input, the
    ``m``-th with dilation ``m + 1`` (kernel 3, 5, 7, ... realised as a dilated 3x3, as the
    official Caffe model), each followed by BN and ReLU.  Fuse: ``U = sum_m U_m``,
    global average pooling, a 1x1 conv to ``d = max(C_out // r, L)`` channels (no bias),
    BN, ReLU.  Select: a 1x1 conv to ``M * C_out`` (no bias), a softmax across the ``M``
    branches per channel, and ``V = sum_m a_m * U_m``.  With ``stride = 2`` both branch
    convolutions are strided (the first unit of an SKNet stage).

    The state-dict keys are timm's (``paths.{m}.conv``, ``paths.{m}.bn``,
    ``attn.fc_reduce``, ``attn.bn``, ``attn.fc_select``).  Differences from timm's
    ``SelectiveKernel``, whose defaults are not the paper's:

    * timm splits the input channels across the branches by default
      (``split_input=True``: each branch sees ``C / M`` channels); here every branch sees
      the full input (``split_input=False`` gives timm's behaviour);
    * timm's attention width is ``make_divisible(C_out / 16, rd_divisor=8)``, so ``L``
      is 8 unless ``rd_divisor=32`` is passed (as its ``skresnext50_32x4d`` does); here it
      is ``max(C_out // reduction, min_attn_channels)`` with ``L = 32``;
    * timm's default ``groups`` is 1 and it silently lowers ``groups`` to ``C_out``;
      here ``groups = 32`` and it must divide the channels;
    * timm takes ``kernel_size=[3, 5]`` with ``keep_3x3``; here ``dilations=(1, 2)``
      (kernel ``2 d + 1``), or real ``k x k`` kernels with ``dilate=False``.

    With ``split_input=False`` and equal widths, timm's module and this one compute the
    same function from the same state dict.

    Args:
        channels: input channels ``C``.
        out_channels: ``C_out`` (default ``C``).
        stride: stride of every branch convolution.
        num_paths: ``M`` (default 2).
        groups: ``G`` of the branch convolutions (default 32).
        reduction: ``r`` (default 16).
        min_attn_channels: ``L`` (default 32).
        dilate: dilated 3x3 branches (True, the official model) or real ``(2m+3) x (2m+3)`` kernels.
        split_input: give each branch ``C / M`` input channels (timm's default) instead of all.

    Shape:
        ``N x C x H x W`` -> ``N x C_out x H' x W'``, ``H' = floor((H - 1) / stride) + 1``.

    Example:
        >>> sk = SelectiveKernel(64)
        >>> sk(torch.randn(2, 64, 9, 7)).shape
        torch.Size([2, 64, 9, 7])
    """

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        stride: int = 1,
        num_paths: int = 2,
        groups: int = 32,
        reduction: int = 16,
        min_attn_channels: int = 32,
        dilate: bool = True,
        split_input: bool = False,
    ) -> None:
        super().__init__(channels, out_channels)
        self.stride = check_int(stride, "stride", minimum=1)
        self.num_paths = check_int(num_paths, "num_paths", minimum=1)
        check_int(groups, "groups", minimum=1)
        check_int(reduction, "reduction", minimum=1)
        check_int(min_attn_channels, "min_attn_channels", minimum=1)
        self.split_input = bool(split_input)
        in_path = channels // num_paths if split_input else channels
        if split_input and channels % num_paths:
            raise ValueError(f"argument `channels`: expected a multiple of num_paths={num_paths}, got {channels}")
        for value, name in ((in_path, "channels"), (self.out_channels, "out_channels")):
            if value % groups:
                raise ValueError(f"argument `groups`: expected a divisor of {name} ({value}), got {groups}")
        self.groups = groups
        self.attn_channels = max(self.out_channels // reduction, min_attn_channels)
        self.paths = nn.ModuleList(
            _ConvNormAct(in_path, self.out_channels, 3, stride, m + 1, groups)
            if dilate
            else _ConvNormAct(in_path, self.out_channels, 2 * m + 3, stride, 1, groups)
            for m in range(num_paths)
        )
        self.attn = SelectiveKernelAttention(self.out_channels, num_paths, self.attn_channels)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return ((size[0] - 1) // self.stride + 1, (size[1] - 1) // self.stride + 1)

    def branch_weights(self, x: Tensor) -> Tensor:
        """The attention ``N x M x C_out x 1 x 1`` (sums to 1 over ``M``) and nothing else."""
        return self.attn(self._paths(x))

    def _paths(self, x: Tensor) -> Tensor:
        self.check_input(x)
        inputs: Sequence[Tensor] = torch.chunk(x, self.num_paths, dim=1) if self.split_input else [x] * self.num_paths
        return torch.stack([path(xi) for path, xi in zip(self.paths, inputs)], dim=1)  # N M C H W

    def forward(self, x: Tensor) -> Tensor:
        paths = self._paths(x)
        return (paths * self.attn(paths)).sum(dim=1)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, stride={self.stride}, num_paths={self.num_paths}, groups={self.groups}, "
            f"attn_channels={self.attn_channels}, split_input={self.split_input}"
        )
