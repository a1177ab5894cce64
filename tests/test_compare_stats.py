"""Paired statistics on constructed per-image scores whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from resamplers.compare.stats import NOT_SEPARABLE, WORSE, RatioScores, paired_difference, verdicts


def _noise(seeds: int, images: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(seeds, images))


def test_a_clear_winner_is_best_and_the_others_are_worse():
    base = _noise(1, 200, 0) + 5.0  # per-image difficulty shared by every operator
    scores = {
        "good": base - 1.0 + 0.1 * _noise(3, 200, 1),
        "bad": base + 0.1 * _noise(3, 200, 2),
        "worst": base + 2.0 + 0.1 * _noise(3, 200, 3),
    }
    table = {v.name: v for v in verdicts(scores, higher_is_better=False, baseline="bad")}
    assert table["good"].verdict == "best" and table["good"].rank == 1
    assert table["bad"].verdict == WORSE and table["worst"].verdict == WORSE
    assert table["good"].vs_baseline.high < 0 and table["good"].vs_baseline.win_fraction > 0.99
    d = table["worst"].vs_best
    assert d.low <= 3.0 <= d.high + 0.05 and d.low > 2.5  # the constructed difference is 3.0
    assert (table["good"].rank_low, table["good"].rank_high) == (1, 1)
    assert table["good"].seeds == 3 and table["good"].images == 200


def test_a_tie_is_not_separable_and_its_rank_is_uncertain():
    base = _noise(1, 150, 0)
    scores = {"a": base + _noise(2, 150, 1), "b": base + _noise(2, 150, 2)}
    table = {v.name: v for v in verdicts(scores, higher_is_better=True)}
    loser = next(v for v in table.values() if v.verdict != "best")
    assert loser.verdict == NOT_SEPARABLE
    assert loser.vs_best.low < 0 < loser.vs_best.high
    assert (loser.rank_low, loser.rank_high) == (1, 2)


def test_better_on_most_images_but_worse_on_average():
    # "mostly" wins on 90% of the images by 0.1 and loses on 10% by 5.0: the mean says worse.
    images = 400
    other = np.zeros((1, images))
    mostly = np.where(np.arange(images) % 10 == 0, 5.0, -0.1)[None]  # lower is better
    d = paired_difference(mostly, other, higher_is_better=False)
    assert d.win_fraction == pytest.approx(0.9)
    assert d.mean == pytest.approx(0.41) and d.low > 0  # worse on average, and the interval says so
    table = {v.name: v for v in verdicts({"mostly": mostly, "other": other}, higher_is_better=False)}
    assert table["other"].verdict == "best" and table["mostly"].verdict == WORSE
    assert table["mostly"].vs_best.win_fraction == pytest.approx(0.9)


def test_seeds_widen_the_interval():
    base = _noise(1, 100, 0)
    one = {"a": base + 0.5, "b": base.copy()}
    spread = _noise(4, 1, 7) * 2.0  # a seed-level offset common to all images of a run
    many = {"a": base + 0.5 + spread, "b": np.repeat(base, 4, axis=0)}
    narrow = paired_difference(one["a"], one["b"], higher_is_better=True)
    wide = paired_difference(many["a"], many["b"], higher_is_better=True)
    assert (narrow.high - narrow.low) < 1e-9 < (wide.high - wide.low)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`scores`: every operator must score the same images"):
        verdicts({"a": np.zeros((1, 3)), "b": np.zeros((1, 4))}, higher_is_better=True)
    with pytest.raises(ValueError, match="`baseline`"):
        verdicts({"a": np.zeros((1, 3))}, higher_is_better=True, baseline="bilinear")
    with pytest.raises(ValueError, match="`scores`: expected a seeds x images array"):
        verdicts({"a": np.zeros((1, 0))}, higher_is_better=True)


def _ratio_scores(num, den, seeds=1):
    num, den = np.asarray(num, float), np.asarray(den, float)
    per_image = np.nanmean(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan), axis=-1)
    return RatioScores(
        np.repeat(num[None], seeds, 0), np.repeat(den[None], seeds, 0), np.repeat(per_image[None], seeds, 0)
    )


def test_ratio_scores_are_the_whole_set_metric_not_the_mean_of_images():
    # two classes, two images: class 0 is 9/10 then 0/1; class 1 only in image 1: 1/2
    scores = _ratio_scores([[9, 0], [0, 1]], [[10, 0], [1, 2]])
    assert scores.shape == (1, 2)
    assert scores.mean() == pytest.approx((9 / 11 + 1 / 2) / 2)  # not the image mean (0.9 + 0.25) / 2
    # a replicate that draws image 0 twice: class 1 has no union, so it does not count
    assert scores.resampled(np.array([[2.0, 0.0], [0.0, 2.0]])).tolist() == [[pytest.approx(0.9), 0.25]]


def test_the_ratio_bootstrap_equals_recomputing_the_metric_on_each_resample():
    rng = np.random.default_rng(3)
    den = rng.integers(0, 50, size=(12, 4)).astype(float)
    num = np.floor(den * rng.random((12, 4)))
    scores = _ratio_scores(num, den)
    draws = rng.integers(0, 12, size=(5, 12))
    counts = np.zeros((5, 12))
    np.add.at(counts, (np.arange(5)[:, None], draws), 1.0)
    for r in range(5):
        n, d = num[draws[r]].sum(0), den[draws[r]].sum(0)
        assert scores.resampled(counts)[0, r] == pytest.approx(np.mean((n / d)[d > 0]))


def test_paired_ratio_differences_rank_by_the_whole_set_value():
    # "b" wins most images on the per-image mean (small images) but loses the whole set
    a = _ratio_scores([[50, 0]] + [[1, 0]] * 9, [[60, 0]] + [[4, 0]] * 9)
    b = _ratio_scores([[10, 0]] + [[3, 0]] * 9, [[60, 0]] + [[4, 0]] * 9)
    assert a.mean() > b.mean() and a.per_image.mean() < b.per_image.mean()
    ranked = verdicts({"a": a, "b": b}, higher_is_better=True)
    assert [v.name for v in ranked] == ["a", "b"] and ranked[0].mean == pytest.approx(59 / 96)
    difference = paired_difference(b, a, higher_is_better=True)
    assert difference.mean == pytest.approx(37 / 96 - 59 / 96) and difference.win_fraction == pytest.approx(0.9)
    # mixed with plain per-image tables, both fall back to the per-image values
    mixed = paired_difference(b, a.per_image, higher_is_better=True)
    assert mixed.mean == pytest.approx(b.per_image.mean() - a.per_image.mean())


def test_ratio_scores_name_a_shape_mismatch():
    with pytest.raises(ValueError, match="RatioScores"):
        RatioScores(np.ones((1, 2, 3)), np.ones((1, 2, 4)), np.ones((1, 2)))
