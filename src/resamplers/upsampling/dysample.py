"""DySample: learning to upsample by learning to sample (Liu et al., ICCV 2023).

The module reproduces the official ``dysample.py`` (tiny-smart/dysample): layers,
initialisation, channel layouts and state-dict keys (``offset.*``, ``scope.weight``,
``init_pos``), so official checkpoints load with ``load_state_dict`` and give the same
output.  It differs in one place on purpose: the sampling grid is built from the input's
shape with traceable ops (:func:`resamplers.functional.dynamic_sample`), whereas the
official code bakes the export-time height and width into an ONNX graph as constants,
which gives wrong output at any other size.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_int
from ..base import Upsampler
from ..functional.dynamic_sampling import dynamic_sample, sub_pixel_positions
from ..registry import register_upsampler

__all__ = ["DySample"]

_EXAMPLE = {"channels": 8}


@register_upsampler(
    "dysample",
    example=_EXAMPLE,
    summary="DySample: predicted offsets, bilinear point sampling (style lp or pl, dyscope; default lp, static)",
)
@register_upsampler(
    "dysample_plus",
    defaults={"style": "lp", "dyscope": True},
    example=_EXAMPLE,
    summary="DySample+ (style lp, dynamic scope)",
)
@register_upsampler(
    "dysample_s",
    defaults={"style": "pl", "dyscope": False},
    example=_EXAMPLE,
    summary="DySample-S (style pl, static scope)",
)
@register_upsampler(
    "dysample_s_plus",
    defaults={"style": "pl", "dyscope": True},
    example=_EXAMPLE,
    summary="DySample-S+ (style pl, dynamic scope)",
)
class DySample(Upsampler):
    """DySample upsampler, equivalent to the official ``DySample`` module.

    Offsets (in input pixel units, ``2*G*s^2`` channels laid out ``(xy, G, s, s)``, x first):

    * ``style='lp'`` (linear, then pixel shuffle): ``O = offset(x) * 0.25 + init_pos``
      with ``offset = Conv2d(C, 2*G*s^2, 1)``;
    * ``style='pl'`` (pixel shuffle, then linear): ``O = pixel_unshuffle(offset(x'), s) *
      0.25 + init_pos`` with ``x' = pixel_shuffle(x, s)`` and ``offset = Conv2d(C/s^2, 2*G, 1)``;
    * ``dyscope=True`` replaces the static factor 0.25 by ``sigmoid(scope(.)) * 0.5`` with
      ``scope`` a bias-free convolution shaped like ``offset`` (the "+" variants).

    ``init_pos`` (a persistent buffer) holds :func:`~resamplers.functional.sub_pixel_positions`,
    so zero offsets give bilinear upsampling.  Output pixel ``(s*h + i, s*w + j)`` of the
    channels in group ``g`` (contiguous blocks of ``C / G``) is the input sampled
    bilinearly at ``(w, h) + O[:, (., g, i, j), h, w]``, borders replicated
    (``grid_sample``, ``align_corners=False``, ``padding_mode='border'``).  Output dtype is
    the input dtype.

    Initialisation as the official code: ``offset`` weights ``N(0, 0.001^2)`` and zero bias,
    ``scope`` weights zero (the scope factor starts at 0.25).  8,224 parameters for
    ``style='lp'`` at ``C = 256``, ``s = 2``, ``G = 4`` (16,416 with ``dyscope``; 520 and
    1,032 for ``'pl'``).

    Checkpoints: the official state dict loads as is.  Copies whose ``scope`` carries a
    bias (the segmentation/detection harnesses kept ``scope.bias``) load too: the module
    adds the bias parameter when the state dict has one, and a bias-free state dict sets
    an existing scope bias to zero.

    Args:
        channels: input channels ``C`` (a multiple of ``groups``; for ``'pl'`` also of ``s^2``).
        scale_factor: integer ``s >= 1``.
        style: ``'lp'`` or ``'pl'``.
        groups: sampling groups ``G``.
        dyscope: dynamic scope factor (DySample+ / DySample-S+).

    Shape:
        ``N x C x H x W`` -> ``N x C x sH x sW``.

    Example:
        >>> up = DySample(channels=16, scale_factor=2)
        >>> up(torch.randn(2, 16, 5, 7)).shape
        torch.Size([2, 16, 10, 14])
    """

    def __init__(
        self, channels: int, scale_factor: int = 2, style: str = "lp", groups: int = 4, dyscope: bool = False
    ) -> None:
        super().__init__(channels, scale_factor)
        check_choice(style, "style", ["lp", "pl"])
        check_int(groups, "groups", minimum=1)
        if not isinstance(dyscope, bool):
            raise TypeError(f"argument `dyscope`: expected a bool, got {dyscope!r}")
        if channels % groups != 0:
            raise ValueError(f"argument `groups`: expected a divisor of channels={channels}, got {groups}")
        s2 = scale_factor * scale_factor
        if style == "pl" and channels % s2 != 0:
            raise ValueError(
                f"argument `channels`: style 'pl' pixel-shuffles the input, so channels must be a multiple of "
                f"scale_factor**2 = {s2}, got {channels}"
            )
        self.style, self.groups, self.dyscope = style, groups, dyscope
        in_channels, out_channels = (channels // s2, 2 * groups) if style == "pl" else (channels, 2 * groups * s2)
        self.offset = nn.Conv2d(in_channels, out_channels, 1)
        if dyscope:
            self.scope = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("init_pos", sub_pixel_positions(scale_factor, groups))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.offset.weight, std=0.001)
        if self.offset.bias is not None:
            nn.init.zeros_(self.offset.bias)
        if self.dyscope:
            nn.init.zeros_(self.scope.weight)
            if self.scope.bias is not None:
                nn.init.zeros_(self.scope.bias)

    def offsets(self, x: Tensor) -> Tensor:
        """Sampling offsets ``O`` (``init_pos`` included), ``N x 2Gs^2 x H x W``."""
        s = self.scale_factor
        source = F.pixel_shuffle(x, s) if self.style == "pl" else x
        raw = self.offset(source)
        if self.dyscope:
            raw = raw * self.scope(source).sigmoid()
        if self.style == "pl":
            raw = F.pixel_unshuffle(raw, s)
        return raw * (0.5 if self.dyscope else 0.25) + self.init_pos

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return dynamic_sample(x, self.offsets(x), self.scale_factor, self.groups)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Harness copies of DySample give `scope` a bias; the official file dropped it.
        if self.dyscope:
            key = prefix + "scope.bias"
            if key in state_dict and self.scope.bias is None:
                self.scope.bias = nn.Parameter(self.scope.weight.new_zeros(self.scope.out_channels))
            elif key not in state_dict and self.scope.bias is not None:
                state_dict[key] = self.scope.bias.detach().new_zeros(self.scope.out_channels)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, style={self.style!r}, groups={self.groups}, dyscope={self.dyscope}"
