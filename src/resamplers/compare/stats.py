"""Paired statistics over test images and seeds: differences, intervals, verdicts, ranks.

Every run of a comparison scores the same test images, so operators are compared *paired*
by image. Seeds are a second level of variation: a hierarchical bootstrap resamples the
test images (shared by every operator, which keeps the pairing) and, within each
operator, its seeds. The input of every function is, per operator, an array
``seeds x images`` of one metric, with the images in the same order for all operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairedDifference",
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


def _as_table(values: np.ndarray) -> np.ndarray:
    table = np.asarray(values, dtype=np.float64)
    if table.ndim == 1:
        table = table[None]
    if table.ndim != 2 or table.shape[1] == 0 or table.shape[0] == 0:
        raise ValueError(f"argument `scores`: expected a seeds x images array, got shape {table.shape}")
    return table


def _check_tables(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not scores:
        raise ValueError("argument `scores`: expected at least one operator")
    tables = {name: _as_table(values) for name, values in scores.items()}
    images = {t.shape[1] for t in tables.values()}
    if len(images) != 1:
        shapes = {name: t.shape for name, t in tables.items()}
        raise ValueError(f"argument `scores`: every operator must score the same images, got shapes {shapes}")
    return tables


def bootstrap_means(scores: Mapping[str, np.ndarray], replicates: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Per operator, ``replicates`` bootstrap means over a shared resample of the images and
    an own resample of its seeds (``replicates`` values each)."""
    tables = _check_tables(scores)
    n_images = next(iter(tables.values())).shape[1]
    rng = np.random.default_rng(seed)
    image_draw = rng.integers(0, n_images, size=(replicates, n_images))
    means = {}
    for name, table in tables.items():
        per_seed = table[:, image_draw].mean(axis=2)  # seeds x replicates
        seed_draw = rng.integers(0, table.shape[0], size=(replicates, table.shape[0]))
        means[name] = per_seed[seed_draw, np.arange(replicates)[:, None]].mean(axis=1)
    return means


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    higher_is_better: bool,
    replicates: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """``a - b`` of one metric (``seeds x images`` each, the same images in the same order)."""
    means = bootstrap_means({"a": a, "b": b}, replicates, seed)
    return _difference(_as_table(a), _as_table(b), means["a"] - means["b"], higher_is_better, confidence)


def _difference(
    a: np.ndarray, b: np.ndarray, samples: np.ndarray, higher_is_better: bool, confidence: float
) -> PairedDifference:
    per_image = a.mean(axis=0) - b.mean(axis=0)
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
    scores: Mapping[str, np.ndarray],
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
