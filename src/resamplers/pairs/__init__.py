"""Down/up pairs (``create_pair``).  Guided pairs register in their own modules;
every upsampler without a guided pair of its name joins as an :class:`UnguidedPair`."""
from .base import Guide, ResamplerPair
from .fade import FADE
from .feature_guided import FeatureGuidedPair
from .sapa import SAPA
from .unguided import UnguidedPair, register_unguided_pairs

register_unguided_pairs()

__all__ = ["FADE", "FeatureGuidedPair", "Guide", "ResamplerPair", "SAPA", "UnguidedPair"]
