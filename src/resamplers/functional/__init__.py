"""Stateless operators: ``torch.Tensor`` in, ``torch.Tensor`` out."""
from ._native_backend import native_available
from .reassembly import carafe, reassemble, reassemble_down, reassembly_macs

__all__ = ["carafe", "native_available", "reassemble", "reassemble_down", "reassembly_macs"]
