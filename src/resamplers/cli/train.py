"""Train the IndexNet matting network with any resampler pair (resumable, torchrun-ready)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..training.config import TrainConfig, load_config_file

# Flags that map one-to-one onto TrainConfig fields (dest = field name).
_FIELD_FLAGS: list[tuple[str, type, str]] = [
    ("out", str, "run directory (checkpoints, log.jsonl, config.json)"),
    ("pair", str, "registered pair name, e.g. indexnet_m2o, a2u, bilinear, carafe"),
    ("width", float, "width multiplier of the network"),
    ("output_stride", int, "32 (five pairs) or 16 (four)"),
    ("decoder_kernel", int, "decoder convolution kernel"),
    ("head_activation", str, "relu6 (official) | leaky_relu (trains reliably from scratch) | none"),
    ("init_like", str, "start the parameters shared with this pair's network (same name, shape) from it"),
    ("data", str, "training data: synthetic | real | folder"),
    ("data_root", str, "data cache (real) or benchmark root (folder)"),
    ("crop", int, "training crop size (a multiple of the output stride)"),
    ("workers", int, "DataLoader worker processes"),
    ("optimizer", str, "adamw | official (Adam, encoder lr / 100)"),
    ("lr", float, "base learning rate"),
    ("weight_decay", float, "AdamW weight decay"),
    ("schedule", str, "cosine | step | constant"),
    ("warmup_steps", int, "linear warm-up steps"),
    ("batch_size", int, "global batch size (split over torchrun processes)"),
    ("steps", int, "total optimisation steps"),
    ("checkpoint_every", int, "write a checkpoint every N steps"),
    ("log_every", int, "log the mean loss every N steps"),
    ("seed", int, "random seed"),
    ("threads", int, "torch threads per process"),
    ("amp", str, "mixed precision: none | bf16 (CPU and CUDA) | fp16 (CUDA, with a grad scaler)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML, YAML or JSON file of options; flags override it")
    for name, kind, help_text in _FIELD_FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--no-aspp", dest="aspp", action="store_false", default=None, help="1x1 context instead of ASPP"
    )
    parser.add_argument(
        "--channels-last",
        dest="channels_last",
        action="store_true",
        default=None,
        help="network and batches in channels-last layout (faster convolutions on CPU)",
    )
    parser.add_argument(
        "--pair-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra pair argument (JSON value), repeatable, e.g. --pair-kwarg index_mode='\"o2o\"'",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its own settings; only --steps, --threads and --workers may change",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _pair_kwargs(items: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"argument `--pair-kwarg`: expected KEY=VALUE, got {item!r}")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value  # a bare string
    return result


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options this command line sets explicitly: the ``--config`` file, then flags over it."""
    values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    for name in TrainConfig.field_names():
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    if args.pair_kwarg:
        values["pair_kwargs"] = {**values.get("pair_kwargs", {}), **_pair_kwargs(args.pair_kwarg)}
    return values


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A new run's configuration, or with ``--resume`` the run's own with the allowed changes."""
    values = given_options(args)
    if args.resume:
        from ..training import resumed_config

        return resumed_config(values.pop("out", TrainConfig().loop.out), values)
    return TrainConfig.from_dict(values).validate()


def run(args: argparse.Namespace) -> int:
    from ..training import train

    config = config_from_args(args)
    result = train(config, resume=args.resume, progress=not args.no_progress)
    state = "interrupted" if result.interrupted else "finished"
    print(
        f"{state} at step {result.step}; checkpoint: {result.checkpoint}; "
        f"{result.images_per_second:.2f} images/s ({result.seconds_per_step * 1000:.0f} ms/step)"
    )
    return 0
