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

Two interchangeable backends compute the same formula:

* ``"native"``: C kernels (CPU, float32/float64; half and bfloat16 run in float32) with
  hand-written gather-form backward passes; deterministic and free of atomics;
* ``"torch"``: a loop over the ``K*K`` taps of broadcasted multiply-adds on strided views.
  It runs on every device and is the path used when exporting (ONNX, ``torch.export``).

Neither materialises the unfolded ``N x C x K^2 x H_out x W_out`` tensor: the native
kernels work row by row, and the torch path keeps one output-sized temporary per tap.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import statically_known_true

from .._checks import check_feature, check_int, check_odd, check_same_dtype_device, pair
from ._native_backend import native_available, native_reassemble

__all__ = ["reassemble", "carafe", "reassemble_down", "reassembly_macs", "Backend"]

Backend = Literal["auto", "native", "torch"]


def _use_native(features: Tensor, backend: Backend) -> bool:
    """Validate ``backend`` and decide whether the native kernels compute this call."""
    if backend not in ("auto", "native", "torch"):
        raise ValueError(f"argument `backend`: expected one of ['auto', 'native', 'torch'], got {backend!r}")
    if backend == "torch":
        return False
    exporting = (
        torch.jit.is_scripting()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )
    usable = native_available() and features.device.type == "cpu" and not exporting
    if backend == "native" and not usable:
        raise ValueError(
            "argument `backend`: 'native' needs the compiled CPU kernels and a CPU tensor outside export "
            f"(native available: {native_available()}, device: {features.device})"
        )
    return usable


