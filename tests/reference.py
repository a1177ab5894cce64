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
