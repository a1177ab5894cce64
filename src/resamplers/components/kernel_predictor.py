"""The kernel predictor that CARAFE (:mod:`.carafe`), CARAFE++ (:mod:`.carafe_down`) and DLU share.

These operators predict their reassembly kernels with a ``channel_compressor`` (1x1 conv
``C -> C_m``, bias, no activation) followed by a ``content_encoder`` (``k_e x k_e`` conv
``C_m -> taps``, bias) and initialise them as mmcv's ``CARAFEPack``.  The helpers below
add the two convolutions as attributes of the operator itself, so the state-dict keys
stay ``channel_compressor.*`` and ``content_encoder.*`` (DLU names its encoder
``kernel_space_generator``, as its official code does).
"""

from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_int, check_odd

__all__ = [
    "check_kernel_predictor_args",
    "check_same_size_encoder",
    "add_kernel_predictor",
    "reset_kernel_predictor",
    "kernel_logits",
]


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


def check_same_size_encoder(encoder_kernel: int, encoder_dilation: int) -> None:
    """Raise naming ``encoder_kernel`` unless ``(k_e - 1) * d`` is even: the encoder pads by
    ``(k_e - 1) * d // 2``, which keeps the spatial size only then."""
    if (encoder_kernel - 1) * encoder_dilation % 2 != 0:
        raise ValueError(
            f"argument `encoder_kernel`: (encoder_kernel - 1) * encoder_dilation must be even to keep the "
            f"spatial size, got encoder_kernel={encoder_kernel}, encoder_dilation={encoder_dilation}"
        )


def add_kernel_predictor(
    module: nn.Module,
    channels: int,
    compressed_channels: int,
    taps: int,
    encoder_kernel: int,
    stride: int,
    dilation: int,
    encoder: str = "content_encoder",
) -> None:
    """Give ``module`` its ``channel_compressor`` and its encoder (attribute ``encoder``):
    ``taps`` output channels, the given stride and dilation, padding ``(k_e - 1) * dilation // 2``."""
    module.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
    conv = nn.Conv2d(
        compressed_channels,
        taps,
        encoder_kernel,
        stride=stride,
        padding=(encoder_kernel - 1) * dilation // 2,
        dilation=dilation,
    )
    module.add_module(encoder, conv)


def reset_kernel_predictor(module: nn.Module, encoder: str = "content_encoder") -> None:
    """mmcv's initialisation: Xavier-uniform weights and zero biases for both convolutions,
    then the encoder weights drawn from ``N(0, 0.001^2)`` (nearly uniform initial kernels)."""
    compressor, content_encoder = module.get_submodule("channel_compressor"), module.get_submodule(encoder)
    assert isinstance(compressor, nn.Conv2d) and isinstance(content_encoder, nn.Conv2d)
    for conv in (compressor, content_encoder):
        nn.init.xavier_uniform_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    nn.init.normal_(content_encoder.weight, std=0.001)


def kernel_logits(module: nn.Module, x: Tensor) -> Tensor:
    """``content_encoder(channel_compressor(x))``: the kernel logits before any reshuffle or softmax."""
    return module.content_encoder(module.channel_compressor(x))
