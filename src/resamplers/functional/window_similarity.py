"""Similarity between each output pixel's query and the keys in its reassembly window
(see :func:`resamplers.core.api.window_similarity`)."""

from __future__ import annotations

from ..core import window_similarity

__all__ = ["window_similarity"]
