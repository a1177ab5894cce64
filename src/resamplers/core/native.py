"""Loader and torch custom ops for the native reassembly kernels (``resamplers/_native.c``).

The shared object is built by ``pip install`` when a C compiler is present and loaded
here with ctypes.  Work is split into contiguous row ranges that run on torch's own OpenMP
threads where torch runs OpenMP (its workers spin after each of its parallel regions, and a
second pool would compete with them for the cores), otherwise on a small thread pool;
ctypes releases the GIL, so the ranges run in parallel.  The kernels are exposed
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

Taps sampled at offsets (``offsets=`` of ``reassemble`` and ``window_similarity``) have
three kernels of their own, as custom ops on ``(tensor, tensor, offsets, geometry)``:
``resamplers::offset_reassemble`` (the reassembly), ``resamplers::offset_correlate`` (a
dot product over each group's channels with the samples of every tap, optionally with its
derivatives along the offsets: the window similarity and the kernel and offset gradients)
and ``resamplers::offset_scatter`` (the adjoint in the sampled tensor: the feature
gradient).  :class:`NativeOffsetTaps` wires them into autograd for both kinds.
Set ``RESAMPLERS_NATIVE=0`` to disable the native path (the pure-PyTorch path is used), and
``RESAMPLERS_NATIVE_ISA=x86-64-v3`` or ``baseline`` to run a lower instruction-set level,
and ``RESAMPLERS_NATIVE_THREADS=pool`` to run the ranges on the thread pool even where torch
runs OpenMP.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from .custom_ops import (
    check_geometry_list,
    check_grad_shape,
    check_op_shapes,
    check_similarity_shapes,
    empty_in_layout,
    is_channels_last,
    register_core_ops,
    takes_pixel_major,
)
from .geometry import Geometry
from .offset_path import Gradients, TapsCall, offset_taps_function

__all__ = [
    "native_available",
    "native_isa",
    "native_threads",
    "native_reassemble",
    "native_window_similarity",
    "NativeOffsetTaps",
    "NATIVE_DTYPES",
]

_ABI_VERSION = 8
_DTYPE_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
NATIVE_DTYPES = tuple(_DTYPE_SUFFIX)
_ISA_NAMES = {"x86-64-v4": 4, "v4": 4, "x86-64-v3": 3, "v3": 3, "baseline": 1}


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
        lib.native_select_isa.restype = ctypes.c_int64
        lib.native_select_isa.argtypes = [ctypes.c_int64]
        requested = _requested_isa_level(os.environ.get("RESAMPLERS_NATIVE_ISA", ""))
        # the level is fixed here, once, before any kernel thread reads it
        lib.native_select_isa(requested if requested is not None else 4)
        for suffix in _DTYPE_SUFFIX.values():
            for kind in (
                "forward",
                "grad_kernels",
                "grad_features",
                "forward_pixels",
                "grad_kernels_pixels",
                "grad_features_pixels",
            ):
                fn = getattr(lib, f"reassemble_{kind}_{suffix}")
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int64]
            for kind in ("offset_forward", "offset_correlate", "offset_scatter"):
                fn = getattr(lib, f"reassemble_{kind}_{suffix}")
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int64, ctypes.c_int64]
            fn = getattr(lib, f"reassemble_change_layout_{suffix}")
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_int64]
        lib.native_run.restype = ctypes.c_int
        lib.native_run.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
        lib.native_run.argtypes += [ctypes.c_int64, ctypes.c_int64]
        lib.native_bind_team.restype = ctypes.c_int64
        lib.native_bind_team.argtypes = [ctypes.c_void_p] * 3
    except (OSError, AttributeError):
        return None
    return lib


# The OpenMP runtimes torch ships or links, by the name it loads them under, and the entry
# points native_run starts a team with (GNU libgomp and LLVM libomp both export them).
_OPENMP_RUNTIMES = ("libgomp.so.1", "libomp.so", "libomp.dylib", "libiomp5.so", "libiomp5.dylib")
_TEAM_ENTRY_POINTS = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")


def _openmp_candidates() -> list[str]:
    """Where torch's OpenMP runtime may be: the copies its wheel ships (possibly under a
    hashed name, such as ``libgomp-<hash>.so.1``) first, then the runtimes' usual names."""
    shipped = Path(torch.__file__).parent / "lib"
    patterns = ("libgomp*.so*", "libomp*.so*", "libomp*.dylib", "libiomp5*")
    found = sorted({str(path) for pattern in patterns for path in shipped.glob(pattern)})
    return found + list(_OPENMP_RUNTIMES)


