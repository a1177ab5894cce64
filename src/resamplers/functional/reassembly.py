"""The reassembly core's public face: one content-aware weighted sum that many resamplers share.

Given features ``x`` (``N x C x H x W``) and per-pixel kernels ``w``
(``N x (G*K*K) x H_out x W_out``), output pixel ``(y, x)`` of channel ``c`` is
``sum_{a,b<K} w[n, gK^2 + aK + b, y, x] * x[n, c, (y // u) s + a - p_t, (x // u) s + b - p_l]``
with ``g = c // (C / G)``; source pixels outside the image contribute nothing.

The implementation (validation, the native and torch backends, the custom ops) lives in
:mod:`resamplers.core`; see :mod:`resamplers.core.api` for the full description.
"""

from __future__ import annotations

from ..core import Backend, carafe, reassemble, reassemble_down, reassembly_macs

__all__ = ["reassemble", "carafe", "reassemble_down", "reassembly_macs", "Backend"]
