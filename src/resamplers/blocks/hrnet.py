"""HRNet (Sun, Xiao, Liu and Wang, CVPR 2019; Wang et al., TPAMI 2020): the multi-resolution
exchange unit and the modules the backbone (:mod:`resamplers.backbones.hrnet`) stacks.

Layers and state-dict keys follow the official code (HRNet/HRNet-Image-Classification
``cls_hrnet.py``, HRNet/HRNet-Semantic-Segmentation ``seg_hrnet.py``; timm's ``hrnet``
is the same layout), so their backbone weights load with ``load_state_dict`` (the
classification or segmentation head is not part of the backbone: load with
``strict=False`` or drop those keys).  Two differences make any input size work:

* lower-to-higher paths upsample to the *size of the target branch* (the segmentation
  code's ``F.interpolate(size=...)``), not by a fixed factor (the classification code's
  ``nn.Upsample(scale_factor)``, which breaks when a stride-2 layer rounded up: inputs not
  divisible by 32);
* the upsampling operator is any registered upsampler, taken by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from torch import Tensor, nn

from .._checks import check_choice, check_feature, check_int
from ..base import Shape
from ..core.geometry import known_true
from ..registry import UPSAMPLERS, register_block
from .base import MultiResolutionBlock, half_size

__all__ = ["HRNetFuse", "HighResolutionModule", "BLOCK_TYPES", "conv_bn", "residual_stack"]


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _ProjectUp(nn.Sequential):
    """Lower to higher resolution: 1x1 conv + BN (indices 0, 1 as the official code), then the
    upsampler (index 2, where the classification code has ``nn.Upsample``) to a reference size."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, upsampler: str, up_kwargs: Mapping[str, Any]):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_channels),
            UPSAMPLERS.create(upsampler, channels=out_channels, scale_factor=scale, **dict(up_kwargs)),
        )

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:  # type: ignore[override]
        conv, norm, up = self
        return up.upsample_to(norm(conv(x)), size)


