"""Multi-scale blocks built on resamplers (``create_block``): strip pooling, selective kernels, HRNet."""
from .base import Block
from .hrnet import HRNET_CONFIGS, HighResolutionModule, HRNet, HRNetFuse, HRNetStage, hrnet_config
from .selective_kernel import SelectiveKernel, SelectiveKernelAttention
from .strip_pooling import MixedPoolingModule, StripPooling

__all__ = [
    "Block",
    "HRNET_CONFIGS",
    "HRNet",
    "HRNetFuse",
    "HRNetStage",
    "HighResolutionModule",
    "MixedPoolingModule",
    "SelectiveKernel",
    "SelectiveKernelAttention",
    "StripPooling",
    "hrnet_config",
]
