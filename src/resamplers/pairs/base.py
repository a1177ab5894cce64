"""The pair API: a downsampling step and the upsampling step that undoes it.

IndexNet, A2U and max unpooling are *paired* operators: the down step looks at the
high-resolution encoder feature and produces a guide (indices, index maps, kernels) that
a later up step in the decoder consumes.  FADE and SAPA are pairs too: their guide is the
high-resolution feature itself.  Unguided upsamplers join the same API through
:class:`UnguidedPair`, so a model can be built from one operator name::

    pair = create_pair("indexnet_m2o", channels=64)
    y, guide = pair.down(x)          # encoder: N x 64 x H x W -> N x 64 x H/2 x W/2
    skip = guide.skip                # what the skip connection should carry
    ...
    z = pair.up(d, guide)            # decoder: N x C_d x H/2 x W/2 -> N x C_d x H x W
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from .._checks import check_feature, check_int
from ..layers.base import Resampler

__all__ = ["Guide", "ResamplerPair", "spatial_size"]


def spatial_size(x: Tensor) -> tuple[int, int]:
    """``(H, W)`` of a feature map."""
    return (x.shape[-2], x.shape[-1])


@dataclass
class Guide:
    """What a pair's down step hands to its up step.

    Attributes:
        size: spatial size ``(H, W)`` of the high-resolution input of ``down``.
        low_size: spatial size of ``down``'s output, which ``up`` expects for ``d``.
        skip: what a skip connection from this stage should carry (the input itself for
            most pairs; IndexNet's index-weighted feature ``I_en * x``).
        tensors: operator-specific guidance (indices, index maps, kernels, features).
    """

    size: tuple[int, int]
    low_size: tuple[int, int]
    skip: Tensor
    tensors: dict[str, Tensor] = field(default_factory=dict)


class ResamplerPair(Resampler):
    """Base class of down/up pairs.

    Subclasses implement :meth:`down` (returning the low-resolution map and a
    :class:`Guide`) and :meth:`up`.  ``forward`` is the round trip ``up(*down(x))``, which
    is what the shared test matrix and the benchmark exercise.

    Attributes:
        channels: encoder channels (input of ``down``).
        up_channels: decoder channels accepted by ``up``; ``None`` means any.
        up_channels_tied: ``True`` when the guide is per channel (depthwise indices,
            max-pooling positions), so ``up`` needs the encoder's channel count and
            ``up_channels`` must equal ``channels``.
    """

    def __init__(
        self, channels: int, scale_factor: int = 2, up_channels: int | None = None, *, per_channel_guide: bool = False
    ) -> None:
        super().__init__(check_int(channels, "channels", minimum=1), scale_factor)
        self.up_channels = channels if up_channels is None else check_int(up_channels, "up_channels", minimum=1)
        self.up_channels_tied = per_channel_guide
        if per_channel_guide and self.up_channels != channels:
            raise ValueError(
                f"argument `up_channels`: this pair's guide holds one index per encoder channel, so up() needs "
                f"the encoder's {channels} channels; got {self.up_channels}"
            )

    @property
    def size_multiple(self) -> int:  # type: ignore[override]
        # A round trip restores the input size only when the input divides by the scale.
        return self.scale_factor

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Size of the round trip ``up(*down(x))``: the input size."""
        return (size[0], size[1])

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:  # pragma: no cover - abstract
        raise NotImplementedError

    def up(self, d: Tensor, guide: Guide) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_up_input(self, d: Tensor, guide: Guide, name: str = "d") -> Tensor:
        """Validate a decoder feature against the guide it is upsampled with."""
        if not isinstance(guide, Guide):
            raise TypeError(f"argument `guide`: expected the Guide returned by down(), got {type(guide).__name__}")
        check_feature(d, name, channels=self.up_channels if self.up_channels_fixed else None)
        if d.shape[0] != guide.skip.shape[0]:
            raise ValueError(
                f"argument `{name}`: expected batch size {guide.skip.shape[0]} (that of the guide), got {d.shape[0]}"
            )
        if (d.shape[-2], d.shape[-1]) != tuple(guide.low_size):
            raise ValueError(
                f"argument `{name}`: expected spatial size {guide.low_size[0]} x {guide.low_size[1]} (the size down() "
                f"produced for this guide, whose high-resolution size is {guide.size[0]} x {guide.size[1]}), "
                f"got {d.shape[-2]} x {d.shape[-1]}"
            )
        return d

    @property
    def up_channels_fixed(self) -> bool:
        """Whether ``up`` requires exactly ``up_channels`` channels (False: any count)."""
        return True

    def skip(self, guide: Guide) -> Tensor:
        """What a skip connection from this stage should carry."""
        return guide.skip

    def forward(self, x: Tensor) -> Tensor:
        y, guide = self.down(x)
        if self.up_channels != self.channels and self.up_channels_fixed:
            raise ValueError(
                f"argument `x`: the round trip needs up_channels == channels, got {self.up_channels} != {self.channels}"
            )
        return self.up(y, guide)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, up_channels={self.up_channels}"

