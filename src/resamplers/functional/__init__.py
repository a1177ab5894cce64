"""Stateless operators: ``torch.Tensor`` in, ``torch.Tensor`` out."""
from ._native_backend import native_available
from .dynamic_sampling import dynamic_sample, sub_pixel_positions
from .kernel_norm import softmax_kernels
from .reassembly import carafe, reassemble, reassemble_down, reassembly_macs
from .window_similarity import window_similarity

__all__ = [
    "carafe",
    "dynamic_sample",
    "native_available",
    "reassemble",
    "reassemble_down",
    "reassembly_macs",
    "softmax_kernels",
    "sub_pixel_positions",
    "window_similarity",
]
