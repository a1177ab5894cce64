"""resamplers: pooling and upsampling operators for dense prediction.

>>> import resamplers
>>> up = resamplers.create_upsampler("carafe", channels=64)
>>> up(torch.randn(1, 64, 8, 8)).shape
torch.Size([1, 64, 16, 16])

Importing the package registers every built-in operator (one module each, under
``upsampling``, ``downsampling``, ``guided``, ``global_pooling``, ``blocks`` and
``backbones``); plug-ins register through the ``resamplers.operators`` entry points.
The application (data, models, training, compare, cli) is not imported here.
"""

from . import backbones, blocks, downsampling, functional, global_pooling, guided, upsampling
from .base import Downsampler, Guide, Operator, Resampler, Upsampler
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
    register_block,
    register_downsampler,
    register_pair,
    register_pool,
    register_upsampler,
)

__version__ = "0.1.0"
__all__ = [
    "Downsampler",
    "Guide",
    "Operator",
    "Resampler",
    "Upsampler",
    "__version__",
    "backbones",
    "blocks",
    "create_block",
    "create_downsampler",
    "create_pair",
    "create_pool",
    "create_upsampler",
    "downsampling",
    "functional",
    "global_pooling",
    "guided",
    "list_blocks",
    "list_downsamplers",
    "list_pairs",
    "list_pools",
    "list_upsamplers",
    "register_block",
    "register_downsampler",
    "register_pair",
    "register_pool",
    "register_upsampler",
    "upsampling",
]
