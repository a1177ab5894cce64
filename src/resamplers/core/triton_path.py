"""The Triton path of the core: GPU kernels (:mod:`._triton_kernels`) as torch custom ops.

``triton`` is optional (``pip install 'resamplers[gpu]'``) and the kernels are loaded
lazily: nothing here imports triton or decorates a kernel until the first call of
:func:`triton_available` or of an op, and ``"auto"`` asks only for CUDA tensors, so CPU
calls never load them.  (Torch itself may import an installed triton; the
``TRITON_INTERPRET`` that counts is the one ``triton.jit`` sees at that first call.)

The kernels are exposed as ``torch.library`` custom ops with the fakes, autograd and
FLOP formulas the native ones have (:mod:`.custom_ops`), so ``torch.compile(fullgraph=True)``
captures them as opaque calls:

* ``resamplers::triton_reassemble(features, kernels, geometry)`` and its gradients
  ``resamplers::triton_reassemble_grad_features`` (gather form: deterministic, no
  atomics) / ``resamplers::triton_reassemble_grad_kernels`` (the window similarity of the
  incoming gradient with the features);
* ``resamplers::triton_window_similarity(query, keys, geometry)``, whose gradients are the
  reassembly kernels again (``d/d query`` a reassembly of the keys with the gradient as
  kernels, ``d/d keys`` the features-gradient of that reassembly).

They are ``custom_op`` (opaque to the compiler) rather than ``torch.library.triton_op``
(whose body ``torch.compile`` traces into the kernels): the kernels are then loaded on the
first call, and the same ops run and compile in Triton's CPU interpreter, where the
tests check them.  Inputs may be float16, bfloat16, float32 or float64 (the sum is
accumulated in float32, float64 for float64) on a CUDA device, or on the CPU when the
kernels were loaded with ``TRITON_INTERPRET=1``; they are made contiguous.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any

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

__all__ = [
    "TRITON_DTYPES",
    "triton_available",
    "triton_interpreted",
    "triton_reassemble",
    "triton_window_similarity",
]

TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_KERNELS: list[ModuleType | None] = []  # empty until the first attempt to load them


def _kernels() -> ModuleType | None:
    """The kernel module, imported on first use; ``None`` without (a working) triton."""
    if not _KERNELS:
        try:
            module: ModuleType | None = importlib.import_module("._triton_kernels", __package__)
        except ImportError:
            module = None
        _KERNELS.append(module if module is not None and module.AVAILABLE else None)
    return _KERNELS[0]


# Both are constants for the compiler (evaluated once while tracing, no guard, no graph
# break): whether triton is installed does not change within a process.
@torch.compiler.assume_constant_result
def triton_available() -> bool:
    """True when ``triton`` imports (the Triton path needs it, and a CUDA device or the
    interpreter).  The first call imports triton."""
    return _kernels() is not None


@torch.compiler.assume_constant_result
def triton_interpreted() -> bool:
    """True when the Triton kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` at
    the first use of the Triton path): they then accept CPU tensors."""
    kernels = _kernels()
    return kernels is not None and bool(kernels.INTERPRETED)


def _loaded() -> ModuleType:
    kernels = _kernels()
    if kernels is None:
        raise RuntimeError("the Triton path needs the `triton` package: pip install 'resamplers[gpu]'")
    return kernels


def _check_tensor(op: str, t: object, name: str, like: Tensor | None = None) -> Tensor:
    prefix = f"torch.ops.resamplers.{op}: argument `{name}`"
    if not isinstance(t, Tensor):
        raise TypeError(f"{prefix}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{prefix}: expected a 4-D tensor, got shape {tuple(t.shape)}")
    if t.dtype not in TRITON_DTYPES:
        raise TypeError(f"{prefix}: expected a dtype of {[str(d) for d in TRITON_DTYPES]}, got {t.dtype}")
    if like is not None and t.dtype != like.dtype:
        raise TypeError(f"{prefix}: expected dtype {like.dtype} (that of the first tensor), got {t.dtype}")
    if like is not None and t.device != like.device:
        raise ValueError(f"{prefix}: expected device {like.device} (that of the first tensor), got {t.device}")
    if t.device.type not in ("cuda", "cpu"):
        raise ValueError(f"{prefix}: expected a CUDA tensor, got device {t.device}")
    if t.device.type == "cpu" and not triton_interpreted():
        raise ValueError(f"{prefix}: a CPU tensor runs only in Triton's interpreter (TRITON_INTERPRET=1)")
    return t


def _device(t: Tensor) -> contextlib.AbstractContextManager[Any]:
    """Triton launches on the current CUDA device: make it the tensor's."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def _acc(kernels: ModuleType, dtype: torch.dtype) -> Any:
    return kernels.tl.float64 if dtype == torch.float64 else kernels.tl.float32


def _pow2(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


def _channel_blocks(group_c: int, pixels: int) -> tuple[int, int]:
    """``(BLOCK_C, BLOCK_P)`` of the two reassembly kernels: up to 16 channels times 128
    pixels (256 with fewer channels), never much more pixels than there are."""
    block_c = min(_pow2(group_c), 16)
    block_p = min(max(32, 2048 // block_c), 256, max(16, _pow2(pixels)))
    return block_c, block_p


def _launch_reassemble(features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    """``out = reassemble(features, kernels)``: contiguous inputs, one output."""
    k, groups, up, stride, pad_top, pad_left = geometry
    n, c, h, w = features.shape
    h_out, w_out = kernels.shape[-2:]
    if features.numel() == 0:
        return features.new_zeros((n, c, h_out, w_out))
    out = features.new_empty((n, c, h_out, w_out))
    if out.numel() == 0:
        return out
    module = _loaded()
    group_c = c // groups
    block_c, block_p = _channel_blocks(group_c, h_out * w_out)
    p_blocks, c_blocks = -(-h_out * w_out // block_p), -(-group_c // block_c)
    with _device(features):
        module.reassemble_kernel[(p_blocks * c_blocks * n * groups,)](
            features, kernels, out, c, h, w, h_out, w_out, group_c, groups, pad_top, pad_left, p_blocks, c_blocks,
            K=k, UP=up, STRIDE=stride, ACC=_acc(module, features.dtype), BLOCK_C=block_c, BLOCK_P=block_p,
        )  # fmt: skip
    return out


def _launch_grad_features(grad: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    """``d out / d features`` applied to ``grad`` (``features`` gives the shape only)."""
    k, groups, up, stride, pad_top, pad_left = geometry
    n, c, h, w = features.shape
    h_out, w_out = kernels.shape[-2:]
    if features.numel() == 0 or grad.numel() == 0:
        return grad.new_zeros(features.shape)
    out = grad.new_empty(features.shape)
    module = _loaded()
    group_c = c // groups
    block_c, block_p = _channel_blocks(group_c, h * w)
    p_blocks, c_blocks = -(-h * w // block_p), -(-group_c // block_c)
    h_cells, w_cells = -(-h_out // up), -(-w_out // up)
    with _device(grad):
        module.reassemble_grad_features_kernel[(p_blocks * c_blocks * n * groups,)](
            kernels, grad, out, c, h, w, h_out, w_out, h_cells, w_cells, group_c, groups, pad_top, pad_left,
            p_blocks, c_blocks,
            K=k, UP=up, STRIDE=stride, ACC=_acc(module, grad.dtype), BLOCK_C=block_c, BLOCK_P=block_p,
        )  # fmt: skip
    return out


def _launch_similarity(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
    """``sim = window_similarity(query, keys)``: ``N x (G K^2) x H_out x W_out``."""
    k, groups, up, stride, pad_top, pad_left = geometry
    n, c, h, w = keys.shape
    h_out, w_out = query.shape[-2:]
    shape = (n, groups * k * k, h_out, w_out)
    if keys.numel() == 0:
        return keys.new_zeros(shape)
    out = keys.new_empty(shape)
    if out.numel() == 0:
        return out
    module = _loaded()
    block_t = min(_pow2(k * k), 32)
    block_p = min(max(16, 4096 // block_t), 256, max(16, _pow2(h_out * w_out)))
    p_blocks, t_blocks = -(-h_out * w_out // block_p), -(-k * k // block_t)
    with _device(keys):
        module.window_similarity_kernel[(p_blocks * t_blocks * n * groups,)](
            query, keys, out, c, h, w, h_out, w_out, c // groups, groups, pad_top, pad_left, p_blocks, t_blocks,
            K=k, UP=up, STRIDE=stride, ACC=_acc(module, keys.dtype), BLOCK_T=block_t, BLOCK_P=block_p,
        )  # fmt: skip
    return out


def _check_args(op: str, features: Tensor, kernels: Tensor, geometry: list[int]) -> None:
    _check_tensor(op, features, "features")
    _check_tensor(op, kernels, "kernels", features)
    check_op_shapes(op, features, tuple(kernels.shape), check_geometry_list(op, geometry), "kernels")


def _check_grad_args(op: str, grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> None:
    _check_args(op, features, kernels, geometry)
    _check_tensor(op, grad_out, "grad_out", features)
    check_grad_shape(op, grad_out, features, kernels)


@torch.library.custom_op("resamplers::triton_reassemble", mutates_args=())
def _reassemble_op(features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    _check_args("triton_reassemble", features, kernels, geometry)
    return _launch_reassemble(features.contiguous(), kernels.contiguous(), geometry)


@torch.library.custom_op("resamplers::triton_reassemble_grad_features", mutates_args=())
def _grad_features_op(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    _check_grad_args("triton_reassemble_grad_features", grad_out, features, kernels, geometry)
    return _launch_grad_features(grad_out.contiguous(), features, kernels.contiguous(), geometry)


@torch.library.custom_op("resamplers::triton_reassemble_grad_kernels", mutates_args=())
def _grad_kernels_op(grad_out: Tensor, features: Tensor, kernels: Tensor, geometry: list[int]) -> Tensor:
    """The kernel gradient is the window similarity of ``grad_out`` (query) with the features (keys)."""
    _check_grad_args("triton_reassemble_grad_kernels", grad_out, features, kernels, geometry)
    return _launch_similarity(grad_out.contiguous(), features.contiguous(), geometry)


@torch.library.custom_op("resamplers::triton_window_similarity", mutates_args=())
def _similarity_op(query: Tensor, keys: Tensor, geometry: list[int]) -> Tensor:
    op = "triton_window_similarity"
    _check_tensor(op, query, "query")
    _check_tensor(op, keys, "keys", query)
    check_similarity_shapes(op, query, keys, geometry)
    return _launch_similarity(query.contiguous(), keys.contiguous(), geometry)


register_core_ops(_reassemble_op, _grad_features_op, _grad_kernels_op, _similarity_op)


def triton_reassemble(features: Tensor, kernels: Tensor, geometry: Geometry) -> Tensor:
    """``resamplers::triton_reassemble``, in the dtype of ``features``."""
    return _reassemble_op(features, kernels, geometry.as_list())


def triton_window_similarity(query: Tensor, keys: Tensor, geometry: Geometry) -> Tensor:
    """``resamplers::triton_window_similarity``, in the dtype of ``query``."""
    return _similarity_op(query, keys, geometry.as_list())
