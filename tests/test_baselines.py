"""Every benchmark baseline computes the same operator as the module it is timed against."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_close
from resamplers.bench.baselines import BASELINES
from resamplers.bench.runner import build_operator


@pytest.mark.parametrize("qualified", sorted(BASELINES))
def test_baseline_equals_the_operator(qualified):
    kind, name = qualified.split(":", 1)
    torch.manual_seed(0)
    module = build_operator(kind, name, channels=32, scale_factor=2).eval()
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randn(*shape, generator=g) for shape in module.input_shapes(2, 10, 8)]
    with torch.no_grad():
        assert_close(BASELINES[qualified].run(module, *inputs), module(*inputs))
