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
* ``"torch"``: a loop over the ``K*K`` taps of broadcasted multiply-adds on strided views,
  accumulated in place.  It runs on every device and is the path used when exporting
  (ONNX, ``torch.export``) and compiling; in eager training it has a hand-written
  backward pass (:class:`_TorchReassembly`) that accumulates both gradients in place.

Neither materialises the unfolded ``N x C x K^2 x H_out x W_out`` tensor: the native
kernels work row by row, and the torch path holds the output plus, in backward, products
over a quarter of the channels at a time: peak extra memory stays within 2x the output.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import statically_known_true

from .._checks import check_feature, check_int, check_odd, check_same_dtype_device, to_hw
from ._native_backend import native_available, native_reassemble

__all__ = ["reassemble", "carafe", "reassemble_down", "reassembly_macs", "Backend"]

Backend = Literal["auto", "native", "torch"]


def _exporting() -> bool:
    """Whether this call is being scripted or exported (TorchScript, ``torch.export``, ONNX):
    the graph must then consist of portable ops."""
    return torch.jit.is_scripting() or torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def _use_native(features: Tensor, backend: Backend) -> bool:
    """Validate ``backend`` and decide whether the native kernels compute this call."""
    if backend not in ("auto", "native", "torch"):
        raise ValueError(f"argument `backend`: expected one of ['auto', 'native', 'torch'], got {backend!r}")
    if backend == "torch":
        return False
    exporting = _exporting()
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


