"""Operator modules.  Importing this package registers every operator."""
from .base import Downsampler, Resampler, Upsampler
from .carafe import CARAFEPack
from .carafe_down import CARAFEDown
from .channel_norm import ChannelLayerNorm
from .deconv import DeconvUpsample
from .dysample import DySample
from .interpolate import BilinearUpsample, NearestUpsample
from .pixel_shuffle import PixelShuffleUpsample
from .pool import AvgPool, MaxPool
from .strided_conv import StridedConv

__all__ = [
    "AvgPool",
    "BilinearUpsample",
    "CARAFEDown",
    "CARAFEPack",
    "ChannelLayerNorm",
    "DeconvUpsample",
    "Downsampler",
    "DySample",
    "MaxPool",
    "NearestUpsample",
    "PixelShuffleUpsample",
    "Resampler",
    "StridedConv",
    "Upsampler",
]
