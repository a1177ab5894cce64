"""Guided down and up steps, and pairs (``create_pair``).

A pair composes a down step (any downsampler; guided ones add indices, index maps or
affinities to the :class:`~resamplers.base.Guide`) with the up step that consumes the
guide.  IndexNet, A2U and max unpooling register their pairs here; every registered
upsampler, plain or feature-guided (FADE, SAPA, FeatUp's JBU), is a :class:`ComposedPair` too.
"""

from ..base import Guide
from .a2u import A2UDownsample, A2UPair, A2UUpsample
from .base import FeatureGuidedUpsampler, ResamplerPair
from .composed import ComposedPair
from .fade import FADE, SemiShift
from .featup_jbu import FeatUpJBU, FeatUpJBUStage, featup_checkpoint_state_dict
from .freqfusion import FreqFusion, LocalSimGuidedSampler
from .indexnet import IndexedPooling, IndexedUpsampling, IndexNetPair, SharedIndexFilters, indexnet_pairs
from .maxunpool import MaxPoolIndex, MaxUnpool, MaxUnpoolPair
from .sapa import SAPA
from .sapa_deform import SAPADeform

__all__ = [
    "A2UDownsample",
    "A2UPair",
    "A2UUpsample",
    "ComposedPair",
    "FADE",
    "FeatUpJBU",
    "FeatUpJBUStage",
    "FeatureGuidedUpsampler",
    "FreqFusion",
    "Guide",
    "IndexNetPair",
    "IndexedPooling",
    "IndexedUpsampling",
    "LocalSimGuidedSampler",
    "MaxPoolIndex",
    "MaxUnpool",
    "MaxUnpoolPair",
    "ResamplerPair",
    "SAPA",
    "SAPADeform",
    "SemiShift",
    "SharedIndexFilters",
    "featup_checkpoint_state_dict",
    "indexnet_pairs",
]
