"""A run remembers its settings, survives a torn log, and stops cleanly when it diverges."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from resamplers.cli import main
from resamplers.storage import latest_checkpoint, load_checkpoint
from resamplers.training import LoopConfig, TrainingDiverged, TrainingTask, fit

TRAIN = [
    "train",
    "--pair",
    "bilinear",
    "--width",
    "0.25",
    "--crop",
    "64",
    "--batch-size",
    "2",
    "--data",
    "synthetic",
    "--workers",
    "0",
    "--no-progress",
]


@pytest.fixture
def short_run(tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [*TRAIN, "--out", str(out), "--steps", "2", "--lr", "0.002", "--checkpoint-every", "1", "--log-every", "1"]
        )
        == 0
    )
    return out


def _run_config(out: Path) -> dict:
    return load_checkpoint(latest_checkpoint(out / "checkpoints"))["run_config"]


def test_resume_takes_every_setting_from_the_run(short_run, capsys):
    before = (short_run / "config.json").read_text()
    assert main(["train", "--out", str(short_run), "--resume", "--no-progress"]) == 0  # nothing else given
    assert (short_run / "config.json").read_text() == before
    assert main(["train", "--out", str(short_run), "--resume", "--steps", "3", "--no-progress"]) == 0
    recorded = _run_config(short_run)
    assert recorded["pair"] == "bilinear" and recorded["lr"] == 0.002 and recorded["steps"] == 3
    assert recorded["checkpoint_every"] == 1 and recorded["log_every"] == 1
    assert [json.loads(line)["step"] for line in (short_run / "log.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize("flag, value", [("--lr", "0.001"), ("--pair", "nearest"), ("--log-every", "10")])
def test_resume_refuses_a_changed_fixed_setting(short_run, capsys, flag, value):
    before = (short_run / "config.json").read_text()
    assert main(["train", "--out", str(short_run), "--resume", flag, value, "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert flag.lstrip("-").replace("-", "_") in error and "only out, steps, threads, workers may change" in error
    assert (short_run / "config.json").read_text() == before


def test_resume_repeating_the_same_settings_is_fine(short_run):
    assert main([*TRAIN, "--out", str(short_run), "--resume", "--steps", "2", "--lr", "0.002"]) == 0


def test_resume_recovers_from_a_torn_log_line(short_run):
    log = short_run / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "loss": 0.1')  # a write cut short
    with pytest.warns(UserWarning, match="log.jsonl: dropped 1 unreadable line"):
        assert main(["train", "--out", str(short_run), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]


def test_unknown_pair_argument_is_a_clean_error(tmp_path, capsys):
    assert main([*TRAIN, "--out", str(tmp_path / "r"), "--steps", "1", "--pair", "a2u", "--pair-kwarg", "bogus=1"]) == 2
    assert "`pair_kwargs`: 'bogus' is not an option of pair 'a2u'" in capsys.readouterr().err


def test_unparsable_config_file_names_it(tmp_path, capsys):
    bad = tmp_path / "run.toml"
    bad.write_text("steps = = 3\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "run.toml does not parse" in capsys.readouterr().err


class _PoisonedAt(nn.Module):
    """A tiny regressor whose output turns to NaN from a given step on."""

    def __init__(self, poisoned_step: int) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.calls, self.poisoned_step = 0, poisoned_step

    def forward(self, x):
        self.calls += 1
        y = self.linear(x)
        return y * float("nan") if self.calls >= self.poisoned_step else y


class _Points(torch.utils.data.Dataset):
    def __len__(self):
        return 10**6

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"x": torch.randn(4, generator=g)}


def _loss(model, batch):
    return model(batch["x"]).pow(2).mean(), {}


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    task = TrainingTask(build_model=lambda: _PoisonedAt(4), loss=_loss, dataset=_Points(), model_config={})
    config = LoopConfig(out=str(tmp_path / "run"), steps=10, batch_size=2, checkpoint_every=2, log_every=1, workers=0)
    with pytest.raises(TrainingDiverged, match="diverged at step 4: the loss is nan"):
        fit(task, config, run_config={}, progress=False)
    saved = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert saved["step"] == 2 and all(torch.isfinite(v).all() for v in saved["model"].values())


def test_bf16_autocast_trains_the_matting_network(tmp_path):
    out = tmp_path / "amp"
    assert main([*TRAIN, "--out", str(out), "--steps", "2", "--amp", "bf16"]) == 0
    weights = load_checkpoint(latest_checkpoint(out / "checkpoints"))["model"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in weights.values())  # master weights stay float32
    assert _run_config(out)["amp"] == "bf16"


def test_fp16_without_cuda_is_refused(tmp_path, capsys):
    assert main([*TRAIN, "--out", str(tmp_path / "r"), "--steps", "1", "--amp", "fp16"]) == 2
    assert "'fp16' needs a CUDA device" in capsys.readouterr().err


POISONED_PLUGIN = textwrap.dedent('''
    import torch.nn.functional as F
    import resamplers
    from resamplers.base import Upsampler


    @resamplers.register_upsampler("poisoned", example={"channels": 4})
    class Poisoned(Upsampler):
        """Nearest upsampling times NaN: a run with it must diverge."""

        def __init__(self, channels=None, scale_factor=2):
            super().__init__(channels, scale_factor)

        def forward(self, x):
            return F.interpolate(x, scale_factor=float(self.scale_factor)) * float("nan")
''')


def test_a_diverging_run_is_a_failure_in_the_comparison_not_a_crash(tmp_path):
    import subprocess

    (tmp_path / "poisoned_plugin.py").write_text(POISONED_PLUGIN)
    out = tmp_path / "compare"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import poisoned_plugin
        from resamplers.cli import main
        sys.exit(main(["compare", "--task", "reconstruction", "--preset", "smoke", "--ops", "poisoned,bilinear",
                       "--data", "synthetic", "--out", {str(out)!r}]))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "runs" / "reconstruction" / "poisoned" / "seed-0" / "result.json").read_text())
    assert "diverged at step 1" in record["failed"]
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and "`poisoned` seed 0: training diverged at step 1" in report
    assert "| `bilinear` |" in report and "| `poisoned` |" not in report


def test_empty_mattes_are_refused_by_name():
    import numpy as np

    from resamplers.metrics import matting_metrics

    with pytest.raises(ValueError, match="`alpha`: expected a non-empty"):
        matting_metrics(np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0), np.uint8))


def test_input_of_another_dtype_than_the_module_is_refused_by_name():
    import resamplers

    up = resamplers.create_upsampler("carafe", channels=8)
    with pytest.raises(ValueError, match=r"`x`: expected dtype torch.float32 \(the dtype of the module's parameters\)"):
        up(torch.randn(1, 8, 4, 4, dtype=torch.float64))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast mixes dtypes by design
        up.check_dtype(torch.randn(1, 8, 4, 4, dtype=torch.bfloat16))


def test_a_guide_from_another_pair_is_named():
    import resamplers

    a2u = resamplers.create_pair("a2u", channels=8)
    indexnet = resamplers.create_pair("indexnet_m2o", channels=8)
    y, guide = indexnet.down(torch.randn(1, 8, 8, 8))
    with pytest.raises(ValueError, match="`guide`.*IndexedPooling"):
        a2u.up(y, guide)
