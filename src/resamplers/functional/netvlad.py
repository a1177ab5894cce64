"""NetVLAD aggregation (Arandjelovic et al., CVPR 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature
from ._compute import upcast

__all__ = ["netvlad"]


def netvlad(x: Tensor, weight: Tensor, bias: Tensor | None, centroids: Tensor, normalize_input: bool = True) -> Tensor:
    """NetVLAD: soft-assign every descriptor to ``K`` clusters, sum residuals, normalise.

    With descriptors ``x_n`` (the ``D``-vectors at the ``H*W`` positions, L2-normalised
    first when ``normalize_input``), soft assignment
    ``a_k(x_n) = softmax_k(w_k . x_n + b_k)`` (a 1x1 convolution) and centroids ``c_k``:

    ``V[k, d] = sum_n a_k(x_n) (x_n[d] - c_k[d])``

    computed as ``a x^T - (sum_n a_k) c_k`` (no ``K x D x HW`` temporary), then
    intra-normalisation (L2 over ``d`` for each ``k``), flattening cluster-major
    (``k * D + d``) and a global L2 normalisation, as Nanne/pytorch-NetVlad.  Computed in
    float32 for half and bfloat16 inputs.

    Args:
        x: ``N x D x H x W``.
        weight: ``K x D x 1 x 1`` assignment weights.
        bias: ``K`` assignment biases or ``None``.
        centroids: ``K x D``.
        normalize_input: L2-normalise each descriptor first.

    Shape:
        ``N x D x H x W`` -> ``N x K*D``.

    Example:
        >>> x = torch.randn(2, 8, 5, 7)
        >>> v = netvlad(x, torch.randn(4, 8, 1, 1), None, torch.randn(4, 8))
        >>> v.shape, torch.allclose(v.norm(dim=1), torch.ones(2))
        (torch.Size([2, 32]), True)
    """
    check_feature(x, "x", channels=centroids.shape[1])
    dtype = x.dtype
    x = upcast(x)
    weight, centroids = weight.to(x.dtype), centroids.to(x.dtype)
    bias = None if bias is None else bias.to(x.dtype)
    if normalize_input:
        x = F.normalize(x, p=2, dim=1)
    assignment = F.conv2d(x, weight, bias).flatten(2).softmax(dim=1)  # N K HW
    descriptors = x.flatten(2)  # N D HW
    vlad = torch.bmm(assignment, descriptors.transpose(1, 2)) - assignment.sum(dim=2, keepdim=True) * centroids
    vlad = F.normalize(vlad, p=2, dim=2).flatten(1)
    return F.normalize(vlad, p=2, dim=1).to(dtype)
