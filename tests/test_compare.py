"""resamplers compare: smoke presets of both tasks, resumption, shards and the merged report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resamplers.cli import main
from resamplers.compare import TASKS
from resamplers.compare.runner import parse_shard, run_compare
from resamplers.compare.tasks import get_task


def test_tasks_are_registered_with_four_documented_presets():
    assert {"matting", "reconstruction"} <= set(TASKS.names())
    for entry in TASKS:
        presets = entry.cls().presets()
        assert set(presets) == {"smoke", "quick", "standard", "full"}
        assert presets["smoke"].minutes <= 1 and presets["quick"].minutes <= 15
        assert presets["standard"].minutes <= 120


def test_shard_parsing():
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ValueError, match="`--shard`"):
            parse_shard(bad)


@pytest.mark.slow
def test_matting_smoke_writes_report(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--task",
                "matting",
                "--preset",
                "smoke",
                "--ops",
                "bilinear,nearest",
                "--data",
                "synthetic",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    for name in ("report.md", "report.html", "quality_vs_cost.png", "loss_curves.png", "visual_sheet.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "`bilinear`" in report and "`nearest`" in report and "closed-form" in report and "trivial" in report
    result = json.loads((out / "runs" / "matting" / "bilinear" / "seed-0" / "result.json").read_text())
    assert set(result["metrics"]) == {"overall", "thin"}
    assert set(result["metrics"]["overall"]) == {"sad", "mse", "grad", "conn"}
    assert {"params", "macs", "latency_ms", "train_ms_per_step"} <= set(result["costs"])
    assert "data:image/png;base64," in (out / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "SAD" in printed and ("~best" in printed or "worse" in printed)
    tables = [line for line in printed.splitlines() if line[:1] in "┏┃│└┡"]
    assert tables and max(len(line) for line in tables) <= 100  # readable at 100 columns
    assert "## Paired comparison" in report and "vs best (95% CI)" in report and "| best |" in report
    paired = report.split("## Paired comparison")[1]
    assert "| *closed-form* |" in paired and "| *trivial* |" in paired  # reference rows, paired too
    curve = json.loads((out / "runs" / "matting" / "bilinear" / "seed-0" / "curve.json").read_text())
    assert [entry["step"] for entry in curve] == [1, 2] and all("sad" in entry for entry in curve)
    assert (out / "learning_curves.png").is_file() and (out / "paired_differences.png").is_file()
    costs = json.loads((out / "costs.json").read_text())
    assert set(costs["ops"]) == {"bilinear", "nearest"}
    assert set(costs["ops"]["nearest"]) == {"latency_ms", "train_ms_per_step"}
    assert costs["ops"]["nearest"]["latency_ms"]["rounds"] == costs["rounds"] > 1
    assert "separate phase" in report


@pytest.mark.slow
def test_parallel_shards_then_a_time_budget(tmp_path, capsys):
    out = tmp_path / "cmp"
    common = ["compare", "--task", "reconstruction", "--preset", "smoke", "--ops", "bilinear,nearest"]
    common += ["--data", "synthetic", "--out", str(out), "--no-progress"]
    assert main([*common, "--jobs", "2", "--time-budget", "1"]) == 0
    runs = out / "runs" / "reconstruction"
    assert all((runs / op / "seed-0" / "result.json").is_file() for op in ("bilinear", "nearest"))
    budget = json.loads((out / "compare.json").read_text())["time_budget"]
    assert budget["minutes"] == 1 and budget["ended"]
    seeds = {op: len(list((runs / op).glob("seed-*/result.json"))) for op in ("bilinear", "nearest")}
    assert sum(seeds.values()) == 2 + sum(budget["added"].values())
    report = (out / "report.md").read_text()
    assert f"{sum(seeds.values())} of {sum(seeds.values())} runs finished" in report and "Time budget 1 min" in report
    with pytest.raises(ValueError, match="--jobs"):
        run_compare("reconstruction", out, preset="smoke", data="synthetic", jobs=2, shard=(0, 2))


@pytest.mark.slow
def test_reconstruction_shards_resume_and_merge(tmp_path, capsys):
    out = tmp_path / "cmp"
    common = [
        "compare",
        "--task",
        "reconstruction",
        "--preset",
        "smoke",
        "--ops",
        "bilinear,maxunpool,nearest",
        "--data",
        "synthetic",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main([*common, "--shard", "0/2"]) == 0
    runs = out / "runs" / "reconstruction"
    assert (runs / "bilinear" / "seed-0" / "result.json").is_file()
    assert not (runs / "maxunpool" / "seed-0").exists()
    assert (runs / "nearest" / "seed-0" / "result.json").is_file()
    first = (runs / "bilinear" / "seed-0" / "result.json").read_text()
    assert main([*common, "--shard", "1/2"]) == 0
    assert (runs / "maxunpool" / "seed-0" / "result.json").is_file()
    capsys.readouterr()
    assert main(common) == 0  # everything done: nothing is redone
    assert capsys.readouterr().out.count("done before, kept") == 3
    assert (runs / "bilinear" / "seed-0" / "result.json").read_text() == first
    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "3 of 3 runs finished" in report and "`maxunpool`" in report and "PSNR" in report
    # A result made under another budget of the same preset name (an older version) is redone.
    stale_path = runs / "nearest" / "seed-0" / "result.json"
    stale = json.loads(stale_path.read_text())
    current_steps = stale["preset"]["steps"]
    stale["preset"]["steps"] = current_steps + 1
    stale_path.write_text(json.dumps(stale))
    capsys.readouterr()
    assert main(common) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before, kept") == 2 and "nearest seed 0: done before under another" in printed
    assert json.loads(stale_path.read_text())["preset"]["steps"] == current_steps
    # More seeds extend the comparison; the finished seed-0 runs are kept.
    capsys.readouterr()
    assert main([*common, "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before, kept") == 3
    assert all((runs / op / "seed-1" / "result.json").is_file() for op in ("bilinear", "maxunpool", "nearest"))
    assert json.loads((out / "compare.json").read_text())["seeds"] == 2
    paired = (out / "report.md").read_text().split("## Paired comparison")[1]
    assert "| 2 x 4 |" in paired and "vs bilinear (95% CI)" in paired  # 2 seeds x 4 test crops per operator


def test_precision_and_layout_are_part_of_the_budget():
    preset = get_task("matting").presets()["quick"]
    assert preset.with_precision() == preset  # float32 runs keep matching their records
    fast = preset.with_precision("bf16", channels_last=True)
    assert fast.precision() == {"amp": "bf16", "channels_last": True}
    assert fast.budget() != preset.budget() and fast.with_precision() == preset
    with pytest.raises(ValueError, match="`amp`"):
        preset.with_precision("fp16")


def test_compare_trains_under_bf16_autocast_in_channels_last(tmp_path, capsys):
    out = tmp_path / "cmp"
    common = ["compare", "--task", "reconstruction", "--preset", "smoke", "--ops", "carafe", "--data", "synthetic"]
    common += ["--out", str(out), "--no-progress"]
    assert main([*common, "--amp", "bf16", "--channels-last", "--jobs", "2"]) == 0  # the flags reach the shards
    spec = json.loads((out / "compare.json").read_text())
    assert spec["amp"] == "bf16" and spec["channels_last"] is True
    record = json.loads((out / "runs" / "reconstruction" / "carafe" / "seed-0" / "result.json").read_text())
    assert record["preset"]["extra"]["amp"] == "bf16" and record["preset"]["extra"]["channels_last"] is True
    config = json.loads((out / "runs" / "reconstruction" / "carafe" / "seed-0" / "config.json").read_text())
    assert '"amp": "bf16"' in json.dumps(config) and '"channels_last": true' in json.dumps(config)
    assert "trained in bf16 autocast, channels-last layout" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(common) == 2  # the same folder in float32 is another comparison
    assert "amp='bf16'" in capsys.readouterr().err
    tool = Path(__file__).resolve().parents[1] / "tools" / "paired_between_folders.py"
    printed = subprocess.run(
        [sys.executable, str(tool), str(out), str(out)], capture_output=True, text=True, check=True
    )
    assert "| `carafe` | 1 x " in printed.stdout and "+0.000 [+0.000, +0.000]" in printed.stdout


def test_unknown_operator_and_other_comparison_are_refused(tmp_path, capsys):
    assert main(["compare", "--task", "reconstruction", "--ops", "bilinearr", "--out", str(tmp_path / "a")]) == 2
    assert "did you mean 'bilinear'" in capsys.readouterr().err
    assert main(["compare", "--task", "depthh", "--out", str(tmp_path / "a")]) == 2
    assert "unknown task" in capsys.readouterr().err
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "compare.json").write_text(
        json.dumps(
            {
                "task": "matting",
                "preset": "quick",
                "ops": ["bilinear"],
                "seeds": 1,
                "data": "synthetic",
                "data_root": None,
            }
        )
    )
    assert (
        main(
            [
                "compare",
                "--task",
                "reconstruction",
                "--preset",
                "smoke",
                "--data",
                "synthetic",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    assert "choose another --out" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2


@pytest.mark.slow
def test_compare_under_torchrun_trains_data_parallel_and_writes_once(tmp_path):
    """Two processes share each run (the trainer's data parallelism); rank 0 evaluates
    and writes the results and the report, the other rank writes nothing of its own."""
    import os
    import subprocess
    import sys

    out = tmp_path / "cmp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "resamplers.cli",
            "compare",
            "--task",
            "reconstruction",
            "--preset",
            "smoke",
            "--ops",
            "bilinear",
            "--data",
            "synthetic",
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = out / "runs" / "reconstruction" / "bilinear" / "seed-0"
    record = json.loads((run / "result.json").read_text())
    assert record["train"]["steps"] > 0 and "psnr" in record["metrics"]["overall"]
    assert (out / "report.md").is_file() and result.stdout.count("1 of 1 runs; data") == 1
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log and all(entry["processes"] == 2 for entry in log)
