"""Pairs composed from registered operators: any downsampler with any upsampler.

Every registered upsampler is also a pair of the same name (``create_pair("carafe",
channels=64)``): its down step is a registered downsampler (2x2 max pooling by default,
as in the IndexNet paper's baselines, or any other via ``down=``) and its up step is the
upsampler.  Plain upsamplers read only the decoder feature; feature-guided ones (FADE,
SAPA) read the encoder feature that the down step's guide carries.  The pairs are
derived when they are looked up, so an upsampler registered at any time, by this
package, a plug-in or user code, is a pair at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._checks import check_int
from ..base import Downsampler, Upsampler
from ..registry import DOWNSAMPLERS, PAIRS, UPSAMPLERS, Entry
from .base import FeatureGuidedUpsampler, ResamplerPair, resolve_up_channels

__all__ = ["ComposedPair", "pair_entry_for_upsampler"]

# Keywords of an upsampler that the pair sets itself.
_SET_BY_PAIR = ("channels", "scale_factor", "guide_channels")


class ComposedPair(ResamplerPair):
    """A registered downsampler composed with a registered upsampler.

    Args:
        channels: encoder channels (input of ``down``).
        scale_factor: integer scale of both steps.
        upsampler: name of the registered upsampler.
        down: name of the registered downsampler (default ``"max"``, 2x2 max pooling).
        up_channels: decoder channels the upsampler is built for (default ``channels``).
        up_kwargs: extra constructor arguments of the upsampler (``create_pair`` also
            accepts them as plain keywords, e.g. ``create_pair("fade", channels=64, up_kernel=3)``).
        down_kwargs: extra constructor arguments of the downsampler.

    Shape:
        ``down``: ``N x C x H x W`` -> ``N x C x H/s x W/s`` (and a :class:`~resamplers.base.Guide`);
        ``up``: ``N x C_up x H/s x W/s`` -> ``N x C_up x H x W``.

    Example:
        >>> pair = ComposedPair(channels=8, upsampler="carafe", down="avg")
        >>> y, guide = pair.down(torch.randn(1, 8, 6, 4))
        >>> pair.up(y, guide).shape
        torch.Size([1, 8, 6, 4])
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
        check_int(channels, "channels", minimum=1)
        downsampler = DOWNSAMPLERS.create(down, channels=channels, scale_factor=scale_factor, **dict(down_kwargs or {}))
        up_channels = resolve_up_channels(up_channels, channels, per_channel_guide=False)
        guided = issubclass(UPSAMPLERS.entry(upsampler).cls, FeatureGuidedUpsampler)
        guide_kwargs = {"guide_channels": channels} if guided else {}
        assert isinstance(downsampler, Downsampler), f"registered downsampler {down!r} is not a Downsampler"
        up = UPSAMPLERS.create(
            upsampler, channels=up_channels, scale_factor=scale_factor, **guide_kwargs, **dict(up_kwargs or {})
        )
        assert isinstance(up, Upsampler), f"registered upsampler {upsampler!r} is not an Upsampler"
        # A feature-guided upsampler's parameters sit at the pair's root, as in its official module.
        super().__init__(downsampler, up, up_channels, flat_children=("upsampler",) if guided else ())
        self.upsampler_name, self.down_name = upsampler, down

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, upsampler={self.upsampler_name!r}, down={self.down_name!r}"


def pair_entry_for_upsampler(upsampler: Entry) -> Entry:
    """The pair registry's entry for a registered upsampler: :class:`ComposedPair` with
    ``upsampler`` fixed, the upsampler's own keywords gathered into ``up_kwargs``."""
    forwarded = tuple(k for k in upsampler.accepted_keywords() if k not in _SET_BY_PAIR)
    example = {k: v for k, v in upsampler.example.items() if k not in _SET_BY_PAIR}
    return Entry(
        name=upsampler.name,
        cls=ComposedPair,
        defaults={"upsampler": upsampler.name},
        example={"channels": upsampler.example.get("channels", 8), **example},
        summary=f"{upsampler.summary}; down: 2x2 max pooling (any downsampler via down=)",
        forwarded={"up_kwargs": forwarded},
    )


PAIRS.derive_from(UPSAMPLERS, pair_entry_for_upsampler)
