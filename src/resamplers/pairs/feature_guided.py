"""Pairs whose up step is guided by the high-resolution encoder feature itself.

FADE and SAPA upsample a low-resolution decoder feature with kernels computed from the
high-resolution encoder feature of the same stage.  Their down step is any plain
registered downsampler; the guide carries the encoder feature (``guide.tensors
["encoder"]``, also the skip).  :meth:`FeatureGuidedPair.upsample` is the up step called
directly with both features, as in the operators' official code.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .._checks import check_feature
from ..functional.reassembly import carafe
from ..registry import DOWNSAMPLERS
from .base import Guide, ResamplerPair, spatial_size

__all__ = ["FeatureGuidedPair"]


class FeatureGuidedPair(ResamplerPair):
    """Base class: a registered downsampler, and an up step guided by the encoder feature.

    Args:
        channels: encoder channels ``C`` (input of ``down``, the guidance feature).
        scale_factor: integer scale ``s`` of both steps.
        up_channels: decoder channels ``C_d`` accepted by ``up`` (default ``C``).
        down: name of the registered downsampler (default ``"max"``, 2x2 max pooling).
        down_kwargs: extra constructor arguments of the downsampler.
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        up_channels: int | None = None,
        down: str = "max",
        down_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(channels, scale_factor, up_channels)
        self.down_name = down
        self.downsampler = DOWNSAMPLERS.create(down, channels=channels, scale_factor=scale_factor, **dict(down_kwargs or {}))

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        self.check_input(x)
        y = self.downsampler(x)
        return y, Guide(size=spatial_size(x), low_size=spatial_size(y), skip=x, tensors={"encoder": x})

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        self.check_up_input(d, guide)
        return self.upsample(d, guide.tensors["encoder"])

    def check_upsample_inputs(self, d: Tensor, encoder: Tensor) -> None:
        """``d``: ``N x C_d x h x w``; ``encoder``: ``N x C x sh x sw``."""
        check_feature(d, "d", channels=self.up_channels)
        check_feature(encoder, "encoder", channels=self.channels)
        s = self.scale_factor
        expected = (d.shape[0], d.shape[-2] * s, d.shape[-1] * s)
        if (encoder.shape[0], encoder.shape[-2], encoder.shape[-1]) != expected:
            raise ValueError(
                f"argument `encoder`: expected batch {expected[0]} and spatial size {expected[1]} x {expected[2]} "
                f"(scale_factor {s} times that of `d`), got shape {tuple(encoder.shape)}"
            )

    def _reassemble(self, d: Tensor, encoder: Tensor) -> Tensor:
        """Check the inputs and reassemble ``d`` with ``self.kernels(d, encoder)`` (CARAFE with one
        group and window ``self.up_kernel``): the up step of the kernel-predicting pairs."""
        self.check_upsample_inputs(d, encoder)
        return carafe(d, self.kernels(d, encoder), self.up_kernel, 1, self.scale_factor)

    def upsample(self, d: Tensor, encoder: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Upsample the decoder feature ``d`` guided by the encoder feature (``s`` times larger)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, down={self.down_name!r}"
