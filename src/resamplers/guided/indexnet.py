"""IndexNet (Lu et al., ICCV 2019 "Indices Matter"; TPAMI 2020 "Index Networks").

An *index block* looks at the encoder feature ``x`` before a 2x downsampling and
predicts, for each ``2 x 2`` cell, logits for its 4 sub-pixels.  From them come an
encoder index (softmax of the sigmoid over the 4 slots) that drives *indexed pooling*
``y = 4 * avgpool(I_en * x)``, and a decoder index (the sigmoid) that drives *indexed
upsampling* ``z = I_de * nearest(d)`` in the decoder.  Both weighted sums run on the
reassembly core (:mod:`resamplers.functional.indexed`).

The five families of the TPAMI paper and how they map to the options here:

* HINs (holistic index networks): ``index_mode='holistic'``, one index map shared by
  every channel (so ``up`` accepts any decoder channel count);
* M2O DINs (depthwise, many-to-one): ``index_mode='m2o'``, each channel's index depends
  on all channels;
* O2O DINs (depthwise, one-to-one), with three weight-sharing regimes of the O2O index
  filters (our reading of the paper's taxonomy):

  - unshared stagewise, ``sharing='none'``: the official O2O block, one depthwise filter
    per channel in every stage;
  - shared stagewise, ``sharing='stage'``: one filter set per stage (per index block),
    applied to every channel;
  - modelwise, ``sharing='model'``: one filter set shared by every index block of a
    model, whatever its channel count (pass the same :class:`SharedIndexFilters` as
    ``shared_index`` to each pair, or build them with :func:`indexnet_pairs`).

Every variant is ``nonlinear`` (conv -> BN -> ReLU6 -> 1x1 conv) or linear (one conv) and
with ``context`` (4 x 4 kernel, stride 2, padding 1) or without (2 x 2, stride 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int
from ..base import Downsampler, Guide, Upsampler
from ..functional import indexed_pooling, indexed_upsampling, normalize_index
from ..registry import register_downsampler, register_pair
from .base import ResamplerPair

__all__ = [
    "IndexNetPair",
    "IndexedPooling",
    "IndexedUpsampling",
    "SharedIndexFilters",
    "index_branch",
    "indexnet_pairs",
]

IndexMode = Literal["holistic", "o2o", "m2o"]
Sharing = Literal["none", "stage", "model"]
SLOTS = 4  # sub-pixels of a 2 x 2 cell; slot j is sub-pixel (j // 2, j % 2)


def index_branch(
    in_channels: int, out_channels: int, *, groups: int, nonlinear: bool, context: bool, hidden_channels: int
) -> nn.Module:
    """One index branch of the official code, with its module layout (and so its keys).

    Linear: ``Conv2d(k, stride 2, bias=False)``; nonlinear: that conv to
    ``hidden_channels`` -> ``BatchNorm2d`` -> ``ReLU6`` -> ``Conv2d(1x1, bias=False)``, with
    ``groups`` in both convolutions.  ``k, padding = (4, 1)`` with context, else ``(2, 0)``.
    """
    kernel, padding = (4, 1) if context else (2, 0)
    first_out = hidden_channels if nonlinear else out_channels
    conv = nn.Conv2d(in_channels, first_out, kernel, stride=2, padding=padding, groups=groups, bias=False)
    if not nonlinear:
        return conv
    return nn.Sequential(
        conv,
        nn.BatchNorm2d(hidden_channels),
        nn.ReLU6(),
        nn.Conv2d(hidden_channels, out_channels, 1, groups=groups, bias=False),
    )


def _init_index_weights(module: nn.Module) -> None:
    """The official initialisation: conv weights ``N(0, 2 / (k_h k_w C_out))``, BN ``(1, 0)``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _add_slot_branches(module: nn.Module, channels: int, groups: int, nonlinear: bool, context: bool) -> None:
    """The depthwise blocks' four branches ``indexnet1..4`` (slot ``j - 1``), each an ``nn.Sequential``."""
    for j in range(1, SLOTS + 1):
        branch = index_branch(
            channels, channels, groups=groups, nonlinear=nonlinear, context=context, hidden_channels=channels
        )
        module.add_module(f"indexnet{j}", branch if nonlinear else nn.Sequential(branch))


def _slot_logits(module: nn.Module, x: Tensor) -> Tensor:
    """The four branch outputs of ``module`` stacked on a slot dimension: ``N x C x 4 x h x w``."""
    return torch.stack([getattr(module, f"indexnet{j}")(x) for j in range(1, SLOTS + 1)], dim=2)


