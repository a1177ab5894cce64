"""Similarity between each output pixel's query and the keys in its reassembly window.

Similarity-based upsamplers (SAPA) build their kernels from inner products between a
high-resolution query and the low-resolution keys in the ``K x K`` window that the
reassembly core will read, then reassemble with those kernels.  The similarity visits
exactly the core's windows, and it is the adjoint of reassembly with respect to its
kernels::

    sim[n, g*K*K + a*K + b, y, x] = sum_{c in group g} query[n, c, y, x]
                                    * keys[n, c, (y // u)*s + a - p_t, (x // u)*s + b - p_l]

with 0 for keys outside the image.  Neither backend materialises the unfolded
``N x C x K^2 x H_out x W_out`` tensor: the native one is the core's kernel-gradient C
kernel run forward, the torch one loops over taps with one query-sized temporary.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_feature, check_same_dtype_device
from ._native_similarity import native_window_similarity
from .reassembly import Backend, _check_output_size, _check_reassembly_window, _splits_groups, _tap_sources, _use_native

__all__ = ["window_similarity"]


def _similarity_torch(
    query: Tensor, keys: Tensor, kernel_size: int, groups: int, up: int, stride: int, pad_top: int, pad_left: int
) -> Tensor:
    n, c = keys.shape[:2]
    h_out, w_out = query.shape[-2:]
    hq, wq = h_out // up, w_out // up
    block = (hq, up, wq, up) if up > 1 else (hq, wq)
    split = _splits_groups(groups, c)
    q = query.reshape((n, groups, c // groups, *block) if split else (n, c, *block))
    sims = []
    for _, source in _tap_sources(keys, kernel_size, groups, up, stride, pad_top, pad_left, hq, wq):
        product = source * q
        # Sum over each group's channels (none to sum with one channel per group).
        sims.append(product.sum(2) if split else product.sum(1, keepdim=True) if groups == 1 else product)
    return torch.stack(sims, dim=2).reshape(n, groups * kernel_size * kernel_size, h_out, w_out)


def window_similarity(
    query: Tensor,
    keys: Tensor,
    kernel_size: int,
    groups: int = 1,
    *,
    scale_factor: int = 1,
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
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
        backend: ``"auto"``, ``"native"`` or ``"torch"`` (as for ``reassemble``).

    Returns:
        ``N x (G*K*K) x H_out x W_out`` in the dtype of ``query``: kernels in the layout that
        ``reassemble`` / ``carafe`` consume.

    Example:
        >>> keys = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> query = torch.ones(1, 1, 4, 4)
        >>> window_similarity(query, keys, 3, scale_factor=2)[0, :, 0, 0]  # window of key (0, 0)
        tensor([0., 0., 0., 0., 0., 1., 0., 2., 3.])
    """
    check_feature(query, "query")
    check_feature(keys, "keys")
    check_same_dtype_device(query, "query", keys, "keys")
    k, pad_top, pad_left = _check_reassembly_window(kernel_size, groups, scale_factor, stride, padding)
    n, c = keys.shape[:2]
    if tuple(query.shape[:2]) != (n, c):
        raise ValueError(
            f"argument `query`: expected batch and channels {n} x {c} (those of `keys`), got {query.shape[0]} x {query.shape[1]}"
        )
    if c % groups != 0:
        raise ValueError(f"argument `groups`: expected a divisor of the {c} channels, got {groups}")
    _check_output_size(tuple(keys.shape[-2:]), tuple(query.shape[-2:]), scale_factor, stride, pad_top, pad_left, "query")
    if _use_native(keys, backend):
        return native_window_similarity(query, keys, k, groups, scale_factor, stride, pad_top, pad_left)
    return _similarity_torch(query, keys, k, groups, scale_factor, stride, pad_top, pad_left)
