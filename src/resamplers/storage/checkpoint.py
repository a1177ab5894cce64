"""Checkpoints without pickle: safetensors files plus JSON, written atomically.

A checkpoint is a directory ``step-00001234/`` holding

* ``model.safetensors``: the model's state dict; its metadata holds the model config;
* ``train_state.safetensors``: optimizer tensors, RNG states and the JSON-serialisable
  rest (step, optimizer hyper-parameters, scheduler state, the run config) as metadata.

The directory is written under a temporary name and renamed into place, then the file
``latest`` (the name of the newest checkpoint) is replaced atomically, so an interrupted
write never leaves a half checkpoint behind as the newest.  Loading reads tensors with
safetensors and metadata with ``json``: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .files import write_text_atomic

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "save_model",
    "load_model_state",
    "capture_rng",
    "restore_rng",
    "CheckpointError",
]

LATEST = "latest"
MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not fit the model."""


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError as error:  # pragma: no cover - the train extra installs it
        raise ImportError("checkpoints need safetensors: pip install 'resamplers[train]'") from error
    return st


def save_model(path: Path, state_dict: Mapping[str, Tensor], metadata: Mapping[str, Any]) -> None:
    """Write a state dict as safetensors with JSON metadata under the key ``resamplers``."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    _safetensors().save_file(tensors, str(path), metadata={"resamplers": json.dumps(dict(metadata))})


def load_model_state(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a safetensors state dict and its ``resamplers`` JSON metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"argument `checkpoint`: no such file {path}")
    st = _safetensors()
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = json.loads((handle.metadata() or {}).get("resamplers", "{}"))
        tensors = st.load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"argument `checkpoint`: {path} is not a readable safetensors file ({error})") from error
    return tensors, metadata


def capture_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Torch, NumPy and Python RNG states as tensors plus JSON."""
    np_state: Any = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy_keys": torch.from_numpy(np_state[1].astype(np.int64))}
    meta = {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": json.loads(json.dumps(random.getstate())),
    }
    return tensors, meta


def restore_rng(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, state, gauss = meta["python"]
    random.setstate((version, tuple(state), gauss))


def _flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.contiguous()  # channels-last state in file order
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    model_config: Mapping[str, Any],
    run_config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``directory/step-XXXXXXXX`` atomically and point ``latest`` at it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = directory / name
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(tmp / MODEL_FILE, model.state_dict(), {"model_config": dict(model_config), "step": step})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    rng_tensors, rng_meta = capture_rng()
    meta = {
        "step": step,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_meta,
        "run_config": dict(run_config),
        "extra": dict(extra or {}),
    }
    _safetensors().save_file(
        {**opt_tensors, **rng_tensors}, str(tmp / STATE_FILE), metadata={"resamplers": json.dumps(meta)}
    )
    for f in tmp.iterdir():  # data on disk before the rename makes it visible
        with open(f, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text_atomic(directory / LATEST, name + "\n")
    old = sorted(p for p in directory.glob("step-*") if p.is_dir() and p != final)
    for stale in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint in ``directory`` (``None`` when there is none)."""
    directory = Path(directory)
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    path = directory / pointer.read_text().strip()
    if not (path / MODEL_FILE).is_file() or not (path / STATE_FILE).is_file():
        raise CheckpointError(f"checkpoint {path} named by {pointer} is incomplete")
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint directory (or its ``model.safetensors``) without unpickling.

    Returns a dict with ``model`` (state dict), ``model_config``, and when present
    ``step``, ``optimizer``, ``scheduler``, ``rng`` (tensors and metadata), ``run_config``.
    """
    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    model_state, model_meta = load_model_state(model_file)
    result: dict[str, Any] = {"model": model_state, "model_config": model_meta.get("model_config")}
    state_file = model_file.parent / STATE_FILE
    if path.is_dir() and state_file.is_file():
        tensors, meta = load_model_state(state_file)
        result.update(
            step=meta["step"],
            optimizer=_unflatten_optimizer(tensors, meta["optimizer"]),
            scheduler=meta["scheduler"],
            rng=(tensors, meta["rng"]),
            run_config=meta["run_config"],
            extra=meta.get("extra", {}),
        )
    return result
