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

import torch
from torch import Tensor

from .custom_ops import (
    check_geometry_list,
    check_grad_shape,
    check_op_shapes,
    check_similarity_shapes,
    register_core_ops,
)
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
    check_op_shapes(
        "reassemble", features, tuple(kernels.shape), check_geometry_list("reassemble", geometry), "kernels"
    )
    features, kernels = features.contiguous(), kernels.contiguous()
    n, c = features.shape[:2]
    h_out, w_out = kernels.shape[-2:]
    out = torch.empty((n, c, h_out, w_out), dtype=features.dtype)
    if out.numel():
        geo = _geometry_tensor(features, kernels, geometry)
        _run("forward", features.dtype, (features, kernels, out), geo, n * _row_groups(h_out, geometry[2]))
    return out


def _check_grad_op_args(op: str, grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> None:
    """The arguments of a gradient op: the forward's checks plus the shape of ``grad_out``."""
    _check_tensor(op, features, "features")
    _check_tensor(op, kernels, "kernels", features.dtype)
    _check_tensor(op, grad_out, "grad_out", features.dtype)
    check_op_shapes(op, features, tuple(kernels.shape), check_geometry_list(op, geometry), "kernels")
    check_grad_shape(op, grad_out, features, kernels)


@torch.library.custom_op("resamplers::reassemble_grad_features", mutates_args=())
def _grad_features_op(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    _check_grad_op_args("reassemble_grad_features", grad_out, features, kernels, geometry)
    grad_out, kernels = grad_out.contiguous(), kernels.contiguous()
    grad_x = torch.zeros(features.shape, dtype=features.dtype)
    if grad_x.numel() and grad_out.numel():
        geo = _geometry_tensor(features, kernels, geometry)
        _run("grad_features", features.dtype, (kernels, grad_out, grad_x), geo, features.shape[0] * features.shape[2])
    return grad_x


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


@torch.library.custom_op("resamplers::window_similarity", mutates_args=())
def _similarity_op(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
    _check_tensor("window_similarity", query, "query")
    _check_tensor("window_similarity", keys, "keys", query.dtype)
    check_similarity_shapes("window_similarity", query, keys, geometry)
    query, keys = query.contiguous(), keys.contiguous()
    kernel_size, groups, up = geometry[0], geometry[1], geometry[2]
    n = keys.shape[0]
    h_out, w_out = query.shape[-2:]
    out = torch.zeros((n, groups * kernel_size * kernel_size, h_out, w_out), dtype=keys.dtype)
    if out.numel() and keys.numel():
        geo = _geometry_tensor(keys, out, geometry)
        _run("grad_kernels", keys.dtype, (keys, query, out), geo, n * _row_groups(h_out, up))
    return out


register_core_ops(_reassemble_op, _grad_features_op, _grad_kernels_op, _similarity_op)


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