def _strided_span(size_in: int, count: int, stride: int, pad_before: int) -> int:
    """Length ``L`` of the stretch of rows (or columns) that ``count`` taps ``stride`` apart
    cover, ``count = (L - 1) // stride + 1``, written in terms of the input size whenever
    that is provably equal.

    Under ``torch.export`` with dynamic shapes, the output size comes out of a strided
    convolution as a floor division; a span computed from it cannot be proven to stay
    inside the padded input, and export fails, while ``size_in + extra`` can.  The search
    asks :func:`statically_known_true`, so it adds no guards.
    """
    for extra in range(pad_before, -stride, -1):
        if statically_known_true((size_in + extra - 1) // stride + 1 == count):
            return size_in + extra
    return stride * (count - 1) + 1


def _every_nth(x: Tensor, dim: int, stride: int) -> Tensor:
    """``x`` sampled at indices ``0, s, 2s, ...`` along ``dim`` (a view).

    ``Tensor.unfold`` gives ``(L - 1) // s + 1`` elements, the same expression as a strided
    convolution's output size, which a ``::s`` slice (``(L + s - 1) // s``) is not always
    proven equal to under symbolic shapes.
    """
    return x if stride == 1 else x.unfold(dim, 1, stride).squeeze(-1)


def _splits_groups(groups: int, channels: int) -> bool:
    """Whether the torch path needs an explicit group axis.

    Not for one group (the kernels broadcast over the channels) nor for one group per
    channel (kernel groups line up with channels): splitting and merging that axis would
    need shape proofs that ``torch.export`` cannot always make.
    """
    return groups not in (1, channels)


def _tap_sources(
    features: Tensor, kernel_size: int, groups: int, up: int, stride: int, pad_top: int, pad_left: int, hq: int, wq: int
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(tap, source)`` for every tap ``a*K + b``: the strided view of the zero-padded
    features that the tap reads, ``N x [G x C/G | C] x Hq x Wq`` (the group axis only when
    :func:`_splits_groups`), with size-1 axes after ``Hq`` and ``Wq`` when upsampling, to
    broadcast against ``up x up`` output blocks.

    Without upsampling no size-1 block dimensions are inserted: their strides would be
    floor-division expressions that export's layout computation cannot order.
    """
    n, c, h_in, w_in = features.shape
    k = kernel_size
    # K - 1 rows/columns of bottom/right padding always suffice: see _check_geometry.
    padded = F.pad(features, (pad_left, k - 1, pad_top, k - 1))
    if _splits_groups(groups, c):
        padded = padded.reshape(n, groups, c // groups, padded.shape[-2], padded.shape[-1])
    rows = _strided_span(h_in, hq, stride, pad_top)
    cols = _strided_span(w_in, wq, stride, pad_left)
    for a in range(k):
        for b in range(k):
            source = padded[..., a : a + rows, b : b + cols]
            source = _every_nth(_every_nth(source, -2, stride), -1, stride)
            yield a * k + b, source.unsqueeze(-1).unsqueeze(-3) if up > 1 else source


def _reassemble_torch(
    features: Tensor, kernels: Tensor, kernel_size: int, groups: int, up: int, stride: int, pad_top: int, pad_left: int
) -> Tensor:
    """Pure-PyTorch path: a sum over taps of strided views times kernel slices."""
    n, c, _, _ = features.shape
    h_out, w_out = kernels.shape[-2:]
    k = kernel_size
    hq, wq = h_out // up, w_out // up
    split = _splits_groups(groups, c)
    taps = kernels.reshape((n, groups, k * k, hq, up, wq, up) if up > 1 else (n, groups, k * k, hq, wq))
    out: Tensor | None = None
    for tap, source in _tap_sources(features, k, groups, up, stride, pad_top, pad_left, hq, wq):
        weight = taps[:, :, None, tap] if split else taps[:, :, tap]  # N G [1] Hq [up] Wq [up]
        out = source * weight if out is None else torch.addcmul(out, source, weight)
    assert out is not None
    return out.reshape(n, c, h_out, w_out) if split or up > 1 else out


def _check_reassembly_window(
    kernel_size: int, groups: int, up: int, stride: int, padding: int | tuple[int, int] | None
) -> tuple[int, int, int]:
    """Validate the window arguments that reassembly and window similarity share; return
    ``(K, p_t, p_l)`` with the padding defaulting to ``(K - 1) // 2``."""
    k = check_int(kernel_size, "kernel_size", minimum=1)
    check_int(groups, "groups", minimum=1)
    check_int(up, "scale_factor", minimum=1)
    check_int(stride, "stride", minimum=1)
    if up > 1 and stride > 1:
        raise ValueError(f"argument `stride`: expected 1 when upsampling (scale_factor={up}), got {stride}")
    pad_top, pad_left = pair((k - 1) // 2 if padding is None else padding, "padding", minimum=0)
    for value in (pad_top, pad_left):
        if value >= k:
            raise ValueError(f"argument `padding`: expected 0 <= padding < kernel_size={k}, got {value}")
    return k, pad_top, pad_left


def _check_geometry(
    features: Tensor,
    kernels: Tensor,
    kernel_size: int,
    groups: int,
    up: int,
    stride: int,
    padding: int | tuple[int, int] | None,
) -> tuple[int, int]:
    """Validate the arguments of :func:`reassemble`; return the padding ``(p_t, p_l)``."""
    check_feature(features, "features")
    check_feature(kernels, "kernels")
    check_same_dtype_device(features, "features", kernels, "kernels")
    k, pad_top, pad_left = _check_reassembly_window(kernel_size, groups, up, stride, padding)
    n, c, h_in, w_in = features.shape
    if c % groups != 0:
        raise ValueError(f"argument `groups`: expected a divisor of the {c} feature channels, got {groups}")
    if kernels.shape[0] != n:
        raise ValueError(f"argument `kernels`: expected batch size {n} (that of `features`), got {kernels.shape[0]}")
    if kernels.shape[1] != groups * k * k:
        raise ValueError(
            f"argument `kernels`: expected groups * kernel_size**2 = {groups} * {k}**2 = {groups * k * k} "
            f"channels, got {kernels.shape[1]}"
        )
    h_out, w_out = kernels.shape[-2:]
    _check_output_size((h_in, w_in), (h_out, w_out), up, stride, pad_top, pad_left, "kernels")
    return pad_top, pad_left


def _check_output_size(
    size_in: tuple[int, int], size_out: tuple[int, int], up: int, stride: int, pad_top: int, pad_left: int, name: str
) -> None:
    """The output size must be ``up`` times the input, or (without upsampling) small enough
    that every window starts inside the image."""
    (h_in, w_in), (h_out, w_out) = size_in, size_out
    if up > 1:
        if (h_out, w_out) != (h_in * up, w_in * up):
            raise ValueError(
                f"argument `{name}`: expected spatial size {h_in * up} x {w_in * up} "
                f"(features {h_in} x {w_in} times scale_factor {up}), got {h_out} x {w_out}"
            )
    else:
        # The window of the last output row/column must start inside the image; this also
        # bounds the padding the torch path needs to K - 1.  Exact for concrete sizes; under
        # tracing with symbolic sizes only a provable violation raises (a comparison of two
        # floor divisions would otherwise become a guard that export cannot verify).
        h_max = (h_in - 1 + pad_top) // stride + 1
        w_max = (w_in - 1 + pad_left) // stride + 1
        if statically_known_true(h_out > h_max) or statically_known_true(w_out > w_max):
            raise ValueError(
                f"argument `{name}`: spatial size {h_out} x {w_out} is too large for features {h_in} x {w_in} "
                f"with stride {stride} and padding ({pad_top}, {pad_left}); at most {h_max} x {w_max}"
            )


def reassemble(
    features: Tensor,
    kernels: Tensor,
    kernel_size: int,
    groups: int = 1,
    *,
    scale_factor: int = 1,
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
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
        backend: ``"auto"`` (native kernels on CPU when available, else torch), ``"native"``
            or ``"torch"``.

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
    pad_top, pad_left = _check_geometry(features, kernels, kernel_size, groups, scale_factor, stride, padding)
    if _use_native(features, backend):
        return native_reassemble(features, kernels, kernel_size, groups, scale_factor, stride, pad_top, pad_left)
    return _reassemble_torch(features, kernels, kernel_size, groups, scale_factor, stride, pad_top, pad_left)


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

    Returns:
        ``N x C x (s*H) x (s*W)``, dtype of ``features``.
    """
    check_odd(kernel_size, "kernel_size")
    check_int(group_size, "group_size", minimum=1)
    check_int(scale_factor, "scale_factor", minimum=1)
    check_feature(features, "features")
    check_feature(masks, "masks")
    h, w = features.shape[-2:]
    if tuple(masks.shape[-2:]) != (h * scale_factor, w * scale_factor):
        raise ValueError(
            f"argument `masks`: expected spatial size {h * scale_factor} x {w * scale_factor} "
            f"(features {h} x {w} times scale_factor {scale_factor}), got {masks.shape[-2]} x {masks.shape[-1]}"
        )
    if masks.shape[1] != group_size * kernel_size**2:
        raise ValueError(
            f"argument `masks`: expected group_size * kernel_size**2 = {group_size * kernel_size**2} channels, "
            f"got {masks.shape[1]}"
        )
    if features.shape[1] % group_size != 0:
        raise ValueError(
            f"argument `group_size`: expected a divisor of the {features.shape[1]} feature channels, got {group_size}"
        )
    return reassemble(features, masks, kernel_size, group_size, scale_factor=scale_factor, backend=backend)


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
    """
    return reassemble(features, kernels, kernel_size, groups, stride=stride, padding=padding, backend=backend)


def reassembly_macs(channels: int, kernel_size: int, out_height: int, out_width: int, batch: int = 1) -> int:
    """Multiply-accumulates of one reassembly: ``N * C * K^2 * H_out * W_out``."""
    return batch * channels * kernel_size * kernel_size * out_height * out_width
