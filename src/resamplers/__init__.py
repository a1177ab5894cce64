"""resamplers: pooling and upsampling operators for dense prediction.

>>> import resamplers
>>> up = resamplers.create_upsampler("carafe", channels=64)
>>> up(torch.randn(1, 64, 8, 8)).shape
torch.Size([1, 64, 16, 16])
"""
from . import functional, layers
from . import pairs  # after layers: registers every upsampler as an unguided pair
from . import blocks, pools
from .registry import (
    create_block,
    create_downsampler,
    create_pair,
    create_pool,
    create_upsampler,
    list_blocks,
    list_downsamplers,
    list_pairs,
    list_pools,
    list_upsamplers,
)

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "create_block",
    "create_downsampler",
    "create_pair",
    "create_pool",
    "create_upsampler",
    "functional",
    "layers",
    "list_blocks",
    "list_downsamplers",
    "list_pairs",
    "list_pools",
    "list_upsamplers",
    "pairs",
]
__all__ += ["blocks", "pools"]
