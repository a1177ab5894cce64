"""resamplers: pooling and upsampling operators for dense prediction."""
from . import functional

__version__ = "0.1.0"
__all__ = ["functional", "__version__"]
