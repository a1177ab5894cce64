"""Max pooling that records where each maximum was, and the unpooling that puts values back there.

The classic SegNet / DeconvNet pair, and the hard special case of IndexNet: the index is
one-hot (1 at each cell's maximum), pooling with it selects the maximum and upsampling
with it is ``index * nearest(d)``, zeros elsewhere.  The unpooling runs on the
reassembly core (an ``up = s``, ``K = 1`` reassembly with the one-hot kernel), not on
``max_unpool2d``, whose ONNX export (``MaxUnpool``) follows different index conventions.
"""

from __future__ import annotations

from torch import Tensor

from ..base import Downsampler, Guide, Upsampler
from ..functional import indexed_upsampling, max_pool_index
from ..registry import register_downsampler, register_pair
from .base import ResamplerPair

__all__ = ["MaxPoolIndex", "MaxUnpool", "MaxUnpoolPair"]


@register_downsampler(
    "max_index",
    example={"channels": 8},
    summary="Max pooling over s x s cells that also records each cell's argmax (the guide of max unpooling)",
)
class MaxPoolIndex(Downsampler):
    """Max pooling over ``s x s`` cells whose :meth:`down` also returns the one-hot argmax.

    ``forward(x)`` is ``max_pool2d(x, s)``; ``down(x)`` adds ``guide.tensors['index']``
    (``N x C x H x W``): 1 at the first maximum of each cell in row-major order, exactly
    the position ``max_pool2d(..., return_indices=True)`` records (NaN counts as the
    maximum).  Gradients flow to the maxima only.

    Args:
        channels: input channels ``C`` (``None``: any).
        scale_factor: cell size ``s`` (no padding; ``H`` and ``W`` multiples of ``s``).

    Shape:
        ``N x C x H x W`` -> ``N x C x H/s x W/s``.
    """

    def __init__(self, channels: int | None = None, scale_factor: int = 2) -> None:
        super().__init__(channels, scale_factor)
        self.size_multiple = self.scale_factor

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (size[0] // self.scale_factor, size[1] // self.scale_factor)

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        self.check_input(x)
        y, index = max_pool_index(x, self.scale_factor)
        return y, self.make_guide(x, y, tensors={"index": index})

    def forward(self, x: Tensor) -> Tensor:
        return self.down(x)[0]


class MaxUnpool(Upsampler):
    """Max unpooling: ``d`` written to the argmax of its cell (guide of :class:`MaxPoolIndex`), 0 elsewhere.

    Gradients flow to ``d`` only (the index is not differentiable); the index is per
    channel, so ``d`` must have the encoder's channels.

    Shape:
        ``N x C x H/s x W/s`` -> ``N x C x H x W``.
    """

    def __init__(self, scale_factor: int = 2) -> None:
        super().__init__(None, scale_factor)

    def forward(self, d: Tensor, index: Tensor) -> Tensor:
        return indexed_upsampling(d, index, self.scale_factor)

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        return self(d, guide.tensor("index", "max unpooling"))


@register_pair(
    "maxunpool",
    example={"channels": 8},
    summary="Max pooling recording the argmax, max unpooling to it (zeros elsewhere): SegNet/DeconvNet",
)
class MaxUnpoolPair(ResamplerPair):
    """Max pooling over ``s x s`` cells (down) and max unpooling (up).

    ``down`` returns the cell maxima and a guide holding the one-hot index
    (``guide.tensors['index']``, ``N x C x H x W``): 1 at the first maximum of each cell
    in row-major order, exactly the position ``max_pool2d(..., return_indices=True)``
    records (NaN counts as the maximum).  ``up(d, guide)`` writes ``d[n, c, i, j]`` to
    that position of its cell and 0 to the others, i.e. ``max_unpool2d``.  Gradients of
    ``down`` flow to the maxima only; those of ``up`` to ``d`` only (the index is not
    differentiable).  The index is per channel, so ``d`` must have ``C`` channels.

    Args:
        channels: encoder channels ``C``.
        scale_factor: cell size ``s`` (no padding; ``H`` and ``W`` multiples of ``s``).
        up_channels: decoder channels; must be ``C``.

    Shape:
        ``down``: ``N x C x H x W`` -> ``N x C x H/s x W/s`` and a :class:`Guide`;
        ``up``: ``N x C x H/s x W/s`` -> ``N x C x H x W``.

    Example:
        >>> pair = MaxUnpoolPair(channels=1)
        >>> y, guide = pair.down(torch.tensor([[[[1.0, 5.0], [3.0, 2.0]]]]))
        >>> pair.up(y * 10, guide)
        tensor([[[[ 0., 50.],
                  [ 0.,  0.]]]])
    """

    def __init__(self, channels: int, scale_factor: int = 2, up_channels: int | None = None) -> None:
        super().__init__(
            MaxPoolIndex(channels, scale_factor), MaxUnpool(scale_factor), up_channels, per_channel_guide=True
        )
