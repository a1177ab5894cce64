"""The common formulations that ``resamplers bench`` times our operators against.

These are the unfold-based implementations found in blog posts and research forks (for
CARAFE, the one in the seed notes: unfold the low-resolution map into ``k*k`` patches and
multiply each pixel's patches by its ``k*k x s*s`` kernel block).  They exist only as
benchmark baselines; the library never calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..guided.featup_jbu import FIXUP_WEIGHT

__all__ = [
    "Baseline",
    "BASELINES",
    "exp_ratio_soft_pool",
    "per_cluster_netvlad",
    "unfold_a2u_downsample",
    "unfold_a2u_upsample",
    "unfold_matmul_carafe",
    "unfold_repeat_carafe",
    "unfold_strided_reassembly",
    "unfold_window_similarity",
]


def unfold_matmul_carafe(x: Tensor, masks: Tensor, kernel_size: int, groups: int, scale: int) -> Tensor:
    """CARAFE by ``F.unfold`` + batched ``matmul`` (materialises ``N*C*k^2*H*W``)."""
    n, c, h, w = x.shape
    k2 = kernel_size * kernel_size
    blocks = masks.reshape(n, groups, k2, h, scale, w, scale).permute(0, 1, 3, 5, 2, 4, 6)
    blocks = blocks.reshape(n, groups, h, w, k2, scale * scale)
    patches = F.unfold(x, kernel_size, padding=kernel_size // 2).reshape(n, groups, c // groups, k2, h, w)
    patches = patches.permute(0, 1, 4, 5, 2, 3)  # n G h w Cg k2
    out = torch.matmul(patches, blocks)  # n G h w Cg s2
    out = out.reshape(n, groups, h, w, c // groups, scale, scale).permute(0, 1, 4, 2, 5, 3, 6)
    return out.reshape(n, c, h * scale, w * scale)


def unfold_strided_reassembly(x: Tensor, kernels: Tensor, kernel_size: int, groups: int, stride: int) -> Tensor:
    """CARAFE++ downsampling by ``F.unfold(x, k, padding=k//2, stride=s)`` (materialises ``N*C*k^2*H'*W'``)."""
    n, c = x.shape[:2]
    h_out, w_out = kernels.shape[-2:]
    k2 = kernel_size * kernel_size
    patches = F.unfold(x, kernel_size, padding=kernel_size // 2, stride=stride)
    patches = patches.reshape(n, groups, c // groups, k2, h_out, w_out)
    return (patches * kernels.reshape(n, groups, 1, k2, h_out, w_out)).sum(3).reshape(n, c, h_out, w_out)


def unfold_repeat_carafe(x: Tensor, masks: Tensor, kernel_size: int, scale: int) -> Tensor:
    """CARAFE (one group) the way pure-PyTorch FADE ports do it: unfold at low resolution,
    repeat every patch to the ``s x s`` output block, weighted sum (materialises ``N*C*k^2*s^2*H*W``)."""
    n, c, h, w = x.shape
    k2 = kernel_size * kernel_size
    patches = F.unfold(x, kernel_size, padding=kernel_size // 2).reshape(n, c, k2, h, w)
    patches = patches.repeat_interleave(scale, dim=3).repeat_interleave(scale, dim=4)
    return torch.einsum("nckhw,nkhw->nchw", patches, masks)


def unfold_window_similarity(query: Tensor, keys: Tensor, kernel_size: int, scale: int) -> Tensor:
    """SAPA's similarity in its unfold form: unfold the keys, repeat to the query resolution,
    inner products over channels (materialises ``N*d*k^2*s^2*H*W``)."""
    n, d, h, w = keys.shape
    k2 = kernel_size * kernel_size
    windows = F.unfold(keys, kernel_size, padding=kernel_size // 2).reshape(n, d, k2, h, w)
    windows = windows.repeat_interleave(scale, dim=3).repeat_interleave(scale, dim=4)
    return (query[:, :, None] * windows).sum(1)


def unfold_a2u_downsample(x: Tensor, kernels: Tensor, kernel_size: int, groups: int) -> Tensor:
    """A2U's down reassembly as its CPU re-implementations write it: pad, ``F.unfold`` with
    stride 2, multiply by the kernels and sum (materialises ``N*C*K^2*H/2*W/2``)."""
    n, c, h, w = x.shape
    k, pad = kernel_size, (kernel_size - 2) // 2
    patches = F.unfold(F.pad(x, (pad, k - pad - 1, pad, k - pad - 1)), k, stride=2)
    patches = patches.reshape(n, groups, c // groups, k * k, h // 2, w // 2)
    return (patches * kernels.reshape(n, groups, 1, k * k, h // 2, w // 2)).sum(3).reshape(n, c, h // 2, w // 2)


def unfold_a2u_upsample(d: Tensor, kernels: Tensor, kernel_size: int, groups: int) -> Tensor:
    """A2U's up reassembly as ``F.unfold`` + ``repeat_interleave`` to the high resolution +
    multiply-sum (materialises ``N*C*k^2*2H*2W``)."""
    n, c, h, w = d.shape
    k = kernel_size
    patches = F.unfold(d, k, padding=(k - 1) // 2).reshape(n, groups, c // groups, k * k, h, w)
    patches = patches.repeat_interleave(2, dim=4).repeat_interleave(2, dim=5)
    return (patches * kernels.reshape(n, groups, 1, k * k, 2 * h, 2 * w)).sum(3).reshape(n, c, 2 * h, 2 * w)


@dataclass(frozen=True)
class Baseline:
    """``run(module, *inputs)`` computes ``module(*inputs)`` with the common formulation."""

    description: str
    run: Callable[..., Tensor]


def _carafe_baseline(module: nn.Module, x: Tensor) -> Tensor:
    return unfold_matmul_carafe(x, module.kernels(x), module.up_kernel, module.up_group, module.scale_factor)


def _carafe_down_baseline(module: nn.Module, x: Tensor) -> Tensor:
    return unfold_strided_reassembly(x, module.kernels(x), module.down_kernel, module.down_group, module.scale_factor)


def _fade_baseline(module: nn.Module, d: Tensor, encoder: Tensor) -> Tensor:
    reassembled = unfold_repeat_carafe(d, module.kernels(d, encoder), module.up_kernel, module.scale_factor)
    return module.combine(reassembled, d, encoder)


def _sapa_baseline(module: nn.Module, d: Tensor, encoder: Tensor) -> Tensor:
    q, k = module.queries_and_keys(d, encoder)
    attn = unfold_window_similarity(q, k, module.up_kernel, module.scale_factor).softmax(1)
    return unfold_matmul_carafe(d, attn, module.up_kernel, 1, module.scale_factor)


def _indexnet_down_baseline(module: nn.Module, x: Tensor) -> Tensor:
    encoder_index, _ = module.indices(x)
    return 4 * F.avg_pool2d(encoder_index * x, 2)


def _indexnet_baseline(module: nn.Module, x: Tensor) -> Tensor:
    encoder_index, decoder_index = module.indices(x)
    y = 4 * F.avg_pool2d(encoder_index * x, 2)
    return decoder_index * F.interpolate(y, size=x.shape[-2:], mode="nearest")


def _a2u_down_baseline(module: nn.Module, x: Tensor) -> Tensor:
    down_kernels, _ = module.kernels(x)
    return unfold_a2u_downsample(x, down_kernels, module.down_kernel, module.groups)


def _a2u_baseline(module: nn.Module, x: Tensor) -> Tensor:
    down_kernels, up_kernels = module.kernels(x)
    y = unfold_a2u_downsample(x, down_kernels, module.down_kernel, module.groups)
    return unfold_a2u_upsample(y, up_kernels, module.up_kernel, module.groups)


def _maxunpool_baseline(module: nn.Module, x: Tensor) -> Tensor:
    s = module.scale_factor
    y, positions = F.max_pool2d(x, s, return_indices=True)
    return F.max_unpool2d(y, positions, s, output_size=x.shape[-2:])


def exp_ratio_soft_pool(x: Tensor, kernel_size: int, stride: int) -> Tensor:
    """SoftPool as ``avg_pool(x e^x) / avg_pool(e^x)`` per channel, the paper's formula without
    a shift (the official CPU path has this form, with ``e^x`` summed over channels); its
    exponentials overflow for activations above ~88 in float32."""
    e = torch.exp(x)
    return F.avg_pool2d(x * e, kernel_size, stride) / F.avg_pool2d(e, kernel_size, stride)


def _softpool_baseline(module: nn.Module, x: Tensor) -> Tensor:
    return exp_ratio_soft_pool(x, module.kernel_size, module.stride)


def per_cluster_netvlad(module: nn.Module, x: Tensor) -> Tensor:
    """NetVLAD with a loop over clusters that builds each ``C x HW`` residual (the reference
    implementation's memory-saving loop), instead of one matrix product."""
    n, c = x.shape[:2]
    if module.normalize_input:
        x = F.normalize(x, dim=1)
    assign = F.conv2d(x, module.conv.weight, module.conv.bias).flatten(2).softmax(dim=1)
    flat = x.flatten(2)
    vlad = torch.stack(
        [
            ((flat - module.centroids[k][None, :, None]) * assign[:, k : k + 1]).sum(-1)
            for k in range(module.num_clusters)
        ],
        dim=1,
    )
    return F.normalize(F.normalize(vlad, dim=2).flatten(1), dim=1)


def _dlu_baseline(module: nn.Module, x: Tensor) -> Tensor:
    return unfold_matmul_carafe(x, module.kernels(x), module.up_kernel, module.up_group, module.scale_factor)


def _jbu_stage_unfold(stage: nn.Module, x: Tensor, guidance: Tensor) -> Tensor:
    """One JBU stage with its window product written as ``F.unfold`` of the padded bicubic
    upsampling times the kernels (what FeatUp's compiled ``adaptive_conv`` computes)."""
    kernels = stage.kernels(x, guidance)
    high = F.interpolate(x, size=guidance.shape[-2:], mode="bicubic", align_corners=False)
    padded = F.pad(high, [stage.radius] * 4, mode="reflect")
    n, c, h, w = high.shape
    windows = F.unfold(padded, stage.diameter).view(n, c, stage.diameter**2, h, w)
    return (windows * kernels[:, None]).sum(2)


def _jbu_stage_baseline(module: nn.Module, d: Tensor, guidance: Tensor) -> Tensor:
    return _jbu_stage_unfold(module, d, guidance)


def _jbu_stack_baseline(module: nn.Module, d: Tensor, guidance: Tensor) -> Tensor:
    x = d
    for k, stage in enumerate(module.stages(), start=1):
        x = _jbu_stage_unfold(stage, x, module.stage_guidance(guidance, x, k))
    return module.fixup_proj(x) * FIXUP_WEIGHT + x


def _core_reassembly_baseline(module: nn.Module, features: Tensor, kernels: Tensor) -> Tensor:
    return unfold_matmul_carafe(features, kernels, module.kernel_size, 1, module.scale_factor)


def _core_similarity_baseline(module: nn.Module, query: Tensor, keys: Tensor) -> Tensor:
    return unfold_window_similarity(query, keys, module.kernel_size, module.scale_factor)


BASELINES: dict[str, Baseline] = {
    "core:reassemble": Baseline("unfold+matmul reassembly", _core_reassembly_baseline),
    "core:window_similarity": Baseline("unfold+repeat window similarity", _core_similarity_baseline),
    "upsampler:carafe": Baseline("unfold+matmul CARAFE (seed 001)", _carafe_baseline),
    "downsampler:carafe": Baseline("unfold(stride=s) CARAFE++ down (unofficial ports)", _carafe_down_baseline),
    "upsampler:fade": Baseline("unfold+repeat+einsum CARAFE (FADE's pure-PyTorch port)", _fade_baseline),
    "upsampler:sapa": Baseline("unfold similarity + unfold+matmul reassembly (SAPA unfold form)", _sapa_baseline),
    # Guided pairs are timed as the round trip up(*down(x)).
    **{
        f"pair:{name}": Baseline("official 4*avg_pool2d(I_en*x) and I_de*interpolate(d)", _indexnet_baseline)
        for name in ("indexnet", "indexnet_hin", "indexnet_m2o", "indexnet_o2o")
    },
    "downsampler:indexnet": Baseline("official 4*avg_pool2d(I_en*x)", _indexnet_down_baseline),
    "pair:a2u": Baseline("unfold (+repeat_interleave) A2U reassembly", _a2u_baseline),
    "downsampler:a2u": Baseline("unfold A2U down reassembly", _a2u_down_baseline),
    "upsampler:dlu": Baseline("unfold+matmul CARAFE of DLU's kernels (official: mmcv's CUDA op)", _dlu_baseline),
    "upsampler:featup_jbu_stage": Baseline(
        "unfold window product (official: compiled adaptive_conv)", _jbu_stage_baseline
    ),
    "upsampler:featup_jbu": Baseline("unfold window products (official: compiled adaptive_conv)", _jbu_stack_baseline),
    "pair:maxunpool": Baseline("F.max_pool2d(return_indices) + F.max_unpool2d", _maxunpool_baseline),
    "downsampler:softpool": Baseline("SoftPool as avg_pool(x e^x) / avg_pool(e^x), unshifted", _softpool_baseline),
    "pool:netvlad": Baseline("NetVLAD with a per-cluster residual loop", per_cluster_netvlad),
}
