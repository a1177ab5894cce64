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

# The pooling zoo (local pools, registered as downsamplers).
from .avgmax_pool import AvgMaxPool, CatAvgMaxPool, MixedPool
from .blur_pool import BlurPool
from .gem import GeMPool
from .lp_pool import LPPool
from .median_pool import MedianPool
from .soft_pool import SoftPool
from .stochastic_pool import StochasticPool

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
__all__ += [
    "AvgMaxPool",
    "BlurPool",
    "CatAvgMaxPool",
    "GeMPool",
    "LPPool",
    "MedianPool",
    "MixedPool",
    "SoftPool",
    "StochasticPool",
]
