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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .._checks import check_int, did_you_mean
from ..bench.timing import machine_info
from ..registry import PAIRS
from ..storage import read_json, write_json_atomic
from ..training.distributed import init_distributed
from ..training.loop import TrainingDiverged
from .tasks import get_task
from .tasks.base import Preset, RunSpec, Task

__all__ = ["CompareSpec", "run_compare", "resolve_data", "parse_shard", "jobs_of"]


@dataclass(frozen=True)
class CompareSpec:
    task: str
    preset: str
    ops: tuple[str, ...]
    seeds: int
    data: str
    data_root: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "preset": self.preset,
            "ops": list(self.ops),
            "seeds": self.seeds,
            "data": self.data,
            "data_root": self.data_root,
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


def resolve_data(data: str, data_root: str | None) -> str:
    """``auto`` becomes ``real`` when the fetched data is complete, else ``synthetic``."""
    if data != "auto":
        if data not in ("real", "synthetic"):
            raise ValueError(f"argument `--data`: expected auto, real or synthetic, got {data!r}")
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
    old = read_json(path)
    for key in ("task", "preset", "data"):
        if old[key] != getattr(spec, key):
            raise ValueError(
                f"argument `--out`: {out} holds a {old['task']}/{old['preset']} comparison with {key}={old[key]!r}, "
                f"not {getattr(spec, key)!r}; choose another --out"
            )
    ops = tuple(dict.fromkeys([*old["ops"], *spec.ops]))
    return CompareSpec(spec.task, spec.preset, ops, max(int(old["seeds"]), spec.seeds), spec.data, spec.data_root)


def run_compare(
    task_name: str,
    out: Path,
    *,
    ops: Sequence[str] | None = None,
    preset: str = "quick",
    seeds: int | None = None,
    data: str = "auto",
    data_root: str | None = None,
    shard: tuple[int, int] = (0, 1),
    jobs: int = 1,
    threads: int | None = None,
    finish: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Run this shard's jobs of a comparison, then write the report; returns the report path.

    ``jobs > 1`` runs the comparison as that many shard processes on this machine (each with
    ``threads`` torch threads, by default the CPUs split evenly) and waits for them.
    ``finish=False`` leaves the reference rows and the report to another process.
    """
    task = get_task(task_name)
    check_int(jobs, "jobs", minimum=1)
    if threads is not None:
        check_int(threads, "threads", minimum=1)
        torch.set_num_threads(threads)
    presets = task.presets()
    if preset not in presets:
        raise ValueError(f"argument `--preset`: expected one of {sorted(presets)}, got {preset!r}")
    chosen = presets[preset]
    n_seeds = chosen.seeds if seeds is None else seeds
    if n_seeds < 1:
        raise ValueError(f"argument `--seeds`: expected at least 1, got {n_seeds}")
    out = Path(out)
    requested = resolve_ops(task, ops, chosen)
    spec = _merge_spec(
        out, CompareSpec(task.name, preset, requested, n_seeds, resolve_data(data, data_root), data_root)
    )
    if shard[1] > 1:
        say = log
        log = lambda message: say(f"[shard {shard[0]}/{shard[1]}] {message}")  # noqa: E731
    if jobs > 1 and shard != (0, 1):
        raise ValueError("argument `--jobs`: runs every shard itself; give it without `--shard`")
    ctx = init_distributed()
    try:
        if ctx.is_main:
            write_json_atomic(out / "compare.json", {**spec.to_dict(), "updated": _now()})
        shared = out / "shared" / task.name
        every = [(op, seed) for op, seed in jobs_of(spec) if op in requested]
        mine = every[shard[0] :: shard[1]]
        first = _run_spec(task, spec, requested[0], 0, out, shared, chosen)
        if ctx.is_main:
            task.prepare(first)
        ctx.barrier()
        if jobs > 1:
            if ctx.world_size > 1:
                raise ValueError("argument `--jobs`: not under torchrun (each torchrun process is one worker already)")
            _run_shard_processes(spec, requested, out, jobs, threads, log)
            mine = []
        elif ctx.is_main:
            where = f"shard {shard[0]}/{shard[1]}: " if shard[1] > 1 else ""
            log(f"{task.name}/{preset}: {where}{len(mine)} of {len(every)} runs; data: {spec.data}")
        for number, (op, seed) in enumerate(mine, start=1):
            run = _run_spec(task, spec, op, seed, out, shared, chosen)
            done = run.run_dir / "result.json"
            if done.is_file():
                if _same_budget(read_json(done).get("preset", {}), chosen):
                    log(f"[{number}/{len(mine)}] {op} seed {seed}: done before, kept")
                    continue
                ctx.barrier()
                if ctx.is_main:
                    log(
                        f"[{number}/{len(mine)}] {op} seed {seed}: done before under another {preset!r} budget "
                        "(an older version of the preset), run again"
                    )
                    shutil.rmtree(run.run_dir)
                ctx.barrier()
            log(f"[{number}/{len(mine)}] {op} seed {seed}")
            started = time.perf_counter()
            try:
                result = task.run(run, progress)
            except TrainingDiverged as error:  # a result of the comparison, not a crash of it
                log(f"[{number}/{len(mine)}] {op} seed {seed}: failed: {error}")
                result = {"failed": str(error)}
            if ctx.is_main:
                record = {
                    "task": task.name,
                    "op": op,
                    "seed": seed,
                    "preset": chosen.to_dict(),
                    "data": spec.data,
                    "finished": _now(),
                    "seconds": time.perf_counter() - started,
                    "machine": machine_info(),
                    **result,
                }
                write_json_atomic(done, record)
            ctx.barrier()
        if not ctx.is_main or not finish:
            return out / "report.md"
        rows = task.reference_rows(first)
        write_json_atomic(shared / "reference.json", rows)
    finally:
        ctx.close()
    from .report import write_report

    return write_report(out, log=log)


def _run_shard_processes(
    spec: CompareSpec, ops: Sequence[str], out: Path, jobs: int, threads: int | None, log: Callable[[str], None]
) -> None:
    """Run shards ``0/jobs .. jobs-1/jobs`` as child processes of this one and wait for all;
    a failed shard raises, naming it (the others' finished runs are kept)."""
    per_process = threads or max(1, (os.cpu_count() or 1) // jobs)
    command = [sys.executable, "-m", "resamplers.cli", "compare", "--task", spec.task, "--preset", spec.preset]
    command += ["--ops", ",".join(ops), "--seeds", str(spec.seeds), "--data", spec.data, "--out", str(out)]
    command += ["--data-root", spec.data_root] if spec.data_root else []
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


def _run_spec(task: Task, spec: CompareSpec, op: str, seed: int, out: Path, shared: Path, preset) -> RunSpec:
    return RunSpec(
        task=task.name,
        op=op,
        seed=seed,
        preset=preset,
        run_dir=out / "runs" / task.name / op / f"seed-{seed}",
        shared_dir=shared,
        data=spec.data,
        data_root=spec.data_root,
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
