"""A procedural source that needs no download: for tests, and for users without apt.

Foreground ``i`` is a random star-shaped blob with one or two appendages, its edge anti-aliased by
exact coverage (``supersample`` x ``supersample`` samples per pixel), coloured with a smooth random
texture; with probability 1/2 it carries a translucent lobe (constant partial alpha, like a wing)
and with probability 1/2 a soft, blurred rim.  Background ``i`` is multi-octave colour noise with a
few sharp-edged shapes.  Everything is a function of ``(seed, kind, i)``, so the source is the same
everywhere; the train/test split is by name as for every source.
"""

from __future__ import annotations

import numpy as np

from .sources import Foreground, LRUCache, Source

__all__ = ["SyntheticSource"]


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: int, channels: int) -> np.ndarray:
    """A ``cells x cells`` random grid bicubically enlarged to ``size``: float32 ``H x W x C`` in about [0, 1]."""
    from PIL import Image

    grid = rng.random((cells, cells, channels)).astype(np.float32)
    height, width = size
    planes = [
        np.asarray(Image.fromarray(grid[..., c]).resize((width, height), Image.Resampling.BICUBIC))
        for c in range(channels)
    ]
    return np.stack(planes, axis=-1)


def _coverage(inside, size: int, supersample: int) -> np.ndarray:
    """The fraction of each pixel where ``inside(y, x)`` holds, from ``supersample**2`` samples."""
    offsets = (np.arange(size * supersample) + 0.5) / supersample
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    hits = inside(yy, xx).astype(np.float32)
    return hits.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