@register_block(
    "hrnet_fuse",
    example={"channels": (4, 8, 16)},
    summary="HRNet exchange unit: 1x1+BN+upsample (registry, to the reference size) / strided 3x3 chains, summed",
)
class HRNetFuse(MultiResolutionBlock):
    """HRNet's exchange unit: every output branch sums all input branches brought to its resolution.

    For output branch ``i`` and input branch ``j`` (branch ``j`` has half the resolution
    of branch ``j - 1``):

    * ``j > i`` (lower to higher): 1x1 conv ``C_j -> C_i`` + BN, then the upsampler
      ``upsampler`` (scale ``2^(j-i)``) to exactly the size of branch ``i``;
    * ``j == i``: identity;
    * ``j < i`` (higher to lower): ``i - j`` 3x3 stride-2 convs + BN; the intermediate
      ones keep ``C_j`` channels and end with ReLU, the last maps to ``C_i`` without ReLU.

    The sum (in order ``j = 0, 1, ...``) goes through a ReLU.  With a single branch the
    unit is the identity (the official module has no fuse layers then).  The layers sit
    in ``fuse_layers[i][j]`` as in the official ``HighResolutionModule``.

    Branch ``j + 1`` must be the size a 3x3 stride-2 convolution gives from branch ``j``:
    ``ceil(H_j / 2) x ceil(W_j / 2)``, any ``H_0, W_0``.

    Args:
        channels: ``C_j`` for every input branch, highest resolution first; an int ``W``
            means HRNet's four branches ``(W, 2W, 4W, 8W)``.
        num_outputs: output branches (default all; 1 is the official ``multi_scale_output=False``).
        upsampler: name of a registered upsampler (``"bilinear"``: HRNet-Semantic-Segmentation
            with ``align_corners=False``, its Cityscapes/ADE20K configs; ``"nearest"``: the
            classification, pose and timm models).
        up_kwargs: extra constructor arguments of the upsampler (e.g. ``{"align_corners": True}``).

    Shape:
        ``[N x C_j x H_j x W_j for each branch j]`` -> ``[N x C_i x H_i x W_i for i < num_outputs]``.

    Example:
        >>> fuse = HRNetFuse((8, 16, 32))
        >>> xs = [torch.randn(1, 8, 15, 9), torch.randn(1, 16, 8, 5), torch.randn(1, 32, 4, 3)]
        >>> [tuple(y.shape) for y in fuse(xs)]
        [(1, 8, 15, 9), (1, 16, 8, 5), (1, 32, 4, 3)]
    """

    def __init__(
        self,
        channels: int | Sequence[int],
        num_outputs: int | None = None,
        upsampler: str = "bilinear",
        up_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(channels, int) and not isinstance(channels, bool):
            channels = tuple(check_int(channels, "channels", minimum=1) * 2**j for j in range(4))
        if not isinstance(channels, Sequence) or len(channels) == 0:
            raise ValueError(f"argument `channels`: expected a width or a sequence of branch widths, got {channels!r}")
        super().__init__(channels)
        b = len(self.channels)
        self.num_outputs = b if num_outputs is None else check_int(num_outputs, "num_outputs", minimum=1)
        if self.num_outputs > b:
            raise ValueError(f"argument `num_outputs`: expected at most {b} (the branches), got {num_outputs}")
        check_choice(upsampler, "upsampler", UPSAMPLERS.names())
        self.upsampler, self.up_kwargs = upsampler, dict(up_kwargs or {})
        self.fuse_layers = nn.ModuleList()
        if b > 1:
            for i in range(self.num_outputs):
                self.fuse_layers.append(nn.ModuleList(self._path(i, j) for j in range(b)))
        self.relu = nn.ReLU()

    def _path(self, i: int, j: int) -> nn.Module:
        c = self.channels
        if j > i:
            return _ProjectUp(c[j], c[i], 2 ** (j - i), self.upsampler, self.up_kwargs)
        if j == i:
            return nn.Identity()
        steps = [conv_bn(c[j], c[j], 3, 2, relu=True) for _ in range(i - j - 1)]
        return nn.Sequential(*steps, conv_bn(c[j], c[i], 3, 2, relu=False))

    @property
    def out_channels(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self.channels[: self.num_outputs])  # type: ignore[index]

    def output_shapes(self, shapes: Sequence[Shape]) -> list[Shape]:
        """Output shapes for input ``shapes`` (one ``N x C_j x H_j x W_j`` per branch)."""
        if len(shapes) != len(self.channels):
            raise ValueError(f"argument `features`: expected {len(self.channels)} maps, got {len(shapes)}")
        for j in range(1, len(shapes)):
            expected = (half_size(shapes[j - 1][2]), half_size(shapes[j - 1][3]))
            if tuple(shapes[j][2:]) != expected:
                raise ValueError(
                    f"argument `features[{j}]`: expected spatial size {expected[0]} x {expected[1]} "
                    f"(ceil of half of branch {j - 1}), got {shapes[j][2]} x {shapes[j][3]}"
                )
        return [(shapes[i][0], self.channels[i], shapes[i][2], shapes[i][3]) for i in range(self.num_outputs)]

    def check_features(self, features: Sequence[Tensor], channels: Sequence[int] | None = None) -> list[Tensor]:
        """Validate the branch maps: count, rank, channels, batch and sizes; returns them as a list."""
        channels = self.channels if channels is None else channels
        if isinstance(features, Tensor) or not isinstance(features, Sequence):
            raise TypeError(
                f"argument `features`: expected a list of {len(channels)} tensors, got {type(features).__name__}"
            )
        if len(features) != len(channels):
            raise ValueError(
                f"argument `features`: expected {len(channels)} maps (one per branch), got {len(features)}"
            )
        for j, (x, c) in enumerate(zip(features, channels)):
            check_feature(x, f"features[{j}]", channels=c)
            if j == 0:
                continue
            prev = features[j - 1]
            if x.shape[0] != prev.shape[0]:
                raise ValueError(f"argument `features[{j}]`: expected batch size {prev.shape[0]}, got {x.shape[0]}")
            h, w = half_size(prev.shape[-2]), half_size(prev.shape[-1])
            # Under torch.export the sizes are symbolic: a relation it cannot prove is not checked here.
            if known_true(x.shape[-2] != h) or known_true(x.shape[-1] != w):
                raise ValueError(
                    f"argument `features[{j}]`: expected spatial size {h} x {w} (ceil of half of branch {j - 1}), "
                    f"got {x.shape[-2]} x {x.shape[-1]}"
                )
        return list(features)

    def fuse(self, xs: Sequence[Tensor]) -> list[Tensor]:
        """The exchange itself, on already validated maps."""
        if len(self.fuse_layers) == 0:
            return list(xs)
        outputs = []
        for i, paths in enumerate(self.fuse_layers):
            size = (xs[i].shape[-2], xs[i].shape[-1])
            y: Tensor | None = None
            for j, path in enumerate(cast(nn.ModuleList, paths)):
                z = path(xs[j], size) if j > i else path(xs[j])
                y = z if y is None else y + z
            outputs.append(self.relu(y))
        return outputs

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        return self.fuse(self.check_features(features))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_outputs={self.num_outputs}, upsampler={self.upsampler!r}"


class BasicBlock(nn.Module):
    """ResNet basic block with the official HRNet attribute names."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (expansion 4) with the official HRNet attribute names."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


BLOCK_TYPES: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def residual_stack(block: str, in_channels: int, width: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` blocks; the first projects the shortcut (1x1 conv + BN) when the width changes."""
    cls = BLOCK_TYPES[block]
    out_channels = width * cls.expansion
    downsample = None
    if in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
    layers = [cls(in_channels, width, 1, downsample)]
    layers += [cls(out_channels, width) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(HRNetFuse):
    """One HRNet module: a residual stack per branch, then the exchange unit (:class:`HRNetFuse`).

    Args:
        channels: input channels per branch.
        num_blocks: residual blocks per branch.
        widths: block widths per branch (output channels are ``width * expansion``).
        block: ``"basic"`` or ``"bottleneck"``.
        num_outputs: output branches (default all).
        upsampler: registered upsampler of the exchange unit.
        up_kwargs: its extra constructor arguments.

    Shape:
        ``[N x C_j x H_j x W_j]`` -> ``[N x width_i * expansion x H_i x W_i for i < num_outputs]``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        num_blocks: Sequence[int],
        widths: Sequence[int],
        block: str = "basic",
        num_outputs: int | None = None,
        upsampler: str = "bilinear",
        up_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        check_choice(block, "block", list(BLOCK_TYPES))
        if not len(channels) == len(num_blocks) == len(widths):
            raise ValueError(
                f"argument `widths`: expected one entry per branch for channels, num_blocks and widths, "
                f"got {len(channels)}, {len(num_blocks)}, {len(widths)}"
            )
        expansion = BLOCK_TYPES[block].expansion
        super().__init__([w * expansion for w in widths], num_outputs, upsampler, up_kwargs)
        self.in_channels = tuple(channels)
        self.branches = nn.ModuleList(
            residual_stack(block, c, w, check_int(nb, "num_blocks", minimum=1))
            for c, w, nb in zip(channels, widths, num_blocks)
        )

    def input_channels(self) -> tuple[int | None, ...]:
        return self.in_channels

    def output_shapes(self, shapes: Sequence[Shape]) -> list[Shape]:
        return super().output_shapes([(s[0], c, s[2], s[3]) for s, c in zip(shapes, self.channels)])

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        xs = self.check_features(features, self.in_channels)
        return self.fuse([branch(x) for branch, x in zip(self.branches, xs)])
