"""Training the matting network: the task-specific part on top of :func:`~resamplers.training.loop.fit`."""
from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ..models.matting import create_matting_model, matting_inputs
from .config import MODEL_FIELDS, TrainConfig
from .losses import matting_loss
from .loop import LoopSettings, TrainResult, fit

__all__ = ["train", "loop_settings", "matting_batch_loss", "EpochIndexed"]

# Fields a resumed run must share with its checkpoint.
IDENTITY = MODEL_FIELDS + ("batch_size", "seed", "data", "crop")


def loop_settings(config: TrainConfig) -> LoopSettings:
    return LoopSettings(
        out=config.out, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
        weight_decay=config.weight_decay, optimizer=config.optimizer, schedule=config.schedule,
        warmup_steps=config.warmup_steps, checkpoint_every=config.checkpoint_every, log_every=config.log_every,
        workers=config.workers, seed=config.seed, threads=config.threads,
    )


def matting_batch_loss(model: nn.Module, batch: dict[str, Any]):
    pred = model(matting_inputs(batch["image"], batch["trimap"]))
    return matting_loss(pred, batch["alpha"], batch["trimap"], batch["fg"], batch["bg"], batch["image"])


class EpochIndexed(Dataset):
    """Global sample ``g`` of a run is sample ``g % n`` of epoch ``g // n`` of the wrapped composites.

    The loop's sampler hands out global indices (step * batch + position), so every
    sample depends only on its index, whatever the worker count or a resumption.
    """

    def __init__(self, composites: Any) -> None:
        self.composites = composites
        self.epoch_length = len(composites)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, position = divmod(index, self.epoch_length)
        self.composites.set_epoch(epoch)
        return self.composites[position]


def _dataset(config: TrainConfig) -> Dataset:
    from ..data import TrainingComposites, open_source

    if config.data == "folder":
        source = open_source(f"folder:{config.data_root}")
    else:
        source = open_source(config.data, config.data_root if config.data == "real" else None)
    return EpochIndexed(TrainingComposites(source, size=config.crop, seed=config.seed))


def _identity_defaults() -> dict[str, Any]:
    """The :data:`IDENTITY` fields at their defaults: what a checkpoint written before a
    field existed (e.g. ``head_activation``) was trained with."""
    defaults = TrainConfig()
    return {name: getattr(defaults, name) for name in IDENTITY}


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train the matting network described by ``config`` (see :func:`~resamplers.training.loop.fit`).

    ``dataset`` defaults to the source named by ``config.data``; its item ``i`` is a dict
    with ``image``, ``alpha``, ``trimap``, ``fg``, ``bg`` and depends only on ``i``.
    """
    config.validate()

    def build() -> nn.Module:
        return create_matting_model(
            config.pair, config.width, config.aspp, config.output_stride, config.decoder_kernel,
            head_activation=config.head_activation, **config.pair_kwargs
        )

    return fit(
        build, matting_batch_loss, dataset if dataset is not None else _dataset(config), loop_settings(config),
        model_config=config.model_config(), run_config=config.to_dict(), identity=_identity_defaults(), resume=resume,
        progress=progress, stop_after=stop_after,
        # ASPP's image-pooling branch batch-normalises a 1x1 map: it needs 2 samples per process.
        min_batch_per_process=2 if config.aspp else 1,
    )