def _torch_openmp_runtime() -> tuple[ctypes.CDLL, list[int]] | None:
    """The OpenMP runtime torch already loaded (never a second copy: ``RTLD_NOLOAD``) and
    the addresses of its team entry points, or ``None`` when torch does not run OpenMP or
    the runtime cannot be found."""
    if not torch.backends.openmp.is_available() or not hasattr(os, "RTLD_NOLOAD"):
        return None
    for name in _openmp_candidates():
        try:
            runtime = ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
            addresses = [ctypes.cast(getattr(runtime, f), ctypes.c_void_p).value for f in _TEAM_ENTRY_POINTS]
        except (OSError, AttributeError):
            continue
        if all(addresses):
            return runtime, [address for address in addresses if address]
    return None


def _requested_threads(value: str) -> str:
    """Where ``RESAMPLERS_NATIVE_THREADS`` asks the ranges to run: ``torch`` (the default:
    torch's OpenMP threads where it has them) or ``pool``."""
    value = value.strip().lower() or "torch"
    if value not in {"torch", "pool"}:
        raise ValueError(f"environment variable `RESAMPLERS_NATIVE_THREADS`: expected torch or pool; got {value!r}")
    return value


def _bind_team(lib: ctypes.CDLL | None) -> bool:
    """Let ``native_run`` start its ranges on torch's OpenMP team; ``False`` (the loader's
    pool runs them) when there is none."""
    if lib is None or _requested_threads(os.environ.get("RESAMPLERS_NATIVE_THREADS", "")) == "pool":
        return False
    found = _torch_openmp_runtime()
    if found is None:
        return False
    return bool(lib.native_bind_team(*found[1]))


def _requested_isa_level(value: str) -> int | None:
    """The level ``RESAMPLERS_NATIVE_ISA`` asks for (``x86-64-v4``, ``x86-64-v3`` or
    ``baseline``; a level above the CPU's runs the CPU's), ``None`` when unset."""
    value = value.strip().lower()
    if not value:
        return None
    if value not in _ISA_NAMES:
        raise ValueError(
            f"environment variable `RESAMPLERS_NATIVE_ISA`: expected one of x86-64-v4, x86-64-v3, baseline; got {value!r}"
        )
    return _ISA_NAMES[value]


# Loaded once at import: the library is immutable, and a constant keeps the dispatch
# decision free of Python calls that torch.compile would have to trace.
_LIB = _load_library()
# The process that bound the team: GNU OpenMP's team does not survive a fork (torch's own
# parallel ops hang in a forked child that asks for more than one thread), the pool does.
_TEAM_PID = os.getpid() if _bind_team(_LIB) else -1


def native_available() -> bool:
    """True when the native CPU kernels were built and loaded."""
    return _LIB is not None


_ISA_LEVELS = {4: "x86-64-v4 (AVX-512)", 3: "x86-64-v3 (AVX2, FMA)", 1: "baseline"}


def native_isa() -> str | None:
    """The instruction set the native kernels run on this CPU, chosen when the library
    loads (one build holds a copy of the kernels per level): ``"x86-64-v4 (AVX-512)"``,
    ``"x86-64-v3 (AVX2, FMA)"`` or ``"baseline"`` (the compiler's default target, SSE2 on
    x86-64, or any non-x86 build); ``None`` without the native kernels.  The environment
    variable ``RESAMPLERS_NATIVE_ISA`` (``x86-64-v3``, ``baseline``) lowers it, for tests
    and comparisons."""
    if _LIB is None:
        return None
    level = int(_LIB.native_isa_level())
    return _ISA_LEVELS.get(level, f"level {level}")


def native_threads() -> str | None:
    """Where the native kernels run their row ranges: ``"torch's OpenMP threads"`` or
    ``"thread pool"`` (torch runs no OpenMP, or ``RESAMPLERS_NATIVE_THREADS=pool``);
    ``None`` without the native kernels."""
    if _LIB is None:
        return None
    return "torch's OpenMP threads" if _TEAM_PID == os.getpid() else "thread pool"


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


