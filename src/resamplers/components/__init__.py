"""Layers that several operators are built from (not operators themselves)."""

from .channel_norm import ChannelLayerNorm, channel_norm
from .gem_exponent import init_gem_exponent

__all__ = ["ChannelLayerNorm", "channel_norm", "init_gem_exponent"]