class SharedIndexFilters(nn.Module):
    """O2O index filters shared by every channel (and, for modelwise O2O, every stage).

    Four one-channel branches ``indexnet1..4`` (the official O2O block built for a single
    channel) applied to each channel of the input separately, channels folded into the
    batch.  BatchNorm, when nonlinear, is then one normaliser shared by all channels.
    Parameters: ``4 k^2`` linear, ``4 (k^2 + 3)`` nonlinear (``k`` = 4 with context, else 2).

    Args:
        nonlinear: conv -> BN -> ReLU6 -> 1x1 conv per branch, else one conv.
        context: 4 x 4 kernels (padding 1), else 2 x 2.

    Shape:
        ``N x C x H x W`` -> logits ``N x C x 4 x H/2 x W/2`` (any ``C``).

    Example:
        >>> filters = SharedIndexFilters(nonlinear=False, context=True)
        >>> filters(torch.randn(2, 5, 8, 6)).shape
        torch.Size([2, 5, 4, 4, 3])
    """

    def __init__(self, nonlinear: bool = True, context: bool = True) -> None:
        super().__init__()
        self.nonlinear, self.context = bool(nonlinear), bool(context)
        _add_slot_branches(self, 1, 1, self.nonlinear, self.context)
        _init_index_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        logits = _slot_logits(self, x.reshape(n * c, 1, h, w))
        return logits.reshape(n, c, SLOTS, logits.shape[-2], logits.shape[-1])


