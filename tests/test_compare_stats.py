"""Paired statistics on constructed per-image scores whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from resamplers.compare.stats import NOT_SEPARABLE, WORSE, paired_difference, verdicts


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
