"""``resamplers export`` and :mod:`resamplers.export`: an export that is checked.

Every registered operator (the shared matrix's case list) is exported with dynamic sizes
and each deployment check is asserted: strict shape inference and the full ONNX checker,
onnxslim keeping the outputs equal to eager, ONNX Runtime equal to eager at two sizes, and
TorchScript reloaded and equal to eager at two sizes.  Operators that cannot pass are in
one table, :data:`KNOWN_FAILURES`, as strict xfails.  docs/export.md's TensorRT tables are
checked against fresh exports.  Then the command: both formats, checkpoints, error messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import assert_close
from matrix import all_cases, leaves
from resamplers.cli import main
from resamplers.export import (
    STEPS,
    ExportError,
    build_operator,
    check_onnx,
    example_keywords,
    export_operator,
    load_state_dict,
    onnx_op_types,
    resolve_name,
    run_onnx,
)
from resamplers.export.tensorrt import render_tensorrt_tables, tensorrt_findings, tensorrt_row, tensorrt_status
from resamplers.registry import create_upsampler

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxslim")

# TorchScript is what this file checks, deprecated or not.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "export.md"
START, END = "<!-- tensorrt-tables:start -->", "<!-- tensorrt-tables:end -->"

CASES = all_cases()

# The one table of what cannot pass: (operator, format) -> why.  Each entry is a strict
# xfail, so a fix shows up as a failure to remove it.  Empty: with the dynamo exporter every
# registered operator passes every check (the legacy exporter would list downsampler:a2u and
# pair:a2u for ONNX: it rejects A2U's kernel-generating convolution once H and W are dynamic).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def cases_for(format: str) -> list:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[case.id, format])]
            if (case.id, format) in KNOWN_FAILURES
            else [],
        )
        for case in CASES
    ]


def export_case(case, path: Path, format: str) -> tuple:
    """Export ``case`` as the command does with --dynamic; returns the report and the steps run."""
    keywords = example_keywords(case.id)
    channels = keywords.pop("channels")
    steps: list[str] = []
    torch.manual_seed(0)  # the weights case.module() has
    report = export_operator(
        case.id,
        path,
        format=format,
        channels=channels,
        options=keywords,
        dynamic=True,
        progress=lambda step, text: steps.append(step),
    )
    return report, steps


def eager_outputs(case, report) -> list[list[torch.Tensor]]:
    module = case.module()
    with torch.no_grad():
        return [leaves(module(*feed)) for feed in feeds_of(case, report)]


def feeds_of(case, report) -> list[tuple]:
    """The inputs the export was checked at, rebuilt from the report's shapes (batch, H, W)."""
    return [case.inputs(c.shapes[0][0], *c.shapes[0][2:], seed=seed) for seed, c in enumerate(report.checks)]


def doc_rows() -> dict[str, tuple[list[str], list[str]]]:
    """The per-operator table of docs/export.md: ``kind:name`` -> (op types, TensorRT findings)."""
    text = PAGE.read_text()
    block = text[text.index(START) + len(START) : text.index(END)]
    rows = {}
    for line in block.strip().splitlines():
        match = re.fullmatch(r"\| `(\w+:\w+)` \| (.*) \| (.*) \|", line)
        if match:
            name, ops, verdict = match.groups()
            rows[name] = (ops.split(", ") if ops else [], [] if verdict == "supported" else verdict.split("; "))
    return rows


# -- every operator ---------------------------------------------------------------------------


@pytest.mark.slow  # several minutes on one core: the dynamo exporter takes up to ~30 s an operator
@pytest.mark.parametrize("case", cases_for("onnx"))
def test_every_operator_exports_to_checked_onnx(case, tmp_path):
    path = tmp_path / "op.onnx"
    report, steps = export_case(case, path, "onnx")
    assert steps == list(STEPS)
    assert report.simplified and report.opset is not None
    # the written (simplified) file passes strict shape inference and the full checker
    model = onnx.load(str(path))
    check_onnx(model)
    # onnxruntime equals eager at two sizes, the second another batch, height and width
    first, second = (c.shapes for c in report.checks)
    assert first[0][0] == 2 and second[0][0] == 1 and first[0][2:] != second[0][2:]
    feeds = feeds_of(case, report)
    for got, want in zip(run_onnx(path, feeds), eager_outputs(case, report), strict=True):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert_close(a, b)
    # docs/export.md's row is this export's
    assert doc_rows().get(case.id) == tensorrt_row(model), (
        f"docs/export.md is stale for {case.id}: run `python tools/update_export_doc.py`"
    )


