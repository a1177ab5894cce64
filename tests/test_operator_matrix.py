"""The shared test matrix: every registered operator gets every check below.

Shapes (odd, non-square, 1x1, batch 1), float64 gradcheck (input and parameters),
float32/float64/bfloat16, channels_last and non-contiguous input, torch.compile,
torch.export and ONNX export run in onnxruntime at two sizes (dynamic shapes),
eval determinism, and bad-input errors that name the argument.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch.export import Dim

from conftest import assert_close
from matrix import SHAPES, Case, all_cases

CASES = all_cases()
IDS = [case.id for case in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def case(request) -> Case:
    return request.param


class TestOperatorMatrix:
    @pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{h}x{w}" for n, h, w in SHAPES])
    def test_output_shape(self, case, shape):
        module = case.module()
        n, h, w = shape
        inputs = case.inputs(n, h, w)
        expected = case.expected_shape(module, n, h, w)
        if expected is None:
            with pytest.raises(ValueError, match="`x`"):
                module(*inputs)
        else:
            with torch.no_grad():
                assert tuple(module(*inputs).shape) == expected

    def test_gradcheck_input_and_parameters(self, case):
        module = case.module(torch.float64)
        h, w = case.sizes((4, 6))
        (x,) = case.inputs(1, h, w, torch.float64)
        x.requires_grad_()
        names = [name for name, p in module.named_parameters() if p.requires_grad]
        params = tuple(module.get_parameter(name).detach().requires_grad_() for name in names)

        def fn(inp, *values):
            return torch.func.functional_call(module, dict(zip(names, values)), (inp,))

        assert torch.autograd.gradcheck(fn, (x, *params), fast_mode=True)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
    def test_dtypes(self, case, dtype):
        reference_module = case.module(torch.float64)
        module = copy.deepcopy(reference_module).to(dtype)
        h, w = case.sizes((5, 6))
        (x,) = case.inputs(2, h, w, torch.float64)
        with torch.no_grad():
            out = module(x.to(dtype))
            ref = reference_module(x)
        assert out.dtype == dtype
        assert torch.isfinite(out).all()
        scale = ref.abs().max().item() + 1.0
        tol = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 5e-2}[dtype]
        assert (out.double() - ref).abs().max().item() <= tol * scale

    def test_channels_last_and_noncontiguous(self, case):
        module = case.module()
        h, w = case.sizes((6, 5))
        (x,) = case.inputs(2, h, w)
        with torch.no_grad():
            expected = module(x)
            assert_close(module(x.contiguous(memory_format=torch.channels_last)), expected)
            strided = torch.zeros(2, x.shape[1], w, h).transpose(2, 3)  # non-contiguous storage
            strided.copy_(x)
            assert not strided.is_contiguous()
            assert_close(module(strided), expected)
            sliced = torch.zeros(2, 2 * x.shape[1], h, w)[:, ::2]  # strided channels
            sliced.copy_(x)
            assert_close(module(sliced), expected)

    def test_eval_determinism(self, case):
        module = case.module()
        h, w = case.sizes((7, 6))
        (x,) = case.inputs(2, h, w)
        with torch.no_grad():
            assert torch.equal(module(x), module(x))

    def test_torch_compile_eager_backend(self, case):
        torch._dynamo.reset()
        module = case.module()
        h, w = case.sizes((6, 8))
        (x,) = case.inputs(1, h, w)
        compiled = torch.compile(module, backend="eager", fullgraph=True)
        with torch.no_grad():
            assert_close(compiled(x), module(x))

    def _dynamic_shapes(self, case):
        m = case.size_multiple
        n = Dim("batch", min=1, max=64)
        # Sizes from 6 up: smaller ones give 1-pixel outputs, which export specialises.
        low = -(-6 // m)
        if m == 1:
            return {"x": {0: n, 2: Dim("height", min=low, max=4096), 3: Dim("width", min=low, max=4096)}}
        return {"x": {0: n, 2: m * Dim("height", min=low, max=4096 // m), 3: m * Dim("width", min=low, max=4096 // m)}}

    def test_torch_export_dynamic_shapes(self, case):
        module = case.module()
        (x,) = case.inputs(2, *case.sizes((6, 8)))  # batch 2: export specialises a batch of 1
        program = torch.export.export(module, (x,), dynamic_shapes=self._dynamic_shapes(case))
        (x2,) = case.inputs(1, *case.sizes((12, 6)), seed=1)
        with torch.no_grad():
            assert_close(program.module()(x2), module(x2))

    def test_onnx_export_runs_in_onnxruntime(self, case, tmp_path):
        ort = pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
        module = case.module()
        (x,) = case.inputs(2, *case.sizes((6, 8)))
        path = tmp_path / "op.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), str(path), dynamo=True, dynamic_shapes=self._dynamic_shapes(case), verbose=False)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for inputs in (case.inputs(2, *case.sizes((6, 8))), case.inputs(1, *case.sizes((12, 6)), seed=1)):
            (xi,) = inputs
            (got,) = session.run(None, {name: xi.numpy()})
            with torch.no_grad():
                assert_close(torch.from_numpy(got), module(xi))

    def test_bad_input_errors_name_the_argument(self, case):
        module = case.module()
        h, w = case.sizes((6, 8))
        (x,) = case.inputs(1, h, w)
        with pytest.raises(ValueError, match="`x`.*4-D"):
            module(x[0])
        if getattr(module, "channels", None) is not None:
            wrong = torch.randn(1, x.shape[1] + 1, h, w)
            with pytest.raises(ValueError, match="`x`.*channels"):
                module(wrong)
        if case.size_multiple > 1:
            with pytest.raises(ValueError, match="`x`.*divisible"):
                module(torch.randn(1, x.shape[1], h + 1, w))


@pytest.mark.slow
def test_inductor_compile_on_carafe():
    """One small case through the inductor backend (C++ code generation)."""
    torch._dynamo.reset()
    case = next(c for c in CASES if c.id == "upsampler:carafe")
    module = case.module()
    (x,) = case.inputs(1, 6, 8)
    compiled = torch.compile(module, backend="inductor", fullgraph=True)
    with torch.no_grad():
        assert_close(compiled(x), module(x))
