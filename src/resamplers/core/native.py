"""Loader and torch custom ops for the native reassembly kernels (``resamplers/_native.c``).

The shared object is built by ``pip install`` when a C compiler is present and loaded
here with ctypes.  Work is split into contiguous row ranges that run on a small thread
pool; ctypes releases the GIL, so the ranges run in parallel.  The kernels are exposed
as ``torch.library`` custom ops, with fake implementations, so
``torch.compile(fullgraph=True)`` captures them as opaque calls:

* ``resamplers::reassemble(features, kernels, geometry)`` and its two gradients
  ``resamplers::reassemble_grad_features`` / ``resamplers::reassemble_grad_kernels``;
* ``resamplers::window_similarity(query, keys, geometry)``: the similarity is the adjoint
  of reassembly with respect to its kernels, so it runs the ``grad_kernels`` C kernel as a
  forward pass, and its two gradients are the other two kernels (``d/d query`` is a
  reassembly of the keys with the incoming gradient as kernels, ``d/d keys`` the
  features-gradient of that same reassembly).

``geometry`` is ``[K, G, up, stride, pad_top, pad_left]``.
Set ``RESAMPLERS_NATIVE=0`` to disable the native path (the pure-PyTorch path is used).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from .geometry import Geometry

__all__ = ["native_available", "native_isa", "native_reassemble", "native_window_similarity", "NATIVE_DTYPES"]

_ABI_VERSION = 3
_DTYPE_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
NATIVE_DTYPES = tuple(_DTYPE_SUFFIX)


def _load_library() -> ctypes.CDLL | None:
    if os.environ.get("RESAMPLERS_NATIVE", "1").strip().lower() in {"0", "false", "no", "off"}:
        return None
    spec = importlib.util.find_spec("resamplers._native")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
        lib.reassemble_abi_version.restype = ctypes.c_int64
        if lib.reassemble_abi_version() != _ABI_VERSION:
            return None
        lib.native_isa_level.restype = ctypes.c_int64
        for suffix in _DTYPE_SUFFIX.values():
            for kind in ("forward", "grad_kernels", "grad_features"):
                fn = getattr(lib, f"reassemble_{kind}_{suffix}")
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int64]
    except (OSError, AttributeError):
        return None
    return lib


# Loaded once at import: the library is immutable, and a constant keeps the dispatch
# decision free of Python calls that torch.compile would have to trace.
_LIB = _load_library()


def native_available() -> bool:
    """True when the native CPU kernels were built and loaded."""
    return _LIB is not None


_ISA_LEVELS = {4: "x86-64-v4 (AVX-512)", 3: "x86-64-v3 (AVX2, FMA)", 1: "baseline"}


def native_isa() -> str | None:
    """The instruction set the native kernels run on this CPU, chosen when the library
    loads (one build holds a clone per level): ``"x86-64-v4 (AVX-512)"``,
    ``"x86-64-v3 (AVX2, FMA)"`` or ``"baseline"`` (the compiler's default target, SSE2 on
    x86-64, or any non-x86 build); ``None`` without the native kernels."""
    if _LIB is None:
        return None
    level = int(_LIB.native_isa_level())
    return _ISA_LEVELS.get(level, f"level {level}")


class _Pool:
    """A thread pool owned by one process (a forked DataLoader worker gets its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._size = 0
        self._executor: ThreadPoolExecutor | None = None

    def get(self, size: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid() or self._size != size:
                self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="resamplers")
                self._pid, self._size = os.getpid(), size
            return self._executor


_POOL = _Pool()


_ERRORS = {
    1: (MemoryError, "the native kernel could not allocate its row buffer"),
    2: (ValueError, "the native kernel refused the geometry"),
}


def _raise_for(code: int, kind: str) -> None:
    if code:
        error, message = _ERRORS.get(code, (RuntimeError, f"the native kernel failed with code {code}"))
        raise error(f"resamplers native `{kind}`: {message}")


def _run(kind: str, dtype: torch.dtype, tensors: tuple[Tensor, Tensor, Tensor], geometry: Tensor, tasks: int) -> None:
    fn: Callable[..., int] = getattr(_LIB, f"reassemble_{kind}_{_DTYPE_SUFFIX[dtype]}")
    ptrs = [t.data_ptr() for t in tensors] + [geometry.data_ptr()]
    threads = max(1, min(torch.get_num_threads(), tasks))
    if threads == 1:
        _raise_for(fn(*ptrs, 0, tasks), kind)
        return
    bounds = [tasks * i // threads for i in range(threads + 1)]
    pool = _POOL.get(threads)
    futures = [pool.submit(fn, *ptrs, bounds[i], bounds[i + 1]) for i in range(threads)]
    codes = [f.result() for f in futures]
    for code in codes:
        _raise_for(code, kind)


def _check_tensor(op: str, t: object, name: str, dtype: torch.dtype | None = None) -> Tensor:
    prefix = f"torch.ops.resamplers.{op}: argument `{name}`"
    if not isinstance(t, Tensor):
        raise TypeError(f"{prefix}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{prefix}: expected a 4-D tensor, got shape {tuple(t.shape)}")
    if t.dtype not in _DTYPE_SUFFIX:
        raise TypeError(f"{prefix}: expected dtype torch.float32 or torch.float64, got {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{prefix}: expected dtype {dtype} (that of the first tensor), got {t.dtype}")
    if t.device.type != "cpu":
        raise ValueError(f"{prefix}: expected a CPU tensor, got device {t.device}")
    return t


def _check_geometry_list(op: str, geometry: object) -> Geometry:
    prefix = f"torch.ops.resamplers.{op}: argument `geometry`"
    if not isinstance(geometry, (list, tuple)) or len(geometry) != 6:
        raise ValueError(f"{prefix}: expected [kernel_size, groups, up, stride, pad_top, pad_left], got {geometry!r}")
    for name, value in zip(Geometry._fields, geometry):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{prefix}: expected int {name}, got {value!r}")
    k, groups, up, stride, pad_top, pad_left = geometry
    for name, value in (("kernel_size", k), ("groups", groups), ("up", up), ("stride", stride)):
        if value < 1:
            raise ValueError(f"{prefix}: expected {name} >= 1, got {value}")
    if up > 1 and stride > 1:
        raise ValueError(f"{prefix}: expected stride 1 when up > 1, got up {up} and stride {stride}")
    for name, value in (("pad_top", pad_top), ("pad_left", pad_left)):
        if not 0 <= value < k:
            raise ValueError(f"{prefix}: expected 0 <= {name} < kernel_size={k}, got {value}")
    return Geometry(*geometry)


def _check_op(op: str, features: Tensor, kernels_shape: tuple[int, ...], geometry: Geometry, kernels_name: str) -> None:
    """The checks of :func:`~resamplers.core.geometry.check_reassembly` on an op's arguments:
    everything the C kernels need to stay inside their buffers."""
    prefix = f"torch.ops.resamplers.{op}: argument"
    n, c, h_in, w_in = features.shape
    k, groups, up, stride, pad_top, pad_left = geometry
    if c < 1 or c % groups:
        raise ValueError(f"{prefix} `geometry`: expected groups dividing the {c} channels, got {groups}")
    if kernels_shape[0] != n or kernels_shape[1] != groups * k * k:
        raise ValueError(
            f"{prefix} `{kernels_name}`: expected batch {n} and groups * kernel_size**2 = {groups * k * k} "
            f"channels, got shape {tuple(kernels_shape)}"
        )
    h_out, w_out = kernels_shape[-2:]
    if up > 1:
        ok = (h_out, w_out) == (h_in * up, w_in * up)
    else:
        ok = h_out <= (h_in - 1 + pad_top) // stride + 1 and w_out <= (w_in - 1 + pad_left) // stride + 1
    if not ok:
        raise ValueError(
            f"{prefix} `{kernels_name}`: spatial size {h_out} x {w_out} does not fit features {h_in} x {w_in} "
            f"with up {up}, stride {stride} and padding ({pad_top}, {pad_left})"
        )


def _check_grad(op: str, grad_out: Tensor, features: Tensor, kernels: Tensor) -> None:
    expected = (features.shape[0], features.shape[1], kernels.shape[-2], kernels.shape[-1])
    if tuple(grad_out.shape) != expected:
        raise ValueError(
            f"torch.ops.resamplers.{op}: argument `grad_out`: expected shape {expected}, got {tuple(grad_out.shape)}"
        )


def _geometry_tensor(features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    kernel_size, groups, up, stride, pad_top, pad_left = geometry
    n, c, h_in, w_in = features.shape
    h_out, w_out = kernels.shape[-2:]
    return torch.tensor(
        [n, c, groups, h_in, w_in, h_out, w_out, kernel_size, up, stride, pad_top, pad_left], dtype=torch.int64
    )


def _row_groups(h_out: int, up: int) -> int:
    return (h_out + up - 1) // up


@torch.library.custom_op("resamplers::reassemble", mutates_args=())
def _reassemble_op(features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    _check_tensor("reassemble", features, "features")
    _check_tensor("reassemble", kernels, "kernels", features.dtype)
    _check_op("reassemble", features, tuple(kernels.shape), _check_geometry_list("reassemble", geometry), "kernels")
    features, kernels = features.contiguous(), kernels.contiguous()
    n, c = features.shape[:2]
    h_out, w_out = kernels.shape[-2:]
    out = torch.empty((n, c, h_out, w_out), dtype=features.dtype)
    if out.numel():
        geo = _geometry_tensor(features, kernels, geometry)
        _run("forward", features.dtype, (features, kernels, out), geo, n * _row_groups(h_out, geometry[2]))
    return out


@_reassemble_op.register_fake
def _(features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    return features.new_empty((features.shape[0], features.shape[1], kernels.shape[-2], kernels.shape[-1]))


def _check_grad_op_args(op: str, grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> None:
    """The arguments of a gradient op: the forward's checks plus the shape of ``grad_out``."""
    _check_tensor(op, features, "features")
    _check_tensor(op, kernels, "kernels", features.dtype)
    _check_tensor(op, grad_out, "grad_out", features.dtype)
    _check_op(op, features, tuple(kernels.shape), _check_geometry_list(op, geometry), "kernels")
    _check_grad(op, grad_out, features, kernels)


@torch.library.custom_op("resamplers::reassemble_grad_features", mutates_args=())
def _grad_features_op(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    _check_grad_op_args("reassemble_grad_features", grad_out, features, kernels, geometry)
    grad_out, kernels = grad_out.contiguous(), kernels.contiguous()
    grad_x = torch.zeros(features.shape, dtype=features.dtype)
    if grad_x.numel() and grad_out.numel():
        geo = _geometry_tensor(features, kernels, geometry)
        _run("grad_features", features.dtype, (kernels, grad_out, grad_x), geo, features.shape[0] * features.shape[2])
    return grad_x


@_grad_features_op.register_fake
def _(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    return torch.empty_like(features, memory_format=torch.contiguous_format)


@torch.library.custom_op("resamplers::reassemble_grad_kernels", mutates_args=())
def _grad_kernels_op(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    _check_grad_op_args("reassemble_grad_kernels", grad_out, features, kernels, geometry)
    grad_out, features = grad_out.contiguous(), features.contiguous()
    grad_k = torch.zeros(kernels.shape, dtype=kernels.dtype)
    if grad_k.numel() and features.numel():
        geo = _geometry_tensor(features, kernels, geometry)
        h_out = kernels.shape[-2]
        _run(
            "grad_kernels",
            features.dtype,
            (features, grad_out, grad_k),
            geo,
            features.shape[0] * _row_groups(h_out, geometry[2]),
        )
    return grad_k


@_grad_kernels_op.register_fake
def _(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    return torch.empty_like(kernels, memory_format=torch.contiguous_format)


def _setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, list[int]], output: Tensor) -> None:
    """Autograd context of the native ops (``(tensor, tensor, geometry)`` inputs): both tensors
    are saved, the geometry list is kept."""
    first, second, geometry = inputs
    ctx.save_for_backward(first, second)
    ctx.geometry = geometry


def _reassemble_backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
    features, kernels = ctx.saved_tensors
    grad_x = grad_k = None
    if ctx.needs_input_grad[0]:
        grad_x = _grad_features_op(grad_out, features, kernels, ctx.geometry)
    if ctx.needs_input_grad[1]:
        grad_k = _grad_kernels_op(grad_out, features, kernels, ctx.geometry)
    return grad_x, grad_k, None


_reassemble_op.register_autograd(_reassemble_backward, setup_context=_setup_context)


# The two gradient ops are bilinear too, so their own gradients are the other ops again:
# second (and higher) derivatives of the native path are exact.
def _setup_grad_context(ctx: Any, inputs: tuple[Tensor, Tensor, Tensor, list[int]], output: Tensor) -> None:
    grad_out, features, kernels, geometry = inputs
    ctx.save_for_backward(grad_out, features, kernels)
    ctx.geometry = geometry


def _grad_features_backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, None, Tensor | None, None]:
    """``grad_x = G_x(grad_out, kernels)`` is linear in each (``features`` gives only the shape)."""
    grad_out, features, kernels = ctx.saved_tensors
    d_grad_out = _reassemble_op(v, kernels, ctx.geometry) if ctx.needs_input_grad[0] else None
    d_kernels = _grad_kernels_op(grad_out, v, kernels, ctx.geometry) if ctx.needs_input_grad[2] else None
    return d_grad_out, None, d_kernels, None


def _grad_kernels_backward(ctx: Any, v: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
    """``grad_k = G_k(grad_out, features)`` is linear in each (``kernels`` gives only the shape)."""
    grad_out, features, kernels = ctx.saved_tensors
    d_grad_out = _reassemble_op(features, v, ctx.geometry) if ctx.needs_input_grad[0] else None
    d_features = _grad_features_op(grad_out, features, v, ctx.geometry) if ctx.needs_input_grad[1] else None
    return d_grad_out, d_features, None, None


_grad_features_op.register_autograd(_grad_features_backward, setup_context=_setup_grad_context)
_grad_kernels_op.register_autograd(_grad_kernels_backward, setup_context=_setup_grad_context)


@torch.library.custom_op("resamplers::window_similarity", mutates_args=())
def _similarity_op(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
    _check_tensor("window_similarity", query, "query")
    _check_tensor("window_similarity", keys, "keys", query.dtype)
    checked = _check_geometry_list("window_similarity", geometry)
    if tuple(query.shape[:2]) != tuple(keys.shape[:2]):
        raise ValueError(
            "torch.ops.resamplers.window_similarity: argument `query`: expected batch and channels "
            f"{tuple(keys.shape[:2])} (those of `keys`), got {tuple(query.shape[:2])}"
        )
    taps = checked.groups * checked.kernel_size**2
    _check_op("window_similarity", keys, (keys.shape[0], taps, query.shape[-2], query.shape[-1]), checked, "query")
    query, keys = query.contiguous(), keys.contiguous()
    kernel_size, groups, up = geometry[0], geometry[1], geometry[2]
    n = keys.shape[0]
    h_out, w_out = query.shape[-2:]
    out = torch.zeros((n, groups * kernel_size * kernel_size, h_out, w_out), dtype=keys.dtype)
    if out.numel() and keys.numel():
        geo = _geometry_tensor(keys, out, geometry)
        _run("grad_kernels", keys.dtype, (keys, query, out), geo, n * _row_groups(h_out, up))
    return out


@_similarity_op.register_fake
def _(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
    taps = geometry[1] * geometry[0] * geometry[0]
    return keys.new_empty((keys.shape[0], taps, query.shape[-2], query.shape[-1]))


def _similarity_backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
    query, keys = ctx.saved_tensors
    grad_query = grad_keys = None
    if ctx.needs_input_grad[0]:
        grad_query = _reassemble_op(keys, grad.contiguous(), ctx.geometry)
    if ctx.needs_input_grad[1]:
        grad_keys = _grad_features_op(query, keys, grad, ctx.geometry)
    return grad_query, grad_keys, None


_similarity_op.register_autograd(_similarity_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.resamplers.reassemble)
def _reassemble_flops(features_shape: Any, kernels_shape: Any, geometry: list[int], *args: Any, **kwargs: Any) -> int:
    """FLOPs (2 per multiply-accumulate) so that ``torch.utils.flop_counter`` counts the op."""
    n, c = features_shape[0], features_shape[1]
    kernel_size = geometry[0]
    return 2 * n * c * kernel_size * kernel_size * kernels_shape[-2] * kernels_shape[-1]


@register_flop_formula(torch.ops.resamplers.window_similarity)
def _similarity_flops(query_shape: Any, keys_shape: Any, geometry: list[int], *args: Any, **kwargs: Any) -> int:
    """FLOPs (2 per multiply-accumulate): ``N * C * K^2 * H_out * W_out`` MACs."""
    n, c = query_shape[0], query_shape[1]
    return 2 * n * c * geometry[0] * geometry[0] * query_shape[-2] * query_shape[-1]


def _in_native_dtype(
    op: Callable[[Tensor, Tensor, list[int]], Tensor], first: Tensor, second: Tensor, geometry: Geometry
) -> Tensor:
    """``op(first, second, geometry)`` returned in the dtype of ``first``; half and bfloat16
    inputs are computed in float32 (the kernels exist for float32 and float64)."""
    dtype = first.dtype
    if dtype not in _DTYPE_SUFFIX:
        first, second = first.float(), second.float()
    return op(first, second, geometry.as_list()).to(dtype)


def native_reassemble(features: Tensor, kernels: Tensor, geometry: Geometry) -> Tensor:
    """``resamplers::reassemble``; half and bfloat16 inputs are computed in float32."""
    return _in_native_dtype(_reassemble_op, features, kernels, geometry)


def native_window_similarity(query: Tensor, keys: Tensor, geometry: Geometry) -> Tensor:
    """``resamplers::window_similarity``; half and bfloat16 inputs are computed in float32."""
    return _in_native_dtype(_similarity_op, query, keys, geometry)
