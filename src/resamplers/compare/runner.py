"""Run a comparison: every (operator, seed) of one task under one preset, resumably.

Layout of the results folder::

    OUT/compare.json                       the comparison (task, preset, operators, seeds, data)
    OUT/shared/<task>/...                  what all runs share (test set, reference rows)
    OUT/runs/<task>/<op>/seed-<k>/         one run: checkpoints/, log.jsonl, visuals.npz,
                                           result.json (written last, atomically: the run is done)
    OUT/report.md, OUT/report.html, OUT/*.png

A run with ``result.json`` is never redone; an unfinished one resumes from its newest
checkpoint.  ``shard=(i, n)`` runs every n-th job starting at i, so several processes or
machines can share one results folder; ``resamplers report OUT`` then merges them.  Under
``torchrun`` every run trains data-parallel; rank 0 evaluates and writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._checks import check_int, did_you_mean
from ..bench.timing import machine_info
from ..registry import PAIRS
from ..storage import read_json, write_json_atomic
from ..training.distributed import init_distributed
from ..training.loop import TrainingDiverged
from .scores import run_dir
from .tasks import get_task
from .tasks.base import Preset, RunSpec, Task

__all__ = ["CompareSpec", "run_compare", "resolve_data", "parse_shard", "jobs_of", "next_seed", "MAX_SEEDS"]


@dataclass(frozen=True)
class CompareSpec:
    task: str
    preset: str
    ops: tuple[str, ...]
    seeds: int
    data: str
    data_root: str | None
    layout: str | None = None  # of a folder:PATH data set (voc, ade, generic)
    amp: str = "none"  # autocast of the training steps
    channels_last: bool = False  # networks and batches in channels-last layout while training

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "preset": self.preset,
            "ops": list(self.ops),
            "seeds": self.seeds,
            "data": self.data,
            "data_root": self.data_root,
            "layout": self.layout,
            "amp": self.amp,
            "channels_last": self.channels_last,
        }


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    if not text:
        return (0, 1)
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"argument `--shard`: expected i/n such as 0/2, got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"argument `--shard`: expected 0 <= i < n, got {text!r}")
    return (i, n)


def resolve_ops(task: Task, ops: Sequence[str] | None, preset: Preset | None = None) -> tuple[str, ...]:
    """The requested pairs, checked; by default the preset's set, else the task's."""
    if not ops:
        defaults = (preset.ops if preset is not None else ()) or task.default_ops
        return tuple(op for op in defaults if op in PAIRS)
    for op in ops:
        if op not in PAIRS:
            names = PAIRS.names()
            raise ValueError(
                f"argument `--ops`: {op!r} is not a registered pair{did_you_mean(op, names)} "
                f"Registered: {', '.join(names)}"
            )
    return tuple(dict.fromkeys(ops))


def resolve_data(data: str, data_root: str | None, task: Task | None = None) -> str:
    """``auto`` becomes ``real`` when the fetched data is complete, else ``synthetic``;
    ``folder:PATH`` (a user's data set) is for tasks with folder layouts."""
    layouts = task.folder_layouts if task is not None else ()
    if data.startswith("folder:"):
        if not layouts:
            raise ValueError(f"argument `--data`: task {task.name if task else '?'!r} reads no folder data sets")
        if not Path(data.split(":", 1)[1]).expanduser().is_dir():
            raise ValueError(f"argument `--data`: no such folder {data.split(':', 1)[1]!r}")
        return data
    if data != "auto":
        if data not in ("real", "synthetic"):
            hint = ", or folder:PATH" if layouts else ""
            raise ValueError(f"argument `--data`: expected auto, real or synthetic{hint}, got {data!r}")
        return data
    try:
        from ..data import DataError, open_source

        source = open_source("real", data_root)
        return "real" if source.foregrounds("train") and source.backgrounds("train") else "synthetic"
    except (DataError, OSError, ValueError):
        return "synthetic"


def jobs_of(spec: CompareSpec) -> list[tuple[str, int]]:
    return [(op, seed) for op in spec.ops for seed in range(spec.seeds)]


def _merge_spec(out: Path, spec: CompareSpec) -> CompareSpec:
    """Reuse a results folder for the same comparison; operators and seeds may be added
    (a folder keeps every seed it has: asking for fewer does not drop results)."""
    path = out / "compare.json"
    if not path.is_file():
        return spec
    old = {"amp": "none", "channels_last": False, **read_json(path)}  # folders from before these settings
    for key in ("task", "preset", "data", "layout", "amp", "channels_last"):
        if old.get(key) != getattr(spec, key):
            raise ValueError(
                f"argument `--out`: {out} holds a {old['task']}/{old['preset']} comparison with {key}={old.get(key)!r}, "
                f"not {getattr(spec, key)!r}; choose another --out"
            )
    ops = tuple(dict.fromkeys([*old["ops"], *spec.ops]))
    seeds = max(int(old["seeds"]), spec.seeds)
    return replace(spec, ops=ops, seeds=seeds)


def run_compare(
    task_name: str,
    out: Path,
    *,
    ops: Sequence[str] | None = None,
    preset: str = "quick",
    seeds: int | None = None,
    data: str = "auto",
    data_root: str | None = None,
    layout: str | None = None,
    amp: str = "none",
    channels_last: bool = False,
    shard: tuple[int, int] = (0, 1),
    jobs: int = 1,
    threads: int | None = None,
    time_budget: float | None = None,
    finish: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Run this shard's jobs of a comparison, then write the report; returns the report path.

    ``jobs > 1`` runs the comparison as that many shard processes on this machine (each with
    ``threads`` torch threads, by default the CPUs split evenly) and waits for them.
    ``time_budget`` (minutes, counted from this call) then keeps adding seeds, round-robin
    over the operators not yet separated from the best, until the verdict settles, every
    open operator has :data:`MAX_SEEDS` seeds, or the next run would not fit in the time.
    ``amp`` (``"none"`` or ``"bf16"``) and ``channels_last`` are the training steps'
    precision and layout (:meth:`Preset.with_precision`; recorded in ``compare.json`` and
    in every run's budget).  ``finish=False`` leaves the reference rows, the cost phase and the report to another
    process.  The cost phase (:mod:`resamplers.compare.costs`) runs once every run of the
    comparison has finished.
    """
    started = time.perf_counter()
    task = get_task(task_name)
    check_int(jobs, "jobs", minimum=1)
    if threads is not None:
        check_int(threads, "threads", minimum=1)
        torch.set_num_threads(threads)
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"argument `--time-budget`: expected a positive number of minutes, got {time_budget}")
    if time_budget is not None and shard != (0, 1):
        raise ValueError("argument `--time-budget`: decides from every shard's results; give it without `--shard`")
    if jobs > 1 and shard != (0, 1):
        raise ValueError("argument `--jobs`: runs every shard itself; give it without `--shard`")
    presets = task.presets()
    if preset not in presets:
        raise ValueError(f"argument `--preset`: expected one of {sorted(presets)}, got {preset!r}")
    chosen = presets[preset].with_precision(amp, channels_last)
    n_seeds = chosen.seeds if seeds is None else seeds
    if n_seeds < 1:
        raise ValueError(f"argument `--seeds`: expected at least 1, got {n_seeds}")
    out = Path(out)
    requested = resolve_ops(task, ops, chosen)
    resolved = resolve_data(data, data_root, task)
    if resolved.startswith("folder:") and layout not in task.folder_layouts:
        raise ValueError(
            f"argument `--layout`: expected one of {', '.join(task.folder_layouts)} for folder data, got {layout!r}"
        )
    asked = CompareSpec(task.name, preset, requested, n_seeds, resolved, data_root, layout, amp, channels_last)
    spec = _merge_spec(out, asked)
    if shard[1] > 1:
        say = log
        log = lambda message: say(f"[shard {shard[0]}/{shard[1]}] {message}")  # noqa: E731
    ctx = init_distributed()
    if jobs > 1 and ctx.world_size > 1:
        raise ValueError("argument `--jobs`: not under torchrun (each torchrun process is one worker already)")
    runs = _Runs(task, spec, chosen, out, ctx, progress, log)
    try:
        if ctx.is_main:
            _write_spec(out, spec)
        ctx.barrier()
        every = [(op, seed) for op, seed in jobs_of(spec) if op in requested]
        if ctx.is_main:
            task.prepare(runs.spec(requested[0], 0))
        ctx.barrier()
        if jobs > 1:
            _run_shard_processes(spec, requested, out, jobs, threads, log)
        else:
            mine = every[shard[0] :: shard[1]]
            if ctx.is_main:
                log(f"{task.name}/{preset}: {len(mine)} of {len(every)} runs; data: {spec.data}")
            for number, (op, seed) in enumerate(mine, start=1):
                runs.run(op, seed, f"[{number}/{len(mine)}]")
        if time_budget is not None:
            _add_seeds(runs, requested, started + 60.0 * time_budget, time_budget)
        if not ctx.is_main or not finish:
            return out / "report.md"
        first = runs.spec(requested[0], 0)
        write_json_atomic(runs.shared / "reference.json", task.reference_rows(first))
        _cost_phase(runs)
    finally:
        ctx.close()
    from .report import write_report

    return write_report(out, log=log)


# The most seeds --time-budget gives one operator.
MAX_SEEDS = 8


@dataclass
class _Runs:
    """Runs one (operator, seed) of a comparison into its folder, resumably."""

    task: Task
    compare: CompareSpec
    preset: Preset
    out: Path
    ctx: Any
    progress: bool
    log: Callable[[str], None]

    @property
    def shared(self) -> Path:
        return self.out / "shared" / self.task.name

    def spec(self, op: str, seed: int) -> RunSpec:
        return RunSpec(
            task=self.task.name,
            op=op,
            seed=seed,
            preset=self.preset,
            run_dir=run_dir(self.out, self.task.name, op, seed),
            shared_dir=self.shared,
            data=self.compare.data,
            data_root=self.compare.data_root,
            layout=self.compare.layout,
        )

    def finished(self, op: str, seed: int) -> dict[str, Any] | None:
        """The run's record when it finished under the preset's current budget."""
        done = self.spec(op, seed).run_dir / "result.json"
        if not done.is_file():
            return None
        record = read_json(done)
        return record if _same_budget(record.get("preset", {}), self.preset) else None

    def run(self, op: str, seed: int, tag: str) -> None:
        ctx, log = self.ctx, self.log
        run = self.spec(op, seed)
        done = run.run_dir / "result.json"
        if done.is_file():
            if self.finished(op, seed) is not None:
                log(f"{tag} {op} seed {seed}: done before, kept")
                return
            ctx.barrier()
            if ctx.is_main:
                log(
                    f"{tag} {op} seed {seed}: done before under another {self.preset.name!r} budget (an older "
                    "version of the preset), run again"
                )
                shutil.rmtree(run.run_dir)
            ctx.barrier()
        log(f"{tag} {op} seed {seed}")
        started = time.perf_counter()
        try:
            result = self.task.run(run, self.progress)
        except TrainingDiverged as error:  # a result of the comparison, not a crash of it
            log(f"{tag} {op} seed {seed}: failed: {error}")
            result = {"failed": str(error)}
        if ctx.is_main:
            record = {
                "task": self.task.name,
                "op": op,
                "seed": seed,
                "preset": self.preset.to_dict(),
                "data": self.compare.data,
                "finished": _now(),
                "seconds": time.perf_counter() - started,
                "machine": machine_info(),
                **result,
            }
            write_json_atomic(done, record)
        ctx.barrier()


def _write_spec(out: Path, spec: CompareSpec, **extra: Any) -> None:
    """``compare.json``: the spec, keeping what earlier calls recorded beside it."""
    path = out / "compare.json"
    old = read_json(path) if path.is_file() else {}
    kept = {k: v for k, v in old.items() if k not in spec.to_dict()}
    write_json_atomic(path, {**kept, **spec.to_dict(), **extra, "updated": _now()})


def _seeds_done(runs: _Runs, op: str) -> list[int]:
    folder = runs.out / "runs" / runs.task.name / op
    seeds = sorted(int(p.name.split("-")[1]) for p in folder.glob("seed-*") if p.name.split("-")[1].isdigit())
    return [s for s in seeds if runs.finished(op, s) is not None]


def next_seed(
    tables: Mapping[str, np.ndarray],
    seconds: Mapping[str, float],
    remaining: float,
    *,
    higher_is_better: bool,
    max_seeds: int = MAX_SEEDS,
) -> tuple[str | None, str]:
    """The ``--time-budget`` decision: which operator gets the next seed, or why none.

    ``tables`` are the operators' ``seeds x images`` scores, ``seconds`` the longest run of
    each, ``remaining`` the seconds left. The open operators are the best and those not
    separable from it; among them the one with the fewest seeds goes next (the better
    ranked on a tie). Returns ``(operator, "")`` or ``(None, the reason the phase ends)``.
    """
    from .stats import WORSE, verdicts

    if len(tables) < 2:
        return None, "fewer than two operators have results"
    ranked = verdicts(tables, higher_is_better=higher_is_better)
    open_ops = [v.name for v in ranked if v.verdict != WORSE]
    if len(open_ops) == 1:
        return None, "the verdict settled: every other operator is worse than the best"
    candidates = [op for op in open_ops if tables[op].shape[0] < max_seeds]
    if not candidates:
        return None, f"every open operator has {max_seeds} seeds"
    op = min(candidates, key=lambda o: (tables[o].shape[0], open_ops.index(o)))
    if seconds.get(op, 0.0) > remaining:
        return None, "the time budget was spent"
    return op, ""


def _add_seeds(runs: _Runs, ops: Sequence[str], deadline: float, minutes: float) -> None:
    """The ``--time-budget`` phase: more seeds, chosen by :func:`next_seed`, one run at a time."""
    from .scores import collect, score_tables

    metric = next(m for m in runs.task.metrics if m.name == runs.task.primary)
    added: dict[str, int] = {}
    while True:
        _, records, _ = collect(runs.out)
        records = [r for r in records if r["op"] in ops]
        tables, _ = score_tables(runs.out, runs.task, records)
        longest: dict[str, float] = {}
        for r in records:
            longest[r["op"]] = max(longest.get(r["op"], 0.0), float(r.get("seconds", 0.0)))
        op, ended = next_seed(tables, longest, deadline - time.perf_counter(), higher_is_better=metric.higher_is_better)
        if op is None:
            break
        seed = max(_seeds_done(runs, op), default=-1) + 1
        runs.run(op, seed, "[time budget]")
        added[op] = added.get(op, 0) + 1
    runs.log(f"time budget: {ended}; seeds added: {added or 'none'}")
    if runs.ctx.is_main:
        _write_spec(runs.out, runs.compare, time_budget={"minutes": minutes, "ended": ended, "added": added})


def _cost_phase(runs: _Runs) -> None:
    """Time every operator's trained network, interleaved, once all runs have finished
    (``costs.json``; redone when operators without a measurement have joined)."""
    from .costs import COSTS_FILE, measure_costs

    log = runs.log
    spec = read_json(runs.out / "compare.json")
    ops = list(spec["ops"])
    unfinished = [(op, s) for op in ops for s in range(int(spec["seeds"])) if runs.finished(op, s) is None]
    if unfinished:
        log(
            f"costs: {len(unfinished)} run(s) not finished (other shards?); the cost phase runs when every run "
            "has finished: run the same command again then (no run is redone)"
        )
        return
    path = runs.out / COSTS_FILE
    measured = read_json(path).get("ops", {}) if path.is_file() else {}
    usable = {
        op: min(seeds)
        for op in ops
        if (seeds := [s for s in _seeds_done(runs, op) if "failed" not in runs.finished(op, s)])
    }
    if set(usable) <= set(measured):
        return
    probes = {op: runs.task.cost_probes(runs.spec(op, seed)) for op, seed in usable.items()}
    probes = {op: calls for op, calls in probes.items() if calls}
    if probes:
        write_json_atomic(path, measure_costs(probes, log=log))


def _run_shard_processes(
    spec: CompareSpec, ops: Sequence[str], out: Path, jobs: int, threads: int | None, log: Callable[[str], None]
) -> None:
    """Run shards ``0/jobs .. jobs-1/jobs`` as child processes of this one and wait for all;
    a failed shard raises, naming it (the others' finished runs are kept)."""
    per_process = threads or max(1, (os.cpu_count() or 1) // jobs)
    command = [sys.executable, "-m", "resamplers.cli", "compare", "--task", spec.task, "--preset", spec.preset]
    command += ["--ops", ",".join(ops), "--seeds", str(spec.seeds), "--data", spec.data, "--out", str(out)]
    command += ["--data-root", spec.data_root] if spec.data_root else []
    command += ["--layout", spec.layout] if spec.layout else []
    command += ["--amp", spec.amp] + (["--channels-last"] if spec.channels_last else [])
    command += ["--threads", str(per_process), "--no-progress", "--no-finish"]
    log(f"{spec.task}/{spec.preset}: {jobs} shard processes of {per_process} thread(s) each")
    environment = {**os.environ, "OMP_NUM_THREADS": str(per_process)}
    children = [subprocess.Popen([*command, "--shard", f"{i}/{jobs}"], env=environment) for i in range(jobs)]
    codes = [child.wait() for child in children]
    failed = [f"{i}/{jobs} (exit status {code})" for i, code in enumerate(codes) if code]
    if failed:
        raise RuntimeError(f"compare: shard process(es) {', '.join(failed)} failed; rerun the same command to resume")


def _same_budget(recorded: dict[str, Any], preset: Preset) -> bool:
    """Whether a finished run used the preset's current budget (older results lack nothing
    that matters: missing keys count as different)."""
    budget = preset.budget()
    return all(recorded.get(key) == value for key, value in budget.items())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
