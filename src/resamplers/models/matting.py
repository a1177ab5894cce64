"""The IndexNet matting network, built from any registered resampler pair.

Encoder: MobileNetV2 at stride 1 with a 4-channel input (normalised RGB + trimap / 255);
five pairs downsample after ``layer0``, ``layer2``, ``layer3``, ``layer4`` and ``layer6``
(output stride 32; 16 drops the last).  Context: ASPP (or a 1x1 conv-BN-ReLU6).  Decoder:
seven stages ``cat[up(d), skip] -> conv 5x5 -> BN -> ReLU6``; the five stages behind a pair
upsample with that pair's ``up`` and concatenate the skip feature the pair says to carry
(for IndexNet the index-weighted feature ``I_en * x``).  Head: ``conv 5x5 -> BN -> ReLU6 ->
conv 5x5`` to one channel, no sigmoid (clip to [0, 1] at test time).

The head's activation is an option (``head_activation``).  The official ReLU6 sits on a
single channel: trained from scratch, the network first learns the L1-optimal constant
for the unknown region (the median alpha there, usually 0), and it can reach it by pushing
that one channel below zero on the whole unknown region, where the loss lives.  From there
no gradient flows and the matte stays at the trimap-only answer (seen at 120 steps for
five of nine pairs, and for CARAFE still at 400).  ``"leaky_relu"`` (slope 0.2; A2U's official head is leaky
too) cannot die that way and adds no parameters, so weights still load either way.

With ``pair="indexnet_m2o"``, width 1, ASPP and output stride 32 this is the official
IndexNet matting model (5,953,515 parameters); :func:`convert_official_state_dict` maps the
official checkpoint's keys onto this module's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_feature, did_you_mean
from ..registry import PAIRS, create_pair
from .aspp import ASPP
from .mobilenetv2 import MobileNetV2Stages, conv_bn_relu6, scaled

__all__ = [
    "MattingConfig",
    "IndexNetMatting",
    "PairedEncoderDecoder",
    "create_matting_model",
    "convert_official_state_dict",
    "matting_inputs",
    "load_matting_model",
    "load_official_indexnet",
    "PAIRED_LAYERS",
]

# ImageNet statistics used to normalise the RGB input (as the official code).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def matting_inputs(image: Tensor, trimap: Tensor) -> Tensor:
    """The network input: ImageNet-normalised RGB and trimap / 255.

    Args:
        image: ``N x 3 x H x W`` in [0, 1].
        trimap: ``N x H x W`` or ``N x 1 x H x W``, uint8 0/128/255 or float in [0, 1].

    Returns:
        ``N x 4 x H x W`` float tensor.
    """
    check_feature(image, "image", channels=3)
    if trimap.dim() == 3:
        trimap = trimap.unsqueeze(1)
    t = trimap.to(image.dtype) / 255.0 if trimap.dtype == torch.uint8 else trimap.to(image.dtype)
    mean = image.new_tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGE_STD).view(1, 3, 1, 1)
    return torch.cat([(image - mean) / std, t], dim=1)


# Encoder layers followed by a pair (downsampling by 2), from shallow to deep.
PAIRED_LAYERS = (0, 2, 3, 4, 6)


@dataclass
class MattingConfig:
    """Everything needed to rebuild a matting network (stored in checkpoints).

    ``init_like`` concerns initialisation only: when set to another pair, training starts
    every parameter that the network with that pair also has (same name and shape) from
    that network, built from the same random state, so the parts that two operators'
    networks share start equal (see :func:`resamplers.training.matting.train`).
    """

    pair: str = "indexnet_m2o"
    width: float = 1.0
    aspp: bool = True
    output_stride: int = 32
    decoder_kernel: int = 5
    pair_kwargs: dict[str, Any] = field(default_factory=dict)
    head_activation: str = "relu6"
    init_like: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> MattingConfig:
        check_choice(self.output_stride, "output_stride", (16, 32))
        check_choice(self.head_activation, "head_activation", HEAD_ACTIVATIONS)
        if not self.width > 0:
            raise ValueError(f"argument `width`: expected a positive width multiplier, got {self.width}")
        accepted = PAIRS.entry(self.pair).accepted_keywords()  # an unknown pair raises, naming the choices
        if self.init_like is not None:
            PAIRS.entry(self.init_like, argument="init_like")
        for key in self.pair_kwargs:
            if key not in accepted or key in NETWORK_SET_PAIR_ARGUMENTS:
                choices = [k for k in accepted if k not in NETWORK_SET_PAIR_ARGUMENTS]
                raise ValueError(
                    f"argument `pair_kwargs`: {key!r} is not an option of pair {self.pair!r}"
                    f"{did_you_mean(key, choices, n=1)} (options: {', '.join(choices)})"
                )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MattingConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"argument `config`: unknown matting-model fields {sorted(unknown)}")
        return cls(**dict(data))


HEAD_ACTIVATIONS = ("relu6", "leaky_relu", "none")
# Pair arguments the network sets itself, from its own widths.
NETWORK_SET_PAIR_ARGUMENTS = ("channels",)
HEAD_LEAKY_SLOPE = 0.2


def head_activation_layer(name: str) -> nn.Module:
    """The activation between the head's two convolutions: ``"relu6"`` (official),
    ``"leaky_relu"`` (negative slope :data:`HEAD_LEAKY_SLOPE`) or ``"none"``."""
    check_choice(name, "head_activation", HEAD_ACTIVATIONS)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(HEAD_LEAKY_SLOPE, inplace=True)
    return nn.Identity()


class DecoderStage(nn.Module):
    """``cat[d, skip] -> conv k x k -> BN -> ReLU6`` (key ``dconv.*`` as the official decoder)."""

    def __init__(self, inp: int, oup: int, kernel_size: int) -> None:
        super().__init__()
        self.dconv = conv_bn_relu6(inp, oup, kernel_size)

    def forward(self, d: Tensor, skip: Tensor) -> Tensor:
        return self.dconv(torch.cat([d, skip], dim=1))


class PairedEncoderDecoder(nn.Module):
    """MobileNetV2 at stride 1 whose downsampling steps are a resampler pair's ``down``, a
    context module, and a decoder whose every upsampling step is the same pair's ``up``
    with the guide of the matching ``down`` (the network of the module docstring, less the
    head). Shared by the matting and the segmentation networks.

    Shape:
        ``N x in_channels x H x W`` -> ``N x decoder_channels x H x W`` (``H`` and ``W``
        multiples of ``output_stride``).
    """

    def __init__(
        self,
        in_channels: int,
        width: float,
        pair: str,
        pair_kwargs: Mapping[str, Any],
        output_stride: int = 32,
        aspp: bool = True,
        decoder_kernel: int = 5,
    ) -> None:
        super().__init__()
        check_choice(output_stride, "output_stride", (16, 32))
        self.output_stride = output_stride
        self.encoder = MobileNetV2Stages(in_channels, width)
        ch = self.encoder.channels
        layers = PAIRED_LAYERS if output_stride == 32 else PAIRED_LAYERS[:-1]
        self.paired_layers = layers
        self.pairs = nn.ModuleList(create_pair(pair, channels=ch[i], **pair_kwargs) for i in layers)
        bottleneck = scaled(160, width)
        self.context = (
            ASPP(ch[7], bottleneck, scaled(256, width), output_stride) if aspp else conv_bn_relu6(ch[7], bottleneck, 1)
        )
        k = decoder_kernel
        # Decoder stage i fuses the context/decoder feature with layer i's skip and outputs
        # layer (i-1)'s width, so that every pair's up step sees its own channel count.
        out = {6: ch[5], 5: ch[4], 4: ch[3], 3: ch[2], 2: ch[1], 1: ch[0], 0: scaled(32, width)}
        inp = {6: bottleneck, 5: ch[5], 4: ch[4], 3: ch[3], 2: ch[2], 1: ch[1], 0: ch[0]}
        self.decoder = nn.ModuleDict({str(i): DecoderStage(inp[i] + ch[i], out[i], k) for i in range(6, -1, -1)})
        self.decoder_channels = out[0]

    def _initialize(self) -> None:
        """The official initialisation, for every layer the network owns (pairs keep their own)."""
        paired = {id(m) for pair in self.pairs for m in pair.modules()}
        for module in self.modules():
            if id(module) in paired:
                continue
            if isinstance(module, nn.Conv2d):
                fan = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def stride(self) -> int:
        return self.output_stride

    def decode(self, x: Tensor) -> Tensor:
        """Encoder, context and decoder: the full-resolution decoder feature."""
        enc = self.encoder
        features: dict[int, Tensor] = {}
        guides = {}
        skips: dict[int, Tensor] = {}
        pairs = dict(zip(self.paired_layers, self.pairs))
        h = x
        for i in range(8):
            h = getattr(enc, f"layer{i}")(h)
            features[i] = h
            if i in pairs:
                h, guide = pairs[i].down(h)
                guides[i] = guide
                skips[i] = guide.skip
        d = self.context(h)
        for i in range(6, -1, -1):
            if i in pairs:
                d = pairs[i].up(d, guides[i])
            d = self.decoder[str(i)](d, skips.get(i, features[i]))
        return d


class IndexNetMatting(PairedEncoderDecoder):
    """IndexNet matting network with a chosen resampler pair at every downsampling stage.

    Args:
        config: the :class:`MattingConfig`.

    Shape:
        ``N x 4 x H x W`` (normalised RGB, trimap / 255) -> ``N x 1 x H x W`` alpha logits
        (unclipped); ``H`` and ``W`` must be multiples of the output stride.
    """

    def __init__(self, config: MattingConfig) -> None:
        super().__init__(
            4, config.width, config.pair, config.pair_kwargs, config.output_stride, config.aspp, config.decoder_kernel
        )
        self.config = config
        k = config.decoder_kernel
        head = conv_bn_relu6(self.decoder_channels, 1, k)
        head[2] = head_activation_layer(config.head_activation)
        self.head = nn.Sequential(head, nn.Conv2d(1, 1, k, padding=k // 2, bias=False))
        self._initialize()

    def forward(self, x: Tensor) -> Tensor:
        check_feature(x, "x", channels=4, size_multiple=self.stride)
        return self.head(self.decode(x))


def create_matting_model(
    pair: str = "indexnet_m2o",
    width: float = 1.0,
    aspp: bool = True,
    output_stride: int = 32,
    decoder_kernel: int = 5,
    *,
    head_activation: str = "relu6",
    **pair_kwargs: Any,
) -> IndexNetMatting:
    """Build the IndexNet matting network around a registered pair (see :func:`resamplers.create_pair`).

    ``head_activation``: ``"relu6"`` (official), ``"leaky_relu"`` (for training from
    scratch; see the module docstring) or ``"none"``.  Other keywords go to the pair.

    Example:
        >>> model = create_matting_model("bilinear", width=0.25).eval()
        >>> model(torch.zeros(1, 4, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"argument `width`: expected a positive number, got {width!r}")
    config = MattingConfig(
        pair, float(width), bool(aspp), output_stride, decoder_kernel, dict(pair_kwargs), head_activation
    )
    return IndexNetMatting(config)


_OFFICIAL_PREFIXES = [
    (re.compile(r"^layer(\d)\."), lambda m: f"encoder.layer{m.group(1)}."),
    (re.compile(r"^index(\d)\."), lambda m: f"pairs.{PAIRED_LAYERS.index(int(m.group(1)))}."),
    (re.compile(r"^dconv_pp\."), lambda m: "context."),
    (re.compile(r"^decoder_layer(\d)\."), lambda m: f"decoder.{m.group(1)}."),
    (re.compile(r"^pred\."), lambda m: "head."),
]


def convert_official_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map the official IndexNet matting checkpoint's keys onto :class:`IndexNetMatting`'s.

    Accepts the ``state_dict`` entry of ``indexnet_matting.pth.tar`` (with or without the
    ``module.`` prefix of ``nn.DataParallel``).  Unknown keys raise ``ValueError``.
    """
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        name = key[len("module.") :] if key.startswith("module.") else key
        for pattern, replace in _OFFICIAL_PREFIXES:
            match = pattern.match(name)
            if match:
                converted[replace(match) + name[match.end() :]] = value
                break
        else:
            raise ValueError(f"argument `state_dict`: key {key!r} is not a key of the official IndexNet matting model")
    return converted


def load_matting_model(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> IndexNetMatting:
    """Rebuild a matting network from a checkpoint written by ``resamplers train``.

    ``checkpoint`` is a checkpoint directory, its ``model.safetensors``, or a run directory
    (its newest checkpoint is used).  The network is rebuilt from the configuration stored
    in the checkpoint; weights that do not fit it raise ``CheckpointError`` listing the
    differences.  Nothing is unpickled.
    """
    from ..storage import CheckpointError, latest_checkpoint, load_checkpoint

    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointError(f"argument `checkpoint`: no such file or directory {path}")
    if path.is_dir() and (path / "checkpoints").is_dir():
        newest = latest_checkpoint(path / "checkpoints")
        if newest is None:
            raise CheckpointError(f"argument `checkpoint`: run directory {path} has no checkpoint yet")
        path = newest
    saved = load_checkpoint(path)
    if not saved.get("model_config"):
        raise CheckpointError(f"argument `checkpoint`: {path} carries no matting-model configuration")
    config = MattingConfig.from_dict(saved["model_config"])
    model = IndexNetMatting(config)
    _load_strict(model, saved["model"], f"{path} (pair {config.pair!r}, width {config.width})")
    return model.to(map_location).eval()


def _load_strict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    from ..storage import CheckpointError

    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

        raise CheckpointError(
            f"argument `checkpoint`: {source} was built for another configuration: "
            + "; ".join(
                part
                for part in (
                    f"missing {show(missing)}" if missing else "",
                    f"unexpected {show(unexpected)}" if unexpected else "",
                    f"shape differs for {show(mismatched)}" if mismatched else "",
                )
                if part
            )
        )
    model.load_state_dict(state)


def load_official_indexnet(path: str | Path, **pair_kwargs: Any) -> IndexNetMatting:
    """Load the released IndexNet matting checkpoint (``indexnet_matting.pth.tar``).

    The file is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling); its
    ``state_dict`` is mapped with :func:`convert_official_state_dict` into the official
    configuration (M2O, nonlinear, context, ASPP, width 1, output stride 32).
    """
    from ..storage import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"argument `path`: no such file {path}")
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"argument `path`: {path} is not a weights-only torch checkpoint ({error})") from error
    state = raw.get("state_dict", raw) if isinstance(raw, Mapping) else raw
    model = create_matting_model("indexnet_m2o", **pair_kwargs)
    _load_strict(model, convert_official_state_dict(state), str(path))
    return model.eval()
