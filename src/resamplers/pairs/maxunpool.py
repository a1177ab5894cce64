"""Max pooling that records where each maximum was, and the unpooling that puts values back there.

The classic SegNet / DeconvNet pair, and the hard special case of IndexNet: the index is
one-hot (1 at each cell's maximum), pooling with it selects the maximum and upsampling
with it is ``index * nearest(d)``, zeros elsewhere.  The unpooling runs on the
reassembly core (an ``up = s``, ``K = 1`` reassembly with the one-hot kernel), not on
``max_unpool2d``, whose ONNX export (``MaxUnpool``) follows different index conventions.
"""
from __future__ import annotations

from torch import Tensor

from ..functional.indexed import indexed_upsampling, max_pool_index
from ..registry import register_pair
from .base import Guide, ResamplerPair, spatial_size

__all__ = ["MaxUnpoolPair"]


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
        super().__init__(channels, scale_factor, up_channels, per_channel_guide=True)

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        self.check_input(x)
        y, index = max_pool_index(x, self.scale_factor)
        return y, Guide(size=spatial_size(x), low_size=spatial_size(y), skip=x, tensors={"index": index})

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        self.check_up_input(d, guide)
        return indexed_upsampling(d, guide.tensors["index"], self.scale_factor)
