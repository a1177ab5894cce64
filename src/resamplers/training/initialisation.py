"""Shared initial values: two operators' networks of one seed start their common parts equal."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["initialised_like", "copy_shared_parameters"]


def copy_shared_parameters(net: nn.Module, reference: dict[str, torch.Tensor]) -> nn.Module:
    """Overwrite every tensor of ``net``'s state that ``reference`` has under the same name
    and shape; returns ``net``."""
    own = net.state_dict()
    shared = {k: v for k, v in reference.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict({**own, **shared})
    return net


def initialised_like(build: Callable[[str], nn.Module], pair: str, init_like: str | None) -> nn.Module:
    """``build(pair)`` from the current torch random state; with ``init_like`` set to another
    pair, every parameter that ``build(init_like)`` also has (same name and shape) takes that
    network's initial value, drawn from the same random state."""
    if init_like is None or init_like == pair:
        return build(pair)
    state = torch.random.get_rng_state()
    reference = build(init_like).state_dict()
    torch.random.set_rng_state(state)
    return copy_shared_parameters(build(pair), reference)