def _padded_features(features: Tensor, kernel_size: int, groups: int, pad_top: int, pad_left: int) -> Tensor:
    """Zero-padded features, ``N x [G x C/G | C] x H_p x W_p`` (the group axis only when
    :func:`_splits_groups`).  ``K - 1`` rows/columns of bottom/right padding always suffice:
    see :func:`_check_geometry`."""
    n, c = features.shape[:2]
    k = kernel_size
    padded = F.pad(features, (pad_left, k - 1, pad_top, k - 1))
    if _splits_groups(groups, c):
        padded = padded.reshape(n, groups, c // groups, padded.shape[-2], padded.shape[-1])
    return padded


def _tap_windows(
    padded: Tensor, size_in: tuple[int, int], kernel_size: int, stride: int, pad_top: int, pad_left: int, hq: int, wq: int
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(tap, window)`` for every tap ``a*K + b``: the ``... x Hq x Wq`` strided view of
    ``padded`` that the tap reads (no two elements of one view alias)."""
    k = kernel_size
    rows = _strided_span(size_in[0], hq, stride, pad_top)
    cols = _strided_span(size_in[1], wq, stride, pad_left)
    for a in range(k):
        for b in range(k):
            window = padded[..., a : a + rows, b : b + cols]
            yield a * k + b, _every_nth(_every_nth(window, -2, stride), -1, stride)


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
    padded = _padded_features(features, kernel_size, groups, pad_top, pad_left)
    size_in = (features.shape[-2], features.shape[-1])
    for tap, window in _tap_windows(padded, size_in, kernel_size, stride, pad_top, pad_left, hq, wq):
        yield tap, window.unsqueeze(-1).unsqueeze(-3) if up > 1 else window


def _tap_kernels(kernels: Tensor, kernel_size: int, groups: int, up: int) -> Tensor:
    """Kernels as ``N x G x K^2 x Hq [x up] x Wq [x up]``: tap ``t`` is ``[:, :, t]``."""
    n = kernels.shape[0]
    h_out, w_out = kernels.shape[-2:]
    k2 = kernel_size * kernel_size
    if up > 1:
        return kernels.reshape(n, groups, k2, h_out // up, up, w_out // up, up)
    return kernels.reshape(n, groups, k2, h_out, w_out)


def _tap_weight(taps: Tensor, tap: int, split: bool) -> Tensor:
    """Tap ``tap`` of :func:`_tap_kernels`, shaped to broadcast against a tap source."""
    return taps[:, :, None, tap] if split else taps[:, :, tap]


def _reassemble_torch(
    features: Tensor, kernels: Tensor, kernel_size: int, groups: int, up: int, stride: int, pad_top: int, pad_left: int
) -> Tensor:
    """Pure-PyTorch path: a sum over taps of strided views times kernel slices, accumulated
    in place (the forward pass holds one output-sized tensor)."""
    n, c, _, _ = features.shape
    h_out, w_out = kernels.shape[-2:]
    hq, wq = h_out // up, w_out // up
    split = _splits_groups(groups, c)
    taps = _tap_kernels(kernels, kernel_size, groups, up)
    out: Tensor | None = None
    for tap, source in _tap_sources(features, kernel_size, groups, up, stride, pad_top, pad_left, hq, wq):
        weight = _tap_weight(taps, tap, split)  # N G [1] Hq [up] Wq [up]
        out = source * weight if out is None else out.addcmul_(source, weight)
    assert out is not None
    return out.reshape(n, c, h_out, w_out) if split or up > 1 else out


def _sub_pixels(up: int) -> list[tuple[int, int] | None]:
    """The ``up x up`` output phases ``(i, j)`` of an upsampling reassembly (``[None]`` for none)."""
    return [(i, j) for i in range(up) for j in range(up)] if up > 1 else [None]


def _phase(t: Tensor, phase: tuple[int, int] | None) -> Tensor:
    """The ``... x Hq x Wq`` view of a ``... x Hq x up x Wq x up`` tensor at one output phase."""
    return t if phase is None else t.select(-1, phase[1]).select(-2, phase[0])


class _TorchReassembly(torch.autograd.Function):
    """The torch path with a hand-written backward pass for training in eager mode.

    Autograd through :func:`_reassemble_torch` keeps, per tap, an output-sized product and
    a padded-input-sized scatter of the strided view's gradient alive at once (about 3x
    the output at peak), and reduces over the ``up x up`` block axes, whose innermost
    length of ``up`` defeats vectorisation.  This backward works one output phase
    ``(i, j)`` of one tap at a time: the feature gradient is an in-place multiply-add into
    the tap's window of the padded gradient, the kernel gradient a product summed over the
    channels.  Temporaries are ``1 / up^2`` of the output (a quarter of the channels at a
    time without upsampling), so peak memory stays within 2x the output.  Used only in
    eager mode; compile and export trace the plain composite.
    """

    @staticmethod
    def forward(ctx, features, kernels, kernel_size, groups, up, stride, pad_top, pad_left):  # type: ignore[override]
        ctx.save_for_backward(features, kernels)
        ctx.geometry = (kernel_size, groups, up, stride, pad_top, pad_left)
        return _reassemble_torch(features, kernels, kernel_size, groups, up, stride, pad_top, pad_left)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        features, kernels = ctx.saved_tensors
        kernel_size, groups, up, stride, pad_top, pad_left = ctx.geometry
        n, c, h_in, w_in = features.shape
        h_out, w_out = kernels.shape[-2:]
        hq, wq = h_out // up, w_out // up
        split = _splits_groups(groups, c)
        need_features, need_kernels = ctx.needs_input_grad[:2]

        # The gradient laid out like the forward's products: N [G C/G | C] Hq [up] Wq [up].
        channel_shape = (groups, c // groups) if split else (c,)
        grad = grad.reshape(n, *channel_shape, hq, up, wq, up) if up > 1 else grad.reshape(n, *channel_shape, hq, wq)
        channel_axis = 2 if split else 1
        per_channel = not split and groups == c > 1  # kernel groups line up with channels
        channel_slices = 4 if up == 1 else 1  # one phase is already 1 / up^2 of the output
        slice_size = -(-grad.shape[channel_axis] // channel_slices)

        padded = _padded_features(features, kernel_size, groups, pad_top, pad_left)
        grad_padded = torch.zeros_like(padded) if need_features else None
        taps = _tap_kernels(kernels, kernel_size, groups, up)
        grad_taps = torch.empty_like(taps) if need_kernels else None
        windows = _tap_windows(padded, (h_in, w_in), kernel_size, stride, pad_top, pad_left, hq, wq)
        grad_windows = (
            _tap_windows(grad_padded, (h_in, w_in), kernel_size, stride, pad_top, pad_left, hq, wq)
            if grad_padded is not None
            else None
        )
        for tap, window in windows:
            grad_window = next(grad_windows)[1] if grad_windows is not None else None
            for phase in _sub_pixels(up):
                grad_phase = _phase(grad, phase)
                weight = _phase(_tap_weight(taps, tap, split), phase)
                grad_weight = _phase(_tap_weight(grad_taps, tap, split), phase) if grad_taps is not None else None
                for start in range(0, grad.shape[channel_axis], slice_size):
                    index = (slice(None),) * channel_axis + (slice(start, start + slice_size),)
                    grad_part = grad_phase[index]
                    if grad_window is not None:
                        grad_window[index].addcmul_(grad_part, weight[index] if per_channel else weight)
                    if grad_weight is not None:
                        product = grad_part * window[index]
                        if per_channel:
                            grad_weight[index].copy_(product)
                        elif start == 0:
                            torch.sum(product, channel_axis, keepdim=True, out=grad_weight)
                        else:
                            grad_weight.add_(product.sum(channel_axis, keepdim=True))
        grad_features = None
        if grad_padded is not None:
            grad_padded = grad_padded.reshape(n, c, grad_padded.shape[-2], grad_padded.shape[-1])
            grad_features = grad_padded[..., pad_top : pad_top + h_in, pad_left : pad_left + w_in]
        grad_kernels = grad_taps.reshape(kernels.shape) if grad_taps is not None else None
        return grad_features, grad_kernels, None, None, None, None, None, None


def _eager_training(features: Tensor, kernels: Tensor) -> bool:
    """Whether autograd will differentiate this call outside any tracing (compile, export, script)."""
    return (
        torch.is_grad_enabled()
        and (features.requires_grad or kernels.requires_grad)
        and not _exporting()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
    )


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
    pad_top, pad_left = to_hw((k - 1) // 2 if padding is None else padding, "padding", minimum=0)
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
    if _eager_training(features, kernels):
        return _TorchReassembly.apply(features, kernels, kernel_size, groups, scale_factor, stride, pad_top, pad_left)
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
