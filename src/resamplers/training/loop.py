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
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .._checks import check_choice, check_int
from ..storage import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    write_json_atomic,
)
from .distributed import DistributedContext, init_distributed
from .schedule import SCHEDULES, lr_factor

__all__ = [
    "fit",
    "LoopConfig",
    "TrainingTask",
    "TrainResult",
    "TrainingDiverged",
    "build_optimizer",
    "channels_last_batch",
    "StepSampler",
    "OPTIMIZERS",
    "PRECISIONS",
]

# loss_fn(model, batch) -> (scalar loss, {name: detached scalar})
LossFn = Callable[[nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, torch.Tensor]]]
# param_groups(model) -> [{"params": [...], "lr_scale": float}, ...]
ParamGroupsFn = Callable[[nn.Module], list[dict[str, Any]]]

OPTIMIZERS = ("adamw", "official")
# Mixed precision of the forward pass and loss: none (float32), bf16 (CPU and CUDA), fp16 (CUDA, with a grad scaler).
PRECISIONS = ("none", "bf16", "fp16")


@dataclass
class LoopConfig:
    """What the loop needs to know, whatever the task.

    ``optimizer`` is ``adamw`` (weight decay ``weight_decay``) or ``official`` (Adam
    without weight decay); both use the task's parameter groups and their learning-rate
    scales.  ``schedule`` is one of :data:`~resamplers.training.schedule.SCHEDULES`.
    ``amp`` runs forward and loss under autocast (:data:`PRECISIONS`); the weights, the
    optimizer and the checkpoints stay float32.  ``channels_last`` keeps the network's
    weights and the batches' 4-D tensors in that memory format (faster convolutions on
    CPU; the checkpoints hold the same values).
    """

    out: str = "runs/matting"
    steps: int = 1000
    batch_size: int = 8
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
    amp: str = "none"
    channels_last: bool = False

    def validate(self) -> LoopConfig:
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.schedule, "schedule", SCHEDULES)
        check_choice(self.amp, "amp", PRECISIONS)
        if not isinstance(self.channels_last, bool):
            raise TypeError(f"argument `channels_last`: expected a bool, got {self.channels_last!r}")
        for name in ("batch_size", "steps", "checkpoint_every", "log_every"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.workers, "workers", minimum=0)
        check_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.threads is not None:
            check_int(self.threads, "threads", minimum=1)
        if not self.lr > 0:
            raise ValueError(f"argument `lr`: expected a positive learning rate, got {self.lr}")
        return self


@dataclass
class TrainingTask:
    """The task-specific half of a run: the network, its loss, its data, its parameter groups.

    ``dataset`` is map-style and item ``i`` must be a deterministic function of ``i``;
    ``build_model`` is called after seeding, so every rank starts from equal weights;
    ``model_config`` is stored with the weights so that the network can be rebuilt;
    ``param_groups`` defaults to one group of every trainable parameter at scale 1.
    """

    build_model: Callable[[], nn.Module]
    loss: LossFn
    dataset: Dataset
    model_config: dict[str, Any]
    param_groups: ParamGroupsFn | None = None
    min_batch_per_process: int = 1


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None
    interrupted: bool
    seconds_per_step: float
    images_per_second: float


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became non-finite; the last good checkpoint is kept."""


class StepSampler(Sampler[int]):
    """Global sample indices of steps ``start .. total - 1`` for one data-parallel rank."""

    def __init__(self, start_step: int, total_steps: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"argument `batch_size`: {batch_size} does not split over {world_size} processes")
        self.start, self.total, self.batch, self.rank, self.world = (
            start_step,
            total_steps,
            batch_size,
            rank,
            world_size,
        )

    def __iter__(self) -> Iterator[int]:
        per_rank = self.batch // self.world
        for step in range(self.start, self.total):
            first = step * self.batch + self.rank * per_rank
            yield from range(first, first + per_rank)

    def __len__(self) -> int:
        return (self.total - self.start) * (self.batch // self.world)


def _all_trainable(model: nn.Module) -> list[dict[str, Any]]:
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]


def build_optimizer(
    model: nn.Module, config: LoopConfig, param_groups: ParamGroupsFn | None = None
) -> torch.optim.Optimizer:
    """AdamW or Adam (``official``) over the task's parameter groups.

    Each group's learning rate is ``config.lr * lr_scale``, kept as ``base_lr`` so that the
    schedule scales it and a resumed optimizer carries it.
    """
    groups = []
    for group in (param_groups or _all_trainable)(model):
        base_lr = config.lr * float(group.get("lr_scale", 1.0))
        groups.append({"params": list(group["params"]), "lr": base_lr, "base_lr": base_lr})
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=config.lr)


def _set_lr(optimizer: torch.optim.Optimizer, config: LoopConfig, step: int) -> float:
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
    """Keep the log lines up to ``step``, the checkpoint a resumed run starts from.

    The checkpoint is the source of truth: a line torn by a killed write (or any line that
    does not parse) is dropped with a warning naming the file, instead of blocking resume.
    """
    if not path.is_file():
        return
    kept, torn = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    if torn:
        warnings.warn(
            f"{path}: dropped {torn} unreadable line(s) (a write cut short); the checkpoint at step "
            f"{step} is the source of truth",
            stacklevel=3,
        )
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
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )
        self.task = self.bar.add_task("train", total=total, completed=start, status="")
        self.bar.start()

    def update(self, step: int, status: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, status=status)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class _Precision:
    """Autocast and, for float16, a gradient scaler: the ``amp`` setting on one device."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.device_type = device.type
        if amp == "fp16" and device.type != "cuda":
            raise ValueError(f"argument `amp`: 'fp16' needs a CUDA device (running on {device.type}); use 'bf16'")
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, step: int) -> None:
        if self.scaler is None:
            loss.backward()
            _check_finite_gradients(optimizer, step)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)  # skips steps whose gradients overflowed float16
        self.scaler.update()


