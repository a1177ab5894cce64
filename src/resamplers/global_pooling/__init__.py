"""Global and pyramid pools (``create_pool``): fixed-size outputs from maps of any size."""

from .base import GlobalPool
from .bilinear import BilinearPool
from .global_pool import (
    AdaptivePool,
    GlobalAvgMaxPool,
    GlobalAvgPool,
    GlobalCatAvgMaxPool,
    GlobalGeMPool,
    GlobalMaxPool,
)
from .netvlad import NetVLAD
from .spp import SPP, SPPF, SPPBins

__all__ = [
    "AdaptivePool",
    "BilinearPool",
    "GlobalAvgMaxPool",
    "GlobalAvgPool",
    "GlobalCatAvgMaxPool",
    "GlobalGeMPool",
    "GlobalMaxPool",
    "GlobalPool",
    "NetVLAD",
    "SPP",
    "SPPBins",
    "SPPF",
]
