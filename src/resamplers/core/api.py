"""The reassembly core: one content-aware weighted sum that many resamplers share.

Every operator in this library applies a kernel to a neighbourhood.  This module holds
that step once.  Given features ``x`` (``N x C x H x W``) and per-pixel kernels ``w``
(``N x (G*K*K) x H_out x W_out``), the output pixel ``(y, x)`` of channel ``c`` is

.. math::

    out[n, c, y, x] = \\sum_{a, b < K} w[n, g K^2 + a K + b, y, x]
                      \\cdot x[n, c, \\lfloor y / u \\rfloor s + a - p_t,
                                   \\lfloor x / u \\rfloor s + b - p_l]

where ``g = c // (C / G)`` (contiguous channel groups), ``u`` is the upsampling factor,
``s`` the stride and ``(p_t, p_l)`` the top/left padding.  Source pixels outside the
image contribute nothing (zero padding) and the kernel is *not* renormalised there.

Thin callers give the operators:

* CARAFE upsampling (``u = sigma``, ``s = 1``, ``p = (K - 1) / 2``): :func:`carafe`;
* strided "down" reassembly (``u = 1``, ``s = sigma``): :func:`reassemble_down`, used by
  CARAFE++ (odd ``K`` centred on the input pixel) and A2U (even ``K = 2 s``);
* index-weighted pooling and unpooling (IndexNet, max unpooling): ``K`` of 1 or 2 with
  one group per channel.

Three interchangeable backends compute the same formula:

* ``"native"``: C kernels (CPU, float32/float64; half and bfloat16 run in float32) with
  hand-written gather-form backward passes; deterministic and free of atomics;
* ``"triton"``: Triton kernels (CUDA; float16/bfloat16 accumulate in float32, float64 in
  float64) with the same gather-form backward passes, deterministic and free of atomics.
  It needs the optional ``triton`` package (``pip install 'resamplers[gpu]'``); its
  kernels are loaded only when a CUDA tensor (or ``backend="triton"``) first asks for
  them.  On CPU tensors it runs only in Triton's interpreter (``TRITON_INTERPRET=1``),
  which the tests use;
* ``"torch"``: a loop over the ``K*K`` taps of broadcasted multiply-adds on strided views,
  accumulated in place.  It runs on every device and is the path used when exporting
  (ONNX, ``torch.export``) and compiling; in eager training it has a hand-written
  backward pass (:class:`_TorchReassembly`) that accumulates both gradients in place.

``backend="auto"`` picks the native kernels for CPU tensors, Triton for CUDA tensors
(when triton imports) and the torch path otherwise and whenever the call is being
exported or traced; naming a backend that cannot run the call raises a ``ValueError``.

Precision: outside autocast, features and kernels must share one dtype.  Inside
``torch.autocast`` (CPU bfloat16, CUDA float16/bfloat16), kernels predicted in low
precision next to float32 features are accepted: both are computed in float32 (float64
if either is float64) and the output comes back in the dtype of the features (for the
window similarity, of the query); gradients flow back in each input's own dtype.

Sampling at offsets: ``reassemble`` and ``window_similarity`` take ``offsets``
(``N x (2*G*K*K) x H_out x W_out``, input pixel units, column first): tap ``t`` then reads
the input bilinearly (zero outside the image) at its grid position plus its offset
(:mod:`.offset_path` on the torch path, three kernels of their own on the native path;
``"triton"`` rejects offsets, ``"auto"`` takes the native kernels for CPU tensors and the
torch path otherwise; half and bfloat16 are sampled in float32).

None materialises the unfolded ``N x C x K^2 x H_out x W_out`` tensor: the native
kernels work row by row, the Triton kernels tile by tile in registers, and the torch
path holds the output plus, in backward, products over a quarter of the channels at a
time: peak extra memory stays within 2x the output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_int, check_odd
from .exporting import eager_autograd, is_exporting
from .geometry import Backend, Geometry, check_backend, check_offsets, check_reassembly, check_similarity
from .native import NativeOffsetTaps, native_available, native_reassemble, native_window_similarity
from .offset_path import OffsetTaps, reassemble_offsets_torch, similarity_offsets_torch
from .torch_path import TorchReassembly, reassemble_torch, similarity_torch
from .triton_path import triton_available, triton_interpreted, triton_reassemble, triton_window_similarity

__all__ = [
    "reassemble",
    "carafe",
    "reassemble_down",
    "window_similarity",
    "reassembly_macs",
    "use_native",
    "use_triton",
    "run_reassembly",
    "run_similarity",
    "run_offsets",
]


def autocast_dtype(first: object, second: object) -> torch.dtype | None:
    """The compute dtype under autocast, or ``None`` outside it (or for non-tensors, which
    the validation then rejects).

    Precision policy: outside autocast both tensors must share one dtype (strict check).
    Inside autocast (``torch.is_autocast_enabled(device_type)``), where kernel-predicting
    convolutions return bfloat16/float16 kernels next to float32 features, both are brought
    to float32 (float64 if either is float64), the sum is accumulated in that dtype, and
    the result is returned in the dtype of the features (the input).
    """
    if not (isinstance(first, Tensor) and isinstance(second, Tensor)):
        return None
    if not torch.is_autocast_enabled(first.device.type):
        return None
    return torch.float64 if torch.float64 in (first.dtype, second.dtype) else torch.float32


def use_native(features: Tensor, backend: Backend) -> bool:
    """Validate ``backend`` and decide whether the native kernels compute this call."""
    check_backend(backend)
    if backend in ("torch", "triton"):
        return False
    usable = native_available() and features.device.type == "cpu" and not is_exporting()
    if backend == "native" and not usable:
        raise ValueError(
            "argument `backend`: 'native' needs the compiled CPU kernels and a CPU tensor outside export "
            f"(native available: {native_available()}, device: {features.device})"
        )
    return usable


def use_triton(features: Tensor, backend: Backend) -> bool:
    """Validate ``backend`` and decide whether the Triton kernels compute this call: for
    ``"auto"``, CUDA tensors outside export when triton imports; ``"triton"`` must be able
    to run it (CUDA, or CPU in Triton's interpreter, and not exporting)."""
    check_backend(backend)
    if backend == "auto":
        # CPU calls stop at the device test and never import triton.
        return features.device.type == "cuda" and not is_exporting() and triton_available()
    if backend != "triton":
        return False
    if is_exporting():
        raise ValueError(
            "argument `backend`: 'triton' cannot be exported or traced (the graph must hold portable torch ops); "
            "use backend='auto' or 'torch'"
        )
    if not triton_available():
        raise ValueError("argument `backend`: 'triton' needs the triton package (pip install 'resamplers[gpu]')")
    device = features.device.type
    if device == "cuda" or (device == "cpu" and triton_interpreted()):
        return True
    raise ValueError(
        "argument `backend`: 'triton' runs on CUDA tensors, and on CPU tensors only in Triton's interpreter "
        f"(TRITON_INTERPRET=1 set before the first use of the Triton path); got device {features.device}"
    )


def run_reassembly(features: Tensor, kernels: Tensor, geometry: Geometry, backend: Backend) -> Tensor:
    """Reassemble already validated arguments on the chosen backend."""
    if use_triton(features, backend):
        return triton_reassemble(features, kernels, geometry)
    if use_native(features, backend):
        return native_reassemble(features, kernels, geometry)
    if eager_autograd(features, kernels):
        return TorchReassembly.apply(features, kernels, geometry)
    return reassemble_torch(features, kernels, geometry)


def run_similarity(query: Tensor, keys: Tensor, geometry: Geometry, backend: Backend) -> Tensor:
    """Window similarity of already validated arguments on the chosen backend."""
    if use_triton(keys, backend):
        return triton_window_similarity(query, keys, geometry)
    if use_native(keys, backend):
        return native_window_similarity(query, keys, geometry)
    return similarity_torch(query, keys, geometry)


def run_offsets(
    kind: str,
    sampled: Tensor,
    other: Tensor,
    offsets: Tensor,
    geometry: Geometry,
    backend: Backend,
    compute: torch.dtype | None,
) -> Tensor:
    """A reassembly (``kind="reassemble"``: ``sampled`` = features, ``other`` = kernels) or a
    window similarity (``"similarity"``: ``sampled`` = keys, ``other`` = query) of already
    validated arguments whose taps are sampled at ``offsets``; the result in the dtype of
    the features (of the query)."""
    check_backend(backend)
    if backend == "triton":
        raise ValueError(
            "argument `backend`: sampling at `offsets` has the native and torch paths, not Triton; "
            "use 'auto', 'native' or 'torch'"
        )
    result_dtype = sampled.dtype if kind == "reassemble" else other.dtype
    dtype = compute or sampled.dtype
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32  # positions in half precision would be off by a fraction of a pixel
    sampled, other, offsets = sampled.to(dtype), other.to(dtype), offsets.to(dtype)
    if use_native(sampled, backend):
        out = NativeOffsetTaps.apply(kind, sampled, other, offsets, geometry)
    elif eager_autograd(sampled, other, offsets):
        out = OffsetTaps.apply(kind, sampled, other, offsets, geometry)
    elif kind == "reassemble":
        out = reassemble_offsets_torch(sampled, other, offsets, geometry)
    else:
        out = similarity_offsets_torch(other, sampled, offsets, geometry)
    return out.to(result_dtype)


def _run_cast(
    features: Tensor, kernels: Tensor, geometry: Geometry, backend: Backend, compute: torch.dtype | None
) -> Tensor:
    """:func:`run_reassembly`, under autocast in ``compute`` and returned in the features' dtype."""
    if compute is None:
        return run_reassembly(features, kernels, geometry, backend)
    return run_reassembly(features.to(compute), kernels.to(compute), geometry, backend).to(features.dtype)


def reassemble(
    features: Tensor,
    kernels: Tensor,
    kernel_size: int,
    groups: int = 1,
    *,
    scale_factor: int = 1,
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
    offsets: Tensor | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """Content-aware reassembly: per-pixel ``K x K`` kernels applied to a neighbourhood.

    Args:
        features: ``N x C x H x W`` feature map.
        kernels: ``N x (G*K*K) x H_out x W_out`` kernels, channel ``g*K*K + a*K + b`` for
            group ``g``, kernel row ``a`` and column ``b``.  Not required to be normalised.
        kernel_size: ``K``.
        groups: ``G``; channel ``c`` uses group ``c // (C / G)``.
        scale_factor: upsampling factor ``u``: output pixel ``(y, x)`` is centred on source
            pixel ``(y // u, x // u)``; then ``H_out = u * H`` and ``stride`` must be 1.
        stride: downsampling stride ``s``: output pixel ``(y, x)`` reads the window whose
            top-left tap is ``(s * y - p_t, s * x - p_l)``.
        padding: ``(p_t, p_l)`` top/left padding (an int for both); default ``(K - 1) // 2``.
        offsets: optional ``N x (2*G*K*K) x H_out x W_out``: tap ``t = a*K + b`` of group
            ``g`` then reads ``features`` bilinearly (zero outside the image) at row
            ``(y // u) * s + a - p_t + offsets[n, 2*(g*K*K + t) + 1, y, x]`` and column
            ``(x // u) * s + b - p_l + offsets[n, 2*(g*K*K + t), y, x]`` (input pixel
            units, pixel centres at integers); zero offsets give the plain window.  The
            native and torch paths (``backend`` ``"auto"``, ``"native"`` or ``"torch"``).
        backend: ``"auto"`` (native kernels on CPU when available, Triton on CUDA when
            triton is installed, else torch; always torch when exporting), ``"native"``,
            ``"triton"`` (CUDA; CPU only under ``TRITON_INTERPRET=1``) or ``"torch"``.

    Returns:
        ``N x C x H_out x W_out`` tensor of the dtype of ``features``.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> w = torch.zeros(1, 9, 4, 4); w[:, 4] = 1.0  # centre tap only: nearest
        >>> reassemble(x, w, 3, scale_factor=2)[0, 0]
        tensor([[0., 0., 1., 1.],
                [0., 0., 1., 1.],
                [2., 2., 3., 3.],
                [2., 2., 3., 3.]])
    """
    compute = autocast_dtype(features, kernels)
    geometry = check_reassembly(
        features, kernels, kernel_size, groups, scale_factor, stride, padding, same_dtype=compute is None
    )
    if offsets is not None:
        size = (kernels.shape[-2], kernels.shape[-1])
        check_offsets(offsets, features, "features", size, geometry, same_dtype=compute is None)
        return run_offsets("reassemble", features, kernels, offsets, geometry, backend, compute)
    return _run_cast(features, kernels, geometry, backend, compute)


def carafe(
    features: Tensor,
    masks: Tensor,
    kernel_size: int,
    group_size: int,
    scale_factor: int,
    *,
    backend: Backend = "auto",
) -> Tensor:
    """CARAFE reassembly with mmcv's exact semantics (``mmcv.ops.carafe``).

    ``out[n, c, y, x] = sum_{dy, dx} masks[n, g*k*k + dy*k + dx, y, x] *
    features[n, c, y // s + dy - r, x // s + dx - r]`` with ``r = (k - 1) // 2``,
    ``g = c // (C / G)`` and zero padding (out-of-image taps skipped, no renormalisation).

    Args:
        features: ``N x C x H x W``.
        masks: ``N x (G*k*k) x (s*H) x (s*W)``; not required to be normalised.
        kernel_size: odd ``k >= 1``.
        group_size: ``G``, a divisor of ``C``.
        scale_factor: integer ``s >= 1`` (1 gives content-aware filtering without resize).
        backend: ``"auto"``, ``"native"``, ``"triton"`` or ``"torch"`` (as for :func:`reassemble`).

    Returns:
        ``N x C x (s*H) x (s*W)``, dtype of ``features``.
    """
    check_odd(kernel_size, "kernel_size")
    check_int(scale_factor, "scale_factor", minimum=1)
    compute = autocast_dtype(features, masks)
    geometry = check_reassembly(
        features,
        masks,
        kernel_size,
        group_size,
        scale_factor,
        1,
        None,
        kernels_name="masks",
        groups_name="group_size",
        same_dtype=compute is None,
    )
    return _run_cast(features, masks, geometry, backend, compute)


def reassemble_down(
    features: Tensor,
    kernels: Tensor,
    kernel_size: int,
    groups: int,
    stride: int,
    padding: int | tuple[int, int],
    *,
    backend: Backend = "auto",
) -> Tensor:
    """Strided reassembly: ``out[y, x] = sum_{a,b} w[g*K*K + a*K + b, y, x] * x[s*y - p_t + a, s*x - p_l + b]``.

    Used for content-aware downsampling: CARAFE++ (odd ``K``, ``p = (K - 1) // 2``, window
    centred on input pixel ``(s*y, s*x)``) and A2U (even ``K = 2k``, ``p = k - 1``, window
    centred on the ``s x s`` cell).  Zero padding, no renormalisation.

    Shapes:
        features ``N x C x H x W``, kernels ``N x (G*K*K) x H_out x W_out`` with
        ``H_out <= (H - 1 + p_t) // s + 1``; returns ``N x C x H_out x W_out``.

    ``backend``: ``"auto"``, ``"native"``, ``"triton"`` or ``"torch"`` (as for :func:`reassemble`).
    """
    compute = autocast_dtype(features, kernels)
    geometry = check_reassembly(features, kernels, kernel_size, groups, 1, stride, padding, same_dtype=compute is None)
    return _run_cast(features, kernels, geometry, backend, compute)


def window_similarity(
    query: Tensor,
    keys: Tensor,
    kernel_size: int,
    groups: int = 1,
    *,
    scale_factor: int = 1,
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
    offsets: Tensor | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """Inner products between each query pixel and the keys of its reassembly window.

    ``sim[n, g*K*K + a*K + b, y, x] = sum_{c in g} query[n, c, y, x] * keys[n, c, r, q]``
    with ``r = (y // u)*s + a - p_t``, ``q = (x // u)*s + b - p_l`` (the pixel that
    :func:`~resamplers.functional.reassemble` with the same geometry reads for that tap),
    contiguous channel groups ``g = c // (C / G)``, and **0 for keys outside the image**
    (they are not masked to ``-inf``: a softmax still gives them weight, as SAPA does).
    No scaling is applied.

    Args:
        query: ``N x C x H_out x W_out``.
        keys: ``N x C x H x W``.
        kernel_size: window size ``K``.
        groups: ``G``, a divisor of ``C``: one similarity map per group and tap.
        scale_factor: upsampling factor ``u``; then ``H_out = u * H`` and ``stride`` must be 1.
        stride: downsampling stride ``s``.
        padding: ``(p_t, p_l)`` (an int for both); default ``(K - 1) // 2``.
        offsets: optional ``N x (2*G*K*K) x H_out x W_out``: the key of tap ``t`` of group
            ``g`` is then sampled bilinearly (zero outside the image) at the tap's
            position plus ``(offsets[n, 2*(g*K*K + t) + 1], offsets[n, 2*(g*K*K + t)])``
            (row, column; input pixel units), exactly as ``reassemble`` with the same
            ``offsets`` reads its values.  The native and torch paths.
        backend: ``"auto"``, ``"native"``, ``"triton"`` or ``"torch"`` (as for ``reassemble``).

    Returns:
        ``N x (G*K*K) x H_out x W_out`` in the dtype of ``query``: kernels in the layout that
        ``reassemble`` / ``carafe`` consume.

    Example:
        >>> keys = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> query = torch.ones(1, 1, 4, 4)
        >>> window_similarity(query, keys, 3, scale_factor=2)[0, :, 0, 0]  # window of key (0, 0)
        tensor([0., 0., 0., 0., 0., 1., 0., 2., 3.])
    """
    compute = autocast_dtype(query, keys)
    geometry = check_similarity(
        query, keys, kernel_size, groups, scale_factor, stride, padding, same_dtype=compute is None
    )
    if offsets is not None:
        size = (query.shape[-2], query.shape[-1])
        check_offsets(offsets, query, "query", size, geometry, same_dtype=compute is None)
        return run_offsets("similarity", keys, query, offsets, geometry, backend, compute)
    if compute is None:
        return run_similarity(query, keys, geometry, backend)
    return run_similarity(query.to(compute), keys.to(compute), geometry, backend).to(query.dtype)


def reassembly_macs(channels: int, kernel_size: int, out_height: int, out_width: int, batch: int = 1) -> int:
    """Multiply-accumulates of one reassembly: ``N * C * K^2 * H_out * W_out``."""
    return batch * channels * kernel_size * kernel_size * out_height * out_width
