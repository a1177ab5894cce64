"""Independent references for the pooling zoo, written from the formulas with Python loops.

Nothing here calls the library.  Windows are enumerated explicitly: for output pixel
``(y, x)`` the window holds input pixels ``(s*y - p + a, s*x - p + b)`` for ``a, b < k``;
pixels outside the image are "padding" and each reference says what padding means for
its operator.
"""

from __future__ import annotations

import math

import torch


def windows(x: torch.Tensor, k: int, s: int, p: int):
    """Yield ``(n, c, y, x, values, inside)`` per output pixel: the ``k*k`` window values in
    row-major tap order (0.0 for padding) and a parallel list of inside-the-image flags."""
    n_, c_, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    xd = x.double()
    for n in range(n_):
        for c in range(c_):
            for y in range(ho):
                for xx in range(wo):
                    values, inside = [], []
                    for a in range(k):
                        for b in range(k):
                            r, q = s * y - p + a, s * xx - p + b
                            ok = 0 <= r < h and 0 <= q < w
                            values.append(float(xd[n, c, r, q]) if ok else 0.0)
                            inside.append(ok)
                    yield n, c, y, xx, values, inside


def window_loop(x: torch.Tensor, k: int, s: int, p: int, reduce) -> torch.Tensor:
    """``out[n, c, y, x] = reduce(values, inside)`` over every window, in float64."""
    n_, c_, h, w = x.shape
    out = torch.zeros(n_, c_, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, dtype=torch.float64)
    for n, c, y, xx, values, inside in windows(x, k, s, p):
        out[n, c, y, xx] = reduce(values, inside)
    return out


def lp_reduce(norm_type: float):
    def reduce(values, inside):
        if math.isinf(norm_type):
            return max(abs(v) for v, ok in zip(values, inside) if ok)
        return sum(abs(v) ** norm_type for v in values) ** (1.0 / norm_type)

    return reduce


def lower_median(values, inside):
    kept = sorted(v for v, ok in zip(values, inside) if ok)
    return kept[(len(kept) - 1) // 2]


def soft_reduce(values, inside):
    kept = [v for v, ok in zip(values, inside) if ok]
    m = max(kept)
    weights = [math.exp(v - m) for v in kept]
    return sum(wt * v for wt, v in zip(weights, kept)) / sum(weights)


def stochastic_eval_reduce(values, inside):
    a = [max(v, 0.0) for v in values]
    total = sum(a)
    return sum(v * v for v in a) / total if total > 0 else 0.0


def gem_reduce(p: float, eps: float):
    def reduce(values, inside):
        powered = [max(v, eps) ** p if ok else 0.0 for v, ok in zip(values, inside)]
        return (sum(powered) / len(values)) ** (1.0 / p)

    return reduce


def adaptive_loop(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    """Bin ``i`` of ``o`` over ``n`` is ``[floor(i n / o), ceil((i + 1) n / o))``."""
    n_, c_, h, w = x.shape
    out = torch.zeros(n_, c_, out_h, out_w, dtype=torch.float64)
    for i in range(out_h):
        r0, r1 = (i * h) // out_h, -(-(i + 1) * h // out_h)
        for j in range(out_w):
            q0, q1 = (j * w) // out_w, -(-(j + 1) * w // out_w)
            block = x[:, :, r0:r1, q0:q1].double().flatten(2)
            out[:, :, i, j] = block.mean(-1) if mode == "avg" else block.amax(-1)
    return out


def reflect_index(i: int, n: int) -> int:
    """torch's 'reflect' padding: mirror about the edge pixel without repeating it."""
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def blur_loop(x: torch.Tensor, filt_size: int, stride: int) -> torch.Tensor:
    """Binomial ``C(f-1, a) C(f-1, b) / 4^(f-1)`` weights, reflect-indexed, window starting at
    ``s*y - floor((f-1)/2)``."""
    n_, c_, h, w = x.shape
    f = filt_size
    row = [math.comb(f - 1, a) for a in range(f)]
    total = sum(row) ** 2
    before = (f - 1) // 2
    ho, wo = -(-h // stride), -(-w // stride)
    out = torch.zeros(n_, c_, ho, wo, dtype=torch.float64)
    xd = x.double()
    for y in range(ho):
        for xx in range(wo):
            acc = torch.zeros(n_, c_, dtype=torch.float64)
            for a in range(f):
                for b in range(f):
                    r = reflect_index(stride * y - before + a, h)
                    q = reflect_index(stride * xx - before + b, w)
                    acc += row[a] * row[b] / total * xd[:, :, r, q]
            out[:, :, y, xx] = acc
    return out


def netvlad_loop(x, weight, bias, centroids, normalize_input=True) -> torch.Tensor:
    """Descriptor by descriptor: soft assignment, residual sums, intra then global L2."""
    n_, d, h, w = x.shape
    k = centroids.shape[0]
    out = torch.zeros(n_, k * d, dtype=torch.float64)
    for n in range(n_):
        vlad = torch.zeros(k, d, dtype=torch.float64)
        for r in range(h):
            for q in range(w):
                desc = x[n, :, r, q].double()
                if normalize_input:
                    desc = desc / desc.norm().clamp_min(1e-12)
                logits = weight.double().reshape(k, d) @ desc + (0 if bias is None else bias.double())
                assign = torch.softmax(logits, dim=0)
                for c in range(k):
                    vlad[c] += assign[c] * (desc - centroids[c].double())
        vlad = vlad / vlad.norm(dim=1, keepdim=True).clamp_min(1e-12)
        flat = vlad.flatten()
        out[n] = flat / flat.norm().clamp_min(1e-12)
    return out


def bilinear_loop(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    n_, c1, h, w = x.shape
    c2 = y.shape[1]
    out = torch.zeros(n_, c1 * c2, dtype=torch.float64)
    for n in range(n_):
        b = torch.zeros(c1, c2, dtype=torch.float64)
        for r in range(h):
            for q in range(w):
                b += torch.outer(x[n, :, r, q].double(), y[n, :, r, q].double())
        b = (b / (h * w)).flatten()
        b = torch.sign(b) * torch.sqrt(b.abs() + eps)
        out[n] = b / b.norm()
    return out