def _check_finite_gradients(optimizer: torch.optim.Optimizer, step: int) -> None:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
        raise TrainingDiverged(f"training diverged at step {step + 1}: non-finite gradients")


def _check_finite_loss(loss: torch.Tensor, step: int) -> None:
    if not bool(torch.isfinite(loss.detach())):
        raise TrainingDiverged(f"training diverged at step {step + 1}: the loss is {loss.item()}")


@dataclass
class _Run:
    """The state a run carries from step to step."""

    model: nn.Module
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    precision: _Precision
    start_step: int
    checkpoint: Path | None
    step_times: list[float] = field(default_factory=list)


class _LogWindow:
    """Losses since the last log line, reduced over ranks into one record."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.parts: dict[str, list[float]] = {}

    def add(self, loss: float, parts: Mapping[str, Any]) -> None:
        self.losses.append(loss)
        for name, value in parts.items():
            self.parts.setdefault(name, []).append(float(value))

    def record(
        self, ctx: DistributedContext, step: int, lr: float, step_times: list[float], batch_size: int, elapsed: float
    ) -> dict[str, Any]:
        recent = step_times[-len(self.losses) :]
        record = {
            "step": step,
            "loss": ctx.mean(sum(self.losses) / len(self.losses)),
            **{name: ctx.mean(sum(v) / len(v)) for name, v in self.parts.items()},
            "lr": lr,
            "seconds_per_step": sum(recent) / len(recent),
            "images_per_second": batch_size * len(recent) / sum(recent),
            "elapsed_s": elapsed,
            "processes": ctx.world_size,
        }
        self.losses.clear()
        self.parts.clear()
        return record


def fit(
    task: TrainingTask,
    config: LoopConfig,
    *,
    run_config: dict[str, Any],
    identity: Sequence[str] | Mapping[str, Any] = (),
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``task`` for ``config.steps`` steps in the run directory ``config.out``.

    Args:
        task: the network, loss, data and parameter groups (:class:`TrainingTask`).
        config: optimisation and bookkeeping settings.
        run_config: stored in the checkpoint and as ``config.json``.
        identity: ``run_config`` fields a resumed run must share with its checkpoint (a
            mapping also gives the value assumed when an older checkpoint lacks a field).
        resume: continue from the newest checkpoint in the run directory.
        progress: show a progress bar (rank 0 only).
        stop_after: stop (with a checkpoint) after this many steps, as an interruption would (but
            the result's ``interrupted`` stays false: only a signal sets it).

    Raises:
        TrainingDiverged: the loss or gradients became non-finite (the last good
            checkpoint stays the newest).
    """
    config.validate()
    ctx: DistributedContext = init_distributed()
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        _check_batch(task, config, ctx)
        run = _start(task, config, ctx, run_config, identity, resume)
        if run.start_step >= config.steps:  # already finished: report the timing it recorded
            seconds = (
                float(load_checkpoint(run.checkpoint).get("extra", {}).get("seconds_per_step", 0.0))
                if run.checkpoint
                else 0.0
            )
            return TrainResult(
                run.start_step, run.checkpoint, False, seconds, config.batch_size / seconds if seconds else 0.0
            )
        return _train(task, config, ctx, run, run_config, progress, stop_after)
    finally:
        ctx.close()