@pytest.mark.parametrize("case", cases_for("torchscript"))
def test_every_operator_traces_to_torchscript_that_runs_at_another_size(case, tmp_path):
    path = tmp_path / "op.pt"
    report, steps = export_case(case, path, "torchscript")
    assert steps == ["build", "export", "run", "compare"]
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        for feed, want in zip(feeds_of(case, report), eager_outputs(case, report), strict=True):
            for a, b in zip(leaves(loaded(*feed)), want, strict=True):
                assert_close(a, b)


def test_known_failures_name_registered_operators_and_formats():
    ids = {case.id for case in CASES}
    for name, format in KNOWN_FAILURES:
        assert name in ids and format in ("onnx", "torchscript"), (name, format)


# -- the documentation's TensorRT tables ------------------------------------------------------


def test_doc_tables_have_one_row_per_registered_operator_in_matrix_order():
    assert list(doc_rows()) == [case.id for case in CASES], "run `python tools/update_export_doc.py`"


def test_doc_tables_follow_from_the_op_types_and_the_tensorrt_data():
    text = PAGE.read_text()
    block = text[text.index(START) + len(START) : text.index(END)].strip()
    assert block == render_tensorrt_tables(doc_rows())
    for ops, _ in doc_rows().values():
        assert all(tensorrt_status(op) != "unknown" for op in ops)


def test_doc_page_is_in_the_site_navigation():
    assert "export.md" in (ROOT / "mkdocs.yml").read_text()


# -- op types and TensorRT findings on small graphs -------------------------------------------


def _model(nodes, inputs, outputs, initializers=(), opset=20, functions=()):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=list(initializers),
    )
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(f.domain, 1) for f in functions]
    return helper.make_model(graph, opset_imports=imports, functions=list(functions))


def test_onnx_op_types_expand_functions_and_subgraphs():
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"])],
        "then",
        [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, None)],
    )
    function = helper.make_function(
        "local", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])], [helper.make_opsetid("", 20)]
    )
    nodes = [
        helper.make_node("Twice", ["x"], ["y"], domain="local"),
        helper.make_node("If", ["c"], ["z"], then_branch=body, else_branch=body),
        helper.make_node("Gelu", ["y"], ["w"], domain="com.microsoft"),
    ]
    model = _model(nodes, ["x", "c"], ["z", "w"], functions=[function])
    assert onnx_op_types(model) == ["Add", "If", "Relu", "com.microsoft::Gelu"]


def test_tensorrt_findings_read_the_stated_restrictions():
    from onnx import helper, numpy_helper

    axes = numpy_helper.from_array(torch.tensor([0]).numpy(), "axes")
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2]),
        helper.make_node("Add", ["i", "p"], ["q"]),
        helper.make_node("Resize", ["q", "", "s"], ["r"], mode="cubic"),
        helper.make_node("Shape", ["r"], ["shape"]),
        helper.make_node("Slice", ["r", "st", "en", "shape"], ["sl"]),  # axes computed
        helper.make_node("Squeeze", ["sl", "axes"], ["sq"]),  # axes an initializer: fine
        helper.make_node("TopK", ["sq", "k"], ["t", "ti"]),
        helper.make_node("MaxUnpool", ["t", "ti"], ["u"], kernel_shape=[2, 2]),
        helper.make_node("Frobnicate", ["u"], ["out"]),
    ]
    model = _model(nodes, ["x", "s", "st", "en", "k"], ["out"], initializers=[axes], opset=21)
    assert tensorrt_findings(model) == [
        "Frobnicate: not in this table (look it up)",
        "MaxPool: uses the `Indices` output",
        "MaxUnpool: not supported",
        "Resize: mode cubic",
        "Slice: `axes` is computed, not an initializer",
        "TopK: `K` is computed at run time",
        "opset 21 is outside 9 to 20",
    ]


def test_tensorrt_findings_accept_a_plain_graph():
    from onnx import helper

    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2]), helper.make_node("Relu", ["p"], ["y"])]
    assert tensorrt_findings(_model(nodes, ["x"], ["y"])) == []


# -- the library's steps and their errors -----------------------------------------------------


def test_resolve_name_takes_qualified_and_unambiguous_bare_names():
    assert resolve_name("upsampler:carafe") == ("upsampler", "carafe")
    assert resolve_name("maxunpool") == ("pair", "maxunpool")
    with pytest.raises(ValueError, match=r"argument `name`: 'carafe' is registered in several.*upsampler:carafe"):
        resolve_name("carafe")
    with pytest.raises(ValueError, match=r"argument `name`: unknown kind 'upsampler2'.*did you mean 'upsampler'"):
        resolve_name("upsampler2:carafe")
    with pytest.raises(ValueError, match=r"argument `name`: unknown upsampler 'carafx'.*did you mean 'carafe'"):
        resolve_name("upsampler:carafx")
    with pytest.raises(ValueError, match=r"argument `name`: unknown operator 'dysampel'.*did you mean"):
        resolve_name("dysampel")


