"""The one check for "this call is being traced or exported": the graph must then consist
of portable torch ops (no custom ops, no hand-written autograd functions)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["is_exporting", "eager_autograd"]


def is_exporting() -> bool:
    """Whether the caller is being scripted, traced or exported (``torch.jit.script``,
    ``torch.jit.trace``, ``torch.export``, ONNX, legacy or dynamo).

    Every part of the library that must choose a portable path asks this function: a
    traced graph or a legacy ONNX model must not record ``torch.ops.resamplers`` custom
    ops (no runtime knows them) nor a Python autograd function.
    """
    return (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


def eager_autograd(*tensors: Tensor) -> bool:
    """Whether autograd will differentiate this call outside any tracing (compile, export, script)."""
    return (
        torch.is_grad_enabled()
        and any(t.requires_grad for t in tensors)
        and not is_exporting()
        and not torch.compiler.is_compiling()
    )
