"""Independent references for windows sampled at offsets, for tests only.

Written from the formula, not from the library: a tap ``t = a*K + b`` of group ``g`` reads
the input at row ``(y // u) * s + a - p_t + O[2 (g K^2 + t) + 1]`` and column
``(x // u) * s + b - p_l + O[2 (g K^2 + t)]``, bilinearly, each of the four corners outside
the image counting as zero.  Two derivations: an element loop over python floats (values)
and a four-corner gather that autograd differentiates (gradients).
"""

from __future__ import annotations

import math

import torch


def bilinear_zero(x: torch.Tensor, row: float, col: float) -> torch.Tensor:
    """``x[..., row, col]`` (``... x H x W``) by bilinear interpolation, corners outside the image 0."""
    h, w = x.shape[-2:]
    r0, c0 = math.floor(row), math.floor(col)
    fr, fc = row - r0, col - c0
    out = torch.zeros(x.shape[:-2], dtype=torch.float64)
    for r, c, weight in (
        (r0, c0, (1 - fr) * (1 - fc)),
        (r0, c0 + 1, (1 - fr) * fc),
        (r0 + 1, c0, fr * (1 - fc)),
        (r0 + 1, c0 + 1, fr * fc),
    ):
        if 0 <= r < h and 0 <= c < w:
            out = out + weight * x[..., r, c].double()
    return out


def _position(offsets, n, g, k, t, y, x, up, stride, pad):
    a, b = divmod(t, k)
    channel = 2 * (g * k * k + t)
    row = (y // up) * stride + a - pad[0] + float(offsets[n, channel + 1, y, x])
    col = (x // up) * stride + b - pad[1] + float(offsets[n, channel, y, x])
    return row, col


def reassemble_offsets_loop(features, kernels, offsets, k, groups, up=1, stride=1, pad=None):
    """``out[n, c, y, x] = sum_t kernels[n, g K^2 + t, y, x] * bilinear_zero(features[n, c], position of t)``."""
    pad = ((k - 1) // 2,) * 2 if pad is None else pad
    n_, c_, _, _ = features.shape
    ho, wo = kernels.shape[-2:]
    cg = c_ // groups
    f, w_, o = features.detach().double(), kernels.detach().double(), offsets.detach().double()
    out = torch.zeros(n_, c_, ho, wo, dtype=torch.float64)
    for n in range(n_):
        for g in range(groups):
            for y in range(ho):
                for x in range(wo):
                    for t in range(k * k):
                        row, col = _position(o, n, g, k, t, y, x, up, stride, pad)
                        sample = bilinear_zero(f[n, g * cg : (g + 1) * cg], row, col)
                        out[n, g * cg : (g + 1) * cg, y, x] += w_[n, g * k * k + t, y, x] * sample
    return out


def window_similarity_offsets_loop(query, keys, offsets, k, groups, up=1, stride=1, pad=None):
    """``sim[n, g K^2 + t, y, x] = sum_{c in g} query[n, c, y, x] * bilinear_zero(keys[n, c], position of t)``."""
    pad = ((k - 1) // 2,) * 2 if pad is None else pad
    n_, c_, _, _ = keys.shape
    ho, wo = query.shape[-2:]
    cg = c_ // groups
    q, kk, o = query.detach().double(), keys.detach().double(), offsets.detach().double()
    out = torch.zeros(n_, groups * k * k, ho, wo, dtype=torch.float64)
    for n in range(n_):
        for g in range(groups):
            for y in range(ho):
                for x in range(wo):
                    for t in range(k * k):
                        row, col = _position(o, n, g, k, t, y, x, up, stride, pad)
                        sample = bilinear_zero(kk[n, g * cg : (g + 1) * cg], row, col)
                        out[n, g * k * k + t, y, x] = (q[n, g * cg : (g + 1) * cg, y, x] * sample).sum()
    return out


def bilinear_zero_gather(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``x`` (``N x C x H x W``) at real positions ``rows``, ``cols`` (``N x P``), bilinear with
    corners outside the image 0: ``N x C x P``, differentiable in ``x`` and the positions."""
    n, c, h, w = x.shape
    r0, c0 = rows.detach().floor(), cols.detach().floor()
    fr, fc = rows - r0, cols - c0
    flat = torch.cat([x.reshape(n, c, h * w), x.new_zeros(n, c, 1)], dim=2)  # the last column: outside

    def corner(r, q):
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        index = torch.where(inside, r.clamp(0, h - 1) * w + q.clamp(0, w - 1), torch.full_like(r, h * w)).long()
        return flat.gather(2, index[:, None, :].expand(n, c, -1))

    return (
        ((1 - fr) * (1 - fc))[:, None] * corner(r0, c0)
        + ((1 - fr) * fc)[:, None] * corner(r0, c0 + 1)
        + (fr * (1 - fc))[:, None] * corner(r0 + 1, c0)
        + (fr * fc)[:, None] * corner(r0 + 1, c0 + 1)
    )
