"""Training configuration: one object composed of its model, data and loop parts.

:class:`TrainConfig` holds a :class:`~resamplers.models.matting.MattingConfig` (what
rebuilds the network), a :class:`DataConfig` (what the samples are) and a
:class:`~resamplers.training.loop.LoopConfig` (how to optimise).  On disk (``config.json``,
a checkpoint's run config, a TOML/YAML file) and on the command line it is one flat
mapping of field names; :meth:`TrainConfig.to_dict` and :meth:`TrainConfig.from_dict`
convert, so the parts never get copied field by field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from .._checks import check_choice, check_int, did_you_mean
from ..models.matting import MattingConfig
from .loop import LoopConfig

__all__ = ["TrainConfig", "DataConfig", "load_config_file", "MUTABLE_ON_RESUME"]

DATA_SOURCES = ("synthetic", "real", "folder")

# Settings a resumed run may change: they do not alter what the finished run computes
# (more steps extend the schedule's horizon, which the user asks for explicitly).
MUTABLE_ON_RESUME = ("out", "steps", "threads", "workers")


@dataclass
class DataConfig:
    """The training samples: ``data`` (``synthetic``, ``real`` or ``folder``), ``data_root``
    (the real data's cache, or the benchmark root of ``folder``), ``crop`` (a multiple of
    the output stride)."""

    data: str = "synthetic"
    data_root: str | None = None
    crop: int = 256

    def validate(self) -> DataConfig:
        check_choice(self.data, "data", DATA_SOURCES)
        check_int(self.crop, "crop", minimum=1)
        if self.data == "folder" and not self.data_root:
            raise ValueError("argument `data_root`: the folder data source needs the benchmark's root directory")
        return self


def _names(part: type) -> list[str]:
    return [f.name for f in fields(part)]


@dataclass
class TrainConfig:
    """One training run of the matting network: ``model``, ``dataset`` and ``loop`` parts.

    Build it from flat options with :meth:`from_dict` (``TrainConfig.from_dict({"pair":
    "a2u", "steps": 100})``).  ``optimizer="official"`` is the IndexNet recipe: Adam with
    the encoder at lr / 100 and no weight decay; ``schedule="step"`` multiplies by 0.1 at
    2/3 and 13/15 of training (the official epochs 20 and 26 of 30).
    """

    model: MattingConfig = field(default_factory=MattingConfig)
    dataset: DataConfig = field(default_factory=DataConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)

    PARTS: ClassVar[dict[str, type]] = {"model": MattingConfig, "dataset": DataConfig, "loop": LoopConfig}

    @classmethod
    def field_names(cls) -> list[str]:
        """Every flat option name, in the order of the parts."""
        return [name for part in cls.PARTS.values() for name in _names(part)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = cls.field_names()
        unknown = sorted(set(data) - set(known))
        if unknown:
            hint = did_you_mean(unknown[0], known)
            raise ValueError(f"argument `config`: unknown training options {unknown}{hint}; known: {sorted(known)}")
        return cls(**{key: part(**{n: data[n] for n in _names(part) if n in data}) for key, part in cls.PARTS.items()})

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping written as ``config.json`` and into checkpoints."""
        return {name: value for key in self.PARTS for name, value in asdict(getattr(self, key)).items()}

    def validate(self) -> TrainConfig:
        self.model.validate()
        self.dataset.validate()
        self.loop.validate()
        if self.dataset.crop % self.model.output_stride:
            raise ValueError(
                f"argument `crop`: expected a multiple of the output stride {self.model.output_stride}, "
                f"got {self.dataset.crop}"
            )
        return self

    def model_config(self) -> dict[str, Any]:
        return self.model.to_dict()


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON config file into a flat dict of :class:`TrainConfig` fields."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"argument `--config`: no such file {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ValueError(f"argument `--config`: expected a .toml, .yaml/.yml or .json file, got {path.name}")
    text = path.read_text()
    parse: Callable[[str], Any]
    errors: tuple[type[Exception], ...]
    if suffix == ".toml":
        import tomllib

        parse, errors = tomllib.loads, (tomllib.TOMLDecodeError,)
    elif suffix == ".json":
        parse, errors = json.loads, (json.JSONDecodeError,)
    else:
        try:
            import yaml
        except ImportError as error:
            raise ImportError("YAML configs need PyYAML: pip install 'resamplers[train]'") from error

        def parse(t: str) -> Any:
            return yaml.safe_load(t) or {}

        errors = (yaml.YAMLError,)
    try:
        data = parse(text)
    except errors as error:
        raise ValueError(f"argument `--config`: {path} does not parse ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"argument `--config`: {path} must hold a mapping of options")
    return data
