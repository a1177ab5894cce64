"""HRNet (Sun, Xiao, Liu and Wang, CVPR 2019; Wang et al., TPAMI 2020): the multi-resolution
exchange unit and a backbone builder.

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
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.fx.experimental.symbolic_shapes import statically_known_true

from .._checks import check_choice, check_feature, check_int
from ..registry import UPSAMPLERS, register_block

__all__ = ["HRNetFuse", "HighResolutionModule", "HRNetStage", "HRNet", "HRNET_CONFIGS", "hrnet_config"]


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _half(n: int) -> int:
    """Size after a 3x3 stride-2 convolution with padding 1: ``ceil(n / 2)``."""
    return (n - 1) // 2 + 1


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
class HRNetFuse(nn.Module):
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
        super().__init__()
        if isinstance(channels, int) and not isinstance(channels, bool):
            channels = tuple(check_int(channels, "channels", minimum=1) * 2**j for j in range(4))
        if not isinstance(channels, Sequence) or len(channels) == 0:
            raise ValueError(f"argument `channels`: expected a width or a sequence of branch widths, got {channels!r}")
        self.channels = tuple(check_int(c, "channels", minimum=1) for c in channels)
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
        steps = [_conv_bn(c[j], c[j], 3, 2, relu=True) for _ in range(i - j - 1)]
        return nn.Sequential(*steps, _conv_bn(c[j], c[i], 3, 2, relu=False))

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Output shapes for input ``shapes`` (one ``N x C_j x H_j x W_j`` per branch)."""
        if len(shapes) != len(self.channels):
            raise ValueError(f"argument `features`: expected {len(self.channels)} maps, got {len(shapes)}")
        for j in range(1, len(shapes)):
            expected = (_half(shapes[j - 1][2]), _half(shapes[j - 1][3]))
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
            raise TypeError(f"argument `features`: expected a list of {len(channels)} tensors, got {type(features).__name__}")
        if len(features) != len(channels):
            raise ValueError(f"argument `features`: expected {len(channels)} maps (one per branch), got {len(features)}")
        for j, (x, c) in enumerate(zip(features, channels)):
            check_feature(x, f"features[{j}]", channels=c)
            if j == 0:
                continue
            prev = features[j - 1]
            if x.shape[0] != prev.shape[0]:
                raise ValueError(f"argument `features[{j}]`: expected batch size {prev.shape[0]}, got {x.shape[0]}")
            h, w = _half(prev.shape[-2]), _half(prev.shape[-1])
            # Under torch.export the sizes are symbolic: a relation it cannot prove is not checked here.
            if statically_known_true(x.shape[-2] != h) or statically_known_true(x.shape[-1] != w):
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
            y = None
            for j, path in enumerate(paths):
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


