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

__all__ = [
    "Baseline",
    "BASELINES",
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


@dataclass(frozen=True)
class Baseline:
    """``run(module, x)`` computes ``module(x)`` with the common formulation."""

    description: str
    run: Callable[[nn.Module, Tensor], Tensor]


def _carafe_baseline(module: nn.Module, x: Tensor) -> Tensor:
    return unfold_matmul_carafe(x, module.kernels(x), module.up_kernel, module.up_group, module.scale_factor)


def _carafe_down_baseline(module: nn.Module, x: Tensor) -> Tensor:
    return unfold_strided_reassembly(x, module.kernels(x), module.down_kernel, module.down_group, module.scale_factor)


def _fade_baseline(module: nn.Module, x: Tensor) -> Tensor:
    d, guide = module.down(x)
    encoder = guide.tensors["encoder"]
    reassembled = unfold_repeat_carafe(d, module.kernels(d, encoder), module.up_kernel, module.scale_factor)
    return module.combine(reassembled, d, encoder)


def _sapa_baseline(module: nn.Module, x: Tensor) -> Tensor:
    d, guide = module.down(x)
    q, k = module.queries_and_keys(d, guide.tensors["encoder"])
    attn = unfold_window_similarity(q, k, module.up_kernel, module.scale_factor).softmax(1)
    return unfold_matmul_carafe(d, attn, module.up_kernel, 1, module.scale_factor)


BASELINES: dict[str, Baseline] = {
    "upsampler:carafe": Baseline("unfold+matmul CARAFE (seed 001)", _carafe_baseline),
    "downsampler:carafe": Baseline("unfold(stride=s) CARAFE++ down (unofficial ports)", _carafe_down_baseline),
    "pair:fade": Baseline("unfold+repeat+einsum CARAFE (FADE's pure-PyTorch port)", _fade_baseline),
    "pair:sapa": Baseline("unfold similarity + unfold+matmul reassembly (SAPA unfold form)", _sapa_baseline),
}
