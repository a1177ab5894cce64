"""Tracing and the legacy (TorchScript) ONNX exporter take the core's portable torch path:
the traced graph and the ONNX model equal eager, at the traced size and at another one."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

import resamplers
from conftest import assert_close
from resamplers import functional as F

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SIZES = [(1, 8, 12), (2, 11, 13)]  # (batch, height, width): the traced size, then another


class Carafe(nn.Module):
    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend

    def forward(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return F.carafe(x, masks, 3, 2, 2, backend=self.backend)


class Down(nn.Module):
    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend

    def forward(self, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        return F.reassemble_down(x, kernels, 3, 2, 2, 1, backend=self.backend)


class Similarity(nn.Module):
    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return F.window_similarity(query, keys, 3, 2, scale_factor=2, backend=self.backend)


def _functional_inputs(name: str, n: int, h: int, w: int) -> tuple[torch.Tensor, ...]:
    x = torch.randn(n, 4, h, w)
    if name == "carafe":
        return x, torch.randn(n, 18, 2 * h, 2 * w).softmax(1)
    if name == "down":
        return x, torch.randn(n, 18, (h - 1 + 1) // 2 + 1, (w - 1 + 1) // 2 + 1)
    return torch.randn(n, 4, 2 * h, 2 * w), x


FUNCTIONAL = {"carafe": Carafe, "down": Down, "similarity": Similarity}


def _trace(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module, inputs)


def _onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> ort.InferenceSession:
    names = [f"in{i}" for i in range(len(inputs))]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            buffer,
            dynamo=False,
            input_names=names,
            output_names=["out"],
            dynamic_axes={name: {0: "n", 2: f"h{i}", 3: f"w{i}"} for i, name in enumerate(names)},
        )
    return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_trace_and_legacy_onnx_equal_eager(name, backend):
    torch.manual_seed(0)
    module = FUNCTIONAL[name](backend)
    first = _functional_inputs(name, *SIZES[0])
    traced = _trace(module, first)
    assert "resamplers::" not in str(traced.graph)  # no custom op a runtime would not know
    session = _onnx(module, first)
    for size in SIZES:
        inputs = first if size == SIZES[0] else _functional_inputs(name, *size)
        eager = module(*inputs)
        assert_close(traced(*inputs), eager)
        (got,) = session.run(None, {f"in{i}": t.numpy() for i, t in enumerate(inputs)})
        assert_close(torch.from_numpy(got), eager, scale=10)


@pytest.mark.parametrize("family", ["upsampler", "downsampler"])
def test_registered_carafe_traces_and_exports(family):
    assert "carafe" in (resamplers.list_upsamplers() if family == "upsampler" else resamplers.list_downsamplers())
    torch.manual_seed(0)
    create = resamplers.create_upsampler if family == "upsampler" else resamplers.create_downsampler
    module = create("carafe", channels=16).eval()
    x = torch.randn(1, 16, 8, 12)
    with torch.no_grad():
        traced = _trace(module, (x,))
        assert "resamplers::" not in str(traced.graph)
        session = _onnx(module, (x,))
        for other in (x, torch.randn(2, 16, 10, 14)):
            eager = module(other)
            assert_close(traced(other), eager)
            (got,) = session.run(None, {"in0": other.numpy()})
            assert_close(torch.from_numpy(got), eager, scale=10)


def test_tracing_counts_as_exporting():
    from resamplers.core import is_exporting

    seen = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        seen.append(is_exporting())
        return x + 1

    assert not is_exporting()
    torch.jit.trace(probe, (torch.zeros(1),), check_trace=False)
    assert seen == [True]