def _residual_stack(block: str, in_channels: int, width: int, num_blocks: int) -> nn.Sequential:
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
            _residual_stack(block, c, w, check_int(nb, "num_blocks", minimum=1))
            for c, w, nb in zip(channels, widths, num_blocks)
        )

    def output_shape(self, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return super().output_shape([(s[0], c, s[2], s[3]) for s, c in zip(shapes, self.channels)])

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        xs = self.check_features(features, self.in_channels)
        return self.fuse([branch(x) for branch, x in zip(self.branches, xs)])


@dataclass(frozen=True)
class HRNetStage:
    """One stage: ``num_modules`` modules of ``len(widths)`` branches."""

    num_modules: int
    num_blocks: tuple[int, ...]
    widths: tuple[int, ...]
    block: str = "basic"


def hrnet_config(width: int) -> tuple[HRNetStage, ...]:
    """HRNet-W``width`` (W18, W32, W48, ...): stage modules 1, 1, 4, 3 with 4 blocks per branch."""
    w = check_int(width, "width", minimum=1)
    return (
        HRNetStage(1, (4,), (64,), "bottleneck"),
        HRNetStage(1, (4, 4), (w, 2 * w)),
        HRNetStage(4, (4, 4, 4), (w, 2 * w, 4 * w)),
        HRNetStage(3, (4, 4, 4, 4), (w, 2 * w, 4 * w, 8 * w)),
    )


# The official experiment configs (cls_hrnet_w18_small_v{1,2}_*.yaml, seg_hrnet_w18_small_v{1,2}_*.yaml).
HRNET_CONFIGS: dict[str, tuple[HRNetStage, ...]] = {
    "w18_small_v1": (
        HRNetStage(1, (1,), (32,), "bottleneck"),
        HRNetStage(1, (2, 2), (16, 32)),
        HRNetStage(1, (2, 2, 2), (16, 32, 64)),
        HRNetStage(1, (2, 2, 2, 2), (16, 32, 64, 128)),
    ),
    "w18_small_v2": (
        HRNetStage(1, (2,), (64,), "bottleneck"),
        HRNetStage(1, (2, 2), (18, 36)),
        HRNetStage(3, (2, 2, 2), (18, 36, 72)),
        HRNetStage(2, (2, 2, 2, 2), (18, 36, 72, 144)),
    ),
    "w18": hrnet_config(18),
    "w32": hrnet_config(32),
    "w48": hrnet_config(48),
}

_TINY = (HRNetStage(1, (1,), (4,), "bottleneck"), HRNetStage(1, (1, 1), (4, 8)), HRNetStage(1, (1, 1, 1), (4, 8, 16)))


@register_block(
    "hrnet",
    example={"channels": 3, "config": _TINY},
    summary="HRNet backbone (default W18-Small-v1): multi-resolution features, any input size",
)
class HRNet(nn.Module):
    """HRNet backbone: stem, stage 1, then stages of parallel branches joined by exchange units.

    Stem: two 3x3 stride-2 convs (``channels -> 64 -> 64``, BN, ReLU; ``conv1``, ``bn1``,
    ``conv2``, ``bn2``).  Stage 1 (``layer1``) is a residual stack at 1/4 resolution.
    Before stage ``k`` (``stage{k}``), ``transition{k-1}`` adapts the existing branches
    (3x3 conv + BN + ReLU where the width changes) and adds the new, half-resolution one
    with a 3x3 stride-2 conv + BN + ReLU from the lowest-resolution branch.  Every
    stride-2 step maps ``n`` to ``ceil(n / 2)`` and the exchange units upsample to the
    target's size, so any input size works.

    Args:
        channels: input image channels (3).
        config: a name in :data:`HRNET_CONFIGS` (``"w18_small_v1"``, ``"w18_small_v2"``,
            ``"w18"``, ``"w32"``, ``"w48"``) or a sequence of :class:`HRNetStage` (the first
            has one branch).
        upsampler: the registered upsampler of every exchange unit (see :class:`HRNetFuse`).
        up_kwargs: its extra constructor arguments.

    Shape:
        ``N x channels x H x W`` -> a list, branch ``j`` ``N x width_j * expansion x H_j x W_j`` with
        ``H_0 = ceil(ceil(H / 2) / 2)`` and ``H_{j+1} = ceil(H_j / 2)``.

    Example:
        >>> net = HRNet(config="w18_small_v1")
        >>> [tuple(f.shape) for f in net(torch.randn(1, 3, 61, 45))]
        [(1, 16, 16, 12), (1, 32, 8, 6), (1, 64, 4, 3), (1, 128, 2, 2)]
    """

    def __init__(
        self,
        channels: int = 3,
        config: str | Sequence[HRNetStage] = "w18_small_v1",
        upsampler: str = "bilinear",
        up_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels", minimum=1)
        stages = HRNET_CONFIGS[check_choice(config, "config", list(HRNET_CONFIGS))] if isinstance(config, str) else config
        stages = tuple(stages)
        if len(stages) < 1 or len(stages[0].widths) != 1:
            raise ValueError("argument `config`: expected stages whose first one has a single branch")
        for k, stage in enumerate(stages[1:], start=2):
            if len(stage.widths) != len(stages[k - 2].widths) + 1:
                raise ValueError(f"argument `config`: stage {k} must add exactly one branch")
        self.stages = stages
        self.conv1 = nn.Conv2d(channels, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        first = stages[0]
        self.layer1 = _residual_stack(first.block, 64, first.widths[0], first.num_blocks[0])
        widths = [first.widths[0] * BLOCK_TYPES[first.block].expansion]
        for k, stage in enumerate(stages[1:], start=2):
            new = [w * BLOCK_TYPES[stage.block].expansion for w in stage.widths]
            self.add_module(f"transition{k - 1}", self._transition(widths, new))
            modules = []
            for _ in range(check_int(stage.num_modules, "num_modules", minimum=1)):
                module = HighResolutionModule(
                    new, stage.num_blocks, stage.widths, stage.block, upsampler=upsampler, up_kwargs=up_kwargs
                )
                modules.append(module)
                new = list(module.channels)
            self.add_module(f"stage{k}", nn.Sequential(*modules))
            widths = new
        self.out_channels = tuple(widths)
        self.reset_parameters()

    @staticmethod
    def _transition(previous: Sequence[int], current: Sequence[int]) -> nn.ModuleList:
        layers: list[nn.Module] = []
        for i, c in enumerate(current):
            if i < len(previous):
                layers.append(nn.Identity() if previous[i] == c else _conv_bn(previous[i], c, 3, 1, relu=True))
            else:
                steps = i + 1 - len(previous)
                chain = [
                    _conv_bn(previous[-1], c if s == steps - 1 else previous[-1], 3, 2, relu=True) for s in range(steps)
                ]
                layers.append(nn.Sequential(*chain))
        return nn.ModuleList(layers)

    def reset_parameters(self) -> None:
        """The classification code's initialisation: Kaiming-normal (fan out) convs, unit BN."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # Heads of the official classification code and timm (incre/downsamp/final/classifier)
    # and of the segmentation code (last_layer, and the OCR branch's heads).
    HEAD_PREFIXES = ("incre_modules", "downsamp_modules", "final_layer", "classifier", "last_layer", "aux_head",
                     "conv3x3_ocr", "ocr_", "cls_head")

    def load_backbone_state_dict(self, state_dict: Mapping[str, Tensor]) -> list[str]:
        """Load an official HRNet checkpoint (classification, segmentation or timm layout).

        Head keys (:attr:`HEAD_PREFIXES`) are dropped; every backbone key must be present
        and match (``strict`` loading).  Returns the dropped keys.
        """
        head = [k for k in state_dict if k.split(".")[0].startswith(self.HEAD_PREFIXES)]
        self.load_state_dict({k: v for k, v in state_dict.items() if k not in set(head)}, strict=True)
        return head

    def output_shape(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        n, _, h, w = shape
        h, w = _half(_half(h)), _half(_half(w))
        shapes = []
        for c in self.out_channels:
            shapes.append((n, c, h, w))
            h, w = _half(h), _half(w)
        return shapes

    def forward(self, x: Tensor) -> list[Tensor]:
        check_feature(x, "x", channels=self.channels)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for k in range(2, len(self.stages) + 1):
            transition = getattr(self, f"transition{k - 1}")
            xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
            xs = getattr(self, f"stage{k}")(xs)
        return xs

    def extra_repr(self) -> str:
        return f"channels={self.channels}, out_channels={self.out_channels}"
