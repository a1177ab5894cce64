"""Cost measures shared by the comparison tasks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..bench.timing import median_ms
from ..complexity import count_macs, count_parameters
from ..training.loop import channels_last_batch

__all__ = ["AMP_DTYPES", "operator_costs", "latency_ms", "inference_probe", "train_step_probe"]

# The autocast settings a comparison or a profile may train under, by name.
AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16}


@torch.no_grad()
def _pair_call_shapes(model: nn.Module, pairs: nn.ModuleList, example: Tensor) -> list[tuple[torch.Size, torch.Size]]:
    """The shapes each pair's ``down`` and ``up`` receive in one forward pass of ``model``.

    A forward hook on each pair's upsampler sees the up step's input ``d``; by the pair's
    contract the up step's output has the size of the down step's input, whose channels
    are the pair's input channels.
    """
    seen: dict[int, tuple[torch.Size, torch.Size]] = {}

    def recorder(index: int, pair: nn.Module):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            d = args[0]
            down_shape = torch.Size((d.shape[0], pair.input_channels()[0], *output.shape[-2:]))
            seen[index] = (down_shape, d.shape)

        return hook

    handles = [pair.upsampler.register_forward_hook(recorder(i, pair)) for i, pair in enumerate(pairs)]
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return [seen[i] for i in range(len(pairs)) if i in seen]


@torch.no_grad()
def operator_costs(model: nn.Module, example: Tensor, pairs_attr: str = "pairs") -> dict[str, int]:
    """Parameters and MACs of the resampler pairs inside ``model`` (and of the whole model).

    Each pair's ``down`` and ``up`` are counted at the shapes they receive in one forward
    pass on ``example`` (the task's evaluation resolution).
    """
    pairs = getattr(model, pairs_attr)
    was_training = model.training
    model.eval()
    macs = 0
    for pair, (down_shape, up_shape) in zip(pairs, _pair_call_shapes(model, pairs, example)):
        x = example.new_zeros(down_shape)
        macs += count_macs(_Call(lambda t, p=pair: p.down(t)[0]), x)
        _, guide = pair.down(x)
        macs += count_macs(_Call(lambda t, p=pair, g=guide: p.up(t, g)), example.new_zeros(up_shape))
    total = count_macs(model, example)
    model.train(was_training)
    return {
        "params": count_parameters(pairs),
        "macs": macs,
        "model_params": count_parameters(model),
        "model_macs": total,
    }


class _Call(nn.Module):
    """A module around a function, so the MAC counter can run it."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


@torch.no_grad()
def latency_ms(model: nn.Module, example: Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """Median forward latency in milliseconds (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    try:
        return median_ms(lambda: model(example), repeats, warmup)
    finally:
        model.train(was_training)


def inference_probe(model: nn.Module, example: Tensor) -> Callable[[], object]:
    """One forward pass of ``model`` on ``example`` in eval mode without gradients."""
    model.eval()

    def call() -> object:
        with torch.no_grad():
            return model(example)

    return call


def train_step_probe(
    model: nn.Module,
    loss: Callable[[nn.Module, dict[str, Any]], tuple[Tensor, Any]],
    batch: dict[str, Any],
    *,
    amp: torch.dtype | None = None,
    channels_last: bool = False,
) -> Callable[[], object]:
    """One optimisation step (forward, loss, backward, AdamW step) of a copy of ``model``
    on ``batch``; the copy keeps training from call to call, as a run would.

    ``amp`` runs forward and loss under CPU/CUDA autocast in that dtype (the weights and
    the optimiser stay float32); ``channels_last`` converts the copy and the batch's 4-D
    tensors to that memory format first.
    """
    trained = copy.deepcopy(model).train()
    if channels_last:
        trained = trained.to(memory_format=torch.channels_last)
        batch = channels_last_batch(batch)
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=1e-4)
    device = next(trained.parameters()).device.type

    def call() -> object:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp, enabled=amp is not None):
            value, _ = loss(trained, batch)
        value.float().backward()
        optimizer.step()
        return value

    return call
