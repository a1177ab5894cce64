"""Independent references written from the formulas, for tests only.

Nothing here calls the library: these loops and index tables are the specification the
library's fast paths are checked against.
"""

from __future__ import annotations

import math

import torch


def reassemble_loop(
    x: torch.Tensor,
    w: torch.Tensor,
    k: int,
    groups: int,
    up: int = 1,
    stride: int = 1,
    pad: tuple[int, int] | None = None,
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
    valid = (
        (src_y[:, None, :, None] >= 0)
        & (src_y[:, None, :, None] < h)
        & (src_x[None, :, None, :] >= 0)
        & (src_x[None, :, None, :] < w)
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
    query: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    groups: int = 1,
    up: int = 1,
    stride: int = 1,
    pad: tuple[int, int] | None = None,
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


# --- Index-guided resampling (IndexNet, max unpooling) -------------------------------


def index_normalization_loop(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IndexNet's normalisation cell by cell: ``S = 1 / (1 + exp(-L))``, ``Z_j = exp(S_j) / sum_i exp(S_i)``
    over the 4 slots, slot ``j`` placed at sub-pixel ``(j // 2, j % 2)`` of its cell.

    ``logits``: ``N x G x 4 x h x w``; returns ``(I_en, I_de)``, each ``N x G x 2h x 2w``.
    """
    n_, g_, slots, h, w = logits.shape
    assert slots == 4
    ld = logits.double()
    en = torch.zeros(n_, g_, 2 * h, 2 * w, dtype=torch.float64)
    de = torch.zeros_like(en)
    for n in range(n_):
        for g in range(g_):
            for i in range(h):
                for j in range(w):
                    s = [1.0 / (1.0 + math.exp(-float(ld[n, g, t, i, j]))) for t in range(4)]
                    total = sum(math.exp(v) for v in s)
                    for t in range(4):
                        en[n, g, 2 * i + t // 2, 2 * j + t % 2] = math.exp(s[t]) / total
                        de[n, g, 2 * i + t // 2, 2 * j + t % 2] = s[t]
    return en.to(logits.dtype), de.to(logits.dtype)


def indexed_pooling_loop(x: torch.Tensor, index: torch.Tensor, scale: int) -> torch.Tensor:
    """``y[n, c, i, j] = sum over the s x s cell of index[n, c // (C / G)] * x[n, c]``."""
    n_, c_, h, w = x.shape
    cg = c_ // index.shape[1]
    out = torch.zeros(n_, c_, h // scale, w // scale, dtype=torch.float64)
    for n in range(n_):
        for c in range(c_):
            for i in range(h // scale):
                for j in range(w // scale):
                    acc = 0.0
                    for a in range(scale):
                        for b in range(scale):
                            r, q = scale * i + a, scale * j + b
                            acc += float(index[n, c // cg, r, q]) * float(x[n, c, r, q])
                    out[n, c, i, j] = acc
    return out.to(x.dtype)


def indexed_upsampling_loop(d: torch.Tensor, index: torch.Tensor, scale: int) -> torch.Tensor:
    """``z[n, c, y, x] = index[n, c // (C / G), y, x] * d[n, c, y // s, x // s]``."""
    n_, c_, h, w = d.shape
    cg = c_ // index.shape[1]
    out = torch.zeros(n_, c_, h * scale, w * scale, dtype=torch.float64)
    for n in range(n_):
        for c in range(c_):
            for y in range(h * scale):
                for xx in range(w * scale):
                    out[n, c, y, xx] = float(index[n, c // cg, y, xx]) * float(d[n, c, y // scale, xx // scale])
    return out.to(d.dtype)


def index_block_reference(x: torch.Tensor, state: dict, mode: str, nonlinear: bool, context: bool) -> torch.Tensor:
    """Index logits ``N x G x 4 x h x w`` computed from an official index block's state dict.

    Written from the layer list of the official blocks (reference notes, section 1.2), in
    evaluation mode: ``conv(k, stride 2) [-> BN (running statistics) -> ReLU6 -> conv 1x1]``
    with ``groups = C`` for O2O, keys ``indexnet.*`` (holistic) or ``indexnet1..4.*``.
    """
    padding = 1 if context else 0
    c = x.shape[1]
    groups = c if mode == "o2o" else 1

    def branch(prefix: str) -> torch.Tensor:
        if not nonlinear:
            key = f"{prefix}.weight" if mode == "holistic" else f"{prefix}.0.weight"
            return torch.nn.functional.conv2d(x, state[key], stride=2, padding=padding, groups=groups)
        h = torch.nn.functional.conv2d(x, state[f"{prefix}.0.weight"], stride=2, padding=padding, groups=groups)
        mean, var = state[f"{prefix}.1.running_mean"], state[f"{prefix}.1.running_var"]
        gamma, beta = state[f"{prefix}.1.weight"], state[f"{prefix}.1.bias"]
        h = (h - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5) * gamma[:, None, None] + beta[
            :, None, None
        ]
        h = h.clamp(0.0, 6.0)
        return torch.nn.functional.conv2d(h, state[f"{prefix}.3.weight"], groups=groups)

    if mode == "holistic":
        out = branch("indexnet")  # N x 4 x h x w
        return out[:, None]
    return torch.stack([branch(f"indexnet{j}") for j in range(1, 5)], dim=2)


# --- A2U ------------------------------------------------------------------------------


def a2u_down_loop(x: torch.Tensor, kernels: torch.Tensor, k: int, groups: int) -> torch.Tensor:
    """A2U downsampling as the official op defines it (even ``K``, scale 2):
    ``out[n,c,p,q] = sum_{a,b<K} x[n,c,2p-(K-2)/2+a, 2q-(K-2)/2+b] * kernels[n, g K^2 + a K + b, p, q]``,
    taps outside the image skipped."""
    n_, c_, h, w = x.shape
    off = (k - 2) // 2
    cg = c_ // groups
    out = torch.zeros(n_, c_, h // 2, w // 2, dtype=torch.float64)
    for n in range(n_):
        for c in range(c_):
            g = c // cg
            for p in range(h // 2):
                for q in range(w // 2):
                    acc = 0.0
                    for a in range(k):
                        r = 2 * p - off + a
                        if not 0 <= r < h:
                            continue
                        for b in range(k):
                            col = 2 * q - off + b
                            if 0 <= col < w:
                                acc += float(x[n, c, r, col]) * float(kernels[n, g * k * k + a * k + b, p, q])
                    out[n, c, p, q] = acc
    return out.to(x.dtype)


def a2u_up_loop(d: torch.Tensor, kernels: torch.Tensor, k: int, groups: int) -> torch.Tensor:
    """A2U upsampling by 2 as the official op defines it (odd ``k``):
    ``out[n,c,y,x] = sum_{a,b<k} d[n,c,y//2+a-(k-1)/2, x//2+b-(k-1)/2] * kernels[n, g k^2 + a k + b, y, x]``."""
    n_, c_, h, w = d.shape
    r0 = (k - 1) // 2
    cg = c_ // groups
    out = torch.zeros(n_, c_, 2 * h, 2 * w, dtype=torch.float64)
    for n in range(n_):
        for c in range(c_):
            g = c // cg
            for y in range(2 * h):
                for xx in range(2 * w):
                    acc = 0.0
                    for a in range(k):
                        r = y // 2 + a - r0
                        if not 0 <= r < h:
                            continue
                        for b in range(k):
                            col = xx // 2 + b - r0
                            if 0 <= col < w:
                                acc += float(d[n, c, r, col]) * float(kernels[n, g * k * k + a * k + b, y, xx])
                    out[n, c, y, xx] = acc
    return out.to(d.dtype)


def a2u_kernels_reference(
    x: torch.Tensor,
    state: dict,
    up_kernel: int,
    encoder_kernel: int,
    groups: int,
    share: bool,
    norm_groups: int,
    kernel_major: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A2U's ``(K_down, K_up)`` one sample at a time, from an official state dict (reference notes §2.1).

    Per sample: ``p = W GAP(x) + b``; ``u = W AdaptiveAvgPool_kxk(x) + b``; ``XU = conv(x, u, stride 2,
    padding (k-1)//2)`` depthwise; GroupNorm (explicit mean / variance per group, eps 1e-5) and
    LeakyReLU(0.01); ``A = sum_c XU XV / sqrt(C)``; up: ``pixel_shuffle(A p_up)`` -> sigmoid -> softmax
    over the ``s^2`` taps; down: softmax of ``A p_down`` over the ``(2s)^2`` taps.  ``kernel_major``
    normalises tap ``t`` of group ``g`` at channel ``t G + g`` (the official code's order), else
    ``g T + t``.
    """
    F = torch.nn.functional
    s, k, g = up_kernel, encoder_kernel, groups
    n_, c, h, w = x.shape
    pad = (k - 1) // 2

    def norm_act(t: torch.Tensor, prefix: str) -> torch.Tensor:
        grouped = t.reshape(norm_groups, -1)
        mean = grouped.mean(dim=1, keepdim=True)
        var = grouped.var(dim=1, unbiased=False, keepdim=True)
        t = ((grouped - mean) / torch.sqrt(var + 1e-5)).reshape(t.shape)
        t = t * state[f"{prefix}.0.weight"][:, None, None] + state[f"{prefix}.0.bias"][:, None, None]
        return torch.where(t >= 0, t, 0.01 * t)

    def normalise(logits: torch.Tensor, taps: int) -> torch.Tensor:
        hh, ww = logits.shape[-2:]
        if kernel_major:
            return logits.reshape(taps, g, hh, ww).softmax(dim=0).reshape(taps * g, hh, ww)
        return logits.reshape(g, taps, hh, ww).softmax(dim=1).reshape(g * taps, hh, ww)

    downs, ups = [], []
    for i in range(n_):
        xi = x[i]
        gap = xi.mean(dim=(1, 2))
        p_up = state["bconv_UP.1.weight"][:, :, 0, 0] @ gap + state["bconv_UP.1.bias"]
        p_down = state["bconv_DP.1.weight"][:, :, 0, 0] @ gap + state["bconv_DP.1.bias"]
        pooled = F.adaptive_avg_pool2d(xi[None], k)[0]
        embeddings = []
        for name, norm in (("bconv_U", "bnu"), ("bconv_V", "bnv")):
            filt = (
                torch.einsum("oc,cab->oab", state[f"{name}.1.weight"][:, :, 0, 0], pooled)
                + state[f"{name}.1.bias"][:, None, None]
            )
            weight = filt.expand(c, k, k)[:, None]
            conv = (
                F.conv2d(xi[:, None], weight[:1], stride=2, padding=pad)[:, 0]
                if share
                else F.conv2d(xi[None], weight, stride=2, padding=pad, groups=c)[0]
            )
            embeddings.append(norm_act(conv, norm))
        affinity = (embeddings[0] * embeddings[1]).sum(dim=0) / math.sqrt(c)  # h x w
        up_logits = F.pixel_shuffle((p_up[:, None, None] * affinity)[None], 2)[0]
        down_logits = p_down[:, None, None] * affinity
        up = torch.sigmoid(up_logits)
        ups.append(normalise(up, s * s) if s > 1 else up)
        downs.append(normalise(down_logits, 4 * s * s))
    return torch.stack(downs), torch.stack(ups)
