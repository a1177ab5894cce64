"""Training: loss, checkpoints, exact resumption, interruption by signal, data parallelism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fake_matting import FakeComposites
from resamplers.models import create_matting_model
from resamplers.storage import CheckpointError, save_checkpoint
from resamplers.training import TrainConfig, latest_checkpoint, load_checkpoint, matting_loss, train
from resamplers.training.loop import StepSampler
from resamplers.training.schedule import lr_factor

TESTS = Path(__file__).resolve().parent


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    base = dict(
        out=str(tmp_path / "run"),
        pair="bilinear",
        width=0.25,
        aspp=True,
        crop=64,
        batch_size=2,
        steps=6,
        checkpoint_every=100,
        log_every=1,
        workers=0,
        lr=1e-3,
        seed=3,
        threads=1,
    )
    return TrainConfig.from_dict({**base, **overrides})


class TestLoss:
    def test_hand_checkable_values(self):
        alpha = torch.full((1, 1, 2, 2), 0.5)
        trimap = torch.tensor([[[128, 128], [0, 255]]], dtype=torch.uint8)
        fg, bg = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
        image = alpha * fg + (1 - alpha) * bg
        pred = alpha + 0.1
        loss, parts = matting_loss(pred, alpha, trimap, fg, bg, image)
        # two unknown pixels, each off by 0.1 in alpha and by 0.1 in each of 3 colour channels
        assert parts["alpha"].item() == pytest.approx(0.1, abs=1e-6)
        assert parts["composition"].item() == pytest.approx(0.3, abs=1e-6)
        assert loss.item() == pytest.approx(0.2, abs=1e-6)

    def test_only_unknown_region_counts_and_empty_is_safe(self):
        alpha = torch.zeros(2, 1, 3, 3)
        trimap = torch.zeros(2, 3, 3, dtype=torch.uint8)
        trimap[0, 1, 1] = 128
        pred = torch.ones(2, 1, 3, 3)  # wrong everywhere
        loss, parts = matting_loss(
            pred, alpha, trimap, torch.zeros(2, 3, 3, 3), torch.zeros(2, 3, 3, 3), torch.zeros(2, 3, 3, 3)
        )
        assert torch.isfinite(loss)
        assert parts["alpha"].item() == pytest.approx(0.5, abs=1e-6)  # sample 0: 1.0, sample 1: no unknown pixel


def test_lr_schedules():
    assert lr_factor(0, 30, "step") == 1.0
    assert lr_factor(20, 30, "step") == pytest.approx(0.1)
    assert lr_factor(26, 30, "step") == pytest.approx(0.01)
    assert lr_factor(0, 10, "cosine") == 1.0 and lr_factor(10, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(0, 10, "constant", warmup=4) == 0.25


def test_step_sampler_splits_global_batches_over_ranks():
    ranks = [list(StepSampler(2, 4, 4, rank=r, world_size=2)) for r in range(2)]
    assert ranks == [[8, 9, 12, 13], [10, 11, 14, 15]]
    with pytest.raises(ValueError, match="`batch_size`"):
        StepSampler(0, 1, 3, 0, 2)


class TestCheckpoints:
    def test_round_trip_without_pickle(self, tmp_path):
        model = create_matting_model("bilinear", width=0.25)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model(torch.randn(2, 4, 32, 32)).mean().backward()
        opt.step()
        path = save_checkpoint(tmp_path, 7, model, opt, None, {"pair": "bilinear"}, {"seed": 1})
        assert latest_checkpoint(tmp_path) == path
        assert {p.name for p in path.iterdir()} == {"model.safetensors", "train_state.safetensors"}
        loaded = load_checkpoint(path)
        assert loaded["step"] == 7 and loaded["model_config"] == {"pair": "bilinear"}
        for key, value in model.state_dict().items():
            assert torch.equal(loaded["model"][key], value)
        opt2 = torch.optim.Adam(model.parameters(), lr=1e-3)
        opt2.load_state_dict(loaded["optimizer"])
        before, after = opt.state_dict()["state"], opt2.state_dict()["state"]
        assert before.keys() == after.keys()
        for index in before:
            assert torch.equal(before[index]["exp_avg"], after[index]["exp_avg"])

    def test_keeps_only_recent_and_ignores_partial_writes(self, tmp_path):
        model = create_matting_model("nearest", width=0.25)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in (1, 2, 3):
            save_checkpoint(tmp_path, step, model, opt, None, {}, {})
        (tmp_path / ".step-00000004.123.tmp").mkdir()  # a write that was interrupted
        assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000003"]
        assert latest_checkpoint(tmp_path).name == "step-00000003"

    def test_corrupt_checkpoint_is_a_clear_error(self, tmp_path):
        bad = tmp_path / "model.safetensors"
        bad.write_bytes(b"not a checkpoint")
        with pytest.raises(CheckpointError, match="not a readable safetensors"):
            load_checkpoint(bad)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))["model"]


@pytest.mark.slow
def test_resumed_run_matches_uninterrupted(tmp_path):
    full = train(_config(tmp_path / "a"), dataset=FakeComposites(64, seed=3), progress=False)
    assert full.step == 6 and not full.interrupted
    part = train(_config(tmp_path / "b"), dataset=FakeComposites(64, seed=3), progress=False, stop_after=3)
    assert not part.interrupted and part.step == 3  # stopped as asked, not by a signal
    assert load_checkpoint(latest_checkpoint(tmp_path / "b" / "run" / "checkpoints"))["step"] == 3
    with pytest.raises(CheckpointError, match="--resume"):
        train(_config(tmp_path / "b"), dataset=FakeComposites(64, seed=3), progress=False)
    rest = train(_config(tmp_path / "b"), resume=True, dataset=FakeComposites(64, seed=3), progress=False)
    assert rest.step == 6
    a, b = _weights(tmp_path / "a" / "run"), _weights(tmp_path / "b" / "run")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    log = [json.loads(line) for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]


def test_channels_last_training_computes_the_same_step_and_saves_plain_weights(tmp_path):
    """The layout changes only the memory order: the first loss equals the NCHW run's, the
    weights stay channels-last while training, and the checkpoint loads into a plain network."""
    losses = {}
    for layout in (False, True):
        run = tmp_path / f"cl-{layout}"
        config = _config(run, pair="carafe", steps=2, channels_last=layout)
        assert train(config, dataset=FakeComposites(64, seed=3), progress=False).step == 2
        log = [json.loads(line) for line in (run / "run" / "log.jsonl").read_text().splitlines()]
        losses[layout] = log[0]["loss"]
        weights = _weights(run / "run")
        plain = create_matting_model("carafe", width=0.25)
        plain.load_state_dict(weights)  # strict: every key, every shape
        assert all(t.is_contiguous() for t in plain.state_dict().values())
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    with pytest.raises(TypeError, match="`channels_last`"):
        _config(tmp_path, channels_last="yes").validate()


def test_batch_norm_on_pooled_context_needs_two_samples_per_process(tmp_path):
    with pytest.raises(ValueError, match="`batch_size`"):
        train(_config(tmp_path, batch_size=1), dataset=FakeComposites(64, seed=3), progress=False)


def test_resume_refuses_another_configuration(tmp_path):
    train(_config(tmp_path, steps=1), dataset=FakeComposites(64, seed=3), progress=False)
    with pytest.raises(CheckpointError, match="width"):
        train(_config(tmp_path, steps=2, width=0.5), resume=True, dataset=FakeComposites(64, seed=3), progress=False)


def test_a_checkpoint_older_than_an_option_resumes_at_its_default(tmp_path):
    """Fields added later (``head_activation``) count as their default in older checkpoints."""
    from resamplers.training.loop import _check_resumable
    from resamplers.training.matting import _identity_defaults

    now = _config(tmp_path).to_dict()
    older = {k: v for k, v in now.items() if k != "head_activation"}
    _check_resumable({"run_config": older}, now, _identity_defaults())
    with pytest.raises(CheckpointError, match="head_activation: checkpoint 'relu6' vs now 'leaky_relu'"):
        _check_resumable({"run_config": older}, {**now, "head_activation": "leaky_relu"}, _identity_defaults())


DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import torch
    from fake_matting import FakeComposites
    from resamplers.training import TrainConfig, train
    config = TrainConfig.from_dict({config!r})
    import os, pathlib
    result = train(config, resume={resume!r}, dataset=FakeComposites(64, seed=3), progress=False)
    print("RESULT", result.step, result.interrupted, flush=True)
    rank = os.environ.get("RANK", "0")
    pathlib.Path(config.loop.out, f"result-rank{{rank}}.txt").write_text(f"{{result.step}} {{result.interrupted}}")
    """
)


