"""SAPA: similarity-aware point affiliation (Lu et al., NeurIPS 2022) as a guided pair.

The up step gives every high-resolution pixel a ``k x k`` kernel over the low-resolution
decoder feature: the softmax of the inner products between its query (from the encoder
feature) and the keys (from the decoder feature) in the window.  The similarity and the
reassembly both run on the library's core (:func:`~resamplers.functional.window_similarity`
and :func:`~resamplers.functional.carafe`); nothing of size ``N x d x k^2 x H x W`` is
materialised, and inputs of any height and width work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_odd
from ..components.channel_norm import channel_norm
from ..core.geometry import known_true
from ..functional import softmax_kernels, window_similarity
from ..registry import register_upsampler
from .base import FeatureGuidedUpsampler

__all__ = ["SAPA"]

# A 3x3 window keeps the shared matrix's exports small; k = 5 is tested in test_sapa.py.
_EXAMPLE = {"channels": 32, "up_kernel": 3}


@register_upsampler(
    "sapa",
    example=_EXAMPLE,
    summary="SAPA (official SAPA.py defaults: LayerNorm, d=64): query/key similarity kernels; guide = encoder feature",
)
@register_upsampler(
    "sapa_b",
    defaults={"embedding_dim": 32, "norm": "group", "query": "encoder"},
    example=_EXAMPLE,
    summary="SAPA-B (GroupNorm(32), d=32: the published +0.1M in SegFormer-B1)",
)
@register_upsampler(
    "sapa_g",
    defaults={"query": "gate"},
    example=_EXAMPLE,
    summary="SAPA-G (gated query from encoder and upsampled decoder; SAPAExp q_mode='gate')",
)
class SAPA(FeatureGuidedUpsampler):
    """SAPA upsampling of a decoder feature guided by the encoder feature of the same stage.

    ``forward(d, encoder)`` (in a pair: ``up(d, guide)`` with ``guide.encoder``) with
    encoder feature ``y`` (``N x C x sh x sw``) and decoder feature ``x = d``
    (``N x C_d x h x w``):

    1. ``y' = norm_y(y)``, ``x' = norm_x(x)`` (``norm``: LayerNorm over channels per pixel,
       GroupNorm, or none);
    2. keys ``k = K(x')`` (1x1 conv ``C_d -> d``) and queries: ``q = Q(y')`` (1x1 conv
       ``C -> d``) for ``query='encoder'``; for ``query='gate'`` (SAPA-G)
       ``q = g * Q_y(y') + (1 - g) * Q_x(up(x))`` with ``g = up(sigmoid(G(x')))``, ``G`` a
       1x1 conv ``C_d -> 1``, ``up`` nearest upsampling by ``s`` and ``Q_x`` reading the
       *un-normalised* ``x``;
    3. ``sim[t, p] = <q[p], k[floor(p / s) + offset_t]>`` over the ``k x k`` window (row-major
       taps), **0 for keys outside the image**, no ``1/sqrt(d)`` scaling
       (:func:`~resamplers.functional.window_similarity`);
    4. ``attn = softmax(sim)`` over the ``k^2`` taps (input dtype);
    5. output ``sum_t attn[t, p] * x[floor(p / s) + offset_t]`` on the raw ``x``, outside
       taps contributing nothing: CARAFE reassembly with one group
       (:func:`~resamplers.functional.carafe`).  The output has ``C_d`` channels.

    Defaults are those of the official ``SAPA.py`` (``embedding_dim=64``, LayerNorm,
    biases): 33,920 parameters at ``C = 256``.  The published SegFormer-B1 figure
    "SAPA-B +0.1M" is reproduced by ``embedding_dim=32`` with ``GroupNorm(32, C)``
    (``sapa_b``, the extension's ``sapa_base.py``): 17,472 parameters per upsampler, six
    of them 104,832.  Initialisation: projections ``N(0, 0.02^2)`` (truncated at +-2) with
    zero biases, norms weight 1 and bias 0.

    Checkpoints: the official state dicts load directly: ``norm_y``, ``norm_x``, ``q``,
    ``k`` (and ``qy``, ``qx``, ``gate`` for SAPA-G); the ``nn.Linear`` weights of
    ``SAPA.py`` / ``SAPAExp.py`` (``d x C``) are accepted and stored as 1x1 convolutions.

    Args:
        channels: decoder channels ``C_d`` (input ``d``, source of the keys).
        scale_factor: integer ``s >= 1``.
        up_kernel: window ``k`` (odd).
        embedding_dim: query/key dimension ``d``.
        norm: ``'layer'``, ``'group'`` or ``'none'``.
        norm_groups: groups of ``'group'`` normalisation.
        qkv_bias: biases in the projections.
        query: ``'encoder'`` (SAPA, SAPA-B) or ``'gate'`` (SAPA-G).
        guide_channels: encoder channels ``C`` (input ``encoder``, source of the queries;
            default ``C_d``).

    Shape:
        ``d``: ``N x C_d x h x w``, ``encoder``: ``N x C x sh x sw`` -> ``N x C_d x sh x sw``.

    Example:
        >>> sapa = SAPA(channels=32, scale_factor=2, guide_channels=16)
        >>> sapa(torch.randn(1, 32, 4, 6), torch.randn(1, 16, 8, 12)).shape
        torch.Size([1, 32, 8, 12])
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        up_kernel: int = 5,
        embedding_dim: int = 64,
        norm: str = "layer",
        norm_groups: int = 32,
        qkv_bias: bool = True,
        query: str = "encoder",
        guide_channels: int | None = None,
    ) -> None:
        super().__init__(channels, scale_factor, guide_channels)
        check_odd(up_kernel, "up_kernel")
        check_int(embedding_dim, "embedding_dim", minimum=1)
        check_choice(query, "query", ["encoder", "gate"])
        if not isinstance(qkv_bias, bool):
            raise TypeError(f"argument `qkv_bias`: expected a bool, got {qkv_bias!r}")
        self.up_kernel, self.embedding_dim, self.norm, self.query = up_kernel, embedding_dim, norm, query
        self.norm_groups = norm_groups
        c_y, c_x = self.guide_channels, self.channels
        self.norm_y = channel_norm(norm, c_y, norm_groups)
        self.norm_x = channel_norm(norm, c_x, norm_groups)
        if query == "encoder":
            self.q = nn.Conv2d(c_y, embedding_dim, 1, bias=qkv_bias)
        else:
            self.qy = nn.Conv2d(c_y, embedding_dim, 1, bias=qkv_bias)
            self.qx = nn.Conv2d(c_x, embedding_dim, 1, bias=qkv_bias)
            self.gate = nn.Conv2d(c_x, 1, 1, bias=qkv_bias)
        self.k = nn.Conv2d(c_x, embedding_dim, 1, bias=qkv_bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        projections = [self.k] + ([self.q] if self.query == "encoder" else [self.qy, self.qx, self.gate])
        for conv in projections:
            nn.init.trunc_normal_(conv.weight, std=0.02)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for norm in (self.norm_y, self.norm_x):
            if isinstance(norm, (nn.LayerNorm, nn.GroupNorm)):
                nn.init.ones_(norm.weight)
                nn.init.zeros_(norm.bias)

    def queries_and_keys(self, d: Tensor, encoder: Tensor) -> tuple[Tensor, Tensor]:
        """``q``: ``N x d x sh x sw`` and ``k``: ``N x d x h x w``."""
        x_normed = self.norm_x(d)
        if self.query == "encoder":
            q = self.q(self.norm_y(encoder))
        else:
            s = float(self.scale_factor)
            gate = F.interpolate(self.gate(x_normed).sigmoid(), scale_factor=s, mode="nearest")
            q = gate * self.qy(self.norm_y(encoder)) + (1 - gate) * self.qx(
                F.interpolate(d, scale_factor=s, mode="nearest")
            )
        return q, self.k(x_normed)

    def kernels(self, d: Tensor, encoder: Tensor) -> Tensor:
        """Attention kernels ``N x k^2 x sh x sw`` (CARAFE layout, one group)."""
        q, k = self.queries_and_keys(d, encoder)
        return softmax_kernels(window_similarity(q, k, self.up_kernel, scale_factor=self.scale_factor), 1)

    def forward(self, d: Tensor, encoder: Tensor) -> Tensor:
        return self.reassemble(d, encoder)

    def check_normalisable(self, shape: Sequence[Any], name: str = "d") -> None:
        """GroupNorm needs more than one value per group: ``ValueError`` naming ``name`` otherwise."""
        values = shape[1] // self.norm_groups * shape[2] * shape[3]
        if self.norm == "group" and known_true(values < 2):
            raise ValueError(
                f"argument `{name}`: GroupNorm with {self.norm_groups} groups needs more than one value per group, "
                f"got {shape[1]} channels at {shape[2]} x {shape[3]}"
            )

    def check_inputs(self, d: Tensor, encoder: Tensor) -> None:
        super().check_inputs(d, encoder)
        self.check_normalisable(d.shape)

    def output_shapes(self, shapes: Any) -> list[tuple[int, ...]]:
        self.check_normalisable(shapes[0])
        return super().output_shapes(shapes)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # The official modules use nn.Linear (d x C weights); ours are 1x1 convolutions.
        for name in ("q", "qy", "qx", "gate", "k"):
            key = f"{prefix}{name}.weight"
            if key in state_dict and state_dict[key].dim() == 2:
                state_dict[key] = state_dict[key][:, :, None, None]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel={self.up_kernel}, embedding_dim={self.embedding_dim}, "
            f"norm={self.norm!r}, query={self.query!r}"
        )
