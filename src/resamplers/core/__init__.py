"""The reassembly core: geometry and validation, the torch path, the native path and the
window similarity, behind one internal interface.

Modules (all names below are the package's internal interface; ``resamplers.functional``
is the public face and re-exports the public functions):

* :mod:`.exporting`: :func:`is_exporting`, the one check for tracing/export, and
  :func:`eager_autograd`;
* :mod:`.geometry`: :class:`Geometry` and the argument validation (once per public call);
* :mod:`.taps`: the one traversal of a window's taps (:func:`strided_views`), shared by
  the torch path, the window similarity and the local pools (:func:`window_taps`);
* :mod:`.torch_path`: the portable torch path and its eager backward;
* :mod:`.offset_path`: taps sampled at offsets (``offsets=`` of ``reassemble`` and
  ``window_similarity``) on the torch path, with its eager backward;
* :mod:`.native`: the C library, its thread pool and the ``torch.ops.resamplers`` custom ops
  (the offset kernels included, with their autograd);
* :mod:`.triton_path`: the Triton GPU kernels (:mod:`._triton_kernels`, loaded on first
  use; ``triton`` is optional) as ``torch.ops.resamplers.triton_*`` custom ops;
* :mod:`.api`: the public functions (validate, choose a backend, run).

Layering: the core imports only ``resamplers._checks`` (and torch).
"""

from .api import (
    carafe,
    reassemble,
    reassemble_down,
    reassembly_macs,
    run_offsets,
    run_reassembly,
    run_similarity,
    use_native,
    use_triton,
    window_similarity,
)
from .exporting import eager_autograd, is_exporting
from .geometry import Backend, Geometry, check_backend, check_reassembly, check_similarity, check_window_args
from .native import native_available, native_isa, native_threads
from .taps import PaddingMode, strided_views, window_taps
from .triton_path import triton_available

__all__ = [
    "Backend",
    "Geometry",
    "PaddingMode",
    "carafe",
    "check_backend",
    "check_reassembly",
    "check_similarity",
    "check_window_args",
    "eager_autograd",
    "is_exporting",
    "native_available",
    "native_isa",
    "native_threads",
    "reassemble",
    "reassemble_down",
    "reassembly_macs",
    "run_offsets",
    "run_reassembly",
    "run_similarity",
    "strided_views",
    "triton_available",
    "use_native",
    "use_triton",
    "window_similarity",
    "window_taps",
]