@register_downsampler(
    "indexnet",
    # The pairs cover the official blocks; this example exercises stage-shared linear O2O filters.
    example={"channels": 8, "index_mode": "o2o", "sharing": "stage", "nonlinear": False},
    summary="IndexNet indexed pooling 4*avgpool(I_en*x) with a learned index block (M2O by default)",
)
class IndexedPooling(Downsampler):
    """IndexNet's down step: a learned index block and indexed pooling ``4 * avgpool2x2(I_en * x)``.

    The index block predicts logits ``L`` (``N x G x 4 x H/2 x W/2``; ``G = 1`` holistic,
    ``C`` depthwise), normalised as the official code
    (:func:`~resamplers.functional.normalize_index`: ``S = sigmoid(L)``,
    ``I_en = pixel_shuffle(softmax(S over the 4 slots))``, ``I_de = pixel_shuffle(S)``,
    slot ``j`` <-> sub-pixel ``(j // 2, j % 2)``; depthwise channel order ``c * 4 + j``).
    ``forward(x)`` is the pooled map; :meth:`down` also returns the guide for
    :class:`IndexedUpsampling` (``skip`` ``I_en * x``, the index-weighted feature the
    official matting model passes to the decoder; ``tensors['decoder_index']`` ``I_de``).
    Layers, parameters and keys: see :class:`IndexNetPair`.

    Args:
        channels: input channels ``C``.
        scale_factor: 2.
        index_mode, nonlinear, context, sharing, shared_index: as :class:`IndexNetPair`.

    Shape:
        ``N x C x H x W`` -> ``N x C x H/2 x W/2`` (``H``, ``W`` even).

    Example:
        >>> pool = IndexedPooling(channels=4, index_mode="holistic")
        >>> pool(torch.randn(1, 4, 6, 8)).shape
        torch.Size([1, 4, 3, 4])
    """

    size_multiple = 2

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        index_mode: IndexMode = "m2o",
        nonlinear: bool = True,
        context: bool = True,
        sharing: Sharing = "none",
        shared_index: SharedIndexFilters | None = None,
    ) -> None:
        check_choice(scale_factor, "scale_factor", [2])
        check_choice(index_mode, "index_mode", ["holistic", "o2o", "m2o"])
        check_choice(sharing, "sharing", ["none", "stage", "model"])
        for value, name in ((nonlinear, "nonlinear"), (context, "context")):
            if not isinstance(value, bool):
                raise TypeError(f"argument `{name}`: expected a bool, got {value!r}")
        if sharing != "none" and index_mode != "o2o":
            raise ValueError(f"argument `sharing`: filter sharing applies to index_mode='o2o' only, got {index_mode!r}")
        if shared_index is not None and sharing != "model":
            raise ValueError(f"argument `shared_index`: only used with sharing='model', got sharing={sharing!r}")
        if shared_index is not None:
            if not isinstance(shared_index, SharedIndexFilters):
                raise TypeError(
                    f"argument `shared_index`: expected SharedIndexFilters, got {type(shared_index).__name__}"
                )
            if (shared_index.nonlinear, shared_index.context) != (nonlinear, context):
                raise ValueError(
                    f"argument `shared_index`: built with nonlinear={shared_index.nonlinear}, "
                    f"context={shared_index.context}; this pair has nonlinear={nonlinear}, context={context}"
                )
        super().__init__(check_int(channels, "channels", minimum=1), scale_factor)
        self.index_mode, self.nonlinear, self.context, self.sharing = index_mode, nonlinear, context, sharing
        options = {"nonlinear": nonlinear, "context": context}
        if index_mode == "holistic":
            self.indexnet = index_branch(channels, SLOTS, groups=1, hidden_channels=2 * channels, **options)
        elif sharing == "none":
            _add_slot_branches(self, channels, channels if index_mode == "o2o" else 1, nonlinear, context)
        else:
            self.shared_index = shared_index if shared_index is not None else SharedIndexFilters(**options)
        self.reset_parameters()

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (size[0] // 2, size[1] // 2)

    def reset_parameters(self) -> None:
        """The official initialisation (a shared index keeps its current weights)."""
        if self.sharing == "none":
            _init_index_weights(self)

    def index_logits(self, x: Tensor) -> Tensor:
        """Index logits ``N x G x 4 x H/2 x W/2`` (``G = 1`` holistic, else ``C``)."""
        if self.index_mode == "holistic":
            logits = self.indexnet(x)
            return logits.reshape(logits.shape[0], 1, SLOTS, logits.shape[-2], logits.shape[-1])
        if self.sharing == "none":
            return _slot_logits(self, x)
        return self.shared_index(x)

    def indices(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(I_en, I_de)``, each ``N x G x H x W``, as the official block returns them."""
        self.check_input(x)
        return normalize_index(self.index_logits(x))

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        encoder_index, decoder_index = self.indices(x)
        y = indexed_pooling(x, encoder_index)
        tensors = {"encoder_index": encoder_index, "decoder_index": decoder_index}
        return y, self.make_guide(x, y, skip=encoder_index * x, tensors=tensors)

    def forward(self, x: Tensor) -> Tensor:
        return indexed_pooling(x, self.indices(x)[0])

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, index_mode={self.index_mode!r}, nonlinear={self.nonlinear}, "
            f"context={self.context}, sharing={self.sharing!r}"
        )


class IndexedUpsampling(Upsampler):
    """IndexNet's up step: ``I_de * nearest(d)`` with the decoder index of :class:`IndexedPooling`.

    ``up(d, guide)`` reads ``guide.tensors['decoder_index']`` (``N x G x H x W``); group
    ``g`` of the index applies to channel ``c`` with ``g = c // (C / G)``.

    Shape:
        ``N x C_d x H/2 x W/2`` -> ``N x C_d x H x W``.
    """

    def __init__(self, scale_factor: int = 2) -> None:
        super().__init__(None, scale_factor)

    def forward(self, d: Tensor, decoder_index: Tensor) -> Tensor:
        return indexed_upsampling(d, decoder_index)

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        return self(d, guide.tensor("decoder_index", "IndexNet's indexed upsampling"))


@register_pair(
    "indexnet",
    example={"channels": 8},
    summary="IndexNet: learned index block, indexed pooling 4*avgpool(I_en*x) / indexed upsampling I_de*nearest(d)",
)
@register_pair(
    "indexnet_m2o",
    defaults={"index_mode": "m2o"},
    example={"channels": 8},
    summary="IndexNet M2O DIN (depthwise many-to-one, nonlinear + context: the released matting model)",
)
@register_pair(
    "indexnet_o2o",
    defaults={"index_mode": "o2o"},
    example={"channels": 8},
    summary="IndexNet O2O DIN (depthwise one-to-one; O2O filter sharing none, stage or model)",
)
@register_pair(
    "indexnet_hin",
    defaults={"index_mode": "holistic"},
    example={"channels": 8},
    summary="IndexNet HIN (holistic index shared by all channels; any decoder channel count)",
)
class IndexNetPair(ResamplerPair):
    """IndexNet's index block with indexed pooling (down) and indexed upsampling (up).

    ``down(x)`` predicts index logits ``L`` (``N x G x 4 x H/2 x W/2``; ``G = 1``
    holistic, ``C`` depthwise), normalises them as the official code
    (:func:`~resamplers.functional.indexed.normalize_index`: ``S = sigmoid(L)``,
    ``I_en = pixel_shuffle(softmax(S over the 4 slots))``, ``I_de = pixel_shuffle(S)``,
    slot ``j`` <-> sub-pixel ``(j // 2, j % 2)``; depthwise channel order ``c * 4 + j``) and
    returns ``y = 4 * avgpool2x2(I_en * x)`` with a guide whose ``skip`` is ``I_en * x`` (the
    index-weighted feature the official matting model passes to the decoder).
    ``up(d, guide)`` returns ``I_de * nearest(d)``.  Group ``g`` of the index applies to
    channel ``c`` with ``g = c // (C / G)``; all sums run on the reassembly core.

    Layers, parameter counts (``k`` = 4 with context, else 2), initialisation
    (``N(0, 2 / (k^2 C_out))`` convs, BN ``(1, 0)``) and state-dict keys are those of the
    official ``HolisticIndexBlock`` (``indexnet.*``), ``DepthwiseO2OIndexBlock`` and
    ``DepthwiseM2OIndexBlock`` (``indexnet1..4.*``), whose checkpoints load directly:

    ============  ===================  ======================
    mode          linear               nonlinear
    ============  ===================  ======================
    holistic      ``4 C k^2``          ``2 C^2 k^2 + 12 C``
    o2o           ``4 C k^2``          ``4 (C k^2 + 3 C)``
    m2o           ``4 C^2 k^2``        ``4 (C^2 k^2 + C^2 + 2 C)``
    ============  ===================  ======================

    O2O with ``sharing='stage'`` or ``'model'`` uses :class:`SharedIndexFilters`
    (``4 k^2`` or ``4 (k^2 + 3)`` parameters per stage or per model).

    Odd ``H`` or ``W`` raise ``ValueError`` (the official code silently drops a row).
    Only ``scale_factor=2`` exists (4 slots per cell).  Holistic indices broadcast over
    channels, so ``up`` accepts any decoder channel count; depthwise indices are per
    channel, so ``d`` must have ``C`` channels.

    Args:
        channels: encoder channels ``C``.
        scale_factor: 2.
        index_mode: ``'holistic'``, ``'o2o'`` or ``'m2o'``.
        nonlinear: two-layer index branches (conv, BN, ReLU6, 1x1 conv), else one conv.
        context: 4 x 4 index convolutions (padding 1), else 2 x 2.
        sharing: O2O filter sharing, ``'none'`` (official), ``'stage'`` or ``'model'``.
        shared_index: with ``sharing='model'``, the :class:`SharedIndexFilters` every stage
            of the model uses (a new one when omitted).
        up_channels: decoder channels; only ``C`` for depthwise indices.

    Shape:
        ``down``: ``N x C x H x W`` -> ``N x C x H/2 x W/2`` and a :class:`Guide`
        (``skip`` ``N x C x H x W``); ``up``: ``N x C_d x H/2 x W/2`` -> ``N x C_d x H x W``.

    Example:
        >>> pair = IndexNetPair(channels=16, index_mode="m2o")
        >>> x = torch.randn(2, 16, 8, 6)
        >>> y, guide = pair.down(x)
        >>> y.shape, guide.skip.shape, pair.up(y, guide).shape
        (torch.Size([2, 16, 4, 3]), torch.Size([2, 16, 8, 6]), torch.Size([2, 16, 8, 6]))
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        index_mode: IndexMode = "m2o",
        nonlinear: bool = True,
        context: bool = True,
        sharing: Sharing = "none",
        shared_index: SharedIndexFilters | None = None,
        up_channels: int | None = None,
    ) -> None:
        pooling = IndexedPooling(channels, scale_factor, index_mode, nonlinear, context, sharing, shared_index)
        depthwise = index_mode != "holistic"
        # Holistic indices broadcast over channels; depthwise ones are per channel.
        super().__init__(
            pooling,
            IndexedUpsampling(scale_factor),
            up_channels,
            up_channels_fixed=depthwise,
            per_channel_guide=depthwise,
            flat_children=("downsampler",),
        )
        self.index_mode = index_mode

    def indices(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(I_en, I_de)``, each ``N x G x H x W``, as the official block returns them."""
        return self.downsampler.indices(x)


def indexnet_pairs(channels: Sequence[int], **options: object) -> nn.ModuleList:
    """The index pairs of one model, one per downsampling stage.

    With ``sharing='model'`` every pair receives the same :class:`SharedIndexFilters`
    (modelwise O2O: one filter set for the whole model); otherwise the pairs are
    independent.

    Args:
        channels: encoder channels of each stage, e.g. ``[32, 24, 32, 64, 160]``.
        options: keyword arguments of :class:`IndexNetPair` (not ``channels``).

    Example:
        >>> pairs = indexnet_pairs([8, 16], index_mode="o2o", sharing="model")
        >>> pairs[0].shared_index is pairs[1].shared_index
        True
    """
    if "channels" in options:
        raise TypeError("indexnet_pairs(): pass the per-stage channel counts as `channels`, not in the options")
    if options.get("sharing") == "model" and options.get("shared_index") is None:
        shared = SharedIndexFilters(
            nonlinear=bool(options.get("nonlinear", True)), context=bool(options.get("context", True))
        )
        options = {**options, "shared_index": shared}
    return nn.ModuleList(IndexNetPair(c, **options) for c in channels)  # type: ignore[arg-type]