def _check_batch(task: TrainingTask, config: LoopConfig, ctx: DistributedContext) -> None:
    per_rank = config.batch_size // ctx.world_size
    if per_rank < task.min_batch_per_process:
        raise ValueError(
            f"argument `batch_size`: this model needs at least {task.min_batch_per_process} samples per process, "
            f"got a global batch of {config.batch_size} over {ctx.world_size} process(es)"
        )


def _start(
    task: TrainingTask,
    config: LoopConfig,
    ctx: DistributedContext,
    run_config: dict[str, Any],
    identity: Sequence[str] | Mapping[str, Any],
    resume: bool,
) -> _Run:
    """Build model and optimizer; restore them from the newest checkpoint when resuming."""
    out = Path(config.out)
    ckpt_dir = out / "checkpoints"
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = task.build_model().to(ctx.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    optimizer = build_optimizer(model, config, task.param_groups)
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
        write_json_atomic(out / "config.json", run_config)
        _trim_log(out / "log.jsonl", start_step)
    ctx.barrier()
    train_model: nn.Module = model
    if ctx.enabled:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    model.train()
    return _Run(model, train_model, optimizer, _Precision(config.amp, ctx.device), start_step, existing)


def _train(
    task: TrainingTask,
    config: LoopConfig,
    ctx: DistributedContext,
    run: _Run,
    run_config: dict[str, Any],
    progress: bool,
    stop_after: int | None,
) -> TrainResult:
    out = Path(config.out)
    sampler = StepSampler(run.start_step, config.steps, config.batch_size, ctx.rank, ctx.world_size)
    loader = DataLoader(
        task.dataset, batch_size=config.batch_size // ctx.world_size, sampler=sampler, num_workers=config.workers
    )
    stop = _StopFlag()
    bar = _Progress(config.steps, run.start_step, progress and ctx.is_main)
    window = _LogWindow()
    step, interrupted = run.start_step, False
    run_start = time.perf_counter()
    try:
        with _stop_on_signals(stop):
            for batch in loader:
                lr = _one_step(task, config, ctx, run, batch, step, window)
                step += 1
                if step % config.log_every == 0 or step == config.steps:
                    record = window.record(
                        ctx, step, lr, run.step_times, config.batch_size, time.perf_counter() - run_start
                    )
                    if ctx.is_main:
                        with (out / "log.jsonl").open("a") as log:
                            log.write(json.dumps(record) + "\n")
                    bar.update(step, f"loss {record['loss']:.4f}  {record['images_per_second']:.1f} img/s")
                else:
                    bar.update(step, "")
                signalled = ctx.any_flag(stop.requested)
                halt = signalled or (stop_after is not None and step - run.start_step >= stop_after)
                if step % config.checkpoint_every == 0 or step == config.steps or halt:
                    _save(ctx, out, step, run, task, run_config)
                if halt and step < config.steps:
                    interrupted = signalled  # stopping after `stop_after` steps is what was asked
                    break
    finally:
        bar.close()
    # the median ignores the first steps' warm-up and passing machine load
    median_step = statistics.median(run.step_times) if run.step_times else 0.0
    return TrainResult(
        step,
        run.checkpoint if ctx.is_main else None,
        interrupted,
        median_step,
        config.batch_size / median_step if median_step else 0.0,
    )


def channels_last_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
    """``batch`` with its 4-D tensors in channels-last memory format (same values)."""
    return {
        k: v.contiguous(memory_format=torch.channels_last) if isinstance(v, torch.Tensor) and v.dim() == 4 else v
        for k, v in batch.items()
    }


def _one_step(
    task: TrainingTask,
    config: LoopConfig,
    ctx: DistributedContext,
    run: _Run,
    batch: dict[str, Any],
    step: int,
    window: _LogWindow,
) -> float:
    """One optimisation step; returns the learning rate it used."""
    t0 = time.perf_counter()
    torch.manual_seed(_step_seed(config.seed, ctx.rank, step))
    lr = _set_lr(run.optimizer, config, step)
    batch = {k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if config.channels_last:
        batch = channels_last_batch(batch)
    with run.precision.autocast():
        loss, parts = task.loss(run.train_model, batch)
    _check_finite_loss(loss, step)
    run.optimizer.zero_grad(set_to_none=True)
    run.precision.backward_and_step(loss.float(), run.optimizer, step)
    run.step_times.append(time.perf_counter() - t0)
    window.add(loss.item(), parts)
    return lr


def _save(
    ctx: DistributedContext, out: Path, step: int, run: _Run, task: TrainingTask, run_config: dict[str, Any]
) -> None:
    if ctx.is_main:
        run.checkpoint = save_checkpoint(
            out / "checkpoints",
            step,
            run.model,
            run.optimizer,
            None,
            task.model_config,
            run_config,
            extra={"seconds_per_step": statistics.median(run.step_times)},
        )
    ctx.barrier()
