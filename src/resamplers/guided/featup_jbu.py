"""FeatUp's JBU: the stacked joint bilateral upsampler (Fu et al., ICLR 2024).

Each stage upsamples the low-resolution feature bicubically to the size of a guidance
map and filters it with one ``D x D`` kernel per pixel, the normalised product of a
learned range kernel (softmax of key similarities computed from the guidance) and a
Gaussian spatial kernel, plus a small learned correction.  The official code applies
the kernels with its compiled ``adaptive_conv`` extension; here they go through the
library's reassembly core (:func:`~resamplers.functional.reassemble` on the reflect-padded
upsampled feature, and :func:`~resamplers.functional.window_similarity` for the range
logits), so nothing of size ``N x C x D^2 x H x W`` is materialised.

Follows ``featup/upsamplers.py`` (``JBULearnedRange``, ``JBUStack``),
``featup/adaptive_conv_cuda/adaptive_conv.cpp`` (the kernel layout and the correct
gradients) and ``hubconf.py`` of mhamilton723/FeatUp at commit
``6b5a6c0e91f75e69194807128dcbc39c3084a30d``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_feature, check_int
from ..core.geometry import known_true
from ..functional import reassemble, window_similarity
from ..registry import register_upsampler
from .base import FeatureGuidedUpsampler

__all__ = ["FeatUpJBU", "FeatUpJBUStage", "featup_checkpoint_state_dict"]

# Dropout2d rates of the official modules (active in training mode only).
_STAGE_DROPOUT = 0.1
_FIXUP_DROPOUT = 0.2
# Bounds of the range temperature exp(range_temp), and the floor of the kernel sum.
_TEMPERATURE_BOUNDS = (1e-4, 1e4)
_SUM_FLOOR = 1e-7
# Weight of the learned corrections (kernel fixup and the stack's final 1x1 conv).
FIXUP_WEIGHT = 0.1


def _check_pair(module: FeatureGuidedUpsampler, d: Tensor, guidance: Tensor, *, exact: bool, min_high: int) -> None:
    """The checks of both operators, on tensors: ``ValueError`` naming the argument."""
    check_feature(d, "d", channels=module.channels)
    module.check_dtype(d, "d")
    check_feature(guidance, "guidance", channels=module.guide_channels)
    module.check_dtype(guidance, "guidance")
    _check_sizes(module, tuple(d.shape), tuple(guidance.shape), exact=exact, min_high=min_high)


def _check_sizes(
    module: FeatureGuidedUpsampler,
    d: Sequence[Any],
    guidance: Sequence[Any],
    *,
    exact: bool,
    min_high: int,
) -> None:
    s = module.scale_factor
    if known_true(guidance[0] != d[0]):
        raise ValueError(f"argument `guidance`: expected batch size {d[0]} (that of `d`), got {guidance[0]}")
    if exact and (known_true(guidance[2] != d[2] * s) or known_true(guidance[3] != d[3] * s)):
        raise ValueError(
            f"argument `guidance`: expected spatial size {d[2] * s} x {d[3] * s} (scale_factor {s} times that of "
            f"`d`), got shape {tuple(guidance)}"
        )
    radius = module.radius
    first = s if isinstance(module, FeatUpJBUStage) else 2
    if known_true(d[2] * first < min_high) or known_true(d[3] * first < min_high):
        raise ValueError(
            f"argument `d`: the first stage upsamples {d[2]} x {d[3]} to {d[2] * first} x {d[3] * first}, and "
            f"reflect padding by radius {radius} needs height and width >= {min_high}"
        )


@register_upsampler(
    "featup_jbu_stage",
    example={"channels": 8},
    summary=(
        "one FeatUp JBU stage (official JBULearnedRange): bicubic up, 7x7 softmax-range x Gaussian-spatial "
        "kernels + fixup, reflect padding; guide = image (G=3) alone, the encoder feature in a pair"
    ),
)
class FeatUpJBUStage(FeatureGuidedUpsampler):
    """One FeatUp JBU stage (official ``JBULearnedRange``): a joint bilateral upsampler with a
    learned range kernel.

    ``forward(d, guidance)`` with ``d`` (``N x C x h x w``) and the guidance ``g``
    (``N x G x H x W``, ``H = s h``, ``W = s w``); ``D = 2 r + 1`` and tap ``t = a D + b``
    is row offset ``a``, column offset ``b`` (row-major, ``a, b < D``):

    1. keys ``k = range_proj(g)``: 1x1 conv ``G -> d_k``, GELU (exact), Dropout2d(0.1),
       1x1 conv ``d_k -> d_k``; ``k~ = reflect_pad(k, r)``;
    2. range kernel ``R[t, y, x] = softmax_t(tau * <k[:, y, x], k~[:, y + a, x + b]>)``
       with ``tau = clamp(exp(range_temp), 1e-4, 1e4)``; the centre pixel's own key is the
       query, no ``1/sqrt(d_k)`` scaling;
    3. spatial kernel ``S[t] = exp(-(u_a^2 + u_b^2) / (2 sigma^2))`` with
       ``u = linspace(-1, 1, D)`` (``u_a = (a - r) / r``: offsets in units of the radius)
       and ``sigma = sigma_spatial`` (learned as it is, not exponentiated);
    4. normalised ``N = R S / max(sum_t R S, 1e-7)``;
    5. kernel ``K = N + 0.1 * fixup_proj(cat[N, g])``: 1x1 conv ``D^2 + G -> D^2`` (input
       channels: the ``D^2`` taps first, then the guidance), GELU, Dropout2d(0.1), 1x1 conv
       ``D^2 -> D^2``; ``K`` is **not** renormalised;
    6. ``u = bicubic(d, (H, W))`` (``align_corners=False``), ``u~ = reflect_pad(u, r)``;
    7. ``out[c, y, x] = sum_t K[t, y, x] * u~[c, y + a, x + b]``: the official
       ``adaptive_conv`` (``filters[n, y, x, a, b] * input[n, c, y + a, x + b]`` on the padded
       input), here :func:`~resamplers.functional.reassemble` with padding 0 on ``u~``.

    Border handling: **reflect** padding (torch's ``'reflect'``, mirroring without repeating
    the edge pixel) of both the keys and the upsampled feature, as the official code; it
    needs ``H, W >= r + 1`` (a ``ValueError`` naming ``d`` otherwise).  Bicubic
    interpolation clamps at the border as PyTorch does (``a = -0.75``).

    Defaults are the official stage's: ``r = 3`` (7 x 7, 49 taps), ``d_k = 32``, ``G = 3``
    (an RGB image), ``range_temp = 0``, ``sigma_spatial = 1``, PyTorch's default
    initialisation of the convolutions: 6,233 parameters, independent of ``C``.  The
    official stage's ``scale`` argument is unused (it upsamples to the guidance's size);
    here ``scale_factor`` fixes that size to ``s`` times ``d``.

    Precision: outside autocast ``d``, ``guidance`` and the parameters share one dtype
    (``ValueError`` naming the argument otherwise) and everything runs in it (the spatial
    kernel in the dtype of ``sigma_spatial``).  Under autocast the convolutions run in low
    precision while the core computes the similarity and the reassembly in float32 and
    returns them in the dtype of their first input.

    Checkpoints: the official ``JBULearnedRange`` state dict loads key for key
    (``range_temp``, ``sigma_spatial``, ``range_proj.{0,3}.*``, ``fixup_proj.{0,3}.*``).

    In a pair (``create_pair("featup_jbu_stage", channels=C)``) the guidance is the
    high-resolution encoder feature of the stage (``guide.encoder``, ``G = C``), as for
    FADE and SAPA.

    Args:
        channels: feature channels ``C`` (input ``d``; the stage has no per-channel weights).
        scale_factor: integer ``s >= 1`` (``s = 1``: a joint bilateral filter).
        guide_channels: guidance channels ``G`` (default 3: an image).
        key_dim: key dimension ``d_k`` of the range projection.
        radius: ``r >= 1``; the window is ``D = 2 r + 1``.

    Shape:
        ``d``: ``N x C x h x w``, ``guidance``: ``N x G x sh x sw`` -> ``N x C x sh x sw``.

    Example:
        >>> stage = FeatUpJBUStage(channels=8)
        >>> stage(torch.randn(1, 8, 4, 6), torch.randn(1, 3, 8, 12)).shape
        torch.Size([1, 8, 8, 12])
    """

    input_names = ("d", "guidance")

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        guide_channels: int = 3,
        key_dim: int = 32,
        radius: int = 3,
    ) -> None:
        super().__init__(channels, scale_factor, check_int(guide_channels, "guide_channels", minimum=1))
        self.key_dim = check_int(key_dim, "key_dim", minimum=1)
        self.radius = check_int(radius, "radius", minimum=1)
        self.diameter = 2 * radius + 1
        taps = self.diameter * self.diameter
        self.up_kernel = self.diameter
        # Registration order as the official module's (and so its state dict's).
        self.range_temp = nn.Parameter(torch.tensor(0.0))
        self.range_proj = nn.Sequential(
            nn.Conv2d(guide_channels, key_dim, 1),
            nn.GELU(),
            nn.Dropout2d(_STAGE_DROPOUT),
            nn.Conv2d(key_dim, key_dim, 1),
        )
        self.fixup_proj = nn.Sequential(
            nn.Conv2d(guide_channels + taps, taps, 1),
            nn.GELU(),
            nn.Dropout2d(_STAGE_DROPOUT),
            nn.Conv2d(taps, taps, 1),
        )
        self.sigma_spatial = nn.Parameter(torch.tensor(1.0))

    def reset_parameters(self) -> None:
        """The official initial values: ``range_temp = 0``, ``sigma_spatial = 1``, PyTorch's
        default for the convolutions."""
        with torch.no_grad():
            self.range_temp.zero_()
            self.sigma_spatial.fill_(1.0)
        for module in (*self.range_proj, *self.fixup_proj):
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()

    @property
    def min_high(self) -> int:
        """The smallest upsampled height and width reflect padding by ``r`` allows."""
        return self.radius + 1

    def spatial_kernel(self) -> Tensor:
        """``S``: ``1 x D^2 x 1 x 1`` in the dtype of ``sigma_spatial``."""
        sigma = self.sigma_spatial
        offsets = torch.linspace(-1.0, 1.0, self.diameter, dtype=sigma.dtype, device=sigma.device)
        distance = offsets.square()[:, None] + offsets.square()[None, :]
        return torch.exp(-distance / (2 * sigma**2)).reshape(1, -1, 1, 1)

    def range_kernel(self, guidance: Tensor) -> Tensor:
        """``R``: ``N x D^2 x H x W``, the softmax over the taps of the key similarities."""
        keys = self.range_proj(guidance)
        padded = F.pad(keys, [self.radius] * 4, mode="reflect")
        similarity = window_similarity(keys, padded, self.diameter, padding=0)
        low, high = _TEMPERATURE_BOUNDS
        temperature = self.range_temp.exp().clamp_min(low).clamp_max(high)
        return F.softmax(temperature * similarity, dim=1)

    def kernels(self, d: Tensor, guidance: Tensor) -> Tensor:
        """``K``: ``N x D^2 x H x W`` (tap ``a D + b``), the per-pixel kernels of step 5."""
        combined = self.range_kernel(guidance) * self.spatial_kernel()
        combined = combined / combined.sum(1, keepdim=True).clamp(_SUM_FLOOR)
        return combined + FIXUP_WEIGHT * self.fixup_proj(torch.cat([combined, guidance], dim=1))

    def apply_stage(self, d: Tensor, guidance: Tensor) -> Tensor:
        """The stage on checked inputs (``guidance`` at the output size)."""
        kernels = self.kernels(d, guidance)
        high = F.interpolate(d, size=(guidance.shape[-2], guidance.shape[-1]), mode="bicubic", align_corners=False)
        padded = F.pad(high, [self.radius] * 4, mode="reflect")
        return reassemble(padded, kernels, self.diameter, padding=0)

    def check_inputs(self, d: Tensor, guidance: Tensor) -> None:
        """``d``: ``N x C x h x w``; ``guidance``: ``N x G x sh x sw`` with ``sh, sw >= r + 1``."""
        _check_pair(self, d, guidance, exact=True, min_high=self.min_high)

    def output_shapes(self, shapes: Any) -> list[tuple[int, ...]]:
        d, guidance = shapes
        _check_sizes(self, d, guidance, exact=True, min_high=self.min_high)
        return [self.output_shape(tuple(d))]

    def forward(self, d: Tensor, guidance: Tensor) -> Tensor:
        self.check_inputs(d, guidance)
        return self.apply_stage(d, guidance)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, key_dim={self.key_dim}, radius={self.radius}"


_EXAMPLE = {"channels": 8, "scale_factor": 4}


@register_upsampler(
    "featup_jbu",
    example=_EXAMPLE,
    summary=(
        "FeatUp JBU stack (official JBUStack: log2(s) 2x joint bilateral stages, 7x7 learned-range kernels, "
        "final 1x1 fixup; 16x, 4 stages by default); guide = image (G=3) alone, the encoder feature in a pair"
    ),
)
class FeatUpJBU(FeatureGuidedUpsampler):
    """FeatUp's JBU stack (official ``JBUStack``): ``log2(s)`` joint bilateral 2x stages.

    ``forward(d, guidance)`` with ``d`` (``N x C x h x w``) and the guidance ``g``
    (``N x G x sh x sw``; the official hub models feed the same ImageNet-normalised RGB
    image the backbone sees):

    * ``x_0 = d``; for ``k = 1 .. n`` (``n = log2 s``; 4 stages for the official 16x)
      ``x_k = up_k(x_{k-1}, g_k)`` with :class:`FeatUpJBUStage` ``up_k`` (2x) and
      ``g_k = adaptive_avg_pool2d(g, 2^k h x 2^k w)``, which for a guidance of exactly
      ``s`` times ``d`` is ``avg_pool2d(g, s / 2^k)`` (computed so; the last stage reads
      ``g`` itself);
    * ``out = fixup_proj(x_n) * 0.1 + x_n`` with ``fixup_proj`` = Dropout2d(0.2), 1x1 conv
      ``C -> C``.

    Every stage is the :class:`FeatUpJBUStage` specification (kernels, reflect padding,
    tap order, dtype behaviour); the first stage needs ``2h, 2w >= r + 1``.

    Parameters: ``n * 6,233 + C^2 + C`` at the defaults (``G = 3``): 172,772 for the
    official 16x stack at ``C = 384`` (ViT-S/16, DINO, DINOv2-S), 287,588 at ``C = 512``
    (CLIP), 4,221,284 at ``C = 2048`` (ResNet-50).

    Checkpoints: the official ``JBUStack`` state dict loads key for key (``up1`` ...
    ``up4`` with the stage keys, ``fixup_proj.1.*``); the published torch.hub checkpoints
    hold it under ``upsampler.`` (see :func:`featup_checkpoint_state_dict`).

    Guidance size: by default the guidance must be exactly ``s`` times ``d`` (the operator
    contract, what a pair provides).  The official module pools any guidance size
    adaptively (the DINOv2 hub model sees 16 x 16 tokens of a 224 x 224 image);
    ``any_guidance_size=True`` accepts any size and pools with ``adaptive_avg_pool2d`` at
    every stage, exactly as the official code; the output is ``s`` times ``d`` either way.

    In a pair (``create_pair("featup_jbu", channels=C)``, scale 2) the stack is one stage
    and the final 1x1 conv, guided by the high-resolution encoder feature of the stage
    (``guide.encoder``, ``G = C``), as for FADE and SAPA.

    Args:
        channels: feature channels ``C`` (input ``d``; the final 1x1 conv is ``C -> C``).
        scale_factor: a power of two ``s >= 2`` (16 for the official stack).
        guide_channels: guidance channels ``G`` (default 3: an image).
        key_dim: key dimension of every stage's range projection.
        radius: every stage's window radius ``r`` (``D = 2 r + 1``).
        any_guidance_size: accept a guidance of any size (official adaptive pooling).

    Shape:
        ``d``: ``N x C x h x w``, ``guidance``: ``N x G x sh x sw`` -> ``N x C x sh x sw``.

    Example:
        >>> jbu = FeatUpJBU(channels=8, scale_factor=4)
        >>> jbu(torch.randn(1, 8, 3, 5), torch.randn(1, 3, 12, 20)).shape
        torch.Size([1, 8, 12, 20])
    """

    input_names = ("d", "guidance")

    def __init__(
        self,
        channels: int,
        scale_factor: int = 16,
        guide_channels: int = 3,
        key_dim: int = 32,
        radius: int = 3,
        any_guidance_size: bool = False,
    ) -> None:
        super().__init__(channels, scale_factor, check_int(guide_channels, "guide_channels", minimum=1))
        s = self.scale_factor
        if s < 2 or s & (s - 1):
            raise ValueError(
                f"argument `scale_factor`: expected a power of two >= 2 (one 2x stage per factor of 2; the official "
                f"stack is 16x, four stages), got {s}"
            )
        if not isinstance(any_guidance_size, bool):
            raise TypeError(f"argument `any_guidance_size`: expected a bool, got {any_guidance_size!r}")
        self.num_stages = s.bit_length() - 1
        self.any_guidance_size = any_guidance_size
        for k in range(1, self.num_stages + 1):
            self.add_module(f"up{k}", FeatUpJBUStage(channels, 2, guide_channels, key_dim, radius))
        self.key_dim, self.radius = self.up1.key_dim, self.up1.radius
        self.fixup_proj = nn.Sequential(nn.Dropout2d(_FIXUP_DROPOUT), nn.Conv2d(channels, channels, 1))

    up1: FeatUpJBUStage

    def stages(self) -> Iterator[FeatUpJBUStage]:
        """``up1`` ... ``upN`` in order."""
        for k in range(1, self.num_stages + 1):
            stage = getattr(self, f"up{k}")
            assert isinstance(stage, FeatUpJBUStage)
            yield stage

    def stage_guidance(self, guidance: Tensor, x: Tensor, k: int) -> Tensor:
        """``g_k``: the guidance at twice the size of ``x``, the input of stage ``k``."""
        if self.any_guidance_size:
            return F.adaptive_avg_pool2d(guidance, (2 * x.shape[-2], 2 * x.shape[-1]))
        factor = self.scale_factor >> k
        return guidance if factor == 1 else F.avg_pool2d(guidance, factor)

    def check_inputs(self, d: Tensor, guidance: Tensor) -> None:
        """``d``: ``N x C x h x w`` with ``2h, 2w >= r + 1``; ``guidance``: ``N x G x sh x sw``."""
        _check_pair(self, d, guidance, exact=not self.any_guidance_size, min_high=self.radius + 1)

    def output_shapes(self, shapes: Any) -> list[tuple[int, ...]]:
        d, guidance = shapes
        _check_sizes(self, d, guidance, exact=not self.any_guidance_size, min_high=self.radius + 1)
        return [self.output_shape(tuple(d))]

    def forward(self, d: Tensor, guidance: Tensor) -> Tensor:
        self.check_inputs(d, guidance)
        x = d
        for k, stage in enumerate(self.stages(), start=1):
            x = stage.apply_stage(x, self.stage_guidance(guidance, x, k))
        return self.fixup_proj(x) * FIXUP_WEIGHT + x

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, key_dim={self.key_dim}, radius={self.radius}, "
            f"any_guidance_size={self.any_guidance_size}"
        )


def featup_checkpoint_state_dict(state_dict: Mapping[str, Tensor], prefix: str = "upsampler.") -> dict[str, Tensor]:
    """The JBU stack's weights from a published FeatUp checkpoint's ``state_dict``.

    The torch.hub checkpoints (``*_jbu_stack_cocostuff.ckpt``, ``torch.load(...)["state_dict"]``)
    hold the whole training module: the backbone (``model.*``), the upsampler
    (``upsampler.*``), the downsampler and the uncertainty net.  This returns the keys under
    ``prefix`` without it, ready for :class:`FeatUpJBU`'s ``load_state_dict``; a
    ``ValueError`` names the argument when there are none.
    """
    picked = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    if not picked:
        raise ValueError(f"argument `state_dict`: no keys start with {prefix!r}")
    return picked
