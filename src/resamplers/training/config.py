"""Training configuration: a dataclass, loadable from TOML or YAML, overridable by flags."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .._checks import check_choice, check_int
from ..models.matting import HEAD_ACTIVATIONS

__all__ = ["TrainConfig", "load_config_file", "MODEL_FIELDS"]

# Fields that define the network: a run can only resume with the same values.
MODEL_FIELDS = ("pair", "width", "aspp", "output_stride", "decoder_kernel", "pair_kwargs", "head_activation")


@dataclass
class TrainConfig:
    """One training run of the matting network.

    Model: ``pair`` (any registered pair name), ``width``, ``aspp``, ``output_stride``,
    ``decoder_kernel``, ``pair_kwargs``, ``head_activation`` (``relu6`` as the official
    model; ``leaky_relu`` trains reliably from scratch).  Data: ``data`` (``synthetic``, ``real`` or
    ``folder``), ``data_root``, ``crop`` (a multiple of the output stride), ``workers``.
    Optimisation: ``optimizer`` (``adamw``, or ``official``: Adam with lr 1e-2 for the
    decoder, head and pairs and lr / 100 for the encoder), ``lr``, ``weight_decay``,
    ``schedule`` (``cosine``, ``step`` at 2/3 and 13/15 of training x0.1 as the official
    epochs 20 and 26 of 30, or ``constant``), ``warmup_steps``, ``batch_size`` (global,
    split over data-parallel ranks), ``steps``.  Bookkeeping: ``out`` (run directory),
    ``checkpoint_every``, ``log_every``, ``seed``, ``threads``.
    """

    out: str = "runs/matting"
    pair: str = "indexnet_m2o"
    width: float = 1.0
    aspp: bool = True
    output_stride: int = 32
    decoder_kernel: int = 5
    pair_kwargs: dict[str, Any] = field(default_factory=dict)
    head_activation: str = "relu6"
    data: str = "synthetic"
    data_root: str | None = None
    crop: int = 256
    workers: int = 2
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 0
    batch_size: int = 8
    steps: int = 1000
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    threads: int | None = None

    def validate(self) -> "TrainConfig":
        check_choice(self.data, "data", ("synthetic", "real", "folder"))
        check_choice(self.optimizer, "optimizer", ("adamw", "official"))
        check_choice(self.schedule, "schedule", ("cosine", "step", "constant"))
        check_choice(self.output_stride, "output_stride", (16, 32))
        check_choice(self.head_activation, "head_activation", HEAD_ACTIVATIONS)
        for name in ("crop", "batch_size", "steps", "checkpoint_every", "log_every"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.workers, "workers", minimum=0)
        check_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.crop % self.output_stride:
            raise ValueError(f"argument `crop`: expected a multiple of the output stride {self.output_stride}, got {self.crop}")
        if not self.lr > 0:
            raise ValueError(f"argument `lr`: expected a positive learning rate, got {self.lr}")
        if self.data == "folder" and not self.data_root:
            raise ValueError("argument `data_root`: the folder data source needs the benchmark's root directory")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"argument `config`: unknown training options {unknown}; known: {sorted(names)}")
        return cls(**data)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON config file into a flat dict of :class:`TrainConfig` fields."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"argument `--config`: no such file {path}")
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as error:
            raise ImportError("YAML configs need PyYAML: pip install 'resamplers[train]'") from error
        data = yaml.safe_load(text) or {}
    elif suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"argument `--config`: expected a .toml, .yaml/.yml or .json file, got {path.name}")
    if not isinstance(data, dict):
        raise ValueError(f"argument `--config`: {path} must hold a mapping of options")
    return data