def test_build_operator_checks_its_arguments():
    with pytest.raises(ValueError, match="argument `channels`"):
        build_operator("upsampler:carafe", channels=0)
    with pytest.raises(ValueError, match="argument `scale_factor`: pool:gap takes no scale factor"):
        build_operator("pool:gap", channels=4, scale_factor=2)
    with pytest.raises(ExportError, match=r"step `build` failed: upsampler:carafe\(.*up_kernel"):
        build_operator("upsampler:carafe", channels=4, options={"up_kernel": 4})  # even kernels are rejected
    assert not build_operator("upsampler:carafe", channels=4).training


def test_export_error_names_a_known_step():
    assert str(ExportError("run", "boom")) == "step `run` failed: boom"
    with pytest.raises(ValueError, match="argument `step`"):
        ExportError("deploy", "boom")


def test_check_and_run_failures_name_their_step(tmp_path):
    from onnx import helper

    broken = _model([helper.make_node("Relu", ["missing"], ["y"])], ["x"], ["y"])
    with pytest.raises(ExportError, match="step `check` failed"):
        check_onnx(broken)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="step `run` failed: onnxruntime could not load"):
        run_onnx(garbage, [(torch.zeros(1),)])


def test_a_simplification_that_changes_the_outputs_is_named(tmp_path, monkeypatch):
    from onnx import numpy_helper

    from resamplers.export import pipeline

    simplify = pipeline.simplify_onnx

    def spoiled(model):
        model = simplify(model)
        weight = model.graph.initializer[0]
        weight.CopyFrom(numpy_helper.from_array(2 * numpy_helper.to_array(weight) + 1, weight.name))
        return model

    monkeypatch.setattr(pipeline, "simplify_onnx", spoiled)
    with pytest.raises(ExportError, match=r"step `simplify` failed: onnxslim changed the outputs"):
        export_operator("upsampler:pixel_shuffle", tmp_path / "p.onnx", channels=4, dynamic=True)


def test_load_state_dict_reads_wrapped_dicts_and_names_bad_files(tmp_path):
    state = {"w": torch.ones(2)}
    torch.save({"state_dict": state, "step": 3}, tmp_path / "wrapped.pt")
    assert torch.equal(load_state_dict(tmp_path / "wrapped.pt")["w"], state["w"])
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="argument `checkpoint`: .*holds no state dict"):
        load_state_dict(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="argument `checkpoint`: .*weights_only=True"):
        load_state_dict(tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="argument `checkpoint`: .*safetensors"):
        load_state_dict(tmp_path / "junk.safetensors")


# -- the command ------------------------------------------------------------------------------


