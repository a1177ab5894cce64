"""Multi-scale blocks built on resamplers (``create_block``): strip pooling, selective kernels,
HRNet's exchange unit."""

from .base import Block, MultiResolutionBlock
from .hrnet import HighResolutionModule, HRNetFuse
from .selective_kernel import SelectiveKernel, SelectiveKernelAttention
from .strip_pooling import MixedPoolingModule, StripPooling

__all__ = [
    "Block",
    "HRNetFuse",
    "HighResolutionModule",
    "MixedPoolingModule",
    "MultiResolutionBlock",
    "SelectiveKernel",
    "SelectiveKernelAttention",
    "StripPooling",
]
