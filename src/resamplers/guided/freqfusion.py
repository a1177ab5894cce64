"""FreqFusion: frequency-aware feature fusion (Chen et al., TPAMI 2024).

FreqFusion fuses a low-resolution decoder feature with the encoder feature of twice its
size through three predicted operators: an adaptive low-pass filter (ALPF, content-aware
CARAFE kernels that upsample and smooth the decoder feature), an adaptive high-pass filter
(AHPF, the identity minus a predicted low-pass kernel, which sharpens the encoder
feature) and, optionally, an offset generator that resamples the upsampled decoder
feature at positions predicted from local cosine similarities (a DySample-like sampler).
Every reassembly runs on the library's CARAFE core (:func:`~resamplers.functional.carafe`),
the similarities on :func:`~resamplers.functional.window_similarity` and the sampling on
:func:`~resamplers.functional.dynamic_sample`, so nothing needs mmcv or a compiled extension.

Follows ``FreqFusion.py`` of the official repository ``Linwei-Chen/FreqFusion`` at commit
``680b5609ab11f8062a383713793c1f46d2418446`` (the file's last change; the repository's head
``3fb0c70637a3c194fb74294d3ce4681958b26241`` holds the same file).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_odd
from ..components.kernel_predictor import check_same_size_encoder
from ..functional import carafe, dynamic_sample, softmax_kernels, sub_pixel_positions, window_similarity
from ..registry import register_upsampler
from .base import FeatureGuidedUpsampler

__all__ = ["FreqFusion", "LocalSimGuidedSampler", "dilated_cosine_similarity", "hamming_window_2d"]

# Small channels and 3x3 filters keep the shared matrix fast; the official 5x5 low-pass
# kernel and 64 compressed channels are tested in test_freqfusion.py.
_EXAMPLE = {"channels": 8, "compressed_channels": 8, "lowpass_kernel": 3}

# F.cosine_similarity's default floor of each vector's norm.
_COSINE_EPS = 1e-8


def hamming_window_2d(size: int) -> Tensor:
    """``size x size`` outer product of the symmetric Hamming window, as float32 (``1 x 1 x k x k``).

    ``w[n] = 0.54 - 0.46 cos(2 pi n / (k - 1))`` (``w = [1]`` for ``k = 1``), computed in
    float64 and rounded once to float32, as the official buffers (``np.hamming`` through
    ``torch.FloatTensor``) are.
    """
    k = check_int(size, "size", minimum=1)
    n = torch.arange(k, dtype=torch.float64)
    w = 0.54 - 0.46 * torch.cos(2 * math.pi * n / (k - 1)) if k > 1 else torch.ones(1, dtype=torch.float64)
    return torch.outer(w, w).to(torch.float32)[None, None]


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"argument `{name}`: expected a bool, got {value!r}")
    return value


def dilated_cosine_similarity(x: Tensor) -> Tensor:
    """Cosine similarity of every pixel with its 8 neighbours at offsets ``{-2, 0, 2}^2``.

    ``S[t, p] = <x[p], x[p + 2 (a - 1, b - 1)]> / (max(|x[p]|, eps) max(|x[q]|, eps))`` for
    taps ``t = a 3 + b`` (row-major, the centre ``(1, 1)`` left out), ``eps = 1e-8``;
    neighbours outside the image are zero vectors, so their similarity is 0 (the official
    ``compute_similarity(x, 3, dilation=2)``: zero-padded ``unfold`` and
    ``F.cosine_similarity``).  Computed as the even taps of a 5 x 5 window of
    :func:`~resamplers.functional.window_similarity` on the unit vectors.

    Shape:
        ``N x C x H x W`` -> ``N x 8 x H x W``.
    """
    n, _, h, w = x.shape
    unit = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(_COSINE_EPS)
    taps = window_similarity(unit, unit, 5).reshape(n, 5, 5, h, w)[:, ::2, ::2].reshape(n, 9, h, w)
    return torch.cat([taps[:, :4], taps[:, 5:]], dim=1)


class LocalSimGuidedSampler(nn.Module):
    """FreqFusion's offset generator (official ``LocalSimGuidedSampler``, as ``FreqFusion`` builds it).

    With compressed maps ``z_e`` (``N x C_m x sh x sw``) and ``z_d`` (``N x C_m x h x w``) and
    the feature to resample ``u`` (``N x C_u x sh x sw``):

    1. ``x_e = norm_hr(z_e)``, ``x_d = norm_lr(z_d)``: ``GroupNorm(C_m // 8, C_m)`` (identity
       with ``norm=False``);
    2. ``S(.)``: :func:`dilated_cosine_similarity` (8 channels);
    3. ``direction_feat='sim_concat'`` (``FreqFusion.py``): ``F_e = cat[x_e, S(x_e)]``,
       ``F_d = cat[x_d, S(x_d)]`` feed all four convolutions; ``'sim'`` (the copies in the
       official repository's SegNeXt, Mask2Former and mmdetection folders): the offset
       convolutions read ``S(x)`` and the scope convolutions ``x``;
    4. offsets in low-resolution pixel units, ``2 G s^2`` channels laid out ``(xy, G, s, s)``
       (x first): ``O = (offset(F_d) + unshuffle(hr_offset(F_e))) *
       sigmoid(direct_scale(F_d) + unshuffle(hr_direct_scale(F_e))) + init_pos`` with
       ``unshuffle`` the pixel unshuffle by ``s`` and ``init_pos``
       :func:`~resamplers.functional.sub_pixel_positions`;
    5. output pixel ``(s y + i, s x + j)`` of channel group ``g`` (contiguous blocks of
       ``C_u / G``) is ``u`` sampled bilinearly at column ``s (x + 0.5 + O_x) - 0.5`` and row
       ``s (y + 0.5 + O_y) - 0.5`` (high-resolution pixel units, integers at pixel centres),
       borders replicated: the official ``grid_sample`` (``align_corners=False``,
       ``padding_mode='border'``) on the low-resolution grid normalised by ``w`` and ``h``.
       At ``O = init_pos`` every output pixel reads itself.

    The convolutions are ``k x k`` (``k = kernel_size``, padding ``k // 2``, bias):
    ``offset`` and ``direct_scale`` map to ``2 G s^2`` channels at low resolution,
    ``hr_offset`` and ``hr_direct_scale`` to ``2 G`` at high resolution.  Initialisation as
    the official module: offset convolutions ``N(0, 0.001^2)``, scope convolutions zero,
    zero biases (``FreqFusion`` re-initialises all four Xavier-uniform).

    Args:
        in_channels: compressed channels ``C_m`` (a multiple of ``groups``; with ``norm`` of
            ``C_m // 8``, at least 8).
        scale_factor: integer ``s >= 1`` (the official module asserts 2).
        groups: sampling groups ``G``.
        kernel_size: ``k`` (odd).
        norm: GroupNorm before the similarities.
        direction_feat: ``'sim_concat'`` or ``'sim'``.

    Shape:
        ``hr_x``: ``N x C_m x sh x sw``, ``lr_x``: ``N x C_m x h x w``, ``feature``:
        ``N x C_u x sh x sw`` -> ``N x C_u x sh x sw``.
    """

    local_window = 3

    def __init__(
        self,
        in_channels: int,
        scale_factor: int = 2,
        groups: int = 4,
        kernel_size: int = 1,
        norm: bool = True,
        direction_feat: str = "sim_concat",
    ) -> None:
        super().__init__()
        c = check_int(in_channels, "in_channels", minimum=1)
        s = check_int(scale_factor, "scale_factor", minimum=1)
        g = check_int(groups, "groups", minimum=1)
        check_odd(kernel_size, "kernel_size")
        check_choice(direction_feat, "direction_feat", ["sim_concat", "sim"])
        if c % g != 0:
            raise ValueError(f"argument `groups`: expected a divisor of in_channels={c}, got {g}")
        if _check_bool(norm, "norm") and (c < 8 or c % (c // 8) != 0):
            raise ValueError(
                f"argument `in_channels`: GroupNorm(in_channels // 8, in_channels) needs in_channels >= 8 and a "
                f"multiple of in_channels // 8, got {c}"
            )
        self.scale_factor, self.groups, self.kernel_size = s, g, kernel_size
        self.norm, self.direction_feat = norm, direction_feat
        sims = self.local_window**2 - 1
        offset_in = c + sims if direction_feat == "sim_concat" else sims
        scope_in = c + sims if direction_feat == "sim_concat" else c
        pad = kernel_size // 2
        self.offset = nn.Conv2d(offset_in, 2 * g * s * s, kernel_size, padding=pad)
        self.direct_scale = nn.Conv2d(scope_in, 2 * g * s * s, kernel_size, padding=pad)
        self.hr_offset = nn.Conv2d(offset_in, 2 * g, kernel_size, padding=pad)
        self.hr_direct_scale = nn.Conv2d(scope_in, 2 * g, kernel_size, padding=pad)
        self.norm_hr: nn.Module = nn.GroupNorm(c // 8, c) if norm else nn.Identity()
        self.norm_lr: nn.Module = nn.GroupNorm(c // 8, c) if norm else nn.Identity()
        self.register_buffer("init_pos", sub_pixel_positions(s, g))
        # The sub-pixel position of each high-resolution pixel centre (not in the state dict).
        self.register_buffer("pixel_centres", sub_pixel_positions(s, g), persistent=False)
        self.reset_parameters()

    init_pos: Tensor
    pixel_centres: Tensor

    def reset_parameters(self) -> None:
        for conv in (self.offset, self.hr_offset):
            nn.init.normal_(conv.weight, std=0.001)
        for conv in (self.direct_scale, self.hr_direct_scale):
            nn.init.zeros_(conv.weight)
        for conv in (self.offset, self.hr_offset, self.direct_scale, self.hr_direct_scale):
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for norm in (self.norm_hr, self.norm_lr):
            if isinstance(norm, nn.GroupNorm):
                nn.init.ones_(norm.weight)
                nn.init.zeros_(norm.bias)

    def offsets(self, hr_x: Tensor, lr_x: Tensor) -> Tensor:
        """``O`` (``init_pos`` included), ``N x 2Gs^2 x h x w`` in low-resolution pixel units."""
        s = self.scale_factor
        hr_x, lr_x = self.norm_hr(hr_x), self.norm_lr(lr_x)
        hr_sim, lr_sim = dilated_cosine_similarity(hr_x), dilated_cosine_similarity(lr_x)
        if self.direction_feat == "sim_concat":
            hr_sim, lr_sim = torch.cat([hr_x, hr_sim], dim=1), torch.cat([lr_x, lr_sim], dim=1)
            hr_x, lr_x = hr_sim, lr_sim
        step = self.offset(lr_sim) + F.pixel_unshuffle(self.hr_offset(hr_sim), s)
        scope = (self.direct_scale(lr_x) + F.pixel_unshuffle(self.hr_direct_scale(hr_x), s)).sigmoid()
        return step * scope + self.init_pos

    def forward(self, hr_x: Tensor, lr_x: Tensor, feature: Tensor) -> Tensor:
        s = self.scale_factor
        offsets = self.offsets(hr_x, lr_x).to(feature.dtype)
        # In high-resolution pixels the official position s (x + 0.5 + O) - 0.5 is the output
        # pixel's own centre plus s (O - its sub-pixel position): a scale-1 sampling.
        shift = s * F.pixel_shuffle(offsets - self.pixel_centres.to(offsets.dtype), s)
        return dynamic_sample(feature, shift, 1, self.groups)

    def extra_repr(self) -> str:
        return (
            f"scale_factor={self.scale_factor}, groups={self.groups}, kernel_size={self.kernel_size}, "
            f"norm={self.norm}, direction_feat={self.direction_feat!r}"
        )


@register_upsampler(
    "freqfusion",
    example=_EXAMPLE,
    summary="FreqFusion (official FreqFusion.py defaults): adaptive low-pass CARAFE up + adaptive high-pass encoder, added",
)
@register_upsampler(
    "freqfusion_resample",
    defaults={"feature_resample": True},
    example=_EXAMPLE,
    summary="FreqFusion with its offset generator (feature_resample=True, 4 groups, as the published SegNeXt and Mask2Former heads)",
)
class FreqFusion(FeatureGuidedUpsampler):
    """FreqFusion of a decoder feature with the encoder feature of twice its size.

    ``forward(d, encoder)`` (in a pair: ``up(d, guide)`` with ``guide.encoder``) with
    encoder feature ``e`` (the official ``hr_feat``, ``N x C x sh x sw``) and decoder
    feature ``d`` (``lr_feat``, ``N x C_d x h x w``).  Notation: ``z_e =
    hr_channel_compressor(e)`` and ``z_d = lr_channel_compressor(d)`` (1x1 convs to ``C_m``,
    bias); ``E_L = content_encoder`` and ``E_H = content_encoder2`` (``k_e x k_e`` convs
    ``C_m -> G k_L^2`` and ``C_m -> G k_H^2``, dilation ``delta``, padding
    ``(k_e - 1) delta / 2``, bias); ``N_k(l)``: per group, the softmax over the ``k^2`` taps
    times the Hamming window ``w_k`` (:func:`hamming_window_2d`; ones with
    ``hamming_window=False``), divided by its sum over the taps, i.e.
    ``softmax(l + log w_k)``; ``C_s(x, K, k)``: :func:`~resamplers.functional.carafe` with
    ``G`` groups (mmcv's CARAFE); ``up``: nearest upsampling by ``s``.

    Default pipeline (``semi_conv=True``, ``comp_feat_upsample=True``):

    1. ``z_e' = 2 z_e - C_1(z_e, N_kH(E_H(z_e)), k_H)``: the compressed encoder feature
       with its high frequencies boosted;
    2. ``L = E_L(z_e') + C_s(E_L(z_d), N_kL(E_L(z_e')), k_L)``: low-pass logits, the
       decoder half upsampled by the initial low-pass kernels;
    3. ``K_L = N_kL(L)`` (the official returned ``mask``) and
       ``H = E_H(z_e) + C_s(E_H(z_d), K_L, k_L)`` (``E_H`` of the *un-boosted* ``z_e``);
    4. ALPF: ``lr = C_s(d, K_L, k_L)``; with ``feature_resample=True``,
       ``lr = dysampler(z_e', z_d, lr)`` (:class:`LocalSimGuidedSampler` with ``G_r``
       groups, kernel ``k_e``);
    5. AHPF: ``hr = e + (e - C_1(e, N_kH(H), k_H))`` (``hr_residual``; otherwise
       ``e - C_1(...)``);
    6. output (``fusion='add'``): ``hr + lr``; ``fusion='none'``: ``lr``.

    ``comp_feat_upsample=False``: ``L = E_L(z_e) + up(E_L(z_d))``, ``H = E_H(z_e) +
    up(E_H(z_d))``, no boost.  ``semi_conv=False``: ``z = up(z_d) + z_e``, ``L = E_L(z)``,
    ``H = E_H(z)`` and ``lr = C_1(interpolate(d), K_L, k_L)`` (``upsample_mode``,
    ``align_corners``).  ``use_high_pass=False`` (needs ``comp_feat_upsample=False`` or
    ``semi_conv=False``, as the official code) drops ``E_H`` and returns ``hr = e``.

    What is returned: the official ``forward(hr_feat, lr_feat)`` returns the tuple
    ``(mask, hr_feat, lr_feat) = (K_L, hr, lr)`` and leaves the fusion to its caller; its
    README and FPN neck add the two (``y = hr_feat + lr_feat``), the SegNeXt head
    concatenates them.  ``forward`` returns the added fusion ``hr + lr`` (``C_d`` channels;
    ``fusion='add'`` needs ``C == C_d``), or ``lr`` alone with ``fusion='none'`` (any
    ``C``); :meth:`parts` returns the official tuple, so a concatenating caller uses
    ``torch.cat(ff.parts(d, e)[1:], 1)``.

    Border handling: every CARAFE reassembly has zero padding (taps outside the image
    contribute nothing, kernels are not renormalised: mmcv's ``carafe``, which the official
    module imports; its fallback for missing mmcv pads by reflection and prints shapes, and
    is not followed), the encoders pad with zeros, neighbours outside the image have
    similarity 0 and the sampler replicates the border.  Channel order: kernel channel
    ``g k^2 + a k + b`` (group, row, column), contiguous channel groups; offsets ``(xy, G,
    s, s)``.

    Defaults are those of the official constructor (``lowpass_kernel=5``,
    ``highpass_kernel=3``, ``up_group=1``, ``encoder_kernel=3``, ``encoder_dilation=1``,
    ``compressed_channels=64``, ``hamming_window=True``, ``feature_resample=False`` with 4
    groups, GroupNorm and ``'sim_concat'``); the published SegNeXt and Mask2Former heads set
    ``hamming_window=False``, ``feature_resample=True`` and ``compressed_channels=(C + C_d) // 8``
    (SegNeXt's config: ``// 4``), and their copies of the module use ``direction_feat='sim'``.
    52,514 parameters at ``C = C_d = 256`` (104,690 with the offset generator).
    Initialisation as the official ``init_weights``: every convolution, the offset
    generator's included, Xavier-uniform with zero bias, then ``content_encoder`` and
    ``content_encoder2`` ``N(0, 0.001^2)``; GroupNorm weight 1, bias 0.  The Hamming
    buffers are float32 (as the official ``torch.FloatTensor``) until the module is cast.

    Departures: the official ``scale_factor`` argument only multiplies the encoders' output
    channels and breaks the forward unless it is 1; here ``scale_factor`` is the ratio
    ``s`` between the two inputs, which the official code fixes at 2 (every step here uses
    ``s``).  ``use_low_pass`` (ignored by the official forward) and ``use_checkpoint`` are
    not offered.  The official module works at ``s = 2`` only, and its kernel normaliser
    fails for ``up_group > 1`` (a ``view`` of a permuted tensor); here each of the ``G``
    groups has its own kernels, read by its contiguous block of channels.

    Checkpoints: the state dict has the official keys (``hr_channel_compressor.*``,
    ``lr_channel_compressor.*``, ``content_encoder.*``, ``content_encoder2.*``,
    ``hamming_lowpass``, ``hamming_highpass``, and ``dysampler.offset.*``,
    ``dysampler.direct_scale.*``, ``dysampler.hr_offset.*``, ``dysampler.hr_direct_scale.*``,
    ``dysampler.norm_hr.*``, ``dysampler.norm_lr.*``, ``dysampler.init_pos`` with the offset
    generator), so an official state dict loads key for key, and this module's loads into
    the official one.

    Checked against the official module (its mmcv ``carafe`` replaced by an unfold-based
    one written from mmcv's CUDA kernel, official weights copied in with
    ``load_state_dict``) in float64 at ``s = 2``, random weights (std 0.3) and inputs, on 12
    configurations of ``FreqFusion.py`` (defaults; offset generator with and without
    GroupNorm and window, dilated and 5x5 encoders, 7x7 low-pass kernels; no
    ``comp_feat_upsample``; no ``semi_conv``, nearest and bilinear; no high pass; no
    residual; ``C != C_d``; 1 x 1 inputs) and ``direction_feat='sim'`` on the SegNeXt copy
    (commit ``5106d9a3fb80459050ff3e5e159e6b71aaf77450``): max difference 7.5e-15 in the
    returned tensors and the fused output (values up to 10), 6.9e-14 in the input gradients
    (values up to 54), parameter gradients 8.4e-15 relative; fresh buffers equal.

    Args:
        channels: decoder channels ``C_d`` (input ``d``, the official ``lr_channels``).
        scale_factor: integer ``s >= 1`` (official: 2).
        lowpass_kernel: ALPF kernel ``k_L`` (odd).
        highpass_kernel: AHPF kernel ``k_H`` (odd).
        up_group: kernel groups ``G`` (a divisor of ``C``, ``C_d`` and ``C_m``).
        encoder_kernel: ``k_e`` of the kernel encoders and of the offset generator.
        encoder_dilation: ``delta`` of the kernel encoders; ``(k_e - 1) delta`` even.
        compressed_channels: ``C_m``.
        fusion: ``'add'`` (``hr + lr``) or ``'none'`` (``lr``).
        feature_resample: use the offset generator.
        feature_resample_group: its sampling groups ``G_r`` (a divisor of ``C_d`` and ``C_m``).
        feature_resample_norm: its GroupNorm (``C_m // 8`` groups).
        direction_feat: what its convolutions read: ``'sim_concat'`` or ``'sim'``.
        comp_feat_upsample: predict the kernels from the boosted, kernel-upsampled maps.
        use_high_pass: the AHPF.
        hr_residual: add ``e`` back to its high-pass part.
        semi_conv: predict the kernels at both resolutions (else from one fused map).
        hamming_window: the Hamming prior on the kernels.
        upsample_mode: interpolation of ``d`` with ``semi_conv=False``: ``'nearest'`` or ``'bilinear'``.
        align_corners: with ``'bilinear'``.
        guide_channels: encoder channels ``C`` (input ``encoder``, the official
            ``hr_channels``; default ``C_d``).

    Shape:
        ``d``: ``N x C_d x h x w``, ``encoder``: ``N x C x sh x sw`` -> ``N x C_d x sh x sw``.

    Example:
        >>> ff = FreqFusion(channels=16, scale_factor=2)
        >>> ff(torch.randn(1, 16, 4, 6), torch.randn(1, 16, 8, 12)).shape
        torch.Size([1, 16, 8, 12])
        >>> mask, hr_feat, lr_feat = ff.parts(torch.randn(1, 16, 4, 6), torch.randn(1, 16, 8, 12))
        >>> mask.shape, lr_feat.shape
        (torch.Size([1, 25, 8, 12]), torch.Size([1, 16, 8, 12]))
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        lowpass_kernel: int = 5,
        highpass_kernel: int = 3,
        up_group: int = 1,
        encoder_kernel: int = 3,
        encoder_dilation: int = 1,
        compressed_channels: int = 64,
        fusion: str = "add",
        feature_resample: bool = False,
        feature_resample_group: int = 4,
        feature_resample_norm: bool = True,
        direction_feat: str = "sim_concat",
        comp_feat_upsample: bool = True,
        use_high_pass: bool = True,
        hr_residual: bool = True,
        semi_conv: bool = True,
        hamming_window: bool = True,
        upsample_mode: str = "nearest",
        align_corners: bool = False,
        guide_channels: int | None = None,
    ) -> None:
        super().__init__(channels, scale_factor, guide_channels)
        check_odd(lowpass_kernel, "lowpass_kernel")
        check_odd(highpass_kernel, "highpass_kernel")
        check_int(up_group, "up_group", minimum=1)
        check_int(encoder_kernel, "encoder_kernel", minimum=1)
        check_int(encoder_dilation, "encoder_dilation", minimum=1)
        check_same_size_encoder(encoder_kernel, encoder_dilation)
        check_int(compressed_channels, "compressed_channels", minimum=1)
        check_choice(fusion, "fusion", ["add", "none"])
        check_choice(upsample_mode, "upsample_mode", ["nearest", "bilinear"])
        for value, name in (
            (feature_resample, "feature_resample"),
            (feature_resample_norm, "feature_resample_norm"),
            (comp_feat_upsample, "comp_feat_upsample"),
            (use_high_pass, "use_high_pass"),
            (hr_residual, "hr_residual"),
            (semi_conv, "semi_conv"),
            (hamming_window, "hamming_window"),
            (align_corners, "align_corners"),
        ):
            _check_bool(value, name)
        c_hr, c_lr, c_m = self.guide_channels, self.channels, compressed_channels
        for count, what in ((c_lr, "channels"), (c_hr, "guide_channels"), (c_m, "compressed_channels")):
            if count % up_group != 0:
                raise ValueError(f"argument `up_group`: expected a divisor of {what}={count}, got {up_group}")
        if fusion == "add" and c_hr != c_lr:
            raise ValueError(
                f"argument `guide_channels`: fusion='add' adds the encoder feature to the upsampled decoder "
                f"feature, so it needs guide_channels == channels={c_lr}, got {c_hr} (or use fusion='none')"
            )
        if semi_conv and comp_feat_upsample and not use_high_pass:
            raise ValueError(
                "argument `use_high_pass`: comp_feat_upsample=True (with semi_conv=True) boosts the encoder feature "
                "with the high-pass kernels, so it needs use_high_pass=True (the official code raises too)"
            )
        self.lowpass_kernel, self.highpass_kernel, self.up_group = lowpass_kernel, highpass_kernel, up_group
        self.encoder_kernel, self.encoder_dilation, self.compressed_channels = (
            encoder_kernel,
            encoder_dilation,
            compressed_channels,
        )
        self.fusion, self.feature_resample, self.comp_feat_upsample = fusion, feature_resample, comp_feat_upsample
        self.use_high_pass, self.hr_residual, self.semi_conv = use_high_pass, hr_residual, semi_conv
        self.hamming_window, self.upsample_mode, self.align_corners = hamming_window, upsample_mode, align_corners

        pad = (encoder_kernel - 1) * encoder_dilation // 2
        self.hr_channel_compressor = nn.Conv2d(c_hr, c_m, 1)
        self.lr_channel_compressor = nn.Conv2d(c_lr, c_m, 1)
        self.content_encoder = nn.Conv2d(
            c_m, lowpass_kernel**2 * up_group, encoder_kernel, padding=pad, dilation=encoder_dilation
        )
        if feature_resample:
            check_int(feature_resample_group, "feature_resample_group", minimum=1)
            if c_lr % feature_resample_group != 0:
                raise ValueError(
                    f"argument `feature_resample_group`: expected a divisor of channels={c_lr}, "
                    f"got {feature_resample_group}"
                )
            if c_m % feature_resample_group != 0:
                raise ValueError(
                    f"argument `feature_resample_group`: expected a divisor of compressed_channels={c_m}, "
                    f"got {feature_resample_group}"
                )
            if feature_resample_norm and (c_m < 8 or c_m % (c_m // 8) != 0):
                raise ValueError(
                    f"argument `compressed_channels`: the offset generator's GroupNorm(compressed_channels // 8) "
                    f"needs compressed_channels >= 8 and a multiple of compressed_channels // 8, got {c_m}"
                )
            check_odd(encoder_kernel, "encoder_kernel")
            self.dysampler = LocalSimGuidedSampler(
                c_m, scale_factor, feature_resample_group, encoder_kernel, feature_resample_norm, direction_feat
            )
        else:
            check_choice(direction_feat, "direction_feat", ["sim_concat", "sim"])
        self.feature_resample_group, self.feature_resample_norm = feature_resample_group, feature_resample_norm
        self.direction_feat = direction_feat
        if use_high_pass:
            self.content_encoder2 = nn.Conv2d(
                c_m, highpass_kernel**2 * up_group, encoder_kernel, padding=pad, dilation=encoder_dilation
            )
        # Persistent, as in the official module (its state dicts hold them).
        ones = torch.ones(1, dtype=torch.float32)
        self.register_buffer("hamming_lowpass", hamming_window_2d(lowpass_kernel) if hamming_window else ones)
        self.register_buffer("hamming_highpass", hamming_window_2d(highpass_kernel) if hamming_window else ones.clone())
        self.reset_parameters()

    hamming_lowpass: Tensor
    hamming_highpass: Tensor

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        encoders = [self.content_encoder] + ([self.content_encoder2] if self.use_high_pass else [])
        for conv in encoders:
            nn.init.normal_(conv.weight, std=0.001)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def init_weights(self) -> None:
        """The official name for :meth:`reset_parameters` (OpenMMLab necks call it)."""
        self.reset_parameters()

    @property
    def out_channels(self) -> int:
        return self.channels

    def normalise_kernels(self, logits: Tensor, kernel_size: int, window: Tensor) -> Tensor:
        """``N_k``: per-group softmax over the ``k^2`` taps, times ``window``, renormalised.

        ``logits``: ``N x G k^2 x H x W`` -> kernels of the same shape (CARAFE layout).
        """
        n, c, h, w = logits.shape
        kernels = softmax_kernels(logits, self.up_group).reshape(n, self.up_group, kernel_size**2, h, w)
        kernels = kernels * window.to(kernels.dtype).reshape(1, 1, -1, 1, 1)
        return (kernels / kernels.sum(dim=2, keepdim=True)).reshape(n, c, h, w)

    def lowpass_kernels(self, logits: Tensor) -> Tensor:
        """ALPF kernels ``N x G k_L^2 x H x W`` from their logits."""
        return self.normalise_kernels(logits, self.lowpass_kernel, self.hamming_lowpass)

    def highpass_kernels(self, logits: Tensor) -> Tensor:
        """The low-pass kernels ``N x G k_H^2 x H x W`` whose complement is the AHPF."""
        return self.normalise_kernels(logits, self.highpass_kernel, self.hamming_highpass)

    def _nearest(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=float(self.scale_factor), mode="nearest")

    def _kernel_logits(self, z_e: Tensor, z_d: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """Low- and high-pass logits at high resolution, and the compressed encoder feature
        the offset generator reads (boosted with ``comp_feat_upsample``)."""
        s, g = self.scale_factor, self.up_group
        if not self.semi_conv:
            fused = self._nearest(z_d) + z_e
            return self.content_encoder(fused), self.content_encoder2(fused) if self.use_high_pass else None, z_e
        if not self.comp_feat_upsample:
            low = self.content_encoder(z_e) + self._nearest(self.content_encoder(z_d))
            high = (
                self.content_encoder2(z_e) + self._nearest(self.content_encoder2(z_d)) if self.use_high_pass else None
            )
            return low, high, z_e
        high_e = self.content_encoder2(z_e)
        z_e = z_e + z_e - carafe(z_e, self.highpass_kernels(high_e), self.highpass_kernel, g, 1)
        low_e = self.content_encoder(z_e)
        kl = self.lowpass_kernel
        low = low_e + carafe(self.content_encoder(z_d), self.lowpass_kernels(low_e), kl, g, s)
        high = high_e + carafe(self.content_encoder2(z_d), self.lowpass_kernels(low), kl, g, s)
        return low, high, z_e

    def parts(self, d: Tensor, encoder: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The official return value ``(mask, hr_feat, lr_feat)``.

        ``mask``: the ALPF kernels ``K_L`` (``N x G k_L^2 x sh x sw``); ``hr_feat``: the
        AHPF-sharpened encoder feature (``N x C x sh x sw``); ``lr_feat``: the upsampled (and
        resampled) decoder feature (``N x C_d x sh x sw``).
        """
        self.check_inputs(d, encoder)
        self.check_dtype(d, "d")
        self.check_dtype(encoder, "encoder")
        g = self.up_group
        z_e, z_d = self.hr_channel_compressor(encoder), self.lr_channel_compressor(d)
        low, high, z_sample = self._kernel_logits(z_e, z_d)
        mask = self.lowpass_kernels(low)
        if self.semi_conv:
            lr = carafe(d, mask, self.lowpass_kernel, g, self.scale_factor)
        else:
            align = None if self.upsample_mode == "nearest" else self.align_corners
            up = F.interpolate(d, scale_factor=float(self.scale_factor), mode=self.upsample_mode, align_corners=align)
            lr = carafe(up, mask, self.lowpass_kernel, g, 1)
        hr = encoder
        if high is not None:
            high_frequency = encoder - carafe(encoder, self.highpass_kernels(high), self.highpass_kernel, g, 1)
            hr = high_frequency + encoder if self.hr_residual else high_frequency
        if self.feature_resample:
            lr = self.dysampler(z_sample, z_d, lr)
        return mask, hr, lr

    def forward(self, d: Tensor, encoder: Tensor) -> Tensor:
        _, hr, lr = self.parts(d, encoder)
        return hr + lr if self.fusion == "add" else lr

    def extra_repr(self) -> str:
        flags = [
            f"lowpass_kernel={self.lowpass_kernel}",
            f"highpass_kernel={self.highpass_kernel}",
            f"up_group={self.up_group}",
            f"compressed_channels={self.compressed_channels}",
            f"fusion={self.fusion!r}",
            f"feature_resample={self.feature_resample}",
            f"hamming_window={self.hamming_window}",
        ]
        defaults: dict[str, Any] = {
            "comp_feat_upsample": True,
            "use_high_pass": True,
            "hr_residual": True,
            "semi_conv": True,
        }
        flags += [
            f"{name}={getattr(self, name)}" for name, default in defaults.items() if getattr(self, name) != default
        ]
        return ", ".join([super().extra_repr(), *flags])
