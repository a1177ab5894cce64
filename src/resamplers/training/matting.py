"""Training the matting network: the task-specific part on top of :func:`~resamplers.training.loop.fit`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ..models.matting import MattingConfig, create_matting_model, matting_inputs
from ..storage import CheckpointError, latest_checkpoint, load_checkpoint, read_json
from .config import MUTABLE_ON_RESUME, TrainConfig
from .initialisation import initialised_like
from .loop import TrainingTask, TrainResult, fit
from .losses import matting_loss

__all__ = [
    "train",
    "resumed_config",
    "training_dataset",
    "initial_network",
    "matting_batch_loss",
    "matting_param_groups",
    "EpochIndexed",
]

# The official recipe trains the ImageNet encoder a hundred times slower than the rest.
ENCODER_LR_SCALE = 0.01


def matting_batch_loss(model: nn.Module, batch: dict[str, Any]):
    # the loss runs in float32 whatever precision the network ran in
    pred = model(matting_inputs(batch["image"], batch["trimap"])).float()
    return matting_loss(pred, batch["alpha"], batch["trimap"], batch["fg"], batch["bg"], batch["image"])


def matting_param_groups(optimizer: str):
    """Parameter groups for ``optimizer``: one group (``adamw``), or decoder, head and pairs
    at the base rate and the encoder at :data:`ENCODER_LR_SCALE` of it (``official``)."""

    def groups(model: nn.Module) -> list[dict[str, Any]]:
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if optimizer != "official":
            return [{"params": [p for _, p in params], "lr_scale": 1.0}]
        return [
            {"params": [p for n, p in params if not n.startswith("encoder.")], "lr_scale": 1.0},
            {"params": [p for n, p in params if n.startswith("encoder.")], "lr_scale": ENCODER_LR_SCALE},
        ]

    return groups


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


def training_dataset(config: TrainConfig) -> Dataset:
    """The training samples of ``config``: item ``i`` is a function of ``i`` and the seed."""
    from ..data import TrainingComposites, open_source

    data = config.dataset
    if data.data == "folder":
        source = open_source(f"folder:{data.data_root}")
    else:
        source = open_source(data.data, data.data_root if data.data == "real" else None)
    return EpochIndexed(TrainingComposites(source, size=data.crop, seed=config.loop.seed))


def _identity_defaults() -> dict[str, Any]:
    """Every setting a resumed run must keep, at its default: what a checkpoint written
    before an option existed (e.g. ``head_activation``, ``amp``) was trained with."""
    defaults = TrainConfig().to_dict()
    return {name: value for name, value in defaults.items() if name not in MUTABLE_ON_RESUME}


def resumed_config(out: str | Path, given: dict[str, Any]) -> TrainConfig:
    """The configuration of the run in ``out``, with the explicitly ``given`` settings applied.

    The newest checkpoint's run config is the source of truth (``config.json`` when it
    has none).  ``given`` may change only :data:`MUTABLE_ON_RESUME`; any other setting
    given with a different value raises ``CheckpointError`` naming it.
    """
    out = Path(out)
    newest = latest_checkpoint(out / "checkpoints") if (out / "checkpoints").is_dir() else None
    if newest is None:
        raise CheckpointError(f"argument `--resume`: no checkpoint in {out / 'checkpoints'}")
    recorded = load_checkpoint(newest).get("run_config") or {}
    if not recorded and (out / "config.json").is_file():
        recorded = read_json(out / "config.json")
    base = {**TrainConfig().to_dict(), **recorded}
    changed = sorted(k for k, v in given.items() if k not in MUTABLE_ON_RESUME and base.get(k) != v)
    if changed:
        details = ", ".join(f"{k}: run {base.get(k)!r} vs given {given[k]!r}" for k in changed)
        raise CheckpointError(
            f"argument `--resume`: these settings are fixed for the run in {out} ({details}); "
            f"only {', '.join(MUTABLE_ON_RESUME)} may change when resuming, or start a new run with another --out"
        )
    return TrainConfig.from_dict({**base, **given, "out": str(out)}).validate()


def initial_network(config: MattingConfig) -> nn.Module:
    """The network of ``config`` as training starts it, from the current torch random state
    (with ``config.init_like``, its shared parts start as that pair's network: see
    :func:`~resamplers.training.initialisation.initialised_like`)."""

    def network(pair: str) -> nn.Module:
        return create_matting_model(
            pair,
            config.width,
            config.aspp,
            config.output_stride,
            config.decoder_kernel,
            head_activation=config.head_activation,
            **(config.pair_kwargs if pair == config.pair else {}),
        )

    return initialised_like(network, config.pair, config.init_like)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train the matting network described by ``config`` (see :func:`~resamplers.training.loop.fit`).

    ``dataset`` defaults to the source named by ``config.dataset``; its item ``i`` is a dict
    with ``image``, ``alpha``, ``trimap``, ``fg``, ``bg`` and depends only on ``i``.
    """
    config.validate()
    model = config.model

    task = TrainingTask(
        build_model=lambda: initial_network(model),
        loss=matting_batch_loss,
        dataset=dataset if dataset is not None else training_dataset(config),
        model_config=config.model_config(),
        param_groups=matting_param_groups(config.loop.optimizer),
        # ASPP's image-pooling branch batch-normalises a 1x1 map: it needs 2 samples per process.
        min_batch_per_process=2 if model.aspp else 1,
    )
    return fit(
        task,
        config.loop,
        run_config=config.to_dict(),
        identity=_identity_defaults(),
        resume=resume,
        progress=progress,
        stop_after=stop_after,
    )