def _run(kind: str, dtype: torch.dtype, tensors: Sequence[Tensor | None], geometry: Tensor, tasks: int) -> None:
    """Run kernel ``kind`` over ``tasks`` tasks, split into contiguous ranges on torch's
    OpenMP team or the pool (a ``None`` tensor is passed as a null pointer)."""
    fn: Callable[..., int] = getattr(_LIB, f"reassemble_{kind}_{_DTYPE_SUFFIX[dtype]}")
    ptrs = [None if t is None else t.data_ptr() for t in tensors] + [geometry.data_ptr()]
    threads = max(1, min(torch.get_num_threads(), tasks))
    if threads == 1:
        _raise_for(fn(*ptrs, 0, tasks), kind)
        return
    if _TEAM_PID == os.getpid():
        kernel = ctypes.cast(fn, ctypes.c_void_p)  # type: ignore[arg-type]  # fn is a ctypes CFuncPtr
        arguments = (ctypes.c_void_p * (len(ptrs) - 1))(*ptrs[:-1])
        _raise_for(_LIB.native_run(kernel, len(ptrs) - 1, arguments, ptrs[-1], tasks, threads), kind)
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
    n, c = features.shape[:2]
    h_out, w_out = kernels.shape[-2:]
    if takes_pixel_major("reassemble", features, geometry[1]):
        kernels = kernels.contiguous(memory_format=torch.channels_last)
        out = torch.empty((n, c, h_out, w_out), dtype=features.dtype, memory_format=torch.channels_last)
        if out.numel():
            geo = _geometry_tensor(features, kernels, geometry)
            _run("forward_pixels", features.dtype, (features, kernels, out), geo, n * h_out)
        return out
    features, kernels = _planes(features), _planes(kernels)
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
    if takes_pixel_major("reassemble_grad_features", features, geometry[1]):
        grad_x = torch.empty(features.shape, dtype=features.dtype, memory_format=torch.channels_last)
        if grad_x.numel():
            cl = torch.channels_last
            kernels, grad_out = kernels.contiguous(memory_format=cl), grad_out.contiguous(memory_format=cl)
            geo = _geometry_tensor(features, kernels, geometry)
            _run(
                "grad_features_pixels",
                features.dtype,
                (kernels, grad_out, grad_x),
                geo,
                grad_x.shape[0] * grad_x.shape[2],
            )
        return grad_x
    # the kernel writes every element of every row it is given (an empty output reads none)
    grad_x = (torch.empty if grad_out.numel() else torch.zeros)(features.shape, dtype=features.dtype)
    if grad_x.numel() and grad_out.numel():
        # the kernel pads its copies of grad_out's rows and of the kernels itself
        geo = _geometry_tensor(features, kernels, geometry)
        tasks = features.shape[0] * features.shape[2]
        _run("grad_features", features.dtype, (_planes(kernels), _planes(grad_out), grad_x), geo, tasks)
    return grad_x