def test_command_exports_onnx_with_dynamic_sizes(tmp_path, capsys):
    path = tmp_path / "ps.onnx"
    argv = ["export", "upsampler:pixel_shuffle", "--channels", "8", "--dynamic", "--format", "onnx", "-o", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for step in STEPS:
        assert re.search(rf"^{step} ", out, re.M), f"no {step} line in:\n{out}"
    assert re.search(r"max \|onnxruntime - eager\|: \S+ at 2x8x6x8, \S+ at 1x8x12x6", out)
    assert "op types: Conv, DepthToSpace" in out and "tensorrt  10.0" in out
    # the file takes yet another batch and size
    (got,) = run_onnx(path, [(torch.randn(3, 8, 9, 11),)])[0]
    assert got.shape == (3, 8, 18, 22)


def test_command_exports_torchscript_of_a_two_input_operator(tmp_path, capsys):
    path = tmp_path / "fade.pt"
    argv = ["export", "upsampler:fade", "--channels", "8", "--dynamic", "--format", "torchscript", "-o", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "max |torchscript - eager|" in out and "simplify" not in out
    loaded = torch.jit.load(str(path))
    assert loaded(torch.randn(1, 8, 5, 7), torch.randn(1, 8, 10, 14)).shape == (1, 8, 10, 14)


@pytest.mark.parametrize(
    "format, suffix, wrap",
    [("onnx", ".safetensors", False), ("torchscript", ".pt", False), ("torchscript", ".pt", True)],
    ids=["onnx-safetensors", "torchscript-pt", "torchscript-wrapped-pt"],
)
def test_command_round_trips_a_checkpoint(tmp_path, capsys, format, suffix, wrap):
    torch.manual_seed(1)
    module = create_upsampler("pixel_shuffle", channels=8).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_()  # weights no fresh initialisation has
    checkpoint = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from resamplers.storage import save_model

        save_model(checkpoint, module.state_dict(), {"operator": "pixel_shuffle"})
    else:
        torch.save({"state_dict": module.state_dict()} if wrap else module.state_dict(), checkpoint)
    path = tmp_path / ("out.onnx" if format == "onnx" else "out.pt")
    argv = ["export", "upsampler:pixel_shuffle", "--channels", "8", "--format", format, "-o", str(path)]
    assert main([*argv, "--checkpoint", str(checkpoint)]) == 0
    assert "with the checkpoint's weights" in capsys.readouterr().out
    x = torch.randn(2, 8, 6, 8)  # the static export's size
    with torch.no_grad():
        expected = module(x)
        got = run_onnx(path, [(x,)])[0][0] if format == "onnx" else torch.jit.load(str(path))(x)
    assert_close(got, expected)


def test_command_names_the_build_step_for_a_checkpoint_that_does_not_fit(tmp_path, capsys):
    checkpoint = tmp_path / "c8.pt"
    torch.save(create_upsampler("pixel_shuffle", channels=8).state_dict(), checkpoint)
    argv = ["export", "upsampler:pixel_shuffle", "--channels", "4", "--format", "torchscript"]
    assert main([*argv, "-o", str(tmp_path / "x.pt"), "--checkpoint", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "step `build` failed: the checkpoint does not fit upsampler:pixel_shuffle(channels=4)" in err


def test_command_names_the_export_step_for_an_opset_it_cannot_write(tmp_path, capsys):
    argv = ["export", "downsampler:blur", "--channels", "4", "--format", "onnx", "--opset", "17"]
    assert main([*argv, "-o", str(tmp_path / "b.onnx")]) == 1
    assert "step `export` failed: asked for opset 17, the exporter wrote opset 18" in capsys.readouterr().err


def test_command_names_the_compare_step_beyond_the_tolerance(tmp_path, capsys):
    argv = ["export", "upsampler:pixel_shuffle", "--channels", "8", "--format", "onnx", "--tolerance", "0"]
    assert main([*argv, "-o", str(tmp_path / "p.onnx")]) == 1
    assert re.search(
        r"step `compare` failed: max \|onnxruntime - eager\| .* exceeds tolerance 0", capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["carafe"], r"argument `NAME`: 'carafe' is registered in several families; write one of upsampler:carafe"),
        (["upsampler:carafx"], r"argument `NAME`: unknown upsampler 'carafx'; did you mean 'carafe'\?"),
        (["widget:carafe"], r"argument `NAME`: unknown kind 'widget'"),
        (["pool:gap", "--scale-factor", "2"], r"argument `--scale-factor`: pool:gap takes no scale factor"),
        (["pool:gap", "--format", "torchscript", "--opset", "18"], r"argument `--opset`: applies to --format onnx"),
        (["pool:gap", "--format", "torchscript", "--no-simplify"], r"argument `--no-simplify`: applies to --format"),
        (["pool:gap", "--checkpoint", "missing.pt"], r"argument `--checkpoint`: no such file missing.pt"),
        (["pool:gap", "-o", "no/such/folder/x.onnx"], r"argument `--output`: the folder no/such/folder does not exist"),
        (["pool:gap", "--tolerance", "-1"], r"argument `--tolerance`: expected a number >= 0"),
    ],
    ids=["ambiguous", "unknown", "kind", "scale", "opset", "no-simplify", "checkpoint", "output", "tolerance"],
)
def test_command_argument_errors_name_the_argument(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["export", args[0], "--channels", "4", "--format", "onnx", "-o", "x.onnx", *args[1:]]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["pool:gap", "--channels", "0", "--format", "onnx", "-o", "x.onnx"], "--channels"),
        (["pool:gap", "--channels", "4", "--format", "xml", "-o", "x.onnx"], "--format"),
        (["pool:gap", "--channels", "4", "-o", "x.onnx"], "--format"),
        (
            ["pool:gap", "--channels", "4", "--format", "onnx", "-o", "x.onnx", "--scale-factor", "two"],
            "--scale-factor",
        ),
    ],
    ids=["channels", "format", "no-format", "scale"],
)
def test_command_parser_errors_name_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", *argv])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_command_help():
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--help"])
    assert exit_info.value.code == 0


def test_command_exits_non_zero_as_a_program(tmp_path):
    """The exit status reaches the shell (the in-process tests above cover the successes)."""
    command = [sys.executable, "-m", "resamplers.cli", "export", "downsampler:maks", "--channels", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    failed = subprocess.run(
        [*command, "--format", "onnx", "-o", str(tmp_path / "m.onnx")], capture_output=True, text=True, env=env
    )
    assert (
        failed.returncode == 2 and "argument `NAME`: unknown downsampler 'maks'; did you mean 'max'?" in failed.stderr
    )
