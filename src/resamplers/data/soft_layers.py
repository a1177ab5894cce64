"""Procedural soft alpha: hair-like strands with exact pixel coverage, and defocus.

Real fractional alpha comes from sub-pixel coverage, blur and transmission.  These layers add the
first two to a cut-out whose own matte is mostly hard:

* Strands grow from the object's boundary along the outward normal of a smoothed signed distance,
  bend by a random walk of the angle, and are drawn binary at ``supersample`` times the resolution
  (capsules of the strand's width around each segment) and box-filtered, so their alpha is the
  coverage of the pixel (to ``1 / supersample**2``).  The object is layered over them.
* Defocus convolves the premultiplied layer ``(alpha * F, alpha)`` with a disc, which is exactly the
  matte and colour of a layer seen out of focus.

All arrays are float32: ``color`` ``H x W x 3`` straight (not premultiplied), ``alpha`` ``H x W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .premultiplied import extend_colors, over

__all__ = ["StrandStyle", "add_strands", "defocus", "disc_kernel", "render_strands"]


@dataclass(frozen=True)
class StrandStyle:
    """How strands look; lengths are in pixels, ``turn`` in radians per segment."""

    density: tuple[float, float] = (0.15, 0.8)  # strands per boundary pixel, drawn per sample
    mean_length: tuple[float, float] = (3.0, 14.0)  # per-sample mean of the Gamma(2) lengths
    width: tuple[float, float] = (0.25, 1.2)  # per strand
    segments: int = 8
    turn: float = 0.12
    color_depth: float = 3.0  # colour sampled this far inside the object
    color_gain: tuple[float, float] = (0.8, 1.15)
    supersample: int = 4


def _boundary_and_normals(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary pixels (inside, with an outside 4-neighbour) and the outward unit normal field."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    inside = alpha > 0.5
    padded = np.pad(inside, 1, constant_values=False)
    outside_neighbour = ~(padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    boundary = np.argwhere(inside & outside_neighbour)
    signed = distance_transform_edt(~inside) - distance_transform_edt(inside)  # > 0 outside
    gy, gx = np.gradient(gaussian_filter(signed.astype(np.float64), 2.0))
    norm = np.hypot(gx, gy)
    norm[norm == 0] = 1.0
    return boundary, np.stack([gy / norm, gx / norm], axis=-1)


def _segment_coverage(starts, ends, half_widths, shape, supersample, chunk=512):
    """Hi-res pixels (flat indices) within ``half_width`` of each segment, and the segment of each hit.

    Segments are processed in chunks of similar extent, each in a square window of hi-res pixels
    around it, so that memory stays bounded whatever the strand lengths.
    """
    s = supersample
    height, width = shape[0] * s, shape[1] * s
    starts, ends, half = starts * s, ends * s, half_widths * s
    low = np.floor(np.minimum(starts, ends) - half[:, None]).astype(np.int64)
    high = np.ceil(np.maximum(starts, ends) + half[:, None]).astype(np.int64)
    extent = (high - low).max(axis=1) + 1
    order = np.argsort(extent, kind="stable")
    flats, segments = [], []
    for begin in range(0, len(order), chunk):
        ids = order[begin : begin + chunk]
        offsets = np.arange(int(extent[ids].max()))
        rows = low[ids, 0, None, None] + offsets[None, :, None]  # n x window x 1
        cols = low[ids, 1, None, None] + offsets[None, None, :]  # n x 1 x window
        ay, ax = starts[ids, 0, None, None], starts[ids, 1, None, None]
        dy, dx = (ends - starts)[ids, 0, None, None], (ends - starts)[ids, 1, None, None]
        length2 = np.maximum(dy * dy + dx * dx, 1e-12)
        # distance from each hi-res pixel centre to the segment
        t = np.clip(((rows + 0.5 - ay) * dy + (cols + 0.5 - ax) * dx) / length2, 0.0, 1.0)
        hit = np.hypot(rows + 0.5 - ay - t * dy, cols + 0.5 - ax - t * dx) <= half[ids, None, None]
        hit &= (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        k, r, c = np.nonzero(hit)
        flats.append(rows[k, r, 0] * width + cols[k, 0, c])
        segments.append(ids[k])
    return np.concatenate(flats), np.concatenate(segments)


def render_strands(
    alpha: np.ndarray,
    color: np.ndarray,
    rng: np.random.Generator,
    style: StrandStyle = StrandStyle(),
    length_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Strands rooted on the boundary of ``alpha``: their ``(color, alpha)`` layer (alpha 0 if none).

    Strand colours are ``color`` sampled ``style.color_depth`` pixels inside the object times a
    random gain; where strands overlap, the later one is in front.
    """
    shape = alpha.shape
    empty = (np.zeros(shape + (3,), np.float32), np.zeros(shape, np.float32))
    boundary, normals = _boundary_and_normals(alpha)
    if len(boundary) == 0:
        return empty
    count = int(round(rng.uniform(*style.density) * len(boundary)))
    if count == 0:
        return empty
    roots = boundary[rng.integers(0, len(boundary), count)]
    normal = normals[roots[:, 0], roots[:, 1]]
    mean_length = rng.uniform(*style.mean_length) * length_scale
    lengths = np.minimum(rng.gamma(2.0, mean_length / 2.0, count), 4.0 * mean_length)
    widths = rng.uniform(*style.width, count)
    gains = rng.uniform(*style.color_gain, count)
    jitter = rng.uniform(-0.5, 0.5, (count, 2))
    turns = np.cumsum(rng.normal(0.0, style.turn, (count, style.segments)), axis=1)

    inner = np.rint(roots - style.color_depth * normal).astype(np.int64)
    inner[:, 0] = np.clip(inner[:, 0], 0, shape[0] - 1)
    inner[:, 1] = np.clip(inner[:, 1], 0, shape[1] - 1)
    inside_color = extend_colors(color, alpha)  # a thin part may be less than color_depth wide
    colors = np.clip(inside_color[inner[:, 0], inner[:, 1]] * gains[:, None], 0.0, 1.0)

    angle0 = np.arctan2(normal[:, 0], normal[:, 1])[:, None] + turns  # n x segments
    step = (lengths / style.segments)[:, None]
    deltas = np.stack([np.sin(angle0) * step, np.cos(angle0) * step], axis=-1)  # (dy, dx)
    points = roots + 0.5 + jitter  # continuous coordinates of the root, inside its pixel
    path = points[:, None, :] + np.concatenate([np.zeros((count, 1, 2)), np.cumsum(deltas, axis=1)], axis=1)
    starts = path[:, :-1].reshape(-1, 2)
    ends = path[:, 1:].reshape(-1, 2)
    strand_of_segment = np.repeat(np.arange(count), style.segments)
    flat, segment = _segment_coverage(starts, ends, np.repeat(widths / 2.0, style.segments), shape, style.supersample)

    s = style.supersample
    hi_width = shape[1] * s
    owner = np.full(shape[0] * s * hi_width, -1, np.int64)
    np.maximum.at(owner, flat, strand_of_segment[segment])  # the later strand is in front
    covered = np.flatnonzero(owner >= 0)
    # box filter by accumulating each covered hi-res pixel into its pixel: coverage and premultiplied colour
    pixel = (covered // hi_width // s) * shape[1] + (covered % hi_width) // s
    pixels = shape[0] * shape[1]
    strand_alpha = (np.bincount(pixel, minlength=pixels) / s**2).reshape(shape)
    covered_colors = colors[owner[covered]]
    premultiplied = (
        np.stack(
            [np.bincount(pixel, weights=covered_colors[:, c], minlength=pixels) for c in range(3)], axis=-1
        ).reshape(shape + (3,))
        / s**2
    )
    strand_color = np.divide(
        premultiplied, strand_alpha[..., None], out=np.zeros_like(premultiplied), where=strand_alpha[..., None] > 0
    )
    return strand_color.astype(np.float32), strand_alpha.astype(np.float32)


def add_strands(
    alpha: np.ndarray,
    color: np.ndarray,
    rng: np.random.Generator,
    style: StrandStyle = StrandStyle(),
    length_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The object layered over strands grown from its boundary: ``(color, alpha)``."""
    strand_color, strand_alpha = render_strands(alpha, color, rng, style, length_scale)
    return over(color, alpha, strand_color, strand_alpha)


def disc_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """A normalised disc of ``radius`` pixels, each weight the disc's coverage of that pixel."""
    half = int(np.ceil(radius - 0.5)) if radius > 0.5 else 0
    offsets = (np.arange((2 * half + 1) * supersample) + 0.5) / supersample - half - 0.5
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    inside = (yy**2 + xx**2 <= radius**2).astype(np.float64)
    size = 2 * half + 1
    kernel = inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return kernel / kernel.sum()


def defocus(alpha: np.ndarray, color: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The layer out of focus: ``(alpha F, alpha)`` convolved with a disc of ``radius``; ``(color, alpha)``."""
    from scipy.ndimage import convolve

    kernel = disc_kernel(radius)
    blurred_alpha = convolve(alpha.astype(np.float64), kernel, mode="constant")
    premultiplied = color.astype(np.float64) * alpha[..., None]
    blurred = np.stack([convolve(premultiplied[..., c], kernel, mode="constant") for c in range(3)], axis=-1)
    out_color = np.divide(
        blurred, blurred_alpha[..., None], out=np.zeros_like(blurred), where=blurred_alpha[..., None] > 1e-12
    )
    return np.clip(out_color, 0.0, 1.0).astype(np.float32), np.clip(blurred_alpha, 0.0, 1.0).astype(np.float32)
