"""The ``resamplers`` command: ops table, bench, and the README's generated table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resamplers.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_operator_table_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "update_readme.py"), "--check"], cwd=ROOT)
    assert result.returncode == 0, "README operator table is stale: run `make readme`"


def test_ops_markdown_lists_every_operator(capsys):
    import resamplers

    assert main(["ops", "--markdown"]) == 0
    out = capsys.readouterr().out
    for name in resamplers.list_upsamplers() + resamplers.list_downsamplers():
        assert f"`{name}`" in out
    assert "74,148" in out  # CARAFE at C=256


def test_bench_small_run_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--op",
            "upsampler:carafe",
            "--op",
            "downsampler:max",
            "--channels",
            "16",
            "--height",
            "8",
            "--width",
            "6",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--json",
            str(path),
        ]
    )
    assert code == 0
    data = json.loads(path.read_text())
    ops = {r["op"]: r for r in data["ops"]}
    assert set(ops) == {"upsampler:carafe", "downsampler:max"}
    carafe = ops["upsampler:carafe"]
    assert carafe["output_shape"] == [1, 16, 16, 12]
    # compressor 16*64 + encoder 9*64*100 MACs per input pixel, plus 25*16*4 for the reassembly
    assert carafe["macs"] == 8 * 6 * (16 * 64 + 9 * 64 * 100 + 25 * 16 * 4)
    assert carafe["forward_ms"] > 0 and carafe["train_ms"] > 0
    (baseline,) = data["baselines"]
    assert baseline["op"] == "upsampler:carafe"
    assert baseline["max_abs_diff"] < 1e-4
    assert "speed-up" in capsys.readouterr().out


def test_bench_unknown_operator_is_a_clear_error(capsys):
    assert main(["bench", "--op", "carafee"]) == 2
    err = capsys.readouterr().err
    assert "carafee" in err and "did you mean 'carafe'" in err


def test_bench_rejects_nonpositive_sizes(capsys):
    assert main(["bench", "--height", "0"]) == 2
    assert "`--height`" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"], ["ops", "--help"]])
def test_help(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0


def test_bench_baselines_of_the_dynamic_resamplers_agree_with_the_operators(tmp_path):
    path = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--op",
            "downsampler:carafe",
            "--op",
            "upsampler:fade",
            "--op",
            "upsampler:sapa",
            "--channels",
            "32",
            "--height",
            "8",
            "--width",
            "6",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--json",
            str(path),
        ]
    )
    assert code == 0
    data = json.loads(path.read_text())
    assert {b["op"] for b in data["baselines"]} == {"downsampler:carafe", "upsampler:fade", "upsampler:sapa"}
    for baseline in data["baselines"]:
        assert baseline["max_abs_diff"] < 1e-4, baseline


def test_bench_counts_dysample_macs(tmp_path):
    path = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--op",
                "upsampler:dysample",
                "--channels",
                "16",
                "--height",
                "4",
                "--width",
                "6",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    (op,) = json.loads(path.read_text())["ops"]
    # offset conv 16 -> 32 per input pixel, plus 4 bilinear taps per output element
    assert op["params"] == 16 * 32 + 32
    assert op["macs"] == 4 * 6 * 16 * 32 + 4 * 16 * 8 * 12


def test_runs_as_a_module_for_torchrun():
    result = subprocess.run([sys.executable, "-m", "resamplers.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "compare" in result.stdout
