"""The matting commands end to end on the synthetic source: train, eval, predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from resamplers.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    code = main(
        [
            "train",
            "--out",
            str(out),
            "--pair",
            "bilinear",
            "--width",
            "0.25",
            "--crop",
            "64",
            "--batch-size",
            "2",
            "--steps",
            "2",
            "--data",
            "synthetic",
            "--workers",
            "0",
            "--log-every",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_train_writes_checkpoint_log_and_config(run_dir):
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    assert [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((run_dir / "config.json").read_text())["pair"] == "bilinear"


def test_train_config_file_and_flag_override(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(
        'pair = "nearest"\nwidth = 0.25\ncrop = 64\nbatch_size = 2\nsteps = 1\ndata = "synthetic"\nworkers = 0\n'
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out), "--pair", "bilinear", "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["pair"] == "bilinear"
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "stepz" in capsys.readouterr().err


def test_eval_writes_table_csv_and_sheet(run_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", str(run_dir), "--source", "synthetic", "--size", "64", "--limit", "3", "--out", str(out)]) == 0
    rows = (out / "per_image.csv").read_text().splitlines()
    assert rows[0] == "name,thin,sad,mse,grad,conn" and len(rows) == 4
    assert (out / "sheet.png").stat().st_size > 0
    assert "SAD" in capsys.readouterr().out


def test_predict_any_size_and_clear_errors(run_dir, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((45, 71, 3)) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    trimap = np.full((45, 71), 128, np.uint8)
    trimap[:8], trimap[-8:] = 0, 255
    Image.fromarray(trimap).save(tmp_path / "tri.png")
    Image.fromarray(trimap[:40]).save(tmp_path / "tri_small.png")
    wrong = trimap.copy()
    wrong[0, 0] = 7
    Image.fromarray(wrong).save(tmp_path / "tri_values.png")
    out = tmp_path / "alpha.png"
    assert main(["predict", str(run_dir), str(tmp_path / "img.png"), str(tmp_path / "tri.png"), "-o", str(out)]) == 0
    alpha = np.asarray(Image.open(out))
    assert alpha.shape == (45, 71)
    assert (alpha[:8] == 0).all() and (alpha[-8:] == 255).all()  # known regions copied through
    cases = [
        (["img.png", "tri_small.png"], "`trimap`: expected size 45 x 71"),
        (["img.png", "tri_values.png"], "only the values 0, 128 and 255"),
        (["missing.png", "tri.png"], "file not found"),
    ]
    for files, message in cases:
        assert main(["predict", str(run_dir), *[str(tmp_path / f) for f in files], "-o", str(out)]) == 2
        assert message in capsys.readouterr().err
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"x")
    assert main(["predict", str(bogus), str(tmp_path / "img.png"), str(tmp_path / "tri.png"), "-o", str(out)]) == 2
    assert "not a readable safetensors" in capsys.readouterr().err


def test_checkpoint_of_another_configuration_is_refused(run_dir):
    from resamplers.models import create_matting_model
    from resamplers.models.matting import _load_strict
    from resamplers.storage import latest_checkpoint
    from resamplers.training import CheckpointError, load_checkpoint

    state = load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))["model"]
    with pytest.raises(CheckpointError, match="another configuration"):
        _load_strict(create_matting_model("carafe", width=0.25), state, "test")