@torch.library.custom_op("resamplers::reassemble_grad_kernels", mutates_args=())
def _grad_kernels_op(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    _check_grad_op_args("reassemble_grad_kernels", grad_out, features, kernels, geometry)
    if takes_pixel_major("reassemble_grad_kernels", features, geometry[1]):
        grad_k = torch.zeros(kernels.shape, dtype=kernels.dtype).contiguous(memory_format=torch.channels_last)
        if grad_k.numel() and features.numel():
            grad_out = grad_out.contiguous(memory_format=torch.channels_last)
            geo = _geometry_tensor(features, kernels, geometry)
            tasks = grad_k.shape[0] * grad_k.shape[2]
            _run("grad_kernels_pixels", features.dtype, (features, grad_out, grad_k), geo, tasks)
        return grad_k
    grad_out, features = _planes(grad_out), _planes(features)
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
    kernel_size, groups, up = geometry[0], geometry[1], geometry[2]
    n = keys.shape[0]
    h_out, w_out = query.shape[-2:]
    if takes_pixel_major("window_similarity", keys, groups):
        shape = (n, groups * kernel_size * kernel_size, h_out, w_out)
        out = torch.zeros(shape, dtype=keys.dtype).contiguous(memory_format=torch.channels_last)
        if out.numel() and keys.numel():
            query = query.contiguous(memory_format=torch.channels_last)
            geo = _geometry_tensor(keys, out, geometry)
            _run("grad_kernels_pixels", keys.dtype, (keys, query, out), geo, n * h_out)
        return out
    query, keys = _planes(query), _planes(keys)
    out = torch.zeros((n, groups * kernel_size * kernel_size, h_out, w_out), dtype=keys.dtype)
    if out.numel() and keys.numel():
        geo = _geometry_tensor(keys, out, geometry)
        _run("grad_kernels", keys.dtype, (keys, query, out), geo, n * _row_groups(h_out, up))
    return out


register_core_ops(_reassemble_op, _grad_features_op, _grad_kernels_op, _similarity_op, pixel_major=True)


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


# The scatter's channel blocks: a multiple of this many channels (a vector's worth).
_SCATTER_QUANTUM = 16


def _scatter_block(batch: int, groups: int, group_channels: int, threads: int) -> int:
    """Channels of one group a scatter task owns: as wide as possible (each task recomputes
    the taps' positions) while there are still two tasks a thread where the channels allow."""
    wanted_blocks = -(-2 * threads // (batch * groups))
    block = -(-group_channels // max(1, wanted_blocks))
    return min(group_channels, -(-block // _SCATTER_QUANTUM) * _SCATTER_QUANTUM)


def _planes(t: Tensor) -> Tensor:
    """``t`` as contiguous planes; a channels-last ``t`` through the blocked layout kernel
    (torch's copy of a permuted tensor runs far below the copy bandwidth)."""
    return _pixels_to_planes(t.permute(0, 2, 3, 1)) if is_channels_last(t) else t.contiguous()


def _to_pixels(planes: Tensor, pad: int = 0) -> Tensor:
    """``N x C x H x W`` as the offset kernels read it, pixel-major: ``N x (H + 2 pad) x
    (W + 2 pad) x C`` with a zero border (so that corners outside the image read zeros and
    the kernels need no per-corner branches).  A channels-last input is already pixel-major."""
    n, c, h, w = planes.shape
    shape = (n, h + 2 * pad, w + 2 * pad, c)
    if is_channels_last(planes):
        if not pad:
            return planes.permute(0, 2, 3, 1)
        out = planes.new_zeros(shape)
        out[:, pad : h + pad, pad : w + pad] = planes.permute(0, 2, 3, 1)
        return out
    planes = planes.contiguous()
    out = planes.new_empty(shape)
    if pad:  # zero only the border: the interior is written once below
        out[:, :pad], out[:, h + pad :], out[:, :, :pad], out[:, :, w + pad :] = 0, 0, 0, 0
    if planes.numel():
        _run("change_layout", planes.dtype, (planes, out), _layout_dims(planes, pad, to_pixels=True), n * h)
    return out


def _to_planes(pixels: Tensor, reference: Tensor, pad: int = 0) -> Tensor:
    """The inverse of :func:`_to_pixels`: the interior of ``N x (H + 2 pad) x (W + 2 pad) x C``
    as ``N x C x H x W`` in ``reference``'s memory format (channels last, or contiguous)."""
    n, hp, wp, c = pixels.shape
    h, w = hp - 2 * pad, wp - 2 * pad
    if is_channels_last(reference):
        interior = pixels[:, pad : h + pad, pad : w + pad].permute(0, 3, 1, 2)
        return interior.contiguous(memory_format=torch.channels_last)
    return _pixels_to_planes(pixels, pad)


def _pixels_to_planes(pixels: Tensor, pad: int = 0) -> Tensor:
    """The interior of ``N x (H + 2 pad) x (W + 2 pad) x C`` as contiguous ``N x C x H x W``."""
    n, hp, wp, c = pixels.shape
    out = pixels.new_empty((n, c, hp - 2 * pad, wp - 2 * pad))
    if out.numel():
        dims = _layout_dims(out, pad, to_pixels=False)
        _run("change_layout", pixels.dtype, (pixels.contiguous(), out), dims, n * out.shape[2])
    return out


def _layout_dims(planes: Tensor, pad: int, to_pixels: bool) -> Tensor:
    n, c, h, w = planes.shape
    return torch.tensor([n, c, h, w, pad, int(to_pixels)], dtype=torch.int64)


def _empty_in_layout_of(reference: Tensor, shape: tuple[int, ...]) -> Tensor:
    return empty_in_layout(shape, reference, is_channels_last(reference))


def _check_offset_args(
    op: str, sampled: Tensor, per_pixel: Tensor, offsets: Tensor, geometry: list[int], taps: bool
) -> None:
    """The arguments of an offset op: ``sampled`` (``N x C x H x W``), ``per_pixel`` (per-tap
    ``N x (G K^2) x H_out x W_out`` when ``taps``, else per-channel ``N x C x H_out x W_out``)
    and ``offsets`` (``N x (2 G K^2) x H_out x W_out``), one dtype, CPU, a geometry that fits."""
    _check_tensor(op, sampled, "sampled")
    _check_tensor(op, per_pixel, "weights", sampled.dtype)
    _check_tensor(op, offsets, "offsets", sampled.dtype)
    checked = check_geometry_list(op, geometry)
    n, c = sampled.shape[:2]
    tap_count = checked.groups * checked.kernel_size**2
    h_out, w_out = per_pixel.shape[-2:]
    check_op_shapes(op, sampled, (n, tap_count, h_out, w_out), checked, "weights")
    expected = (n, tap_count if taps else c, h_out, w_out)
    if tuple(per_pixel.shape) != expected:
        raise ValueError(
            f"torch.ops.resamplers.{op}: argument `weights`: expected shape {expected}, got {tuple(per_pixel.shape)}"
        )
    if tuple(offsets.shape) != (n, 2 * tap_count, h_out, w_out):
        raise ValueError(
            f"torch.ops.resamplers.{op}: argument `offsets`: expected shape {(n, 2 * tap_count, h_out, w_out)}, "
            f"got {tuple(offsets.shape)}"
        )


def _offset_geometry(sampled: Tensor, per_pixel: Tensor, geometry: list[int]) -> Tensor:
    kernel_size, groups = geometry[0], geometry[1]
    taps = torch.empty((0, groups * kernel_size * kernel_size, *per_pixel.shape[-2:]))
    return _geometry_tensor(sampled, taps, geometry)


@torch.library.custom_op("resamplers::offset_reassemble", mutates_args=())
def _offset_reassemble_op(features: Tensor, kernels: Tensor, offsets: Tensor, geometry: list[int]) -> Tensor:
    _check_offset_args("offset_reassemble", features, kernels, offsets, geometry, taps=True)
    n, c = features.shape[:2]
    h_out, w_out = kernels.shape[-2:]
    out = features.new_zeros((n, h_out, w_out, c))
    if out.numel():
        geo = _offset_geometry(features, kernels, geometry)
        inputs = (_to_pixels(features, pad=1), _to_pixels(kernels), _to_pixels(offsets))
        _run("offset_forward", features.dtype, (*inputs, out, None), geo, n * h_out)
    return _to_planes(out, features)


@_offset_reassemble_op.register_fake
def _(features: Tensor, kernels: Tensor, offsets: Tensor, geometry: list[int]) -> Tensor:
    return _empty_in_layout_of(features, (features.shape[0], features.shape[1], *kernels.shape[-2:]))


@torch.library.custom_op("resamplers::offset_correlate", mutates_args=())
def _offset_correlate_op(
    sampled: Tensor, weights: Tensor, offsets: Tensor, geometry: list[int], derivatives: bool
) -> tuple[Tensor, Tensor]:
    _check_offset_args("offset_correlate", sampled, weights, offsets, geometry, taps=False)
    n = sampled.shape[0]
    h_out, w_out = weights.shape[-2:]
    taps = geometry[1] * geometry[0] * geometry[0]
    dot = torch.zeros((n, h_out, w_out, taps), dtype=sampled.dtype)
    deriv = torch.zeros((n, h_out, w_out, 2 * taps) if derivatives else (0, 0, 0, 0), dtype=sampled.dtype)
    if dot.numel() and sampled.numel():
        geo = _offset_geometry(sampled, weights, geometry)
        inputs = (_to_pixels(sampled, pad=1), _to_pixels(weights), _to_pixels(offsets))
        _run("offset_correlate", sampled.dtype, (*inputs, dot, deriv if derivatives else None), geo, n * h_out)
    # Per-tap results go back to the API's N x taps x H x W.
    return _to_planes(dot, weights), (_to_planes(deriv, weights) if derivatives else deriv.new_zeros(0))


@_offset_correlate_op.register_fake
def _(
    sampled: Tensor, weights: Tensor, offsets: Tensor, geometry: list[int], derivatives: bool
) -> tuple[Tensor, Tensor]:
    taps = geometry[1] * geometry[0] * geometry[0]
    n, (h_out, w_out) = sampled.shape[0], weights.shape[-2:]
    deriv_shape = (n, 2 * taps, h_out, w_out)
    return _empty_in_layout_of(weights, (n, taps, h_out, w_out)), (
        _empty_in_layout_of(weights, deriv_shape) if derivatives else sampled.new_empty((0,))
    )


@torch.library.custom_op("resamplers::offset_scatter", mutates_args=())
def _offset_scatter_op(kernels: Tensor, grad: Tensor, offsets: Tensor, sampled: Tensor, geometry: list[int]) -> Tensor:
    _check_offset_args("offset_scatter", sampled, kernels, offsets, geometry, taps=True)
    _check_tensor("offset_scatter", grad, "grad", sampled.dtype)
    expected = (*sampled.shape[:2], *kernels.shape[-2:])
    if tuple(grad.shape) != expected:
        raise ValueError(
            f"torch.ops.resamplers.offset_scatter: argument `grad`: expected shape {expected}, got {tuple(grad.shape)}"
        )
    n, c, h, w = sampled.shape
    padded = sampled.new_zeros((n, h + 2, w + 2, c))
    if sampled.numel() and grad.numel():
        groups = geometry[1]
        block = _scatter_block(n, groups, c // groups, torch.get_num_threads())
        geo = torch.cat([_offset_geometry(sampled, kernels, geometry), torch.tensor([block])])
        tasks = n * groups * -(-(c // groups) // block)
        inputs = (_to_pixels(kernels), _to_pixels(grad), _to_pixels(offsets))
        _run("offset_scatter", sampled.dtype, (*inputs, padded, None), geo, tasks)
    # The border collected what fell outside the image.
    return _to_planes(padded, sampled, pad=1)


@_offset_scatter_op.register_fake
def _(kernels: Tensor, grad: Tensor, offsets: Tensor, sampled: Tensor, geometry: list[int]) -> Tensor:
    return _empty_in_layout_of(sampled, tuple(sampled.shape))


def _times_taps(derivatives: Tensor, per_tap: Tensor) -> Tensor:
    """Offset gradients from the per-tap derivatives (``N x (2 T) x H x W``, column then row
    for each tap) scaled by a per-tap factor (``N x T x H x W``)."""
    n, taps, h, w = per_tap.shape
    return (derivatives.view(n, taps, 2, h, w) * per_tap.unsqueeze(2)).view(n, 2 * taps, h, w)


def _native_values(call: TapsCall) -> Tensor:
    kind, sampled, other, offsets, geometry = call
    if kind == "reassemble":
        return _offset_reassemble_op(sampled, other, offsets, geometry.as_list())
    return _offset_correlate_op(sampled, other, offsets, geometry.as_list(), False)[0]


def _native_gradients(call: TapsCall, grad: Tensor, needs: tuple[bool, ...]) -> Gradients:
    kind, sampled, other, offsets, geometry = call
    need_sampled, need_other, need_offsets = needs
    geo = geometry.as_list()
    grad = grad.contiguous()
    grad_sampled = grad_other = grad_offsets = None
    if kind == "reassemble":
        if need_sampled:
            grad_sampled = _offset_scatter_op(other, grad, offsets, sampled, geo)
        if need_other or need_offsets:
            dot, deriv = _offset_correlate_op(sampled, grad, offsets, geo, need_offsets)
            grad_other = dot if need_other else None
            grad_offsets = _times_taps(deriv, other) if need_offsets else None
    else:
        if need_other:
            grad_other = _offset_reassemble_op(sampled, grad, offsets, geo)
        if need_sampled:
            grad_sampled = _offset_scatter_op(grad, other, offsets, sampled, geo)
        if need_offsets:
            deriv = _offset_correlate_op(sampled, other, offsets, geo, True)[1]
            grad_offsets = _times_taps(deriv, grad)
    return grad_sampled, grad_other, grad_offsets


NativeOffsetTaps = offset_taps_function(
    "NativeOffsetTaps",
    _native_values,
    _native_gradients,
    """Taps sampled at offsets on the native kernels, both kinds, with their first derivatives
    (``apply(kind, sampled, other, offsets, geometry)`` as
    :data:`~resamplers.core.offset_path.OffsetTaps`).  Backward:

    * reassembly ``out = sum_t m_t S_t(f)``: ``d f = scatter(m, g)``, ``d m`` and the
      offsets' derivatives from one ``correlate(f, g)`` pass (``d offsets_t = m_t * D_t``);
    * similarity ``sim_t = sum_c q_c S_t(k)_c``: ``d q = offset_reassemble(k, g)``,
      ``d k = scatter(g, q)``, ``d offsets_t = g_t * D_t`` with ``D`` from ``correlate(k, q)``.""",
)
