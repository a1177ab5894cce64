"""Operator modules.  Importing this package registers every operator."""
from .base import Downsampler, Resampler, Upsampler
from .carafe import CARAFEPack
from .deconv import DeconvUpsample
from .dysample import DySample
from .interpolate import BilinearUpsample, NearestUpsample
from .pixel_shuffle import PixelShuffleUpsample
from .pool import AvgPool, MaxPool
from .strided_conv import StridedConv

__all__ = [
    "AvgPool",
    "BilinearUpsample",
    "CARAFEPack",
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
