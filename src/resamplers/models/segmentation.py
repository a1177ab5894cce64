"""Semantic segmentation networks whose every upsampling step is the operator under test.

Decoder: UPerNet-lite. A pyramid context module (ASPP, the dilated relative of UPerNet's
pyramid pooling) on the stride-32 feature, then a top-down path that, at every stride from
32 to 1, upsamples with the pair's ``up`` and fuses the lateral encoder feature (concatenate,
conv, BN, ReLU6); a 1x1 classifier at full resolution. Why this decoder: the upsampler
papers (CARAFE, IndexNet, A2U, FADE, SAPA, DySample) change exactly the upsampling of such a
top-down path, and here each guided pair's ``up`` receives the guide of its own ``down``
once, as the pair defines it. UPerNet's fusion of every pyramid level at stride 4 is left
out: it would upsample each guide's feature several times.

Backbone: the project's MobileNetV2 at stride 1, downsampling with the pair's ``down`` at
strides 2-32 (as the matting network), so guided pairs (IndexNet, A2U, max unpooling, FADE,
SAPA) get the guide of the lateral encoder feature.

Input: ImageNet-normalised RGB ``N x 3 x H x W`` (``H``, ``W`` multiples of 32); output:
``N x num_classes x H x W`` logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor, nn

from .._checks import check_feature, check_int
from ..registry import PAIRS
from .matting import IMAGE_MEAN, IMAGE_STD, PairedEncoderDecoder

__all__ = [
    "SegmentationConfig",
    "SegmentationNet",
    "create_segmentation_model",
    "segmentation_inputs",
]

BACKBONES = ("mobilenetv2",)


def segmentation_inputs(image: Tensor) -> Tensor:
    """ImageNet-normalised RGB: ``N x 3 x H x W`` in [0, 1] -> the network input."""
    check_feature(image, "image", channels=3)
    mean = image.new_tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (image - mean) / std


@dataclass
class SegmentationConfig:
    """Everything needed to rebuild a segmentation network (stored in checkpoints).

    ``init_like`` concerns initialisation only (as :class:`~resamplers.models.MattingConfig`).
    ``backbone`` is ``"mobilenetv2"`` (the only one so far).
    """

    pair: str = "bilinear"
    num_classes: int = 8
    width: float = 0.5
    backbone: str = "mobilenetv2"
    aspp: bool = True
    decoder_kernel: int = 3
    pair_kwargs: dict[str, Any] = field(default_factory=dict)
    init_like: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentationConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"argument `config`: unknown segmentation-model fields {sorted(unknown)}")
        return cls(**dict(data))

    def validate(self) -> SegmentationConfig:
        check_int(self.num_classes, "num_classes", minimum=2)
        if not self.width > 0:
            raise ValueError(f"argument `width`: expected a positive width multiplier, got {self.width}")
        PAIRS.entry(self.pair)  # an unknown pair raises, naming the choices
        if self.backbone not in BACKBONES:
            raise ValueError(f"argument `backbone`: expected one of {BACKBONES}, got {self.backbone!r}")
        if self.init_like is not None:
            PAIRS.entry(self.init_like, argument="init_like")
        return self


class SegmentationNet(PairedEncoderDecoder):
    """The MobileNetV2 segmentation network of the module docstring.

    Shape:
        ``N x 3 x H x W`` (normalised RGB) -> ``N x num_classes x H x W`` logits.
    """

    def __init__(self, config: SegmentationConfig) -> None:
        super().__init__(3, config.width, config.pair, config.pair_kwargs, 32, config.aspp, config.decoder_kernel)
        self.config = config
        self.classifier = nn.Conv2d(self.decoder_channels, config.num_classes, 1)
        self._initialize()

    def forward(self, x: Tensor) -> Tensor:
        check_feature(x, "x", channels=3, size_multiple=self.stride)
        return self.classifier(self.decode(x))


def create_segmentation_model(config: SegmentationConfig) -> SegmentationNet:
    """The network of ``config`` (validated first).

    Example:
        >>> net = create_segmentation_model(SegmentationConfig("bilinear", num_classes=3, width=0.25)).eval()
        >>> net(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """
    return SegmentationNet(config.validate())
