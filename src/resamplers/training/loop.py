"""One training loop for every task: resumable, interruptible, data-parallel.

Determinism and resumption rest on one rule: everything a step consumes is a function of
``(seed, step)``.  Sample ``i`` of the run is composited from seed ``(seed, i)``, the
sampler hands step ``t`` the samples ``t*B .. t*B + B - 1`` (split over ranks), and the
torch RNG (dropout) is re-seeded from ``(seed, rank, t)`` before every step.  A resumed
run therefore repeats exactly what the uninterrupted run would have done, whatever the
number of DataLoader workers.

SIGINT and SIGTERM finish the current step, write a checkpoint and stop, so an
interrupted run loses no finished step; ``resume=True`` continues from the newest
checkpoint in the run directory.
"""
from __future__ import annotations

import json
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..storage import CheckpointError, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from .distributed import DistributedContext, init_distributed
from .schedule import lr_factor

# loss_fn(model, batch) -> (scalar loss, {name: detached scalar})
LossFn = Callable[[nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs to know, whatever the task."""

    out: str
    steps: int
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_steps: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    workers: int = 2
    seed: int = 0
    threads: int | None = None

__all__ = ["fit", "LoopSettings", "TrainResult", "build_optimizer", "StepSampler"]


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None
    interrupted: bool
    seconds_per_step: float
    images_per_second: float


class StepSampler(Sampler[int]):
    """Global sample indices of steps ``start .. total - 1`` for one data-parallel rank."""

    def __init__(self, start_step: int, total_steps: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"argument `batch_size`: {batch_size} does not split over {world_size} processes")
        self.start, self.total, self.batch, self.rank, self.world = start_step, total_steps, batch_size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        per_rank = self.batch // self.world
        for step in range(self.start, self.total):
            first = step * self.batch + self.rank * per_rank
            yield from range(first, first + per_rank)

    def __len__(self) -> int:
        return (self.total - self.start) * (self.batch // self.world)


def build_optimizer(model: nn.Module, config: LoopSettings) -> torch.optim.Optimizer:
    """AdamW over all parameters, or the official recipe: Adam, encoder at lr / 100, no weight decay."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW([p for _, p in params], lr=config.lr, weight_decay=config.weight_decay)
    encoder = [p for n, p in params if n.startswith("encoder.")]
    rest = [p for n, p in params if not n.startswith("encoder.")]
    return torch.optim.Adam(
        [{"params": rest, "lr": config.lr, "base_lr": config.lr},
         {"params": encoder, "lr": config.lr / 100, "base_lr": config.lr / 100}]
    )


def _set_lr(optimizer: torch.optim.Optimizer, config: LoopSettings, step: int) -> float:
    factor = lr_factor(step, config.steps, config.schedule, config.warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", config.lr) * factor
    return optimizer.param_groups[0]["lr"]


def _step_seed(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False


@contextmanager
def _stop_on_signals(flag: _StopFlag):
    """Turn SIGINT/SIGTERM into a request to stop after the current step."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        flag.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _check_resumable(
    saved: dict[str, Any], run_config: dict[str, Any], identity: Sequence[str] | Mapping[str, Any]
) -> None:
    """Refuse to resume unless the checkpoint shares every ``identity`` field with this run.

    As a mapping, ``identity`` also gives the value a field had in a checkpoint written
    before the field existed (an option added later, at the default that keeps the old
    behaviour).
    """
    run = saved.get("run_config") or {}
    assumed = identity if isinstance(identity, Mapping) else {}
    recorded = {f: run.get(f, assumed.get(f)) for f in identity}
    different = [f for f in identity if recorded[f] != run_config.get(f)]
    if different:
        details = ", ".join(f"{f}: checkpoint {recorded[f]!r} vs now {run_config.get(f)!r}" for f in different)
        raise CheckpointError(f"argument `--resume`: the checkpoint was made with another configuration ({details})")


class _Progress:
    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.bar = None
        if not enabled:
            return
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:
            return
        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[status]}"))
        self.task = self.bar.add_task("train", total=total, completed=start, status="")
        self.bar.start()

    def update(self, step: int, status: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, status=status)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def fit(
    build_model: Callable[[], nn.Module],
    loss_fn: LossFn,
    dataset: Dataset,
    settings: LoopSettings,
    *,
    model_config: dict[str, Any],
    run_config: dict[str, Any],
    identity: Sequence[str] | Mapping[str, Any] = (),
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    min_batch_per_process: int = 1,
) -> TrainResult:
    """Train ``build_model()`` on ``dataset`` with ``loss_fn`` for ``settings.steps`` steps.

    Args:
        build_model: builds the network (called after seeding, so every rank starts equal).
        loss_fn: ``loss_fn(model, batch) -> (loss, parts)``.
        dataset: map-style; item ``i`` must be a deterministic function of ``i``.
        settings: optimisation and bookkeeping settings (``settings.out`` is the run directory).
        model_config: stored with the weights so the model can be rebuilt.
        run_config: stored in the checkpoint and as ``config.json``.
        identity: ``run_config`` fields a resumed run must share with its checkpoint (a
            mapping also gives the value assumed when an older checkpoint lacks a field).
        resume: continue from the newest checkpoint in the run directory.
        progress: show a progress bar (rank 0 only).
        stop_after: stop (with a checkpoint) after this many steps, as an interruption would.
        min_batch_per_process: smallest per-process batch the model supports.
    """
    ctx: DistributedContext = init_distributed()
    try:
        return _fit(build_model, loss_fn, dataset, settings, model_config, run_config, identity, resume, progress,
                    stop_after, min_batch_per_process, ctx)
    finally:
        ctx.close()


def _fit(build_model, loss_fn, dataset, settings, model_config, run_config, identity, resume, progress, stop_after,
         min_batch_per_process, ctx) -> TrainResult:
    config = settings
    if config.threads:
        torch.set_num_threads(config.threads)
    per_rank = config.batch_size // ctx.world_size
    if per_rank < min_batch_per_process:
        raise ValueError(
            f"argument `batch_size`: this model needs at least {min_batch_per_process} samples per process, "
            f"got a global batch of {config.batch_size} over {ctx.world_size} process(es)"
        )
    out = Path(config.out)
    ckpt_dir = out / "checkpoints"
    log_path = out / "log.jsonl"

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = build_model().to(ctx.device)
    optimizer = build_optimizer(model, config)
    start_step = 0
    existing = latest_checkpoint(ckpt_dir) if ckpt_dir.exists() else None
    if resume:
        if existing is None:
            raise CheckpointError(f"argument `--resume`: no checkpoint in {ckpt_dir}")
        saved = load_checkpoint(existing)
        _check_resumable(saved, run_config, identity)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        restore_rng(*saved["rng"])
        start_step = saved["step"]
    elif existing is not None:
        raise CheckpointError(
            f"argument `--out`: {out} already holds checkpoints; pass --resume to continue or choose another --out"
        )
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(run_config, indent=2))
        _trim_log(log_path, start_step)
    ctx.barrier()

    train_model: nn.Module = model
    if ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    model.train()
    if start_step >= config.steps:  # already finished: report the timing it recorded
        seconds = float(saved.get("extra", {}).get("seconds_per_step", 0.0))
        return TrainResult(start_step, existing, False, seconds, config.batch_size / seconds if seconds else 0.0)

    sampler = StepSampler(start_step, config.steps, config.batch_size, ctx.rank, ctx.world_size)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=config.workers)
    stop = _StopFlag()
    bar = _Progress(config.steps, start_step, progress and ctx.is_main)
    step = start_step
    window: list[float] = []
    parts_window: dict[str, list[float]] = {}
    step_times: list[float] = []
    checkpoint: Path | None = existing
    interrupted = False
    run_start = time.perf_counter()
    try:
        with _stop_on_signals(stop):
            for batch in loader:
                t0 = time.perf_counter()
                torch.manual_seed(_step_seed(config.seed, ctx.rank, step))
                lr = _set_lr(optimizer, config, step)
                batch = {k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                loss, parts = loss_fn(train_model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                step_times.append(time.perf_counter() - t0)
                window.append(loss.item())
                for name, value in parts.items():
                    parts_window.setdefault(name, []).append(float(value))
                if step % config.log_every == 0 or step == config.steps:
                    recent = step_times[-len(window):]
                    record = {
                        "step": step,
                        "loss": ctx.mean(sum(window) / len(window)),
                        **{name: ctx.mean(sum(v) / len(v)) for name, v in parts_window.items()},
                        "lr": lr,
                        "seconds_per_step": sum(recent) / len(recent),
                        "images_per_second": config.batch_size * len(recent) / sum(recent),
                        "elapsed_s": time.perf_counter() - run_start,
                        "processes": ctx.world_size,
                    }
                    if ctx.is_main:
                        with log_path.open("a") as log:
                            log.write(json.dumps(record) + "\n")
                    window.clear()
                    parts_window.clear()
                    bar.update(step, f"loss {record['loss']:.4f}  {record['images_per_second']:.1f} img/s")
                else:
                    bar.update(step, "")
                halt = ctx.any_flag(stop.requested or (stop_after is not None and step - start_step >= stop_after))
                if step % config.checkpoint_every == 0 or step == config.steps or halt:
                    if ctx.is_main:
                        checkpoint = save_checkpoint(
                            ckpt_dir, step, model, optimizer, None, model_config, run_config,
                            extra={"seconds_per_step": statistics.median(step_times)},
                        )
                    ctx.barrier()
                if halt and step < config.steps:
                    interrupted = True
                    break
    finally:
        bar.close()
    # the median ignores the first steps' warm-up and passing machine load
    mean_step = statistics.median(step_times) if step_times else 0.0
    return TrainResult(step, checkpoint if ctx.is_main else None, interrupted, mean_step,
                       config.batch_size / mean_step if mean_step else 0.0)
