"""Composition-1k-style composites: a cut-out placed on a background photograph, I = aF + (1 - a)B.

One composite, given a foreground, a background and a seed:

1. The cut-out is cropped to its alpha's bounding box and resized in premultiplied space
   (``(aF, a)`` resized with Lanczos, overshoot clipped, then divided back), so no dark or bright
   halo appears.  Its long side becomes ``U(scale) * size``, enlarged at most ``max_upscale``
   times; it is flipped with probability ``flip`` and placed at a uniform position on a
   ``size x size`` canvas.
2. Optional procedural soft alpha (:mod:`resamplers.data.soft_layers`): strands with probability
   ``strands``, then defocus by a disc of radius ``U(defocus_radius)`` with probability
   ``defocus``.  The composite is *thin* when it has either.
3. The background is a uniform square crop whose side is ``U(background_crop)`` times the photo's
   short side, resized to ``size`` (Lanczos) and flipped with probability ``flip``.
4. ``F`` is defined everywhere (colours where ``a = 0`` copy the nearest pixel with ``a > 0``), and
   everything is quantised to 8 bits *before* compositing: ``I = rint((a8 F8 + (255 - a8) B8) /
   255)`` in exact integer arithmetic, so the stored image, alpha, foreground and background agree
   to the last bit.

Each step draws from its own generator spawned from the seed, so the same seed gives the same
composite (and changing one step's parameters leaves the other steps' draws unchanged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import DataError
from .premultiplied import extend_colors, resize_premultiplied
from .soft_layers import StrandStyle, add_strands, defocus
from .sources import Foreground

__all__ = [
    "Composite",
    "Recipe",
    "child_seeds",
    "composite_uint8",
    "crop_background",
    "crop_to_alpha",
    "make_composite",
    "place_foreground",
]


@dataclass(frozen=True)
class Recipe:
    """Parameters of :func:`make_composite`; ranges are ``(low, high)`` of uniform draws."""

    size: int = 256
    scale: tuple[float, float] = (0.55, 0.85)
    max_upscale: float = 1.6
    background_crop: tuple[float, float] = (0.35, 1.0)
    flip: float = 0.5
    strands: float = 0.5
    defocus: float = 0.3
    defocus_radius: tuple[float, float] = (1.0, 3.0)
    strand_style: StrandStyle = field(default_factory=StrandStyle)

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"argument `size`: expected an int >= 8, got {self.size!r}")
        for name in ("flip", "strands", "defocus"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"argument `{name}`: expected a probability in [0, 1], got {value}")
        if not 0.0 < self.background_crop[0] <= self.background_crop[1] <= 1.0:
            raise ValueError(f"argument `background_crop`: expected 0 < low <= high <= 1, got {self.background_crop}")

    @property
    def background_min_side(self) -> int:
        """Backgrounds are decoded with at least this short side: the smallest crop still covers ``size``."""
        return math.ceil(self.size / self.background_crop[0])

    def without_soft_layers(self) -> Recipe:
        from dataclasses import replace

        return replace(self, strands=0.0, defocus=0.0)


@dataclass
class Composite:
    """One composite, all uint8: ``image``/``fg``/``bg`` ``H x W x 3``, ``alpha`` ``H x W``."""

    image: np.ndarray
    alpha: np.ndarray
    fg: np.ndarray
    bg: np.ndarray
    strands: bool
    defocus: bool

    @property
    def thin(self) -> bool:
        """Whether procedural soft layers (strands or defocus) were added."""
        return self.strands or self.defocus


def crop_to_alpha(foreground: Foreground) -> Foreground:
    """The cut-out cropped to the bounding box of ``alpha > 0``."""
    rows = np.flatnonzero(foreground.alpha.max(axis=1) > 0)
    cols = np.flatnonzero(foreground.alpha.max(axis=0) > 0)
    if rows.size == 0:
        raise DataError(f"foreground {foreground.name!r}: its alpha is zero everywhere")
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return Foreground(foreground.name, foreground.color[box], foreground.alpha[box])


def place_foreground(foreground: Foreground, rng: np.random.Generator, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """Scale, flip and place the (cropped) cut-out on an empty canvas: ``(color, alpha)`` of the canvas."""
    size = recipe.size
    fg = crop_to_alpha(foreground)
    height, width = fg.alpha.shape
    scale = min(rng.uniform(*recipe.scale) * size / max(height, width), recipe.max_upscale)
    new_h = min(size, max(1, round(height * scale)))
    new_w = min(size, max(1, round(width * scale)))
    color, alpha = resize_premultiplied(fg.color, fg.alpha, (new_h, new_w))
    if rng.random() < recipe.flip:
        color, alpha = color[:, ::-1], alpha[:, ::-1]
    top = int(rng.integers(0, size - new_h + 1))
    left = int(rng.integers(0, size - new_w + 1))
    canvas_color = np.zeros((size, size, 3), np.float32)
    canvas_alpha = np.zeros((size, size), np.float32)
    canvas_color[top : top + new_h, left : left + new_w] = color
    canvas_alpha[top : top + new_h, left : left + new_w] = alpha
    return canvas_color, canvas_alpha


def crop_background(background: np.ndarray, rng: np.random.Generator, recipe: Recipe) -> np.ndarray:
    """A random square crop of the uint8 photo, resized to ``size x size`` and maybe flipped (uint8)."""
    from PIL import Image

    height, width = background.shape[:2]
    side = max(1, round(rng.uniform(*recipe.background_crop) * min(height, width)))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = Image.fromarray(np.ascontiguousarray(background[top : top + side, left : left + side]))
    pixels = np.asarray(crop.resize((recipe.size, recipe.size), Image.Resampling.LANCZOS))
    if rng.random() < recipe.flip:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)


def composite_uint8(alpha8: np.ndarray, fg8: np.ndarray, bg8: np.ndarray) -> np.ndarray:
    """``rint((a F + (255 - a) B) / 255)`` on uint8 arrays, exactly (integers, one division)."""
    a = alpha8.astype(np.int32)[..., None]
    numerator = a * fg8.astype(np.int32) + (255 - a) * bg8.astype(np.int32)
    return np.rint(numerator / 255.0).astype(np.uint8)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def child_seeds(seed: np.random.SeedSequence | int, count: int) -> list[np.random.SeedSequence]:
    """``seed.spawn(count)`` without mutating ``seed`` (so the same seed object always gives the same children)."""
    seed = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, k)) for k in range(count)]


def make_composite(
    foreground: Foreground, background: np.ndarray, seed: np.random.SeedSequence | int, recipe: Recipe = Recipe()
) -> Composite:
    """Composite ``foreground`` on ``background`` (uint8 ``H x W x 3``) as the module docstring says.

    Example:
        >>> import numpy as np
        >>> yy, xx = np.mgrid[:40, :40]
        >>> disc = np.clip(12.5 - np.hypot(yy - 20, xx - 20), 0, 1).astype(np.float32)
        >>> fg = Foreground("disc", np.full((40, 40, 3), 0.8, np.float32), disc)
        >>> bg = np.zeros((64, 64, 3), np.uint8)
        >>> c = make_composite(fg, bg, seed=0, recipe=Recipe(size=32, strands=0.0, defocus=0.0))
        >>> c.image.shape, c.alpha.dtype, int(c.image[..., 0].max()) <= 204
        ((32, 32, 3), dtype('uint8'), True)
    """
    place_rng, layer_rng, background_rng = (np.random.default_rng(s) for s in child_seeds(seed, 3))
    color, alpha = place_foreground(foreground, place_rng, recipe)
    with_strands = layer_rng.random() < recipe.strands
    with_defocus = layer_rng.random() < recipe.defocus
    if with_strands:
        color, alpha = add_strands(alpha, color, layer_rng, recipe.strand_style, length_scale=recipe.size / 256)
    if with_defocus:
        color, alpha = defocus(alpha, color, layer_rng.uniform(*recipe.defocus_radius))
    alpha8 = _to_uint8(alpha)
    fg8 = _to_uint8(extend_colors(color, alpha8))
    bg8 = crop_background(background, background_rng, recipe)
    return Composite(composite_uint8(alpha8, fg8, bg8), alpha8, fg8, bg8, with_strands, with_defocus)
