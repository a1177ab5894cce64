"""The kernel predictor that CARAFE (:mod:`.carafe`) and CARAFE++ (:mod:`.carafe_down`) share.

Both operators predict their reassembly kernels with a ``channel_compressor`` (1x1 conv
``C -> C_m``, bias, no activation) followed by a ``content_encoder`` (``k_e x k_e`` conv
``C_m -> taps``, bias) and initialise them as mmcv's ``CARAFEPack``.  The helpers below
add the two convolutions as attributes of the operator itself, so the state-dict keys
stay ``channel_compressor.*`` and ``content_encoder.*``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_int, check_odd

__all__ = ["check_kernel_predictor_args", "add_kernel_predictor", "reset_kernel_predictor", "kernel_logits"]


def check_kernel_predictor_args(
    channels: int,
    prefix: str,
    kernel: int,
    group: int,
    encoder_kernel: int,
    compressed_channels: int,
    encoder_dilation: int | None = None,
) -> None:
    """Validate the arguments ``{prefix}_kernel`` (odd), ``{prefix}_group`` (a divisor of
    ``channels``), ``encoder_kernel``, ``encoder_dilation`` and ``compressed_channels``.

    Without ``encoder_dilation`` the encoder kernel must be odd (the encoder pads by
    ``(k_e - 1) // 2``); with it, any ``k_e >= 1`` passes here and the caller checks the
    padding it needs.
    """
    check_odd(kernel, f"{prefix}_kernel")
    check_int(group, f"{prefix}_group", minimum=1)
    if encoder_dilation is None:
        check_odd(encoder_kernel, "encoder_kernel")
    else:
        check_int(encoder_kernel, "encoder_kernel", minimum=1)
        check_int(encoder_dilation, "encoder_dilation", minimum=1)
    check_int(compressed_channels, "compressed_channels", minimum=1)
    if channels % group != 0:
        raise ValueError(f"argument `{prefix}_group`: expected a divisor of channels={channels}, got {group}")


def add_kernel_predictor(
    module: nn.Module,
    channels: int,
    compressed_channels: int,
    taps: int,
    encoder_kernel: int,
    stride: int,
    dilation: int,
) -> None:
    """Give ``module`` its ``channel_compressor`` and its ``content_encoder``: ``taps`` output
    channels, the given stride and dilation, padding ``(k_e - 1) * dilation // 2``."""
    module.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
    module.content_encoder = nn.Conv2d(
        compressed_channels,
        taps,
        encoder_kernel,
        stride=stride,
        padding=(encoder_kernel - 1) * dilation // 2,
        dilation=dilation,
    )


def reset_kernel_predictor(module: nn.Module) -> None:
    """mmcv's initialisation: Xavier-uniform weights and zero biases for both convolutions,
    then the encoder weights drawn from ``N(0, 0.001^2)`` (nearly uniform initial kernels)."""
    compressor, encoder = module.get_submodule("channel_compressor"), module.get_submodule("content_encoder")
    assert isinstance(compressor, nn.Conv2d) and isinstance(encoder, nn.Conv2d)
    for conv in (compressor, encoder):
        nn.init.xavier_uniform_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    nn.init.normal_(encoder.weight, std=0.001)


def kernel_logits(module: nn.Module, x: Tensor) -> Tensor:
    """``content_encoder(channel_compressor(x))``: the kernel logits before any reshuffle or softmax."""
    return module.content_encoder(module.channel_compressor(x))
