"""Cases of the shared operator test matrix, generated from the registries.

A :class:`Case` builds one registered operator at a small size; everything else (its
inputs, their names, channels and relative sizes, the expected output shapes) comes from
the operator contract (:class:`resamplers.base.Operator`), so registering an operator is
enough to have it tested and no family is special-cased here.

``forward`` takes either separate tensors (one feature map for most operators; ``d`` and
``encoder`` for feature-guided upsamplers) or, with ``list_input``, one list of maps (the
branches of a multi-resolution block).  Outputs are one tensor or a list of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import Tensor
from torch.export import Dim
from torch.utils._pytree import tree_flatten

from resamplers.base import Operator
from resamplers.registry import BLOCKS, DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS, Registry

# Spatial sizes exercised for shape checks: odd non-square, even, 1x1, square.
SHAPES = [(1, 5, 7), (2, 6, 4), (1, 1, 1), (1, 8, 8)]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def leaves(value: object) -> list[Tensor]:
    """The tensors of a (possibly nested) output or input, in order."""
    return tree_flatten(value)[0]


@dataclass
class Case:
    id: str
    build: Callable[[], Operator]

    def __post_init__(self) -> None:
        probe = self.build()
        self.input_names = probe.input_names
        self.list_input = probe.list_input
        self.size_multiple = probe.size_multiple
        self.has_channels = any(c is not None for c in probe.input_channels())
        self.scales = probe.input_scales()
        self._probe = probe

    @property
    def input_name(self) -> str:
        """The forward argument named in errors about the first input."""
        return self.input_names[0]

    @property
    def export_multiple(self) -> int:
        """Export sizes are multiples of this, so every input's size is a fixed multiple of one symbol."""
        denominators = [f.denominator for f in self.scales]
        return math.lcm(self.size_multiple, *denominators)

    def module(self, dtype: torch.dtype = torch.float32) -> Operator:
        torch.manual_seed(0)
        return self.build().eval().to(dtype)

    def input_shapes(self, n: int, h: int, w: int) -> list[tuple[int, ...]]:
        return self._probe.input_shapes(n, h, w)

    def inputs(self, n: int, h: int, w: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
        """Positional arguments of ``forward`` (random normal values, fixed seed)."""
        g = torch.Generator().manual_seed(seed)
        maps = [torch.randn(*s, generator=g, dtype=torch.float64).to(dtype) for s in self.input_shapes(n, h, w)]
        return (maps,) if self.list_input else tuple(maps)

    def expected_shapes(self, module: Operator, n: int, h: int, w: int) -> list[tuple[int, ...]] | None:
        """Output shapes (one per output tensor), or ``None`` when the operator rejects this input size."""
        if h % self.size_multiple or w % self.size_multiple:
            return None
        try:
            return [tuple(s) for s in module.output_shapes(self.input_shapes(n, h, w))]
        except ValueError:
            return None

    def sizes(self, base: tuple[int, int], multiple: int | None = None) -> tuple[int, int]:
        m = self.size_multiple if multiple is None else multiple
        return (round_up(base[0], m), round_up(base[1], m))

    def export_low(self) -> int:
        """Smallest height/width exported: size-dependent output axes must not reach 1 pixel
        (export specialises a size of 1).  6 for most operators; more for deep backbones."""
        module = self.build()
        for low in range(6, 513):
            small = self.expected_shapes(module, 1, *self.sizes((low, low), self.export_multiple))
            large = self.expected_shapes(module, 1, *self.sizes((4 * low, 4 * low), self.export_multiple))
            if (
                small is not None
                and large is not None
                and all(a >= 2 or a == b for s, t in zip(small, large) for a, b in zip(s[2:], t[2:]))
            ):
                return low
        raise AssertionError(f"{self.id}: no exportable size up to 512")

    def export_sizes(self, second: bool = False) -> tuple[int, int]:
        """The two sizes the export tests use: ``(low, low + 2)`` and ``(2 low, low)``."""
        low = self.export_low()
        return self.sizes((2 * low, low) if second else (low, low + 2), self.export_multiple)

    def dynamic_shapes(self) -> dict[str, object]:
        """Dynamic batch, height and width for ``torch.export`` at :meth:`export_sizes`: input
        ``i`` is ``export_multiple * scale_i`` times one height symbol and one width symbol."""
        m = self.export_multiple
        batch = Dim("batch", min=1, max=64)
        low = -(-self.export_low() // m)
        height, width = Dim("height", min=low, max=4096 // m), Dim("width", min=low, max=4096 // m)

        def scaled(dim: Dim, scale: Fraction) -> object:
            factor = m * scale
            assert factor.denominator == 1
            return dim if factor == 1 else int(factor) * dim

        specs = [{0: batch, 2: scaled(height, f), 3: scaled(width, f)} for f in self.scales]
        if self.list_input:
            return {self.input_name: specs}
        return dict(zip(self.input_names, specs, strict=True))


def _registry_cases(registry: Registry) -> list[Case]:
    cases = []
    for entry in registry:

        def build(name: str = entry.name, kwargs: dict = entry.example_kwargs()) -> Operator:  # noqa: B008 (bound per entry)
            return registry.create(name, **kwargs)

        cases.append(Case(id=f"{registry.kind}:{entry.name}", build=build))
    return cases


# Every family is tested through the same checks; a pair's forward is its round trip
# up(*down(x)) (pair-specific checks are in test_pairs.py).
REGISTRIES = (UPSAMPLERS, DOWNSAMPLERS, PAIRS, POOLS, BLOCKS)


def all_cases() -> list[Case]:
    return [case for registry in REGISTRIES for case in _registry_cases(registry)]
