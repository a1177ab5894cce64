"""`resamplers profile`: the categories of a training step's profile and the command end to end."""

from __future__ import annotations

import json

import pytest
import torch

import resamplers.functional as F
from resamplers.cli import main
from resamplers.compare.profile import OTHER, categorise, profile_call


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("resamplers::reassemble", "resampling ops"),
        ("resamplers::triton_reassemble", "resampling ops"),
        ("GeneratedBackwardFor_resamplers_reassemble_default", "resampling ops"),
        ("aten::convolution_backward", "convolution"),
        ("aten::mkldnn_convolution", "convolution"),
        ("aten::native_batch_norm_backward", "normalisation"),
        ("aten::upsample_bilinear2d", "interpolation and sampling"),
        ("aten::grid_sampler_2d_backward", "interpolation and sampling"),
        ("aten::max_pool2d_with_indices", "pooling"),
        ("aten::_foreach_mul_", "optimiser"),
        ("aten::addmm", "matrix products"),
        ("aten::copy_", "copies and layout"),
        ("aten::mul", OTHER),
    ],
)
def test_ops_fall_into_their_category(name, category):
    assert categorise(name) == category


def test_profile_of_a_call_adds_up_and_names_the_resampling_op():
    x = torch.randn(1, 8, 16, 16, requires_grad=True)
    kernels = torch.softmax(torch.randn(1, 25, 32, 32), 1).requires_grad_()

    def step():
        F.carafe(x, kernels, 5, 1, 2).sum().backward()

    result = profile_call(step, steps=2, warmup=1)
    assert result["profiled_ms"] == pytest.approx(sum(result["categories"].values()))
    assert result["categories"].get("resampling ops", 0.0) > 0.0


@pytest.mark.parametrize("layout", [[], ["--amp", "bf16", "--channels-last"]])
def test_profile_command_writes_its_summary(tmp_path, capsys, layout):
    out = tmp_path / "profile"
    code = main(
        [
            "profile",
            "--task",
            "segmentation",
            "--preset",
            "smoke",
            "--ops",
            "bilinear,carafe",
            "--data",
            "synthetic",
            "--rounds",
            "1",
            "--steps",
            "1",
            "--out",
            str(out),
            *layout,
        ]
    )
    assert code == 0
    record = json.loads((out / "profile.json").read_text())
    assert record["amp"] == ("bf16" if layout else "none") and record["channels_last"] == bool(layout)
    assert list(record["ops"]) == ["bilinear", "carafe"]
    assert record["ops"]["bilinear"]["ratio"] == pytest.approx(1.0)
    assert record["ops"]["carafe"]["profile"]["categories"]["resampling ops"] > 0.0
    text = (out / "profile.md").read_text()
    assert "| `carafe` |" in text and "resampling ops" in text
    assert "x bilinear" in capsys.readouterr().out


def test_profile_command_names_a_bad_argument(capsys):
    assert main(["profile", "--task", "segmentation", "--preset", "nope"]) == 2
    assert "--preset" in capsys.readouterr().err
    assert main(["profile", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err
