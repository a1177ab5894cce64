"""Paired statistics over test images and seeds: differences, intervals, verdicts, ranks.

Every run of a comparison scores the same test images, so operators are compared *paired*
by image. Seeds are a second level of variation: a hierarchical bootstrap resamples the
test images (shared by every operator, which keeps the pairing) and, within each
operator, its seeds. The input of every function is, per operator, an array
``seeds x images`` of one metric, with the images in the same order for all operators,
or a :class:`RatioScores` for a metric that is not a mean over images.

A whole-set metric such as mmsegmentation's mIoU (per class, intersections summed over
the images divided by unions summed over them, then the mean over classes) is not the
mean of per-image scores: an image's own mIoU weighs a small object as much as the
whole background, so per-image means can rank a model differently from the table, and
even above a trivial prediction that the whole-set metric ranks far below.  For such a
metric the bootstrap resamples the images' per-class counts and recomputes the whole-set
value in every replicate: the intervals are then about the number in the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairedDifference",
    "RatioScores",
    "Scores",
    "OperatorVerdict",
    "bootstrap_means",
    "paired_difference",
    "verdicts",
    "verdict_of",
    "BEST",
    "NOT_SEPARABLE",
    "WORSE",
    "BETTER",
    "SHORT_VERDICTS",
]

BEST = "best"
NOT_SEPARABLE = "not separable from the best"
WORSE = "worse than the best"
BETTER = "better than the best"  # only a reference row (not an operator) can be
SHORT_VERDICTS = {BEST: "best", NOT_SEPARABLE: "~best", WORSE: "worse", BETTER: "better"}


@dataclass(frozen=True)
class PairedDifference:
    """``mean`` of ``a - b`` over images (and seeds), its bootstrap interval, and the
    fraction of images on which ``a`` is better than ``b`` (ties count half)."""

    mean: float
    low: float
    high: float
    win_fraction: float


@dataclass(frozen=True)
class OperatorVerdict:
    name: str
    mean: float
    seeds: int
    images: int
    verdict: str
    rank: int
    rank_low: int
    rank_high: int
    vs_best: PairedDifference | None
    vs_baseline: PairedDifference | None


@dataclass(frozen=True)
class RatioScores:
    """A whole-set metric ``mean over classes c of sum_i num[i, c] / sum_i den[i, c]``
    (classes whose summed denominator is 0 left out), of ``seeds x images``.

    ``numerators`` and ``denominators`` are ``seeds x images x classes`` counts (additive
    over images); ``per_image`` (``seeds x images``) is each image's own score, used only
    for the share of images on which one operator beats another.
    """

    numerators: np.ndarray
    denominators: np.ndarray
    per_image: np.ndarray

    def __post_init__(self) -> None:
        num, den, per = (np.asarray(x, dtype=np.float64) for x in (self.numerators, self.denominators, self.per_image))
        if num.ndim != 3 or num.shape != den.shape or per.shape != num.shape[:2] or 0 in num.shape:
            raise ValueError(
                "argument `RatioScores`: expected numerators and denominators of one shape seeds x images x "
                f"classes and per_image seeds x images, got {num.shape}, {den.shape} and {per.shape}"
            )
        object.__setattr__(self, "numerators", num)
        object.__setattr__(self, "denominators", den)
        object.__setattr__(self, "per_image", per)

    @property
    def shape(self) -> tuple[int, int]:
        return self.per_image.shape  # type: ignore[return-value]

    def mean(self) -> float:
        """The whole-set metric of each seed, averaged over the seeds."""
        return float(_class_mean(self.numerators.sum(axis=1), self.denominators.sum(axis=1)).mean())

    def resampled(self, image_counts: np.ndarray) -> np.ndarray:
        """``seeds x replicates`` whole-set values, replicate ``r`` taking image ``i``
        ``image_counts[r, i]`` times."""
        num = np.einsum("ri,sic->src", image_counts, self.numerators)
        den = np.einsum("ri,sic->src", image_counts, self.denominators)
        return _class_mean(num, den)


def _class_mean(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Mean over the last axis of ``num / den``, skipping entries whose ``den`` is 0."""
    counted = den > 0
    ratio = np.divide(num, den, out=np.zeros_like(num), where=counted)
    return ratio.sum(axis=-1) / np.maximum(counted.sum(axis=-1), 1)


Scores = np.ndarray | RatioScores


def _per_image(table: Scores) -> np.ndarray:
    return table.per_image if isinstance(table, RatioScores) else table


def _same_kind(tables: dict[str, Scores]) -> dict[str, Scores]:
    """All :class:`RatioScores`, or else all per-image tables (a mixture falls back to
    the per-image scores, the only ones every table has)."""
    if all(isinstance(t, RatioScores) for t in tables.values()):
        return tables
    return {name: _per_image(t) for name, t in tables.items()}


def _as_table(values: Scores) -> Scores:
    if isinstance(values, RatioScores):
        return values
    table = np.asarray(values, dtype=np.float64)
    if table.ndim == 1:
        table = table[None]
    if table.ndim != 2 or table.shape[1] == 0 or table.shape[0] == 0:
        raise ValueError(f"argument `scores`: expected a seeds x images array, got shape {table.shape}")
    return table


