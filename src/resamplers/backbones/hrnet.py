"""HRNet backbone (Sun, Xiao, Liu and Wang, CVPR 2019; Wang et al., TPAMI 2020).

Stem, stage 1, then stages of parallel branches joined by the exchange units of
:mod:`resamplers.blocks.hrnet`.  Layers and state-dict keys follow the official code
(``cls_hrnet.py``, ``seg_hrnet.py``; timm's ``hrnet`` is the same layout), so backbone
weights load with :meth:`HRNet.load_backbone_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from .._checks import check_choice, check_feature, check_int
from ..base import Operator, Shape
from ..blocks.base import half_size
from ..blocks.hrnet import BLOCK_TYPES, HighResolutionModule, conv_bn, residual_stack
from ..registry import register_block

__all__ = ["HRNet", "HRNetStage", "HRNET_CONFIGS", "hrnet_config"]


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
class HRNet(Operator):
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
        super().__init__(check_int(channels, "channels", minimum=1))
        stages = (
            HRNET_CONFIGS[check_choice(config, "config", list(HRNET_CONFIGS))] if isinstance(config, str) else config
        )
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
        self.layer1 = residual_stack(first.block, 64, first.widths[0], first.num_blocks[0])
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
        self.branch_channels = tuple(widths)
        self.reset_parameters()

    @staticmethod
    def _transition(previous: Sequence[int], current: Sequence[int]) -> nn.ModuleList:
        layers: list[nn.Module] = []
        for i, c in enumerate(current):
            if i < len(previous):
                layers.append(nn.Identity() if previous[i] == c else conv_bn(previous[i], c, 3, 1, relu=True))
            else:
                steps = i + 1 - len(previous)
                chain = [
                    conv_bn(previous[-1], c if s == steps - 1 else previous[-1], 3, 2, relu=True) for s in range(steps)
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
    HEAD_PREFIXES = (
        "incre_modules",
        "downsamp_modules",
        "final_layer",
        "classifier",
        "last_layer",
        "aux_head",
        "conv3x3_ocr",
        "ocr_",
        "cls_head",
    )

    def load_backbone_state_dict(self, state_dict: Mapping[str, Tensor]) -> list[str]:
        """Load an official HRNet checkpoint (classification, segmentation or timm layout).

        Head keys (:attr:`HEAD_PREFIXES`) are dropped; every backbone key must be present
        and match (``strict`` loading).  Returns the dropped keys.
        """
        head = [k for k in state_dict if k.split(".")[0].startswith(self.HEAD_PREFIXES)]
        self.load_state_dict({k: v for k, v in state_dict.items() if k not in set(head)}, strict=True)
        return head

    @property
    def out_channels(self) -> tuple[int, ...]:  # type: ignore[override]
        """Channels of each output branch, highest resolution first."""
        return self.branch_channels

    def output_shapes(self, shapes: Sequence[Shape]) -> list[Shape]:
        n, _, h, w = shapes[0]
        h, w = half_size(half_size(h)), half_size(half_size(w))
        shapes = []
        for c in self.out_channels:
            shapes.append((n, c, h, w))
            h, w = half_size(h), half_size(w)
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
