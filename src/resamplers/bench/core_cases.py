"""The reassembly core alone, as benchmark cases next to the registered operators.

``core:reassemble`` is the reassembly at CARAFE's geometry (one kernel group, ``K = 5``,
upsampling by the bench's scale factor) and ``core:window_similarity`` the window
similarity at SAPA's (query at the output resolution, keys at the input's).  Their
roofline bounds are exact formulas (:mod:`.roofline`), so these rows say how close the
kernels come to what the machine allows, without the convolutions around them.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..functional import carafe, window_similarity
from .roofline import Work, reassembly_work, similarity_work

__all__ = ["CoreReassembly", "CoreWindowSimilarity", "CORE_CASES"]

CORE_KIND = "core"


class _CoreCase(nn.Module):
    """A core op as a bench row: ``channels``, upsampling ``scale_factor`` and ``kernel_size``."""

    list_input = False

    def __init__(self, channels: int, scale_factor: int = 2, kernel_size: int = 5) -> None:
        super().__init__()
        self.channels, self.scale_factor, self.kernel_size = channels, scale_factor, kernel_size


class CoreReassembly(_CoreCase):
    """``carafe(features, kernels, K, 1, s)``: features ``N x C x H x W``, kernels
    ``N x K^2 x sH x sW`` -> ``N x C x sH x sW``."""

    def input_shapes(self, batch: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
        s = self.scale_factor
        return [(batch, self.channels, height, width), (batch, self.kernel_size**2, s * height, s * width)]

    def forward(self, features: Tensor, kernels: Tensor) -> Tensor:
        return carafe(features, kernels, self.kernel_size, 1, self.scale_factor)

    def work(self, itemsize: int, height: int, width: int, batch: int, *, backward: bool) -> Work:
        features, kernels = self.input_shapes(batch, height, width)
        return reassembly_work(features, kernels, self.kernel_size, itemsize, backward=backward)


class CoreWindowSimilarity(_CoreCase):
    """``window_similarity(query, keys, K, scale_factor=s)``: query ``N x C x sH x sW``,
    keys ``N x C x H x W`` -> ``N x K^2 x sH x sW``."""

    def input_shapes(self, batch: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
        s = self.scale_factor
        return [(batch, self.channels, s * height, s * width), (batch, self.channels, height, width)]

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        return window_similarity(query, keys, self.kernel_size, scale_factor=self.scale_factor)

    def work(self, itemsize: int, height: int, width: int, batch: int, *, backward: bool) -> Work:
        query, keys = self.input_shapes(batch, height, width)
        return similarity_work(query, keys, self.kernel_size, 1, itemsize, backward=backward)


CORE_CASES: dict[str, type[CoreReassembly] | type[CoreWindowSimilarity]] = {
    "reassemble": CoreReassembly,
    "window_similarity": CoreWindowSimilarity,
}
