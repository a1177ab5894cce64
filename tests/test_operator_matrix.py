"""The shared test matrix: every registered operator gets every check below.

Shapes (odd, non-square, 1x1, batch 1), float64 gradcheck (input and parameters),
float32/float64/bfloat16, channels_last and non-contiguous input, torch.compile,
torch.export and ONNX export run in onnxruntime at two sizes (dynamic shapes), CPU
autocast (bfloat16) forward and backward, torch.jit.trace and the TorchScript-based
ONNX exporter run in onnxruntime,
eval determinism, and bad-input errors that name the argument.

Inputs and outputs may be single tensors or lists of them (multi-resolution blocks):
every check walks their tensors in order (see ``matrix.leaves``).
"""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from conftest import assert_close
from matrix import SHAPES, Case, all_cases, leaves

CASES = all_cases()
IDS = [case.id for case in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def case(request) -> Case:
    return request.param


def assert_all_close(actual: object, expected: object) -> None:
    got, want = leaves(actual), leaves(expected)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert_close(a, b)


def map_inputs(inputs: tuple, fn) -> tuple:
    """``inputs`` with ``fn`` applied to every tensor."""
    flat, spec = tree_flatten(inputs)
    return tree_unflatten([fn(t) for t in flat], spec)


class TestOperatorMatrix:
    @pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{h}x{w}" for n, h, w in SHAPES])
    def test_output_shape(self, case, shape):
        module = case.module()
        n, h, w = shape
        inputs = case.inputs(n, h, w)
        expected = case.expected_shapes(module, n, h, w)
        if expected is None:
            with pytest.raises(ValueError, match=f"`{case.input_name}"):
                module(*inputs)
        else:
            with torch.no_grad():
                assert [tuple(t.shape) for t in leaves(module(*inputs))] == expected

    def test_gradcheck_input_and_parameters(self, case):
        module = case.module(torch.float64)
        h, w = case.sizes((4, 6))
        flat, spec = tree_flatten(case.inputs(1, h, w, torch.float64))
        flat = [t.requires_grad_() for t in flat]
        names = [name for name, p in module.named_parameters() if p.requires_grad]
        params = tuple(module.get_parameter(name).detach().requires_grad_() for name in names)

        def fn(*values):
            inputs = tree_unflatten(list(values[: len(flat)]), spec)
            out = torch.func.functional_call(module, dict(zip(names, values[len(flat) :])), inputs)
            return tuple(leaves(out))

        assert torch.autograd.gradcheck(fn, (*flat, *params), fast_mode=True)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
    def test_dtypes(self, case, dtype):
        reference_module = case.module(torch.float64)
        module = copy.deepcopy(reference_module).to(dtype)
        h, w = case.sizes((5, 6))
        inputs = case.inputs(2, h, w, torch.float64)
        with torch.no_grad():
            outs = leaves(module(*map_inputs(inputs, lambda t: t.to(dtype))))
            refs = leaves(reference_module(*inputs))
        tol = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 5e-2}[dtype]
        for out, ref in zip(outs, refs, strict=True):
            assert out.dtype == dtype
            assert torch.isfinite(out).all()
            scale = ref.abs().max().item() + 1.0
            assert (out.double() - ref).abs().max().item() <= tol * scale

    def test_channels_last_and_noncontiguous(self, case):
        module = case.module()
        h, w = case.sizes((6, 5))
        inputs = case.inputs(2, h, w)

        def transposed_storage(x):
            strided = torch.zeros(*x.shape[:2], x.shape[3], x.shape[2]).transpose(2, 3)
            strided.copy_(x)
            assert not strided.is_contiguous()
            return strided

        def strided_channels(x):
            sliced = torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])[:, ::2]
            sliced.copy_(x)
            return sliced

        with torch.no_grad():
            expected = module(*inputs)
            assert_all_close(
                module(*map_inputs(inputs, lambda t: t.contiguous(memory_format=torch.channels_last))), expected
            )
            assert_all_close(module(*map_inputs(inputs, transposed_storage)), expected)
            assert_all_close(module(*map_inputs(inputs, strided_channels)), expected)

    def test_channels_last_network_gives_the_same_gradients(self, case):
        """The operator and its inputs in channels-last layout, as in a network converted
        with ``.to(memory_format=torch.channels_last)``: outputs, input and parameter
        gradients equal those of the contiguous layout."""
        module = case.module()
        h, w = case.sizes((6, 5))
        inputs = case.inputs(2, h, w)
        results = []
        for layout in (torch.contiguous_format, torch.channels_last):
            net = copy.deepcopy(module).to(memory_format=layout)
            feed = map_inputs(inputs, lambda t, f=layout: t.detach().clone(memory_format=f).requires_grad_())
            outs = leaves(net(*feed))
            weights = torch.Generator().manual_seed(1)
            loss = sum((o * torch.randn(o.shape, generator=weights, dtype=o.dtype)).sum() for o in outs)
            wrt = [t for t in leaves(feed) if t.requires_grad] + [p for p in net.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)
            results.append((outs, [torch.zeros_like(t) if g is None else g for t, g in zip(wrt, grads)]))
        (outs_a, grads_a), (outs_b, grads_b) = results
        assert_all_close(outs_b, outs_a)
        assert_all_close(grads_b, grads_a)

    def test_eval_determinism(self, case):
        module = case.module()
        h, w = case.sizes((7, 6))
        inputs = case.inputs(2, h, w)
        with torch.no_grad():
            for a, b in zip(leaves(module(*inputs)), leaves(module(*inputs)), strict=True):
                assert torch.equal(a, b)

    def test_torch_compile_eager_backend(self, case):
        torch._dynamo.reset()
        module = case.module()
        h, w = case.sizes((6, 8))
        inputs = case.inputs(1, h, w)
        compiled = torch.compile(module, backend="eager", fullgraph=True)
        with torch.no_grad():
            assert_all_close(compiled(*inputs), module(*inputs))

    def test_torch_export_dynamic_shapes(self, case):
        module = case.module()
        inputs = case.inputs(2, *case.export_sizes())  # batch 2: export specialises a batch of 1
        program = torch.export.export(module, inputs, dynamic_shapes=case.dynamic_shapes())
        second = case.inputs(1, *case.export_sizes(second=True), seed=1)
        with torch.no_grad():
            assert_all_close(program.module()(*second), module(*second))

    def test_onnx_export_runs_in_onnxruntime(self, case, tmp_path):
        ort = pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
        module = case.module()
        inputs = case.inputs(2, *case.export_sizes())
        path = tmp_path / "op.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, inputs, str(path), dynamo=True, dynamic_shapes=case.dynamic_shapes(), verbose=False
            )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        for feed in (inputs, case.inputs(1, *case.export_sizes(second=True), seed=1)):
            got = session.run(None, {name: t.numpy() for name, t in zip(names, leaves(feed), strict=True)})
            with torch.no_grad():
                assert_all_close([torch.from_numpy(g) for g in got], module(*feed))

    @pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["float32-in", "bfloat16-in"])
    def test_cpu_autocast_bfloat16_forward_and_backward(self, case, input_dtype):
        """Under autocast, inputs come as they arrive in a network: float32, or the bfloat16
        output of an autocast convolution before the operator."""
        module = case.module()
        h, w = case.sizes((6, 8))
        flat, spec = tree_flatten(case.inputs(2, h, w))
        flat = [t.to(input_dtype).requires_grad_() if t.is_floating_point() else t for t in flat]
        with torch.no_grad():
            expected = leaves(module(*tree_unflatten([t.float() if t.is_floating_point() else t for t in flat], spec)))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs = leaves(module(*tree_unflatten(flat, spec)))
        for out, ref in zip(outs, expected, strict=True):
            assert out.dtype in (torch.float32, torch.bfloat16)
            assert torch.isfinite(out).all()
            assert (out.float() - ref).abs().max().item() <= 5e-2 * (ref.abs().max().item() + 1.0)
        torch.autograd.backward([o.float().sum() for o in outs if o.requires_grad])
        grads = [t.grad for t in flat if t.grad is not None] + [
            p.grad for p in module.parameters() if p.grad is not None
        ]
        assert grads and all(torch.isfinite(g).all() for g in grads)

    def test_jit_trace(self, case):
        module = case.module()
        inputs = case.inputs(2, *case.export_sizes())
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python values recorded as constants
            traced = torch.jit.trace(module, inputs, check_trace=False)
            assert_all_close(traced(*inputs), module(*inputs))

    def test_legacy_onnx_export_runs_in_onnxruntime(self, case, tmp_path):
        ort = pytest.importorskip("onnxruntime")
        module = case.module()
        inputs = case.inputs(2, *case.export_sizes())
        path = tmp_path / "op.onnx"
        count = len(leaves(inputs))
        names = [f"input_{i}" for i in range(count)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, str(path), dynamo=False, input_names=names, opset_version=17)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), leaves(inputs), strict=True)})
        with torch.no_grad():
            assert_all_close([torch.from_numpy(g) for g in got], module(*inputs))

    def test_bad_input_errors_name_the_argument(self, case):
        module = case.module()
        h, w = case.sizes((6, 8))
        inputs = case.inputs(1, h, w)
        name = re.escape(case.input_name)
        with pytest.raises(ValueError, match=f"`{name}.*4-D"):
            module(*map_inputs(inputs, lambda t: t[0]))
        if case.has_channels:
            with pytest.raises(ValueError, match=f"`{name}.*channels"):
                module(*map_inputs(inputs, lambda t: torch.randn(t.shape[0], t.shape[1] + 1, *t.shape[2:])))
        if case.size_multiple > 1:
            with pytest.raises(ValueError, match=f"`{name}.*divisible"):
                module(*map_inputs(inputs, lambda t: torch.randn(t.shape[0], t.shape[1], t.shape[2] + 1, t.shape[3])))


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
