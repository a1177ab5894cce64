"""What makes a comparison's evidence trustworthy, tested without training: the cost
phase's interleaving and spread flag, the --time-budget decision, verdicts of reference
rows, shared initial values of the operators' networks, learning-curve points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from resamplers.compare.costs import summarise, time_rounds
from resamplers.compare.runner import next_seed
from resamplers.compare.stats import BETTER, NOT_SEPARABLE, WORSE, paired_difference, verdict_of
from resamplers.compare.tasks.base import curve_points
from resamplers.models.matting import MattingConfig
from resamplers.training.matting import initial_network


def test_rounds_interleave_every_operator_and_rotate_the_order():
    calls: list[str] = []
    probes = {op: {"latency_ms": (lambda op=op: calls.append(op))} for op in ("a", "b", "c")}
    ticks = itertools.count()
    samples = time_rounds(probes, rounds=3, warmup=1, clock=lambda: float(next(ticks)))
    assert calls == ["c", "a", "b", "a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up round first
    assert {op: len(s["latency_ms"]) for op, s in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(v == 1000.0 for s in samples.values() for v in s["latency_ms"])  # one tick per call


def test_a_large_spread_marks_a_timing_unreliable():
    steady = summarise([10.0, 10.1, 9.9, 10.0, 10.2, 9.8, 10.0])
    assert steady.median_ms == 10.0 and not steady.unreliable and steady.rounds == 7
    loaded = summarise([10.0, 31.0, 9.9, 25.0, 10.2, 40.0, 10.0])  # other load came and went
    assert loaded.unreliable and loaded.relative_spread > 0.25
    with pytest.raises(ValueError, match="samples_ms"):
        summarise([])


def _tables(differences: dict[str, float], seeds: int = 1, images: int = 120, noise: float = 0.3):
    rng = np.random.default_rng(0)
    base = rng.normal(3.0, 1.0, size=images)
    return {op: base + d + noise * rng.normal(size=(seeds, images)) for op, d in differences.items()}


def test_time_budget_seeds_the_open_operator_with_fewest_seeds():
    tables = _tables({"a": 0.0, "b": 0.01, "far": 2.0})
    tables["a"] = np.vstack([tables["a"], tables["a"]])  # a has two seeds, b one
    op, reason = next_seed(tables, {"a": 60.0, "b": 60.0, "far": 60.0}, 600.0, higher_is_better=False)
    assert op == "b" and reason == ""  # `far` is worse than the best: it gets no more seeds


def test_time_budget_ends_when_settled_or_out_of_time_or_capped():
    settled = _tables({"a": 0.0, "b": 1.0, "c": 2.0})
    assert next_seed(settled, {}, 600.0, higher_is_better=False) == (
        None,
        "the verdict settled: every other operator is worse than the best",
    )
    tied = _tables({"a": 0.0, "b": 0.0})
    assert next_seed(tied, {"a": 100.0, "b": 100.0}, 50.0, higher_is_better=False)[1] == "the time budget was spent"
    capped = _tables({"a": 0.0, "b": 0.0}, seeds=2)
    assert next_seed(capped, {}, 600.0, higher_is_better=False, max_seeds=2)[1] == "every open operator has 2 seeds"
    assert next_seed(_tables({"a": 0.0}), {}, 600.0, higher_is_better=False)[0] is None


def test_a_reference_row_can_be_better_worse_or_not_separable():
    t = _tables({"best": 0.0, "classic": -1.0, "blank": 2.0, "same": 0.0}, noise=0.1)
    verdict = {
        name: verdict_of(paired_difference(t[name], t["best"], higher_is_better=False), higher_is_better=False)
        for name in ("classic", "blank", "same")
    }
    assert verdict == {"classic": BETTER, "blank": WORSE, "same": NOT_SEPARABLE}


def test_shared_parts_of_two_operators_networks_start_equal():
    def start(pair: str) -> dict[str, torch.Tensor]:
        torch.manual_seed(7)
        return initial_network(MattingConfig(pair=pair, width=0.25, init_like="bilinear")).state_dict()

    carafe, a2u = start("carafe"), start("a2u")
    shared = [k for k in carafe if k in a2u and carafe[k].shape == a2u[k].shape]
    assert len(shared) > 100
    assert all(torch.equal(carafe[k], a2u[k]) for k in shared)
    torch.manual_seed(7)
    own = initial_network(MattingConfig(pair="a2u", width=0.25)).state_dict()  # without init_like
    assert not all(torch.equal(own[k], a2u[k]) for k in shared)


def test_curve_points_end_at_the_budget():
    assert curve_points(2400, 6) == [400, 800, 1200, 1600, 2000, 2400]
    assert curve_points(2, 4) == [1, 2] and curve_points(10, 1) == [10]


def test_one_seed_is_flagged_in_the_report():
    from resamplers.compare.report import PairedRow, _seed_caveat

    def row(name: str, seeds: int, reference: bool = False) -> PairedRow:
        return PairedRow(name, reference, seeds, 40, 1.0, None, None, "best", "1 [1-1]")

    assert "one seed (1 of 2 operators)" in _seed_caveat([row("a", 3), row("b", 1), row("closed-form", 1, True)])
    assert _seed_caveat([row("a", 2), row("b", 3), row("closed-form", 1, True)]) == ""
