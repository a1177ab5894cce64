"""Downsamplers (``create_downsampler``): local pools, strided convolution, CARAFE++ down.

Guided down steps that also emit a guide (IndexNet, A2U, max pooling with indices) live
in :mod:`resamplers.guided`.
"""

from ..base import Downsampler
from .avgmax_pool import AvgMaxPool, CatAvgMaxPool, MixedPool
from .blur_pool import BlurPool
from .carafe_down import CARAFEDown
from .gem import GeMPool
from .lp_pool import LPPool
from .median_pool import MedianPool
from .pool import AvgPool, MaxPool
from .soft_pool import SoftPool
from .stochastic_pool import StochasticPool
from .strided_conv import StridedConv

__all__ = [
    "AvgMaxPool",
    "AvgPool",
    "BlurPool",
    "CARAFEDown",
    "CatAvgMaxPool",
    "Downsampler",
    "GeMPool",
    "LPPool",
    "MaxPool",
    "MedianPool",
    "MixedPool",
    "SoftPool",
    "StochasticPool",
    "StridedConv",
]