class SyntheticSource(Source):
    """Procedural foregrounds with soft alpha and procedural backgrounds (no files).

    Args:
        foregrounds: how many foregrounds (named ``synthetic/fg-0000`` ...).
        backgrounds: how many backgrounds (``synthetic/bg-0000`` ...).
        seed: changes every item.
        foreground_size: side of the square each foreground is drawn in.
        background_size: side of each square background.
        supersample: samples per pixel side for the edge coverage.
        cache_foregrounds: how many drawn foregrounds each process keeps in memory.

    Example:
        >>> source = SyntheticSource(foregrounds=8, backgrounds=4, foreground_size=48, background_size=64)
        >>> fg = source.load_foreground(source.foregrounds()[0])
        >>> fg.color.shape, fg.alpha.shape, bool(0 < fg.alpha.mean() < 1)
        ((48, 48, 3), (48, 48), True)
    """

    def __init__(
        self,
        foregrounds: int = 100,
        backgrounds: int = 40,
        seed: int = 0,
        foreground_size: int = 160,
        background_size: int = 384,
        supersample: int = 4,
        cache_foregrounds: int = 128,
    ) -> None:
        for name, value, minimum in (
            ("foregrounds", foregrounds, 1),
            ("backgrounds", backgrounds, 1),
            ("foreground_size", foreground_size, 16),
            ("background_size", background_size, 16),
            ("supersample", supersample, 1),
        ):
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"argument `{name}`: expected an int >= {minimum}, got {value!r}")
        self.count = (foregrounds, backgrounds)
        self.seed = seed
        self.foreground_size = foreground_size
        self.background_size = background_size
        self.supersample = supersample
        self._cache = LRUCache(cache_foregrounds)
        self.id = (
            f"synthetic(foregrounds={foregrounds}, backgrounds={backgrounds}, seed={seed}, "
            f"foreground_size={foreground_size}, background_size={background_size}, supersample={supersample})"
        )

    def foreground_names(self) -> list[str]:
        return [f"synthetic/fg-{i:04d}" for i in range(self.count[0])]

    def background_names(self) -> list[str]:
        return [f"synthetic/bg-{i:04d}" for i in range(self.count[1])]

    def _index(self, name: str, kind: str) -> int:
        prefix = f"synthetic/{kind}-"
        if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
            raise ValueError(f"argument `name`: expected '{prefix}NNNN', got {name!r}")
        index = int(name[len(prefix) :])
        if index >= self.count[0 if kind == "fg" else 1]:
            raise ValueError(f"argument `name`: {name!r} is beyond this source's {kind} count")
        return index

    def _rng(self, kind: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, kind, index]))

    def load_foreground(self, name: str) -> Foreground:
        return self._cache.get(name, lambda: self._draw_foreground(name))

    def _draw_foreground(self, name: str) -> Foreground:
        rng = self._rng(0, self._index(name, "fg"))
        size, s = self.foreground_size, self.supersample
        centre = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
        radius = rng.uniform(0.2, 0.3) * size
        harmonics = [(k, rng.uniform(0, 0.25 / k**0.5), rng.uniform(0, 2 * np.pi)) for k in range(2, 7)]
        lobes = [
            (rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.4) * size, rng.uniform(0.05, 0.1) * size)
            for _ in range(int(rng.integers(1, 3)))
        ]

        def body(yy, xx):
            dy, dx = yy - centre[0], xx - centre[1]
            angle = np.arctan2(dy, dx)
            edge = radius * (1 + sum(a * np.cos(k * angle + phase) for k, a, phase in harmonics))
            inside = np.hypot(dy, dx) <= edge
            for direction, reach, thickness in lobes:  # appendages: capsules from the centre outwards
                ey, ex = np.sin(direction) * reach, np.cos(direction) * reach
                t = np.clip((dy * ey + dx * ex) / (reach**2), 0.0, 1.0)
                inside |= np.hypot(dy - t * ey, dx - t * ex) <= thickness
            return inside

        alpha = _coverage(body, size, s)
        base = rng.uniform(0.1, 0.9, 3).astype(np.float32)
        texture = _smooth_noise(rng, (size, size), int(rng.integers(3, 8)), 3) - 0.5
        color = np.clip(base + rng.uniform(0.2, 0.6) * texture, 0.0, 1.0)
        if rng.random() < 0.5:  # a translucent lobe: transmission, constant partial alpha
            direction, reach = rng.uniform(0, 2 * np.pi), radius * rng.uniform(1.0, 1.3)
            wy, wx = centre[0] + np.sin(direction) * reach, centre[1] + np.cos(direction) * reach
            half = radius * rng.uniform(0.35, 0.6)
            wing = _coverage(lambda yy, xx: np.hypot((yy - wy) / 0.6, xx - wx) <= half, size, s)
            wing_alpha = wing * rng.uniform(0.25, 0.7)
            wing_color = rng.uniform(0.3, 1.0, 3).astype(np.float32)
            premultiplied = color * alpha[..., None] + wing_color * ((1 - alpha) * wing_alpha)[..., None]
            alpha = alpha + (1 - alpha) * wing_alpha
            color = np.divide(
                premultiplied, alpha[..., None], out=np.zeros_like(premultiplied), where=alpha[..., None] > 0
            )
        if rng.random() < 0.5:  # a soft rim: the matte blurred, as a fuzzy or motion-blurred edge
            from scipy.ndimage import gaussian_filter

            alpha = gaussian_filter(alpha, rng.uniform(0.7, 2.0), mode="constant")
        return Foreground(name, np.clip(color, 0, 1).astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32))

    def load_background(self, name: str, min_side: int) -> np.ndarray:
        rng = self._rng(1, self._index(name, "bg"))
        size = (self.background_size, self.background_size)
        image = np.zeros(size + (3,), np.float32)
        weight = 1.0
        for cells in (3, 7, 17, 41):
            image += weight * (_smooth_noise(rng, size, cells, 3) - 0.5)
            weight *= 0.55
        image = rng.uniform(0.2, 0.8, 3).astype(np.float32) + rng.uniform(0.5, 1.0) * image
        yy, xx = np.mgrid[: size[0], : size[1]]
        for _ in range(int(rng.integers(2, 6))):  # sharp edges: rectangles and stripes
            y0, x0 = rng.integers(0, size[0], 2)
            h, w = rng.integers(size[0] // 16, size[0] // 3, 2)
            region = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
            image[region] = 0.6 * image[region] + 0.4 * rng.random(3).astype(np.float32)
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
