"""Cases of the shared operator test matrix, generated from the registries.

A :class:`Case` knows how to build one registered operator at a small size, make its
inputs, and predict its output shape.  ``test_operator_matrix.py`` runs every check on
every case, so registering an operator is enough to have it tested.

Two calling conventions exist:

* one feature map in (``forward(x)``), one tensor out: upsamplers, downsamplers, pairs
  (whose forward is the round trip ``up(*down(x))``), pools (``N x C' x h x w`` or
  ``N x D``) and most blocks;
* multi-resolution (a block whose ``channels`` is a sequence, like HRNet's fuse unit):
  ``forward(features)`` takes one map per branch, branch ``j`` of size
  ``ceil(H / 2^j) x ceil(W / 2^j)``, and returns a list of maps.

Every registered class states its output shape through ``output_shape(input_shape)``
(for multi-resolution blocks: the list of input shapes in, the list of output shapes
out); a ``ValueError`` there means the operator rejects that input.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.export import Dim
from torch.utils._pytree import tree_flatten

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
    build: Callable[[], nn.Module]
    channels: int | tuple[int, ...]
    size_multiple: int

    @property
    def multi_resolution(self) -> bool:
        return isinstance(self.channels, tuple)

    @property
    def input_name(self) -> str:
        """The forward argument that receives the input (named in error messages)."""
        return "features" if self.multi_resolution else "x"

    @property
    def export_multiple(self) -> int:
        """Export tests use sizes divisible by this, so derived branch sizes stay linear."""
        return 2 ** (len(self.channels) - 1) if self.multi_resolution else self.size_multiple

    def module(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        torch.manual_seed(0)
        return self.build().eval().to(dtype)

    def branch_sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        if not self.multi_resolution:
            return [(h, w)]
        return [(-(-h // 2**j), -(-w // 2**j)) for j in range(len(self.channels))]

    def inputs(self, n: int, h: int, w: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple:
        """Positional arguments of ``forward`` (random normal values, fixed seed)."""
        g = torch.Generator().manual_seed(seed)
        channels = self.channels if self.multi_resolution else (self.channels,)
        maps = [
            torch.randn(n, c, bh, bw, generator=g, dtype=torch.float64).to(dtype)
            for c, (bh, bw) in zip(channels, self.branch_sizes(h, w))
        ]
        return (maps,) if self.multi_resolution else (maps[0],)

    def expected_shapes(self, module: nn.Module, n: int, h: int, w: int) -> list[tuple[int, ...]] | None:
        """Output shapes (one per output tensor), or ``None`` when the operator rejects this input size."""
        if h % self.size_multiple or w % self.size_multiple:
            return None
        channels = self.channels if self.multi_resolution else (self.channels,)
        shapes = [(n, c, bh, bw) for c, (bh, bw) in zip(channels, self.branch_sizes(h, w))]
        try:
            out = module.output_shape(shapes if self.multi_resolution else shapes[0])
        except ValueError:
            return None
        # A tuple of ints is one output; a list of shapes is one per output tensor.
        return [tuple(s) for s in out] if isinstance(out, list) else [tuple(out)]

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
            if small is not None and large is not None and all(
                a >= 2 or a == b for s, t in zip(small, large) for a, b in zip(s[2:], t[2:])
            ):
                return low
        raise AssertionError(f"{self.id}: no exportable size up to 512")

    def export_sizes(self, second: bool = False) -> tuple[int, int]:
        """The two sizes the export tests use: ``(low, low + 2)`` and ``(2 low, low)``."""
        low = self.export_low()
        return self.sizes((2 * low, low) if second else (low, low + 2), self.export_multiple)

    def dynamic_shapes(self) -> dict[str, object]:
        """Dynamic batch, height and width for ``torch.export`` at :meth:`export_sizes`."""
        m = self.export_multiple
        batch = Dim("batch", min=1, max=64)
        low = -(-self.export_low() // m)
        if m == 1:
            height, width = Dim("height", min=low, max=4096), Dim("width", min=low, max=4096)
            return {self.input_name: {0: batch, 2: height, 3: width}}
        height, width = Dim("height", min=low, max=4096 // m), Dim("width", min=low, max=4096 // m)
        if not self.multi_resolution:
            return {self.input_name: {0: batch, 2: m * height, 3: m * width}}
        branches = []
        for j in range(len(self.channels)):
            f = m // 2**j
            branches.append({0: batch, 2: f * height if f > 1 else height, 3: f * width if f > 1 else width})
        return {self.input_name: branches}


def _registry_cases(registry: Registry) -> list[Case]:
    cases = []
    for entry in registry:
        kwargs = entry.example_kwargs()
        channels = kwargs.get("channels") or 8
        if isinstance(channels, Sequence):
            channels = tuple(channels)

        def build(name: str = entry.name, kwargs: dict = kwargs) -> nn.Module:
            return registry.create(name, **kwargs)

        cases.append(
            Case(
                id=f"{registry.kind}:{entry.name}",
                build=build,
                channels=channels,
                size_multiple=getattr(build(), "size_multiple", 1),
            )
        )
    return cases


# Every family is tested through the same checks; a pair's forward is its round trip
# up(*down(x)) (pair-specific checks are in test_pairs.py).
REGISTRIES = (UPSAMPLERS, DOWNSAMPLERS, PAIRS, POOLS, BLOCKS)


def all_cases() -> list[Case]:
    return [case for registry in REGISTRIES for case in _registry_cases(registry)]
