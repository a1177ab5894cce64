"""Unguided pairs: any registered upsampler with a plain downsampler.

These make the fixed and content-aware upsamplers (bilinear, CARAFE, ...) usable through
the pair API, so a model is built from one operator name whichever family it belongs
to.  The down step is a registered downsampler (2x2 max pooling by default, as in the
IndexNet paper's baselines); the guide carries only sizes and the skip feature.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..registry import DOWNSAMPLERS, PAIRS, UPSAMPLERS
from .base import Guide, ResamplerPair, spatial_size

__all__ = ["UnguidedPair", "register_unguided_pairs"]


class UnguidedPair(ResamplerPair):
    """A registered upsampler paired with a registered downsampler.

    Args:
        channels: encoder channels (input of ``down``).
        scale_factor: integer scale of both steps.
        upsampler: name of the registered upsampler.
        down: name of the registered downsampler (default ``"max"``, 2x2 max pooling).
        up_channels: decoder channels the upsampler is built for (default ``channels``).
        up_kwargs: extra constructor arguments of the upsampler.
        down_kwargs: extra constructor arguments of the downsampler.

    Shape:
        ``down``: ``N x C x H x W`` -> ``N x C x H/s x W/s`` (and a :class:`Guide`);
        ``up``: ``N x C_up x H/s x W/s`` -> ``N x C_up x H x W``.
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        upsampler: str = "bilinear",
        down: str = "max",
        up_channels: int | None = None,
        up_kwargs: Mapping[str, Any] | None = None,
        down_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(channels, scale_factor, up_channels)
        self.upsampler_name, self.down_name = upsampler, down
        self.downsampler = DOWNSAMPLERS.create(down, channels=channels, scale_factor=scale_factor, **dict(down_kwargs or {}))
        self.upsampler = UPSAMPLERS.create(
            upsampler, channels=self.up_channels, scale_factor=scale_factor, **dict(up_kwargs or {})
        )

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        self.check_input(x)
        y = self.downsampler(x)
        return y, Guide(size=spatial_size(x), low_size=spatial_size(y), skip=x)

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        self.check_up_input(d, guide)
        z = self.upsampler(d)
        if spatial_size(z) != tuple(guide.size):
            raise ValueError(
                f"argument `d`: upsampling {d.shape[-2]} x {d.shape[-1]} by {self.scale_factor} gives "
                f"{z.shape[-2]} x {z.shape[-1]}, not the guide's {guide.size[0]} x {guide.size[1]}"
            )
        return z

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, upsampler={self.upsampler_name!r}, down={self.down_name!r}"


def register_unguided_pairs() -> None:
    """Register every upsampler that has no guided pair of its name as an unguided pair."""
    for entry in UPSAMPLERS:
        if entry.name not in PAIRS:
            PAIRS.add(
                entry.name,
                UnguidedPair,
                defaults={"upsampler": entry.name},
                example={"channels": entry.example.get("channels", 8)},
                summary=f"{entry.summary}; down: 2x2 max pooling (any downsampler via down=)",
            )
