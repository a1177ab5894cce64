"""Stateless operators: ``torch.Tensor`` in, ``torch.Tensor`` out."""
from ._native_backend import native_available
from .kernel_norm import softmax_kernels
from .reassembly import carafe, reassemble, reassemble_down, reassembly_macs

__all__ = ["carafe", "native_available", "reassemble", "reassemble_down", "reassembly_macs", "softmax_kernels"]
