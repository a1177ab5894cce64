"""Example inputs and export sizes of an operator, read from its contract.

One home for what the ``resamplers export`` command and the shared test matrix
(``tests/matrix.py``) both need: random inputs of the shapes an operator states
(:meth:`resamplers.base.Operator.input_shapes`), the sizes it can be exported at, and the
``torch.export`` dynamic-shape specification that makes its batch, height and width free.
Nothing here is special-cased by family: one input, ``d`` and ``encoder``, or a list of
branch maps all come from the contract.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor
from torch.export import Dim

from ..base import Operator

__all__ = [
    "round_up",
    "example_inputs",
    "output_shapes_at",
    "export_multiple",
    "export_low",
    "export_sizes",
    "dynamic_shapes",
    "MAX_SIZE",
    "MAX_BATCH",
]

# Upper bounds of the dynamic dimensions (``torch.export`` wants finite ranges to reason with).
MAX_SIZE = 4096
MAX_BATCH = 64


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ``>= value``."""
    return -(-value // multiple) * multiple


def example_inputs(
    module: Operator, batch: int, height: int, width: int, *, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[Tensor, ...] | tuple[list[Tensor]]:
    """Positional arguments of ``module.forward`` at ``batch x height x width`` (the first
    input's size): standard normal values from a generator seeded with ``seed``, drawn in
    float64 and cast to ``dtype`` so that every dtype sees the same numbers."""
    generator = torch.Generator().manual_seed(seed)
    maps = [
        torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)
        for shape in module.input_shapes(batch, height, width)
    ]
    return (maps,) if module.list_input else tuple(maps)


def output_shapes_at(module: Operator, batch: int, height: int, width: int) -> list[tuple[int, ...]] | None:
    """The output shapes at this input size, or ``None`` where the operator rejects it."""
    if height % module.size_multiple or width % module.size_multiple:
        return None
    try:
        return [tuple(shape) for shape in module.output_shapes(module.input_shapes(batch, height, width))]
    except ValueError:
        return None


def export_multiple(module: Operator) -> int:
    """Export sizes are multiples of this, so that every input's size is a whole multiple
    of one height symbol and one width symbol (the encoder of FADE / SAPA is twice ``d``;
    HRNet's fusion branches are 1, 1/2, 1/4 of the first)."""
    denominators = [scale.denominator for scale in module.input_scales()]
    return math.lcm(module.size_multiple, *denominators)


def _sizes(base: tuple[int, int], multiple: int) -> tuple[int, int]:
    return round_up(base[0], multiple), round_up(base[1], multiple)


def export_low(module: Operator) -> int:
    """The smallest height / width exported: no size-dependent output axis may reach one
    pixel (export specialises a size of 1).  6 for most operators; more for deep backbones."""
    multiple = export_multiple(module)
    for low in range(6, 513):
        small = output_shapes_at(module, 1, *_sizes((low, low), multiple))
        large = output_shapes_at(module, 1, *_sizes((4 * low, 4 * low), multiple))
        if (
            small is not None
            and large is not None
            and all(a >= 2 or a == b for s, t in zip(small, large) for a, b in zip(s[2:], t[2:]))
        ):
            return low
    raise ValueError(f"{type(module).__name__}: no exportable input size up to 512")


def export_sizes(module: Operator, second: bool = False) -> tuple[int, int]:
    """The export size ``(low, low + 2)`` and, with ``second``, the other size a dynamic
    export is checked at, ``(2 low, low)`` (both rounded up to :func:`export_multiple`)."""
    low = export_low(module)
    return _sizes((2 * low, low) if second else (low, low + 2), export_multiple(module))


def dynamic_shapes(module: Operator) -> dict[str, object]:
    """``torch.export`` dynamic shapes for inputs at :func:`export_sizes`: batch, height and
    width are free; input ``i`` is ``export_multiple * scale_i`` times one height symbol and
    one width symbol.  Export with a batch of at least 2 (a batch of 1 is specialised)."""
    multiple = export_multiple(module)
    batch = Dim("batch", min=1, max=MAX_BATCH)
    low = -(-export_low(module) // multiple)
    height = Dim("height", min=low, max=MAX_SIZE // multiple)
    width = Dim("width", min=low, max=MAX_SIZE // multiple)

    def scaled(dim: Dim, scale: Fraction) -> object:
        factor = multiple * scale
        assert factor.denominator == 1
        return dim if factor == 1 else int(factor) * dim

    specs = [{0: batch, 2: scaled(height, f), 3: scaled(width, f)} for f in module.input_scales()]
    if module.list_input:
        return {module.input_names[0]: specs}
    return dict(zip(module.input_names, specs, strict=True))
