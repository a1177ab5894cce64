"""Cases of the shared operator test matrix, generated from the registries.

A :class:`Case` knows how to build one registered operator at a small size, make its
inputs, and predict its output shape.  ``test_operator_matrix.py`` runs every check on
every case, so registering an operator is enough to have it tested.  Families with other
calling conventions (guided pairs, global pools, blocks) add their own case builders here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from resamplers.registry import DOWNSAMPLERS, PAIRS, UPSAMPLERS, Registry

# Spatial sizes exercised for shape checks: odd non-square, even, 1x1, square.
SHAPES = [(1, 5, 7), (2, 6, 4), (1, 1, 1), (1, 8, 8)]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass
class Case:
    id: str
    build: Callable[[], nn.Module]
    channels: int
    size_multiple: int

    def module(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        torch.manual_seed(0)
        return self.build().eval().to(dtype)

    def inputs(self, n: int, h: int, w: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(n, self.channels, h, w, generator=g, dtype=torch.float64).to(dtype),)

    def expected_shape(self, module: nn.Module, n: int, h: int, w: int) -> tuple[int, ...] | None:
        """Output shape, or ``None`` when the operator rejects this input size."""
        try:
            oh, ow = module.output_size((h, w))
        except ValueError:
            return None
        if h % self.size_multiple or w % self.size_multiple:
            return None
        out_channels = module.out_channels if module.out_channels is not None else self.channels
        return (n, out_channels, oh, ow)

    def sizes(self, base: tuple[int, int]) -> tuple[int, int]:
        return (round_up(base[0], self.size_multiple), round_up(base[1], self.size_multiple))


def _registry_cases(registry: Registry) -> Iterator[Case]:
    for entry in registry:
        kwargs = entry.example_kwargs()
        channels = kwargs.get("channels") or 8

        def build(name: str = entry.name, kwargs: dict = kwargs) -> nn.Module:
            return registry.create(name, **kwargs)

        yield Case(
            id=f"{registry.kind}:{entry.name}",
            build=build,
            channels=channels,
            size_multiple=build().size_multiple,
        )


# Single-input operators whose forward maps a feature map to a feature map.  A pair's
# forward is its round trip up(*down(x)); pair-specific checks are in test_pairs.py.
FEATURE_REGISTRIES = (UPSAMPLERS, DOWNSAMPLERS, PAIRS)


def all_cases() -> list[Case]:
    return [case for registry in FEATURE_REGISTRIES for case in _registry_cases(registry)]
