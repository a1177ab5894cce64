"""SAPA-Deform (SAPA-D): SAPA whose keys and values are sampled at learned offsets.

From "On Point Affiliation in Feature Upsampling" (Lu et al., the journal extension of
SAPA): every high-resolution query is compared with keys sampled at ``P`` learned points
around its low-resolution pixel instead of a fixed window, and the values are read at the
same points.  Both steps run on the library's core: the window similarity and the
reassembly with ``offsets`` (:func:`~resamplers.functional.window_similarity`,
:func:`~resamplers.functional.reassemble`), a loop over the points of bilinear samples;
nothing of size ``P`` times the output is materialised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int
from ..components.channel_norm import channel_norm
from ..core.geometry import known_true
from ..functional import reassemble, softmax_kernels, window_similarity
from ..registry import register_upsampler
from .base import FeatureGuidedUpsampler

__all__ = ["SAPADeform"]


@register_upsampler(
    "sapa_deform",
    # Two groups of four-dimensional queries keep the shared matrix fast; the official
    # 9 points are kept, and its random offset start is already off the bilinear kinks.
    example={"channels": 8, "groups": 2, "embedding_dim": 4},
    summary="SAPA-D (official SAPADeform: 9 points, 4 groups, d=32): query/key similarity at learned offsets; guide = encoder",
)
class SAPADeform(FeatureGuidedUpsampler):
    """SAPA-Deform upsampling of a decoder feature guided by the encoder feature of its stage.

    ``forward(d, encoder)`` (in a pair: ``up(d, guide)`` with ``guide.encoder``) with
    encoder feature ``y`` (``N x C x sh x sw``), decoder feature ``x = d``
    (``N x C_d x h x w``), ``G = groups``, ``P = num_point`` points, embedding ``d_e``:

    1. with ``norm``: ``y' = GroupNorm(32)(y)``, ``x' = GroupNorm(32)(x)``; else ``y' = y``,
       ``x' = x``;
    2. queries ``q = Q(y')`` (1x1 conv ``C -> G d_e``, at the output resolution), keys
       ``k = K(x')`` (1x1 conv ``C_d -> G d_e``); channel ``g d_e + e`` belongs to group ``g``;
    3. offsets at the output resolution, channel ``2 (g P + p) + e`` for group ``g``, point
       ``p`` and component ``e`` (0: column, 1: row), in *low-resolution* pixel units:
       ``high_offset=True`` (default): ``O = pixel_shuffle(Off(x'), s)`` with ``Off`` a 1x1
       conv ``C_d -> 2 G P s^2`` (every sub-pixel its own offsets); ``high_offset=False``:
       ``O = nearest_upsample(Off(x'), s)`` with ``2 G P`` channels;
    4. point ``p`` of output pixel ``(Y, X)`` in group ``g`` sits at row
       ``floor(Y / s) + O[2 (g P + p) + 1, Y, X]`` and column ``floor(X / s) + O[2 (g P + p), Y, X]``
       (integer coordinates are pixel centres; the points are *not* spread over a window:
       with zero offsets all ``P`` read the pixel itself);
    5. ``sim[g, p] = <q_g[Y, X], k_g(point p)>`` with ``k_g(.)`` bilinear in the keys, each of
       the four corners outside the image counting as zero (a point one pixel or more
       outside gives 0, a similarity of 0, not ``-inf``); no ``1 / sqrt(d_e)`` scaling;
    6. ``attn = softmax over the P points of each group``;
    7. output channel ``c`` (group ``g = c // (C_d / G)``, contiguous):
       ``sum_p attn[g, p] * x_c(point p)``, the *raw* ``x`` sampled as the keys are.

    The core's window has ``K x K`` taps at ``(a - r, b - r)`` around the pixel
    (``r = (K - 1) // 2``) and its offsets are relative to them, so ``P`` must be ``K^2``
    (the official default 9 is ``K = 3``) and point ``p = a K + b`` is passed as offset
    ``O - (b - r, a - r)``: the same positions.  With those offsets equal to the tap
    displacements (``Off``'s bias set to them, weights zero), one group and ``norm``,
    SAPA-D is :class:`~resamplers.guided.SAPA` with ``norm='group'`` over a ``K x K``
    window (SAPA-B at ``d_e = 32``).

    The module follows the official ``SAPADeform`` (``tiny-smart/sapa``, ``sapa_deform.py``
    and the ``deformsapa`` CUDA kernels ``deform_qk`` / ``deform_av``, at commit
    ``a5acd520895c69886ce7175010d50a71d50b5a0e``): layers, defaults (``num_point=9``,
    ``groups=4``, ``embedding_dim=32``, ``qkv_bias=True``, ``high_offset=True``,
    ``norm=False``), initialisation (every convolution ``N(0, 0.02^2)``, biases 0, so the
    initial offsets are small and random, not zero) and state-dict keys (``q``, ``k``,
    ``offset``, and ``norm_y``, ``norm_x`` with ``norm``): official checkpoints load key
    for key.  139,808 parameters at ``C = C_d = 256``, ``s = 2``; six of them (SegFormer-B1)
    839k, the published "+0.8M".  Against the official module with its CUDA ops replaced
    by loops transcribed from their forward and backward kernels (float64; the official
    initialisation and random weights with offsets of a few pixels, points partly outside
    the image; ``s`` 1, 2 and 3, ``P`` 4, 9 and 25, ``G`` 1 to 4, ``high_offset`` and
    ``norm`` both ways), the largest differences were 1.3e-15 in the outputs (values up
    to 2.5), 2.0e-14 in the input gradients (up to 37) and 2.8e-14 in the parameter
    gradients (up to 81).

    Departures: the official ops run on CUDA only (their CPU path raises) and accept any
    ``P``; here every device, export and compile, and ``P`` a square.  ``C_d`` must be a
    multiple of ``G`` (the official ``deform_av`` assumes it without a check).

    Gradients: bilinear sampling has kinks where a position crosses a pixel row or
    column; there the offsets' gradient is the one-sided derivative of the cell ``floor``
    picks, as in the official kernels.  Exactly on a row or column the round trip through
    ``grid_sample``'s normalised coordinates may pick the neighbouring cell (the value is
    the same; only that one-sided derivative can differ).

    Args:
        channels: decoder channels ``C_d`` (input ``d``: keys, offsets and values).
        scale_factor: integer ``s >= 1`` (official ``up_factor``).
        num_point: ``P``, a square ``K^2``.
        groups: ``G``, a divisor of ``C_d``.
        embedding_dim: ``d_e``, query/key channels per group.
        qkv_bias: biases in the three projections.
        high_offset: offsets per output pixel (pixel shuffle) or per input pixel (nearest).
        norm: GroupNorm on both inputs before the projections.
        norm_groups: the GroupNorm's groups (official: 32).
        guide_channels: encoder channels ``C`` (input ``encoder``; default ``C_d``).

    Shape:
        ``d``: ``N x C_d x h x w``, ``encoder``: ``N x C x sh x sw`` -> ``N x C_d x sh x sw``.

    Example:
        >>> up = SAPADeform(channels=16, scale_factor=2, guide_channels=8)
        >>> up(torch.randn(1, 16, 4, 6), torch.randn(1, 8, 8, 12)).shape
        torch.Size([1, 16, 8, 12])
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        num_point: int = 9,
        groups: int = 4,
        embedding_dim: int = 32,
        qkv_bias: bool = True,
        high_offset: bool = True,
        norm: bool = False,
        norm_groups: int = 32,
        guide_channels: int | None = None,
    ) -> None:
        super().__init__(channels, scale_factor, guide_channels)
        check_int(num_point, "num_point", minimum=1)
        check_int(groups, "groups", minimum=1)
        check_int(embedding_dim, "embedding_dim", minimum=1)
        for name, flag in (("qkv_bias", qkv_bias), ("high_offset", high_offset), ("norm", norm)):
            if not isinstance(flag, bool):
                raise TypeError(f"argument `{name}`: expected a bool, got {flag!r}")
        k = math.isqrt(num_point)
        if k * k != num_point:
            raise ValueError(
                f"argument `num_point`: expected a square (the core samples a K x K window of points), got {num_point}"
            )
        if self.channels % groups != 0:
            raise ValueError(f"argument `groups`: expected a divisor of the {self.channels} channels, got {groups}")
        self.num_point, self.groups, self.embedding_dim = num_point, groups, embedding_dim
        self.up_kernel = k
        self.high_offset, self.norm, self.norm_groups = high_offset, norm, norm_groups
        c_y, c_x, s = self.guide_channels, self.channels, self.scale_factor
        if norm:
            self.norm_y = channel_norm("group", c_y, norm_groups)
            self.norm_x = channel_norm("group", c_x, norm_groups)
        self.q = nn.Conv2d(c_y, groups * embedding_dim, 1, bias=qkv_bias)
        self.k = nn.Conv2d(c_x, groups * embedding_dim, 1, bias=qkv_bias)
        self.offset = nn.Conv2d(c_x, 2 * groups * num_point * (s * s if high_offset else 1), 1, bias=qkv_bias)
        # Channel 2 (g P + a K + b) + e of the official offsets is relative to the pixel; the
        # core's are relative to tap (a - r, b - r): subtract that displacement.
        r = (k - 1) // 2
        taps = torch.arange(k, dtype=torch.float32) - r
        shift = torch.stack([taps.repeat(k), taps.repeat_interleave(k)], dim=1)  # column, row of tap a K + b
        self.register_buffer("tap_shift", shift.flatten().repeat(groups).reshape(1, -1, 1, 1), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.q, self.k, self.offset):
            nn.init.normal_(conv.weight, std=0.02)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for norm in (getattr(self, "norm_y", None), getattr(self, "norm_x", None)):
            if isinstance(norm, nn.GroupNorm):
                nn.init.ones_(norm.weight)
                nn.init.zeros_(norm.bias)

    def offsets(self, x_normed: Tensor) -> Tensor:
        """The official offsets ``O`` (relative to the pixel), ``N x 2GP x sh x sw``."""
        s = self.scale_factor
        if self.high_offset:
            return F.pixel_shuffle(self.offset(x_normed), s)
        return F.interpolate(self.offset(x_normed), scale_factor=float(s), mode="nearest")

    def attention(self, d: Tensor, encoder: Tensor) -> tuple[Tensor, Tensor]:
        """Attention ``N x GP x sh x sw`` (softmax over each group's points) and the core's
        offsets (relative to the window's taps) ``N x 2GP x sh x sw``."""
        x_normed = self.norm_x(d) if self.norm else d
        y_normed = self.norm_y(encoder) if self.norm else encoder
        q, k = self.q(y_normed), self.k(x_normed)
        offsets = self.offsets(x_normed)
        window = offsets - self.tap_shift.to(offsets.dtype)
        sim = window_similarity(q, k, self.up_kernel, self.groups, scale_factor=self.scale_factor, offsets=window)
        return softmax_kernels(sim, self.groups), window

    def forward(self, d: Tensor, encoder: Tensor) -> Tensor:
        self.check_inputs(d, encoder)
        attn, window = self.attention(d, encoder)
        return reassemble(d, attn, self.up_kernel, self.groups, scale_factor=self.scale_factor, offsets=window)

    def check_normalisable(self, shape: Sequence[Any], name: str = "d") -> None:
        """GroupNorm needs more than one value per group: ``ValueError`` naming ``name`` otherwise."""
        values = shape[1] // self.norm_groups * shape[2] * shape[3]
        if self.norm and known_true(values < 2):
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

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_point={self.num_point}, groups={self.groups}, "
            f"embedding_dim={self.embedding_dim}, high_offset={self.high_offset}, norm={self.norm}"
        )
