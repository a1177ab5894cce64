"""Geometry of a reassembly window and the validation of the core's arguments (once per call)."""

from __future__ import annotations

import warnings
from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import statically_known_true

from .._checks import check_feature, check_int, check_same_dtype_device, to_hw

__all__ = [
    "Backend",
    "Geometry",
    "BACKENDS",
    "known_true",
    "check_backend",
    "check_window_args",
    "check_output_size",
    "check_reassembly",
    "check_similarity",
    "check_offsets",
]

Backend = Literal["auto", "native", "triton", "torch"]
BACKENDS = ("auto", "native", "triton", "torch")


class Geometry(NamedTuple):
    """A validated window: output pixel ``(y, x)``, tap ``(a, b)`` reads source pixel
    ``((y // up) * stride + a - pad_top, (x // up) * stride + b - pad_left)``."""

    kernel_size: int
    groups: int
    up: int
    stride: int
    pad_top: int
    pad_left: int

    def as_list(self) -> list[int]:
        """The ``geometry`` argument of the ``torch.ops.resamplers`` custom ops."""
        return list(self)


def known_true(condition: object) -> bool:
    """Whether a size condition provably holds, adding no guards: plain bools as they are,
    symbolic ones (``torch.export``) through :func:`statically_known_true`, and the 0-d
    tensors that sizes become under ``torch.jit.trace`` by their value at trace time (the
    check is not recorded in the graph)."""
    if isinstance(condition, bool):
        return condition
    if isinstance(condition, Tensor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return bool(condition)
    return statically_known_true(condition)  # type: ignore[arg-type]


def check_backend(backend: object) -> Backend:
    if backend not in BACKENDS:
        raise ValueError(f"argument `backend`: expected one of {list(BACKENDS)}, got {backend!r}")
    return backend  # type: ignore[return-value]


def check_window_args(
    kernel_size: int,
    groups: int,
    up: int,
    stride: int,
    padding: int | tuple[int, int] | None,
    *,
    groups_name: str = "groups",
) -> Geometry:
    """Validate the window arguments that reassembly and window similarity share; the
    padding defaults to ``(K - 1) // 2``."""
    k = check_int(kernel_size, "kernel_size", minimum=1)
    check_int(groups, groups_name, minimum=1)
    check_int(up, "scale_factor", minimum=1)
    check_int(stride, "stride", minimum=1)
    if up > 1 and stride > 1:
        raise ValueError(f"argument `stride`: expected 1 when upsampling (scale_factor={up}), got {stride}")
    pad_top, pad_left = to_hw((k - 1) // 2 if padding is None else padding, "padding", minimum=0)
    for value in (pad_top, pad_left):
        if value >= k:
            raise ValueError(f"argument `padding`: expected 0 <= padding < kernel_size={k}, got {value}")
    return Geometry(k, groups, up, stride, pad_top, pad_left)


def check_output_size(size_in: tuple[int, int], size_out: tuple[int, int], geometry: Geometry, name: str) -> None:
    """The output size must be ``up`` times the input, or (without upsampling) small enough
    that every window starts inside the image."""
    (h_in, w_in), (h_out, w_out) = size_in, size_out
    up, stride, pad_top, pad_left = geometry.up, geometry.stride, geometry.pad_top, geometry.pad_left
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
        if known_true(h_out > h_max) or known_true(w_out > w_max):
            raise ValueError(
                f"argument `{name}`: spatial size {h_out} x {w_out} is too large for features {h_in} x {w_in} "
                f"with stride {stride} and padding ({pad_top}, {pad_left}); at most {h_max} x {w_max}"
            )


def _check_groups(channels: int, groups: int, groups_name: str) -> None:
    if channels % groups != 0:
        raise ValueError(
            f"argument `{groups_name}`: expected a divisor of the {channels} feature channels, got {groups}"
        )


def check_reassembly(
    features: Tensor,
    kernels: Tensor,
    kernel_size: int,
    groups: int,
    up: int,
    stride: int,
    padding: int | tuple[int, int] | None,
    *,
    kernels_name: str = "kernels",
    groups_name: str = "groups",
    same_dtype: bool = True,
) -> Geometry:
    """Validate the arguments of a reassembly (``features`` ``N x C x H x W``, ``kernels``
    ``N x (G*K*K) x H_out x W_out``) and return its geometry.  ``same_dtype=False`` (under
    autocast) checks the device only."""
    check_feature(features, "features")
    check_feature(kernels, kernels_name)
    _check_pair(features, "features", kernels, kernels_name, same_dtype)
    geometry = check_window_args(kernel_size, groups, up, stride, padding, groups_name=groups_name)
    k = geometry.kernel_size
    n, c, h_in, w_in = features.shape
    _check_groups(c, groups, groups_name)
    if kernels.shape[0] != n:
        raise ValueError(
            f"argument `{kernels_name}`: expected batch size {n} (that of `features`), got {kernels.shape[0]}"
        )
    if kernels.shape[1] != groups * k * k:
        raise ValueError(
            f"argument `{kernels_name}`: expected {groups_name} * kernel_size**2 = {groups} * {k}**2 = {groups * k * k} "
            f"channels, got {kernels.shape[1]}"
        )
    check_output_size((h_in, w_in), (kernels.shape[-2], kernels.shape[-1]), geometry, kernels_name)
    return geometry


def check_similarity(
    query: Tensor,
    keys: Tensor,
    kernel_size: int,
    groups: int,
    up: int,
    stride: int,
    padding: int | tuple[int, int] | None,
    *,
    same_dtype: bool = True,
) -> Geometry:
    """Validate the arguments of a window similarity (``query`` ``N x C x H_out x W_out``,
    ``keys`` ``N x C x H x W``) and return its geometry."""
    check_feature(query, "query")
    check_feature(keys, "keys")
    _check_pair(query, "query", keys, "keys", same_dtype)
    geometry = check_window_args(kernel_size, groups, up, stride, padding)
    n, c = keys.shape[:2]
    if tuple(query.shape[:2]) != (n, c):
        raise ValueError(
            f"argument `query`: expected batch and channels {n} x {c} (those of `keys`), got {query.shape[0]} x {query.shape[1]}"
        )
    if c % groups != 0:
        raise ValueError(f"argument `groups`: expected a divisor of the {c} channels, got {groups}")
    check_output_size((keys.shape[-2], keys.shape[-1]), (query.shape[-2], query.shape[-1]), geometry, "query")
    return geometry


def check_offsets(
    offsets: object, like: Tensor, like_name: str, out_size: tuple[int, int], geometry: Geometry, same_dtype: bool
) -> Tensor:
    """Validate the offsets of a window sampled at offsets: ``N x (2*G*K*K) x H_out x W_out``
    with the batch, dtype and device of ``like`` (device only under autocast)."""
    offsets = check_feature(offsets, "offsets")
    _check_pair(like, like_name, offsets, "offsets", same_dtype)
    k, groups = geometry.kernel_size, geometry.groups
    expected = (like.shape[0], 2 * groups * k * k, *out_size)
    if tuple(offsets.shape) != expected:
        raise ValueError(
            f"argument `offsets`: expected shape N x 2*G*K*K x H_out x W_out = {expected} "
            f"(groups {groups}, kernel_size {k}), got {tuple(offsets.shape)}"
        )
    return offsets


def _check_pair(a: Tensor, a_name: str, b: Tensor, b_name: str, same_dtype: bool) -> None:
    if same_dtype:
        check_same_dtype_device(a, a_name, b, b_name)
    elif a.device != b.device:
        raise ValueError(f"argument `{b_name}`: expected device {a.device} (the device of `{a_name}`), got {b.device}")