def _check_tables(scores: Mapping[str, Scores]) -> dict[str, Scores]:
    if not scores:
        raise ValueError("argument `scores`: expected at least one operator")
    tables = _same_kind({name: _as_table(values) for name, values in scores.items()})
    images = {t.shape[1] for t in tables.values()}
    if len(images) != 1:
        shapes = {name: t.shape for name, t in tables.items()}
        raise ValueError(f"argument `scores`: every operator must score the same images, got shapes {shapes}")
    return tables


def bootstrap_means(scores: Mapping[str, Scores], replicates: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Per operator, ``replicates`` bootstrap values of its metric (the mean, or the
    whole-set value of :class:`RatioScores`) over a shared resample of the images and an
    own resample of its seeds (``replicates`` values each)."""
    tables = _check_tables(scores)
    n_images = next(iter(tables.values())).shape[1]
    rng = np.random.default_rng(seed)
    image_draw = rng.integers(0, n_images, size=(replicates, n_images))
    image_counts = np.zeros((replicates, n_images))
    np.add.at(image_counts, (np.arange(replicates)[:, None], image_draw), 1.0)
    means = {}
    for name, table in tables.items():
        if isinstance(table, RatioScores):
            per_seed = table.resampled(image_counts)  # seeds x replicates
        else:
            per_seed = table @ image_counts.T / n_images
        seed_draw = rng.integers(0, table.shape[0], size=(replicates, table.shape[0]))
        means[name] = per_seed[seed_draw, np.arange(replicates)[:, None]].mean(axis=1)
    return means


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_difference(
    a: Scores,
    b: Scores,
    *,
    higher_is_better: bool,
    replicates: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """``a - b`` of one metric (``seeds x images`` each, the same images in the same order)."""
    tables = _check_tables({"a": a, "b": b})
    means = bootstrap_means(tables, replicates, seed)
    return _difference(tables["a"], tables["b"], means["a"] - means["b"], higher_is_better, confidence)


def _difference(
    a: Scores, b: Scores, samples: np.ndarray, higher_is_better: bool, confidence: float
) -> PairedDifference:
    per_image = _per_image(a).mean(axis=0) - _per_image(b).mean(axis=0)
    better = per_image > 0 if higher_is_better else per_image < 0
    wins = float(np.mean(better) + 0.5 * np.mean(per_image == 0))
    low, high = _interval(samples, confidence)
    return PairedDifference(float(a.mean() - b.mean()), low, high, wins)


def verdict_of(vs_best: PairedDifference, higher_is_better: bool) -> str:
    """The verdict of a paired difference to the best: worse or better when its interval
    excludes zero on that side, else not separable."""
    if (vs_best.high < 0) if higher_is_better else (vs_best.low > 0):
        return WORSE
    if (vs_best.low > 0) if higher_is_better else (vs_best.high < 0):
        return BETTER
    return NOT_SEPARABLE


def verdicts(
    scores: Mapping[str, Scores],
    *,
    higher_is_better: bool,
    baseline: str | None = None,
    replicates: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[OperatorVerdict]:
    """Each operator against the best one (and ``baseline``), best first.

    The best is the operator with the best mean. Another operator is "worse than the
    best" when the ``confidence`` interval of its paired difference to the best excludes
    zero on the worse side, else "not separable from the best". The rank interval holds
    the ``confidence`` central share of its ranks over the bootstrap replicates.
    """
    tables = _check_tables(scores)
    if baseline is not None and baseline not in tables:
        raise ValueError(f"argument `baseline`: {baseline!r} is not among the operators {sorted(tables)}")
    sign = 1.0 if higher_is_better else -1.0
    names = sorted(tables, key=lambda n: -sign * tables[n].mean())
    best = names[0]
    samples = bootstrap_means(tables, replicates, seed)
    stacked = np.stack([samples[n] for n in names])  # operators x replicates
    ranks = (-sign * stacked).argsort(axis=0).argsort(axis=0) + 1
    result = []
    for i, name in enumerate(names):
        table = tables[name]
        vs_best = (
            None
            if name == best
            else _difference(table, tables[best], samples[name] - samples[best], higher_is_better, confidence)
        )
        vs_baseline = (
            None
            if baseline in (None, name)
            else _difference(table, tables[baseline], samples[name] - samples[baseline], higher_is_better, confidence)
        )
        verdict = BEST if vs_best is None else verdict_of(vs_best, higher_is_better)
        low, high = _interval(ranks[i].astype(np.float64), confidence)
        result.append(
            OperatorVerdict(
                name=name,
                mean=float(table.mean()),
                seeds=table.shape[0],
                images=table.shape[1],
                verdict=verdict,
                rank=i + 1,
                rank_low=int(np.floor(low)),
                rank_high=int(np.ceil(high)),
                vs_best=vs_best,
                vs_baseline=vs_baseline,
            )
        )
    return result
