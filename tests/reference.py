"""Independent references written from the formulas, for tests only.

Nothing here calls the library: these loops and index tables are the specification the
library's fast paths are checked against.
"""
from __future__ import annotations

import torch


def reassemble_loop(
    x: torch.Tensor, w: torch.Tensor, k: int, groups: int, up: int = 1, stride: int = 1, pad: tuple[int, int] | None = None
) -> torch.Tensor:
    """Slow loop: ``out[n,c,y,x] = sum_{a,b} w[n, g k^2 + a k + b, y, x] x[n, c, (y//up)*stride + a - pt, ...]``."""
    pt, pl = ((k - 1) // 2, (k - 1) // 2) if pad is None else pad
    n_, c_, h, wd = x.shape
    ho, wo = w.shape[-2:]
    out = torch.zeros(n_, c_, ho, wo, dtype=torch.float64)
    xd, wdd = x.double(), w.double()
    cg = c_ // groups
    for n in range(n_):
        for c in range(c_):
            g = c // cg
            for y in range(ho):
                for xx in range(wo):
                    acc = 0.0
                    for a in range(k):
                        r = (y // up) * stride + a - pt
                        if not 0 <= r < h:
                            continue
                        for b in range(k):
                            q = (xx // up) * stride + b - pl
                            if 0 <= q < wd:
                                acc += float(wdd[n, g * k * k + a * k + b, y, xx] * xd[n, c, r, q])
                    out[n, c, y, xx] = acc
    return out.to(x.dtype)


def carafe_gather(x: torch.Tensor, masks: torch.Tensor, k: int, groups: int, scale: int) -> torch.Tensor:
    """CARAFE as one differentiable gather + einsum over an explicit source-index table.

    A second, vectorised derivation of mmcv's formula (used for gradients): for every
    output pixel and tap the table holds the flat source index, or an index into an extra
    zero column when the tap falls outside the image.
    """
    n, c, h, w = x.shape
    ho, wo = h * scale, w * scale
    r = (k - 1) // 2
    ys = torch.arange(ho).div(scale, rounding_mode="floor")
    xs = torch.arange(wo).div(scale, rounding_mode="floor")
    taps = torch.arange(k) - r
    src_y = ys[:, None] + taps[None, :]  # ho x k
    src_x = xs[:, None] + taps[None, :]  # wo x k
    valid = (src_y[:, None, :, None] >= 0) & (src_y[:, None, :, None] < h) & (src_x[None, :, None, :] >= 0) & (
        src_x[None, :, None, :] < w
    )  # ho x wo x k(dy) x k(dx)
    flat = src_y.clamp(0, h - 1)[:, None, :, None] * w + src_x.clamp(0, w - 1)[None, :, None, :]
    flat = torch.where(valid, flat, torch.full_like(flat, h * w))  # index of the zero column
    xz = torch.cat([x.reshape(n, c, h * w), x.new_zeros(n, c, 1)], dim=2)
    gathered = xz[:, :, flat.reshape(-1)].reshape(n, c, ho, wo, k * k)  # tap index dy*k + dx
    m = masks.reshape(n, groups, k * k, ho, wo).permute(0, 1, 3, 4, 2)  # n G ho wo k2
    gathered = gathered.reshape(n, groups, c // groups, ho, wo, k * k)
    return torch.einsum("ngchwt,nghwt->ngchw", gathered, m).reshape(n, c, ho, wo)


def bilinear_point_sample(x: torch.Tensor, row: float, col: float) -> torch.Tensor:
    """``x[..., row, col]`` by bilinear interpolation, integer coordinates at pixel centres,
    the position clamped to ``[0, H - 1] x [0, W - 1]`` (replicated border)."""
    h, w = x.shape[-2:]
    row = min(max(row, 0.0), h - 1.0)
    col = min(max(col, 0.0), w - 1.0)
    r0, c0 = int(row // 1), int(col // 1)
    r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
    fr, fc = row - r0, col - c0
    return (
        (1 - fr) * (1 - fc) * x[..., r0, c0]
        + (1 - fr) * fc * x[..., r0, c1]
        + fr * (1 - fc) * x[..., r1, c0]
        + fr * fc * x[..., r1, c1]
    )


def dynamic_sample_loop(x: torch.Tensor, offsets: torch.Tensor, scale: int, groups: int) -> torch.Tensor:
    """DySample's sampler as a loop: output pixel ``(s*h + i, s*w + j)`` of group ``g`` reads
    ``x`` at row ``h + O[(1, g, i, j)]`` and column ``w + O[(0, g, i, j)]`` (channel
    ``(xy*G + g)*s*s + i*s + j``), bilinear with a replicated border."""
    n_, c_, h_, w_ = x.shape
    xd, od = x.double(), offsets.double()
    out = torch.zeros(n_, c_, h_ * scale, w_ * scale, dtype=torch.float64)
    cg = c_ // groups
    s2 = scale * scale
    for n in range(n_):
        for g in range(groups):
            for h in range(h_):
                for w in range(w_):
                    for i in range(scale):
                        for j in range(scale):
                            col = w + float(od.detach()[n, (0 * groups + g) * s2 + i * scale + j, h, w])
                            row = h + float(od.detach()[n, (1 * groups + g) * s2 + i * scale + j, h, w])
                            out[n, g * cg : (g + 1) * cg, scale * h + i, scale * w + j] = bilinear_point_sample(
                                xd[n, g * cg : (g + 1) * cg], row, col
                            )
    return out.to(x.dtype)


def window_similarity_loop(
    query: torch.Tensor, keys: torch.Tensor, k: int, groups: int = 1, up: int = 1, stride: int = 1, pad: tuple[int, int] | None = None
) -> torch.Tensor:
    """Slow loop: ``sim[n, g k^2 + a k + b, y, x] = sum_{c in g} q[n,c,y,x] keys[n, c, (y//up)*stride + a - pt, ...]``,
    0 where the key lies outside the image."""
    pt, pl = ((k - 1) // 2, (k - 1) // 2) if pad is None else pad
    n_, c_, h, w = keys.shape
    ho, wo = query.shape[-2:]
    qd, kd = query.detach().double(), keys.detach().double()
    out = torch.zeros(n_, groups * k * k, ho, wo, dtype=torch.float64)
    cg = c_ // groups
    for n in range(n_):
        for g in range(groups):
            for y in range(ho):
                for x in range(wo):
                    for a in range(k):
                        r = (y // up) * stride + a - pt
                        for b in range(k):
                            q = (x // up) * stride + b - pl
                            if 0 <= r < h and 0 <= q < w:
                                out[n, g * k * k + a * k + b, y, x] = float(
                                    (qd[n, g * cg : (g + 1) * cg, y, x] * kd[n, g * cg : (g + 1) * cg, r, q]).sum()
                                )
    return out.to(query.dtype)