@pytest.mark.slow
def test_sigterm_loses_no_finished_step_and_resume_matches(tmp_path):
    steps = 8
    reference = train(_config(tmp_path / "ref", steps=steps), dataset=FakeComposites(64, seed=3), progress=False)
    assert reference.step == steps
    config = _config(tmp_path / "killed", steps=steps).to_dict()
    log = Path(config["out"]) / "log.jsonl"
    code = DRIVER.format(tests=str(TESTS), config=config, resume=False)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    finished = len(log.read_text().splitlines())
    saved = load_checkpoint(latest_checkpoint(Path(config["out"]) / "checkpoints"))["step"]
    assert saved == finished and 2 <= saved < steps, (saved, finished)
    resumed = subprocess.run(
        [sys.executable, "-c", DRIVER.format(tests=str(TESTS), config=config, resume=True)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"RESULT {steps} False" in resumed.stdout
    a, b = _weights(tmp_path / "ref" / "run"), _weights(Path(config["out"]))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    config = _config(tmp_path, steps=3, batch_size=4).to_dict()
    script = tmp_path / "ddp_train.py"
    script.write_text(DRIVER.format(tests=str(TESTS), config=config, resume=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / "run" / f"result-rank{rank}.txt").read_text() == "3 False"
    saved = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert saved["step"] == 3
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
