"""Stateless operators: ``torch.Tensor`` in, ``torch.Tensor`` out."""
from ._native_backend import native_available
from .a2u import a2u_downsample, a2u_upsample, affinity_kernels, dynamic_depthwise_conv2d
from .adaptive_pooling import adaptive_avg_pool2d
from .dynamic_sampling import dynamic_sample, sub_pixel_positions
from .indexed import indexed_pooling, indexed_upsampling, max_pool_index, normalize_index
from .kernel_norm import softmax_kernels
from .reassembly import carafe, reassemble, reassemble_down, reassembly_macs
from .window_similarity import window_similarity

__all__ = [
    "a2u_downsample",
    "a2u_upsample",
    "adaptive_avg_pool2d",
    "affinity_kernels",
    "carafe",
    "dynamic_depthwise_conv2d",
    "dynamic_sample",
    "indexed_pooling",
    "indexed_upsampling",
    "max_pool_index",
    "native_available",
    "normalize_index",
    "reassemble",
    "reassemble_down",
    "reassembly_macs",
    "softmax_kernels",
    "sub_pixel_positions",
    "window_similarity",
]
