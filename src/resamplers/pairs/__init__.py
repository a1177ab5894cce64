"""Down/up pairs (``create_pair``).  Guided pairs register in their own modules;
every upsampler without a guided pair of its name joins as an :class:`UnguidedPair`."""
from .a2u import A2UDownsample, A2UPair
from .base import Guide, ResamplerPair
from .indexnet import IndexedPooling, IndexNetPair, SharedIndexFilters, indexnet_pairs
from .maxunpool import MaxUnpoolPair
from .unguided import UnguidedPair, register_unguided_pairs

register_unguided_pairs()

__all__ = [
    "A2UDownsample",
    "A2UPair",
    "Guide",
    "IndexNetPair",
    "IndexedPooling",
    "MaxUnpoolPair",
    "ResamplerPair",
    "SharedIndexFilters",
    "UnguidedPair",
    "indexnet_pairs",
]
