"""Compositor, soft layers and trimaps against brute-force references and closed-form limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("PIL")

from data_helpers import tiny_synthetic  # noqa: E402
from resamplers.data import Foreground, Recipe, make_composite, make_trimap  # noqa: E402
from resamplers.data.compositor import child_seeds, composite_uint8  # noqa: E402
from resamplers.data.premultiplied import extend_colors, resize_premultiplied  # noqa: E402
from resamplers.data.soft_layers import (  # noqa: E402
    StrandStyle,
    _segment_coverage,
    add_strands,
    defocus,
    disc_kernel,
    render_strands,
)
from resamplers.data.trimap import default_radius, random_radius  # noqa: E402


def disc_foreground(size=48, radius=15.5, color=(0.9, 0.2, 0.1)):
    yy, xx = np.mgrid[:size, :size]
    alpha = np.clip(radius - np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5) + 0.5, 0, 1).astype(np.float32)
    return Foreground("disc", np.broadcast_to(np.float32(color), (size, size, 3)).copy(), alpha)


# ---- trimaps ----------------------------------------------------------------------------------


def brute_force_trimap(alpha8: np.ndarray, radius: float) -> np.ndarray:
    """Each pixel: 255 if every pixel within `radius` (Euclidean) is 255, 0 if all are 0, else 128."""
    h, w = alpha8.shape
    trimap = np.full((h, w), 128, np.uint8)
    for y in range(h):
        for x in range(w):
            near = [alpha8[j, i] for j in range(h) for i in range(w) if math.hypot(j - y, i - x) <= radius]
            if all(v == 255 for v in near):
                trimap[y, x] = 255
            elif all(v == 0 for v in near):
                trimap[y, x] = 0
    return trimap


@pytest.mark.parametrize("radius", [0, 1, 2.5, 4])
def test_trimap_matches_a_brute_force_definition(radius):
    rng = np.random.default_rng(1)
    alpha = np.zeros((14, 17))
    alpha[3:11, 4:13] = 1.0
    alpha[6, 2:6] = rng.uniform(0.1, 0.9, 4)  # fractional pixels, one touching the core
    alpha[0, 16] = 0.3  # a fractional speck at the border
    expected = brute_force_trimap(np.rint(alpha * 255).astype(np.uint8), radius)
    np.testing.assert_array_equal(make_trimap(alpha, radius), expected)


def test_every_fractional_pixel_is_unknown_and_radius_defaults():
    alpha = tiny_synthetic().load_foreground("synthetic/fg-0003").alpha
    trimap = make_trimap(alpha, 0)
    alpha8 = np.rint(alpha * 255)
    assert (trimap[(alpha8 > 0) & (alpha8 < 255)] == 128).all()
    assert set(np.unique(trimap)) <= {0, 128, 255}
    assert default_radius(256) == 7 and default_radius(512) == 14 and default_radius(16) == 1
    radii = {random_radius(np.random.default_rng(s), 256) for s in range(200)}
    assert radii == set(range(1, 16))
    with pytest.raises(ValueError, match="`radius`"):
        make_trimap(alpha, -1)
    with pytest.raises(ValueError, match="`alpha`"):
        make_trimap(alpha[None], 3)


# ---- premultiplied resizing and compositing -------------------------------------------------


def test_premultiplied_resize_has_no_halo():
    fg = disc_foreground()
    color, alpha = resize_premultiplied(fg.color, fg.alpha, (17, 17))
    assert alpha.max() <= 1 and alpha.min() >= 0
    np.testing.assert_allclose(color[alpha > 0], np.broadcast_to(fg.color[0, 0], color[alpha > 0].shape), atol=1e-5)
    # Resizing straight colour instead (colour 0 where alpha = 0) darkens the rim: the test can fail.
    from resamplers.data.images import resize_float

    straight = resize_float(fg.color * (fg.alpha[..., None] > 0), (17, 17))
    assert np.abs(straight[(alpha > 0.01) & (alpha < 0.5)] - fg.color[0, 0]).max() > 0.05


def test_composite_uint8_is_exact():
    rng = np.random.default_rng(0)
    a, f, b = (rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(9, 7), (9, 7, 3), (9, 7, 3)])
    expected = np.array(
        [
            [
                [
                    round((int(a[y, x]) * int(f[y, x, c]) + (255 - int(a[y, x])) * int(b[y, x, c])) / 255)
                    for c in range(3)
                ]
                for x in range(7)
            ]
            for y in range(9)
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(composite_uint8(a, f, b), expected)


def test_extend_colors_copies_the_nearest_opaque_pixel():
    alpha = np.zeros((1, 6))
    alpha[0, 1] = 0.5
    alpha[0, 4] = 1.0
    color = np.arange(18, dtype=np.float32).reshape(1, 6, 3)
    extended = extend_colors(color, alpha)
    np.testing.assert_array_equal(extended[0, :, 0], [3, 3, 3, 12, 12, 12])


def test_make_composite_is_deterministic_and_consistent():
    source = tiny_synthetic()
    fg = source.load_foreground("synthetic/fg-0001")
    bg = source.load_background("synthetic/bg-0002", 64)
    recipe = Recipe(size=48, strands=1.0, defocus=1.0)
    seed = np.random.SeedSequence(7)
    first, second = make_composite(fg, bg, seed, recipe), make_composite(fg, bg, seed, recipe)
    for key in ("image", "alpha", "fg", "bg"):
        np.testing.assert_array_equal(getattr(first, key), getattr(second, key))
        assert getattr(first, key).dtype == np.uint8
    assert first.strands and first.defocus and first.thin
    np.testing.assert_array_equal(first.image, composite_uint8(first.alpha, first.fg, first.bg))
    other = make_composite(fg, bg, 8, recipe)
    assert not np.array_equal(other.image, first.image)
    plain = make_composite(fg, bg, 7, recipe.without_soft_layers())
    assert not plain.thin
    # Steps draw from separate generators: dropping the soft layers keeps the background crop.
    np.testing.assert_array_equal(plain.bg, first.bg)


def test_child_seeds_do_not_mutate_the_seed():
    seed = np.random.SeedSequence(3)
    a, b = child_seeds(seed, 2), child_seeds(seed, 2)
    assert [s.generate_state(2).tolist() for s in a] == [s.generate_state(2).tolist() for s in b]
    assert a[0].generate_state(2).tolist() != a[1].generate_state(2).tolist()


def test_placement_respects_scale_range_and_upscale_cap():
    fg = disc_foreground(size=40, radius=19)
    bg = np.zeros((80, 80, 3), np.uint8)
    recipe = Recipe(size=64, scale=(0.5, 0.5), strands=0, defocus=0)
    alpha = make_composite(fg, bg, 0, recipe).alpha
    rows = np.flatnonzero(alpha.max(axis=1))
    assert abs(len(rows) - 32) <= 1  # long side 0.5 * 64
    small = Foreground("dot", fg.color[:10, :10], np.ones((10, 10), np.float32))
    alpha = make_composite(small, bg, 0, Recipe(size=64, strands=0, defocus=0, flip=0)).alpha
    assert (alpha > 0).sum() == 16 * 16  # capped at 1.6 x
    with pytest.raises(ValueError, match="`strands`"):
        Recipe(strands=1.5)
    with pytest.raises(ValueError, match="`size`"):
        Recipe(size=4)


# ---- strands and defocus ------------------------------------------------------------------------


def test_segment_coverage_matches_a_point_by_point_loop():
    rng = np.random.default_rng(4)
    shape, s = (6, 7), 4
    starts = rng.uniform(0, 6, (5, 2))
    ends = starts + rng.normal(0, 1.5, (5, 2))
    half = rng.uniform(0.1, 0.6, 5)
    flat, segment = _segment_coverage(starts, ends, half, shape, s, chunk=2)
    got = {(int(f), int(k)) for f, k in zip(flat, segment)}
    expected = set()
    for k in range(5):
        a, b = starts[k] * s, ends[k] * s
        for r in range(shape[0] * s):
            for c in range(shape[1] * s):
                p = np.array([r + 0.5, c + 0.5])
                t = np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0, 1)
                if np.linalg.norm(p - a - t * (b - a)) <= half[k] * s:
                    expected.add((r * shape[1] * s + c, k))
    assert got == expected


def test_strand_alpha_is_pixel_coverage_and_the_object_stays_on_top():
    fg = disc_foreground(size=40, radius=10)
    style = StrandStyle(supersample=4)
    strand_color, strand_alpha = render_strands(fg.alpha, fg.color, np.random.default_rng(0), style)
    assert strand_alpha.max() > 0
    np.testing.assert_allclose(strand_alpha * 16, np.rint(strand_alpha * 16), atol=1e-5)  # k / 16
    color, alpha = add_strands(fg.alpha, fg.color, np.random.default_rng(0), style)
    assert (alpha >= fg.alpha - 1e-6).all()
    np.testing.assert_allclose(alpha, fg.alpha + (1 - fg.alpha) * strand_alpha, atol=1e-6)
    opaque = fg.alpha == 1
    np.testing.assert_allclose(color[opaque], fg.color[opaque], atol=1e-6)
    # strand colour comes from inside the object, times a gain in [0.8, 1.15]
    red = strand_color[strand_alpha > 0][:, 0]
    assert red.min() >= 0.9 * 0.8 - 1e-6 and red.max() <= 1.0


def test_disc_kernel_and_defocus_preserve_colour_and_mass():
    kernel = disc_kernel(2.0)
    assert kernel.shape == (5, 5) and kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, kernel.T)
    np.testing.assert_allclose(kernel, kernel[::-1])
    assert disc_kernel(0.4).shape == (1, 1)
    fg = disc_foreground(size=40, radius=8)
    color, alpha = defocus(fg.alpha, fg.color, 2.5)
    assert alpha.sum() == pytest.approx(fg.alpha.sum(), rel=1e-5)  # nothing crosses the border
    np.testing.assert_allclose(
        color[alpha > 1e-3], np.broadcast_to(fg.color[0, 0], color[alpha > 1e-3].shape), atol=1e-5
    )
    assert ((alpha > 0) & (alpha < 1)).sum() > ((fg.alpha > 0) & (fg.alpha < 1)).sum()
