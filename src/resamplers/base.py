"""The operator contract: what every registered operator states about its inputs and outputs.

Every registered operator is an :class:`Operator`: it says which tensors its ``forward``
takes (their names, channel counts and sizes relative to the first one), the output
shapes for given input shapes, and how it checks its input.  The benchmark, the shared
test matrix, the README table and the comparison read this contract and never
special-case an operator family.  The families are thin specialisations:

* :class:`Upsampler` / :class:`Downsampler` (``channels``, ``scale_factor``), also usable
  inside a pair through :meth:`Downsampler.down` / :meth:`Upsampler.up`;
* guided steps and pairs (:mod:`resamplers.guided`);
* global pools (:mod:`resamplers.global_pooling`), blocks (:mod:`resamplers.blocks`) and
  backbones (:mod:`resamplers.backbones`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_feature, check_int
from .core.geometry import known_true

__all__ = ["Operator", "Resampler", "Upsampler", "Downsampler", "Guide", "Shape", "spatial_size"]

Shape = tuple[int, ...]

# Channel count used for inputs of operators that accept any count.
ANY_CHANNELS_EXAMPLE = 8


def spatial_size(x: Tensor) -> tuple[int, int]:
    """``(H, W)`` of a feature map."""
    return (x.shape[-2], x.shape[-1])


class Operator(nn.Module):
    """Contract of every registered operator.

    Class attributes describe ``forward``'s inputs:

    * ``input_names``: the names of its tensor arguments, as error messages name them;
    * ``list_input``: ``True`` when ``forward`` takes one list of maps (named
      ``input_names[0]``, e.g. the branches of a multi-resolution block) instead of
      separate tensor arguments;
    * ``size_multiple``: the first input's height and width must be multiples of this.

    Attributes:
        channels: input channels (``None``: any count).
    """

    input_names: tuple[str, ...] = ("x",)
    list_input: bool = False
    size_multiple: int = 1
    # An int or None for single-input operators; branch widths for multi-resolution blocks.
    channels: Any

    def __init__(self, channels: int | None = None) -> None:
        super().__init__()
        self.channels = None if channels is None else check_int(channels, "channels", minimum=1)

    @property
    def out_channels(self) -> int | None:
        """Output channel count (``None`` means "same as the input")."""
        return self.channels

    def input_channels(self) -> tuple[int | None, ...]:
        """Channel count of each input tensor (``None``: any)."""
        return (self.channels,)

    def input_scales(self) -> tuple[Fraction, ...]:
        """Each input's height and width relative to the first input's (fractions round up)."""
        return (Fraction(1),)

    def input_shapes(self, batch: int, height: int, width: int) -> list[Shape]:
        """Shapes of ``forward``'s input tensors when the first one is ``batch x C x height x width``.

        Inputs that accept any channel count get :data:`ANY_CHANNELS_EXAMPLE` channels.
        """
        return [
            (batch, ANY_CHANNELS_EXAMPLE if c is None else c, math.ceil(height * f), math.ceil(width * f))
            for c, f in zip(self.input_channels(), self.input_scales(), strict=True)
        ]

    def output_shape(self, shape: Shape) -> Shape:  # pragma: no cover - abstract
        """Output shape for one input of ``shape``; ``ValueError`` if unsupported."""
        raise NotImplementedError

    def output_shapes(self, shapes: Sequence[Shape]) -> list[Shape]:
        """Shapes of the output tensors (in order) for input tensors of ``shapes``;
        ``ValueError`` when the operator rejects them."""
        return [tuple(self.output_shape(tuple(shapes[0])))]

    def check_input(self, x: Tensor, name: str = "x") -> Tensor:
        """Validate the first input (rank, dtype, channels, divisibility); returns it."""
        check_feature(x, name, channels=self.channels, size_multiple=self.size_multiple)
        self.check_dtype(x, name)
        return x

    def check_dtype(self, x: Tensor, name: str = "x") -> None:
        """``ValueError`` unless ``x`` has the dtype of the module's floating-point parameters
        (autocast excepted, which mixes dtypes by design); parameter-free operators take any."""
        param = next((p for p in self.parameters() if p.is_floating_point()), None)
        if param is None or x.dtype == param.dtype or torch.is_autocast_enabled(x.device.type):
            return
        raise ValueError(
            f"argument `{name}`: expected dtype {param.dtype} (the dtype of the module's parameters), got "
            f"{x.dtype}; convert the input, or the module with module.to({x.dtype})"
        )

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@dataclass
class Guide:
    """What a down step hands to the up step that undoes it.

    Attributes:
        size: spatial size ``(H, W)`` of the high-resolution input of the down step.
        low_size: spatial size of its output, which the up step expects for ``d``.
        encoder: the high-resolution input itself (what FADE and SAPA read).
        skip: what a skip connection from this stage should carry (``encoder`` for most
            down steps; IndexNet's index-weighted feature ``I_en * x``).
        tensors: operator-specific guidance (indices, index maps, affinities).
        source: the class of the down step that made the guide (named in errors).
    """

    size: tuple[int, int]
    low_size: tuple[int, int]
    encoder: Tensor
    skip: Tensor
    tensors: dict[str, Tensor] = field(default_factory=dict)
    source: str = ""

    def tensor(self, key: str, reader: str) -> Tensor:
        """``tensors[key]``, or a ``ValueError`` naming the argument, the down step that made
        this guide and ``reader``, the up step that needs ``key``."""
        if key not in self.tensors:
            held = ", ".join(sorted(self.tensors)) or "no tensors"
            raise ValueError(
                f"argument `guide`: {reader} needs the guide's {key!r}, but this guide was made by "
                f"{self.source or 'another down step'} and holds {held}; pair each up step with its own down step"
            )
        return self.tensors[key]


class Resampler(Operator):
    """Common contract of upsamplers and downsamplers.

    Attributes:
        channels: required input channel count, or ``None`` when any count works.
        scale_factor: integer resampling factor.
    """

    def __init__(self, channels: int | None, scale_factor: int) -> None:
        super().__init__(channels)
        self.scale_factor = check_int(scale_factor, "scale_factor", minimum=1)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:  # pragma: no cover - abstract
        """Output ``(H, W)`` for an input of spatial ``size``; ``ValueError`` if unsupported."""
        raise NotImplementedError

    def output_shape(self, shape: Shape) -> Shape:
        n, c, h, w = shape
        out_channels = self.out_channels if self.out_channels is not None else c
        return (n, out_channels, *self.output_size((h, w)))

    def check_input(self, x: Tensor, name: str = "x") -> Tensor:
        super().check_input(x, name)
        self.output_size(spatial_size(x))
        return x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale_factor={self.scale_factor}"


class Upsampler(Resampler):
    """An operator mapping ``N x C x H x W`` to ``N x C x sH x sW``.

    Inside a pair the up step is :meth:`up`, which by default reads only ``d``; guided
    upsamplers (:mod:`resamplers.guided`) override it to read the guide.
    """

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (size[0] * self.scale_factor, size[1] * self.scale_factor)

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        """The up step of a pair: ``d`` at the guide's low size to the guide's high size."""
        z = self(d)
        if spatial_size(z) != tuple(guide.size):
            raise ValueError(
                f"argument `d`: upsampling {d.shape[-2]} x {d.shape[-1]} by {self.scale_factor} gives "
                f"{z.shape[-2]} x {z.shape[-1]}, not the guide's {guide.size[0]} x {guide.size[1]}"
            )
        return z

    def upsample_to(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Upsample ``x`` to exactly ``size``, for maps whose size was rounded up on the way down.

        A stride-``s`` layer maps ``H`` to ``ceil(H / s)``, so ``s`` times that can exceed
        ``H``: the default upsamples by ``s`` and keeps the top-left ``size`` (output pixel
        ``p`` still reads the source pixel it would read at scale ``s``).  Interpolating
        upsamplers override this to resample to ``size`` directly.
        """
        self.check_reachable(x, size)
        y = self(x)
        # Crop by negative padding: unlike a slice, it needs no provable bound under export.
        return F.pad(y, (0, size[1] - y.shape[-1], 0, size[0] - y.shape[-2]))

    def check_reachable(self, x: Tensor, size: tuple[int, int]) -> None:
        """``ValueError`` unless ``s`` times the size of ``x`` covers ``size``."""
        s, (h, w) = self.scale_factor, size
        # known_true: under torch.export a bound it cannot prove is not a guard.
        if known_true(x.shape[-2] * s < h) or known_true(x.shape[-1] * s < w):
            raise ValueError(
                f"argument `size`: {s}x upsampling of {x.shape[-2]} x {x.shape[-1]} cannot reach {h} x {w}"
            )


class Downsampler(Resampler):
    """An operator mapping ``N x C x H x W`` to a map about ``s`` times smaller.

    Subclasses define the exact output size (floor or ceil) in :meth:`output_size`.
    Inside a pair the down step is :meth:`down`, which also returns the :class:`Guide`
    for the matching up step; guided downsamplers add their guidance to it.
    """

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        """The down step of a pair: the output and a guide holding ``x`` (also the skip)."""
        y = self(x)
        return y, self.make_guide(x, y)

    def make_guide(
        self, x: Tensor, y: Tensor, skip: Tensor | None = None, tensors: dict[str, Tensor] | None = None
    ) -> Guide:
        """A :class:`Guide` from this step's input ``x`` and output ``y``."""
        return Guide(
            size=spatial_size(x),
            low_size=spatial_size(y),
            encoder=x,
            skip=x if skip is None else skip,
            tensors=dict(tensors or {}),
            source=type(self).__name__,
        )
