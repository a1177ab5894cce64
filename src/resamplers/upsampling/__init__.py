"""Upsamplers (``create_upsampler``): ``N x C x H x W`` -> ``N x C x sH x sW``.

Feature-guided upsamplers (FADE, SAPA) live in :mod:`resamplers.guided`.
"""

from ..base import Upsampler
from .carafe import CARAFEPack
from .deconv import DeconvUpsample
from .dlu import DLUPack
from .dysample import DySample
from .interpolate import BilinearUpsample, NearestUpsample
from .pixel_shuffle import PixelShuffleUpsample

__all__ = [
    "BilinearUpsample",
    "CARAFEPack",
    "DLUPack",
    "DeconvUpsample",
    "DySample",
    "NearestUpsample",
    "PixelShuffleUpsample",
    "Upsampler",
]
