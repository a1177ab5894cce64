"""FADE: fusing the assets of decoder and encoder (Lu et al., ECCV 2022 / IJCV 2024).

FADE predicts one ``k x k`` reassembly kernel per high-resolution pixel from both the
high-resolution encoder feature and the low-resolution decoder feature ("semi-shift"
convolution), reassembles the decoder feature with the library's CARAFE core, and
optionally gates between that and the encoder feature.  The module follows the official
``FADE_L2H.py`` (layers, initialisation, state-dict keys); the ECCV ``FADE_H2L.py``
computes the same kernels (for square inputs only) and its state dicts load too.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int, check_odd
from ..functional import softmax_kernels
from ..registry import register_upsampler
from .base import FeatureGuidedUpsampler

__all__ = ["FADE", "SemiShift"]

# A 3x3 window keeps the shared matrix's exports small; k = 5 is tested in test_fade.py.
_EXAMPLE = {"channels": 8, "up_kernel": 3}

# Key names of the ECCV "H2L" implementation -> the IJCV "L2H" names used here.
_H2L_KEYS = {
    "kernel_generator.conv1_en.weight": "ker_generator.compressor_en.weight",
    "kernel_generator.conv1_en.bias": "ker_generator.compressor_en.bias",
    "kernel_generator.conv1_de.weight": "ker_generator.compressor_de.weight",
    "kernel_generator.conv2_kernels": "ker_generator.content_encoder.weight",
    "kernel_generator.conv2_bias": "ker_generator.content_encoder.bias",
}


def _nearest_up(x: Tensor, scale_factor: int) -> Tensor:
    return F.interpolate(x, scale_factor=float(scale_factor), mode="nearest")


class SemiShift(nn.Module):
    """FADE's kernel logits: one convolution applied to both resolutions.

    ``logits = content_encoder(compressor_en(en)) + up(content_encoder(compressor_de(de)))``
    with ``up`` nearest upsampling by ``s``.  The same ``content_encoder`` (bias included)
    runs on both maps, so its bias is added twice, as in the official code.  For FADE the
    compressors map to ``embedding_dim`` channels and the encoder is a full ``k_e x k_e``
    convolution; for FADE-Lite (``lite=True``) the compressors map straight to ``k^2``
    channels and the encoder is depthwise.

    Args:
        encoder_channels: ``C_en``.
        decoder_channels: ``C_de``.
        out_channels: ``k^2``.
        embedding_dim: compressed channels (ignored when ``lite``).
        encoder_kernel: ``k_e`` (odd; padding ``k_e // 2``).
        lite: FADE-Lite layers.

    Shape:
        ``en``: ``N x C_en x sh x sw``, ``de``: ``N x C_de x h x w`` -> ``N x k^2 x sh x sw``.

    Example:
        >>> semi_shift = SemiShift(16, 8, out_channels=25)
        >>> semi_shift(torch.randn(1, 16, 6, 8), torch.randn(1, 8, 3, 4), 2).shape
        torch.Size([1, 25, 6, 8])
    """

    def __init__(
        self,
        encoder_channels: int,
        decoder_channels: int,
        out_channels: int,
        embedding_dim: int = 64,
        encoder_kernel: int = 3,
        lite: bool = False,
    ) -> None:
        super().__init__()
        mid = out_channels if lite else embedding_dim
        self.compressor_en = nn.Conv2d(encoder_channels, mid, 1)
        self.compressor_de = nn.Conv2d(decoder_channels, mid, 1, bias=False)
        self.content_encoder = nn.Conv2d(
            mid, out_channels, encoder_kernel, padding=encoder_kernel // 2, groups=out_channels if lite else 1
        )

    def forward(self, en: Tensor, de: Tensor, scale_factor: int) -> Tensor:
        high = self.content_encoder(self.compressor_en(en))
        return high + _nearest_up(self.content_encoder(self.compressor_de(de)), scale_factor)


@register_upsampler(
    "fade", example=_EXAMPLE, summary="FADE: kernels from encoder + decoder (semi-shift conv), CARAFE reassembly, gate"
)
@register_upsampler(
    "fade_no_gate", defaults={"gate": False}, example=_EXAMPLE, summary="FADE without its gate (harness gating=False)"
)
@register_upsampler(
    "fade_lite",
    defaults={"lite": True},
    example=_EXAMPLE,
    summary="FADE-Lite: compressors to k^2, depthwise encoder, gate",
)
class FADE(FeatureGuidedUpsampler):
    """FADE upsampling of a decoder feature guided by the encoder feature of the same stage.

    ``forward(d, encoder)`` (in a pair: ``up(d, guide)`` with ``guide.encoder``) with
    encoder feature ``en`` (``N x C x sh x sw``) and decoder feature ``de = d``
    (``N x C_d x h x w``):

    1. kernel logits from :class:`SemiShift` (``N x k^2 x sh x sw``), softmax over the
       ``k^2`` taps (input dtype);
    2. ``r = carafe(de, kernels, k, 1, s)``: CARAFE reassembly (one group, window centred on
       low-resolution pixel ``floor(p / s)``, zero padding);
    3. with ``gate=True``: ``g = sigmoid(up(gate_generator.conv(de)))`` (1x1 conv to one
       channel, nearest upsampling by ``s``) and output ``g * en + (1 - g) * r``;
       otherwise output ``r``.  When ``C_d != C`` the gated term uses ``aligner(en)``, a 1x1
       conv ``C -> C_d`` (the official code's commented-out ``Aligner``; an extension: the
       published models all have ``C_d == C``).

    Initialisation as the official code: Xavier-uniform weights and zero biases.  47,514
    parameters at ``C = 256`` (47,257 without the gate; FADE-Lite 13,332).  The official
    code hard-codes ``s = 2`` in its nearest upsampling; here every step uses ``s``.

    Checkpoints: official state dicts load directly (``gate_generator.conv.*``,
    ``ker_generator.compressor_en.*``, ``ker_generator.compressor_de.weight``,
    ``ker_generator.content_encoder.*``), and so do those of the ECCV ``FADE_H2L.py``
    (``kernel_generator.conv1_en`` ... ``conv2_bias``), renamed on load.  Unlike
    ``FADE_H2L.py`` any height and width work.

    Args:
        channels: decoder channels ``C_d`` (input ``d``).
        scale_factor: integer ``s >= 1``.
        up_kernel: reassembly kernel ``k`` (odd).
        gate: mix the encoder feature back in through the predicted gate.
        lite: FADE-Lite kernel generator.
        embedding_dim: compressed channels of FADE's kernel generator.
        encoder_kernel: kernel ``k_e`` of the content encoder (odd).
        guide_channels: encoder channels ``C`` (input ``encoder``; default ``C_d``).

    Shape:
        ``d``: ``N x C_d x h x w``, ``encoder``: ``N x C x sh x sw`` -> ``N x C_d x sh x sw``.

    Example:
        >>> fade = FADE(channels=16, scale_factor=2, guide_channels=8)
        >>> fade(torch.randn(1, 16, 4, 6), torch.randn(1, 8, 8, 12)).shape
        torch.Size([1, 16, 8, 12])
        >>> pair = resamplers.create_pair("fade", channels=16)   # with 2x2 max pooling as its down step
        >>> y, guide = pair.down(torch.randn(1, 16, 8, 12))
        >>> pair.up(y, guide).shape
        torch.Size([1, 16, 8, 12])
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        up_kernel: int = 5,
        gate: bool = True,
        lite: bool = False,
        embedding_dim: int = 64,
        encoder_kernel: int = 3,
        guide_channels: int | None = None,
    ) -> None:
        super().__init__(channels, scale_factor, guide_channels)
        check_odd(up_kernel, "up_kernel")
        check_int(embedding_dim, "embedding_dim", minimum=1)
        check_odd(encoder_kernel, "encoder_kernel")
        for value, name in ((gate, "gate"), (lite, "lite")):
            if not isinstance(value, bool):
                raise TypeError(f"argument `{name}`: expected a bool, got {value!r}")
        self.up_kernel, self.gate, self.lite = up_kernel, gate, lite
        c_en, c_de = self.guide_channels, self.channels
        self.ker_generator = SemiShift(c_en, c_de, up_kernel * up_kernel, embedding_dim, encoder_kernel, lite)
        if gate:
            self.gate_generator = nn.Module()
            self.gate_generator.conv = nn.Conv2d(c_de, 1, 1)
            if c_en != c_de:
                self.aligner = nn.Conv2d(c_en, c_de, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        convs: list[nn.Module] = [
            self.ker_generator.compressor_en,
            self.ker_generator.compressor_de,
            self.ker_generator.content_encoder,
        ]
        if self.gate:
            convs.append(self.get_submodule("gate_generator.conv"))
            if hasattr(self, "aligner"):
                convs.append(self.get_submodule("aligner"))
        for conv in convs:
            assert isinstance(conv, nn.Conv2d)
            nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def kernels(self, d: Tensor, encoder: Tensor) -> Tensor:
        """Reassembly kernels ``N x k^2 x sh x sw`` (CARAFE layout, one group)."""
        return softmax_kernels(self.ker_generator(encoder, d, self.scale_factor), 1)

    def combine(self, reassembled: Tensor, d: Tensor, encoder: Tensor) -> Tensor:
        """The gate step: ``g * en + (1 - g) * reassembled`` (``reassembled`` when ungated)."""
        if not self.gate:
            return reassembled
        g = _nearest_up(self.gate_generator.conv(d), self.scale_factor).sigmoid()
        skip = self.aligner(encoder) if hasattr(self, "aligner") else encoder
        return g * skip + (1 - g) * reassembled

    def forward(self, d: Tensor, encoder: Tensor) -> Tensor:
        return self.combine(self.reassemble(d, encoder), d, encoder)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for old, new in _H2L_KEYS.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, up_kernel={self.up_kernel}, gate={self.gate}, lite={self.lite}"
