"""The training loop of the matting network: resumable, interruptible, data-parallel.

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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..models.matting import create_matting_model, matting_inputs
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from .config import MODEL_FIELDS, TrainConfig
from .distributed import DistributedContext, init_distributed
from .losses import matting_loss
from .schedule import lr_factor

__all__ = ["train", "TrainResult", "build_optimizer", "StepSampler"]


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


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
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


def _set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int) -> float:
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


def _build_dataset(config: TrainConfig) -> Dataset:
    from ..data import training_dataset

    return training_dataset(config.data, root=config.data_root, size=config.crop, seed=config.seed)


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    run = saved.get("run_config") or {}
    different = [f for f in MODEL_FIELDS + ("batch_size", "seed", "data", "crop") if run.get(f) != getattr(config, f)]
    if different:
        details = ", ".join(f"{f}: checkpoint {run.get(f)!r} vs now {getattr(config, f)!r}" for f in different)
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


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train the matting network described by ``config``.

    Args:
        config: the run configuration (``config.out`` is the run directory).
        resume: continue from the newest checkpoint in ``config.out``.
        dataset: a map-style dataset whose item ``i`` is a deterministic function of ``i``
            (dict with ``image``, ``alpha``, ``trimap``, ``fg``, ``bg``); default: the
            source named by ``config.data``.
        progress: show a progress bar (rank 0 only).
        stop_after: stop (with a checkpoint) after this many steps of this invocation,
            as an interruption would.
    """
    config.validate()
    ctx: DistributedContext = init_distributed()
    try:
        return _train(config, ctx, resume, dataset, progress, stop_after)
    finally:
        ctx.close()


def _train(config, ctx, resume, dataset, progress, stop_after) -> TrainResult:
    if config.threads:
        torch.set_num_threads(config.threads)
    per_rank = config.batch_size // ctx.world_size
    if config.aspp and per_rank < 2:
        raise ValueError(
            f"argument `batch_size`: ASPP's image-pooling branch normalises a 1x1 map, so each of the "
            f"{ctx.world_size} process(es) needs at least 2 samples; got a global batch of {config.batch_size}"
        )
    out = Path(config.out)
    ckpt_dir = out / "checkpoints"
    log_path = out / "log.jsonl"

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = create_matting_model(
        config.pair, config.width, config.aspp, config.output_stride, config.decoder_kernel, **config.pair_kwargs
    ).to(ctx.device)
    optimizer = build_optimizer(model, config)
    start_step = 0
    existing = latest_checkpoint(ckpt_dir) if ckpt_dir.exists() else None
    if resume:
        if existing is None:
            raise CheckpointError(f"argument `--resume`: no checkpoint in {ckpt_dir}")
        saved = load_checkpoint(existing)
        _check_resumable(saved, config)
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
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        _trim_log(log_path, start_step)
    ctx.barrier()

    train_model: nn.Module = model
    if ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    model.train()
    if start_step >= config.steps:
        return TrainResult(start_step, existing, False, 0.0, 0.0)

    data = dataset if dataset is not None else _build_dataset(config)
    sampler = StepSampler(start_step, config.steps, config.batch_size, ctx.rank, ctx.world_size)
    loader = DataLoader(
        data, batch_size=config.batch_size // ctx.world_size, sampler=sampler, num_workers=config.workers,
        persistent_workers=False, drop_last=False,
    )
    stop = _StopFlag()
    bar = _Progress(config.steps, start_step, progress and ctx.is_main)
    step = start_step
    window: list[float] = []
    parts_window: dict[str, list[float]] = {"alpha": [], "composition": []}
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
                pred = train_model(matting_inputs(batch["image"], batch["trimap"]))
                loss, parts = matting_loss(pred, batch["alpha"], batch["trimap"], batch["fg"], batch["bg"], batch["image"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                step_times.append(time.perf_counter() - t0)
                window.append(loss.item())
                for name, value in parts.items():
                    parts_window[name].append(value.item())
                if step % config.log_every == 0 or step == config.steps:
                    record = {
                        "step": step,
                        "loss": ctx.mean(sum(window) / len(window)),
                        **{name: ctx.mean(sum(v) / len(v)) for name, v in parts_window.items()},
                        "lr": lr,
                        "seconds_per_step": sum(step_times[-len(window):]) / len(window),
                        "images_per_second": config.batch_size * len(window) / sum(step_times[-len(window):]),
                        "elapsed_s": time.perf_counter() - run_start,
                    }
                    if ctx.is_main:
                        with log_path.open("a") as log:
                            log.write(json.dumps(record) + "\n")
                    window.clear()
                    for v in parts_window.values():
                        v.clear()
                    bar.update(step, f"loss {record['loss']:.4f}  {record['images_per_second']:.1f} img/s")
                else:
                    bar.update(step, "")
                halt = ctx.any_flag(stop.requested or (stop_after is not None and step - start_step >= stop_after))
                if step % config.checkpoint_every == 0 or step == config.steps or halt:
                    if ctx.is_main:
                        checkpoint = save_checkpoint(
                            ckpt_dir, step, model, optimizer, None, config.model_config(), config.to_dict(),
                            extra={"seconds_per_step": sum(step_times) / len(step_times)},
                        )
                    ctx.barrier()
                if halt and step < config.steps:
                    interrupted = True
                    break
    finally:
        bar.close()
    mean_step = sum(step_times) / len(step_times) if step_times else 0.0
    return TrainResult(step, checkpoint if ctx.is_main else None, interrupted, mean_step,
                       config.batch_size / mean_step if mean_step else 0.0)
