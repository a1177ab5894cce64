"""Stateless operators: ``torch.Tensor`` in, ``torch.Tensor`` out."""

from ..core import native_available, native_isa, native_threads, triton_available
from .a2u import a2u_downsample, a2u_upsample, affinity_kernels, dynamic_depthwise_conv2d
from .adaptive_pool import adaptive_avg_pool2d, adaptive_max_pool2d
from .avgmax_pool import avgmax_pool2d, catavgmax_pool2d, mixed_pool2d
from .bilinear_pool import bilinear_pool
from .blur_pool import binomial_filter, blur_pool2d
from .dynamic_sampling import dynamic_sample, sub_pixel_positions
from .gem import adaptive_gem_pool2d, gem_pool2d
from .indexed import indexed_pooling, indexed_upsampling, max_pool_index, normalize_index
from .kernel_norm import softmax_kernels
from .lp_pool import lp_pool2d
from .median_pool import median_pool2d
from .netvlad import netvlad
from .reassembly import carafe, reassemble, reassemble_down, reassembly_macs
from .soft_pool import soft_pool2d
from .spatial_pyramid_pool import spp_bins, spp_yolo, sppf
from .stochastic_pool import stochastic_pool2d
from .window_similarity import window_similarity
from .windows import window_output_size, window_taps

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
    "native_isa",
    "native_threads",
    "normalize_index",
    "reassemble",
    "reassemble_down",
    "reassembly_macs",
    "softmax_kernels",
    "sub_pixel_positions",
    "triton_available",
    "window_similarity",
]
__all__ += [
    "adaptive_gem_pool2d",
    "adaptive_max_pool2d",
    "avgmax_pool2d",
    "bilinear_pool",
    "binomial_filter",
    "blur_pool2d",
    "catavgmax_pool2d",
    "gem_pool2d",
    "lp_pool2d",
    "median_pool2d",
    "mixed_pool2d",
    "netvlad",
    "soft_pool2d",
    "spp_bins",
    "spp_yolo",
    "sppf",
    "stochastic_pool2d",
    "window_output_size",
    "window_taps",
]
