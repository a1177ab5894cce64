"""Argument validation shared by every operator.

Each helper raises ``ValueError`` (or ``TypeError`` for a wrong type) whose message names
the argument and states the expected value, so that bad input never surfaces as a shape
error from deep inside torch.  The helpers only read shapes, so they are cheap and
traceable by ``torch.compile`` / ``torch.export``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")

__all__ = [
    "check_int",
    "check_odd",
    "check_choice",
    "check_feature",
    "check_divides",
    "check_same_dtype_device",
    "to_hw",
    "did_you_mean",
]


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int, or raise naming ``name`` (bools are rejected).

    Under ``torch.jit.trace`` sizes are 0-d integer tensors; they count as their value at
    trace time (a shape the traced graph is specialised to anyway).
    """
    if isinstance(value, torch.Tensor) and torch.jit.is_tracing() and value.ndim == 0 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"argument `{name}`: expected an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"argument `{name}`: expected an int >= {minimum}, got {value}")
    return value


def check_odd(value: int, name: str) -> int:
    check_int(value, name, minimum=1)
    if value % 2 == 0:
        raise ValueError(f"argument `{name}`: expected an odd int >= 1, got {value}")
    return value


def check_choice(value: T, name: str, choices: Sequence[object]) -> T:
    if value not in choices:
        raise ValueError(f"argument `{name}`: expected one of {list(choices)}, got {value!r}")
    return value


def to_hw(value: int | Sequence[int], name: str, *, minimum: int | None = None) -> tuple[int, int]:
    """Normalise an int or a 2-sequence to ``(h, w)`` ints."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"argument `{name}`: expected an int or a pair of ints, got {value!r}")
        return (check_int(value[0], name, minimum=minimum), check_int(value[1], name, minimum=minimum))
    v = check_int(value, name, minimum=minimum)
    return (v, v)


def check_divides(multiple: int, value: int, name: str, what: str) -> None:
    """Raise unless ``value`` is a multiple of ``multiple``; ``what`` says why."""
    if value % multiple != 0:
        raise ValueError(f"argument `{name}`: {what} must be a multiple of {multiple}, got {value}")


def check_feature(
    x: object,
    name: str = "x",
    *,
    channels: int | None = None,
    size_multiple: int = 1,
    min_size: int = 1,
) -> torch.Tensor:
    """Check a feature map: a floating-point ``N x C x H x W`` tensor.

    Args:
        x: the tensor to check.
        name: the argument name used in error messages.
        channels: the required channel count, or ``None`` for any.
        size_multiple: ``H`` and ``W`` must be multiples of this.
        min_size: ``H`` and ``W`` must be at least this.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"argument `{name}`: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"argument `{name}`: expected a 4-D tensor N x C x H x W, got {x.dim()}-D shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"argument `{name}`: expected a floating-point tensor, got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"argument `{name}`: expected {channels} channels (dim 1), got {x.shape[1]} in shape {tuple(x.shape)}"
        )
    h, w = x.shape[-2], x.shape[-1]
    if h < min_size or w < min_size:
        raise ValueError(f"argument `{name}`: expected height and width >= {min_size}, got {h} x {w}")
    if size_multiple > 1 and (h % size_multiple != 0 or w % size_multiple != 0):
        raise ValueError(f"argument `{name}`: expected height and width divisible by {size_multiple}, got {h} x {w}")
    return x


def check_same_dtype_device(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.dtype != b.dtype:
        raise ValueError(f"argument `{b_name}`: expected dtype {a.dtype} (the dtype of `{a_name}`), got {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"argument `{b_name}`: expected device {a.device} (the device of `{a_name}`), got {b.device}")


def did_you_mean(name: str, options: Iterable[str], *, n: int = 3) -> str:
    """``"; did you mean 'a', 'b'?"`` for the options close to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(options), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
