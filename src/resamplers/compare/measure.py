"""Cost measures shared by the comparison tasks, and small file helpers."""
from __future__ import annotations

import json
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..complexity import count_macs_by_module, count_parameters

__all__ = ["operator_costs", "latency_ms", "write_json_atomic", "read_json"]


def operator_costs(model: nn.Module, example: Tensor, pairs_attr: str = "pairs") -> dict[str, int]:
    """Parameters and MACs of the resampler pairs inside ``model`` (and of the whole model).

    MACs are counted for one forward pass on ``example`` (the task's evaluation resolution).
    """
    pairs = getattr(model, pairs_attr)
    per_module = count_macs_by_module(model, example)
    pattern = re.compile(rf"^{re.escape(pairs_attr)}\.\d+$")
    return {
        "params": count_parameters(pairs),
        "macs": sum(v for k, v in per_module.items() if pattern.match(k)),
        "model_params": count_parameters(model),
        "model_macs": per_module[""],
    }


@torch.no_grad()
def latency_ms(model: nn.Module, example: Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """Median forward latency in milliseconds (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    for _ in range(warmup):
        model(example)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(example)
        samples.append(time.perf_counter() - start)
    model.train(was_training)
    return 1000.0 * statistics.median(samples)


def write_json_atomic(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
