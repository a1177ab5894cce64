"""Cases of the shared operator test matrix, generated from the registries.

A :class:`Case` builds one registered operator at a small size; everything else (its
inputs, their names, channels and relative sizes, the expected output shapes) comes from
the operator contract (:class:`resamplers.base.Operator`), so registering an operator is
enough to have it tested and no family is special-cased here.  The example inputs, export
sizes and dynamic shapes are the ``resamplers export`` command's (:mod:`resamplers.export.inputs`).

``forward`` takes either separate tensors (one feature map for most operators; ``d`` and
``encoder`` for feature-guided upsamplers) or, with ``list_input``, one list of maps (the
branches of a multi-resolution block).  Outputs are one tensor or a list of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

from resamplers import export
from resamplers.base import Operator
from resamplers.export.inputs import round_up
from resamplers.registry import BLOCKS, DOWNSAMPLERS, PAIRS, POOLS, UPSAMPLERS, Registry

# Spatial sizes exercised for shape checks: odd non-square, even, 1x1, square.
SHAPES = [(1, 5, 7), (2, 6, 4), (1, 1, 1), (1, 8, 8)]


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
        return export.export_multiple(self._probe)

    def module(self, dtype: torch.dtype = torch.float32) -> Operator:
        torch.manual_seed(0)
        return self.build().eval().to(dtype)

    def input_shapes(self, n: int, h: int, w: int) -> list[tuple[int, ...]]:
        return self._probe.input_shapes(n, h, w)

    def inputs(self, n: int, h: int, w: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
        """Positional arguments of ``forward`` (random normal values, fixed seed)."""
        return export.example_inputs(self._probe, n, h, w, dtype=dtype, seed=seed)

    def expected_shapes(self, module: Operator, n: int, h: int, w: int) -> list[tuple[int, ...]] | None:
        """Output shapes (one per output tensor), or ``None`` when the operator rejects this input size."""
        return export.output_shapes_at(module, n, h, w)

    def sizes(self, base: tuple[int, int], multiple: int | None = None) -> tuple[int, int]:
        m = self.size_multiple if multiple is None else multiple
        return (round_up(base[0], m), round_up(base[1], m))

    def export_low(self) -> int:
        """Smallest height/width exported (:func:`resamplers.export.export_low`)."""
        return export.export_low(self._probe)

    def export_sizes(self, second: bool = False) -> tuple[int, int]:
        """The two sizes the export tests use: ``(low, low + 2)`` and ``(2 low, low)``."""
        return export.export_sizes(self._probe, second)

    def dynamic_shapes(self) -> dict[str, object]:
        """Dynamic batch, height and width for ``torch.export`` at :meth:`export_sizes`
        (:func:`resamplers.export.dynamic_shapes`)."""
        return export.dynamic_shapes(self._probe)


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
