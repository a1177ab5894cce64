"""Operators registered from outside the package: by user code after ``import resamplers``,
and by another installed package through the ``resamplers.operators`` entry points.

Both run in a subprocess, so the registrations do not leak into the other tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = '''
import torch.nn.functional as F
import resamplers
from resamplers.base import Upsampler


@resamplers.register_upsampler("{name}", example={{"channels": 4}})
class Doubled(Upsampler):
    """Nearest upsampling, doubled (a plug-in's upsampler)."""

    def __init__(self, channels: int | None = None, scale_factor: int = 2) -> None:
        super().__init__(channels, scale_factor)

    def forward(self, x):
        self.check_input(x)
        return 2 * F.interpolate(x, scale_factor=float(self.scale_factor), mode="nearest")
'''


def run_python(code: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_upsampler_registered_after_import_is_a_pair_everywhere(tmp_path):
    code = PLUGIN.format(name="late_doubled") + textwrap.dedent("""
        import torch
        from resamplers.bench import resolve_ops
        from resamplers.models import create_matting_model

        pair = resamplers.create_pair("late_doubled", channels=4)
        assert pair(torch.randn(1, 4, 6, 8)).shape == (1, 4, 6, 8)
        assert "late_doubled" in resamplers.list_pairs()
        model = create_matting_model("late_doubled", width=0.25).eval()
        assert model(torch.zeros(1, 4, 32, 32)).shape == (1, 1, 32, 32)
        fuse = resamplers.create_block("hrnet_fuse", channels=(4, 8), upsampler="late_doubled")
        assert [t.shape[1] for t in fuse([torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)])] == [4, 8]
        assert {"upsampler:late_doubled"} <= set(resolve_ops(["late_doubled"]))
        print("ok")
    """)
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_entry_point_plugin_is_compared(tmp_path):
    site = tmp_path / "site"
    (site / "doubled_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "doubled_plugin.py").write_text(PLUGIN.format(name="plugged"))
    (site / "doubled_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: doubled-plugin\nVersion: 0.1\n"
    )
    (site / "doubled_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[resamplers.operators]\ndoubled = doubled_plugin\n"
    )
    out = tmp_path / "compare"
    code = textwrap.dedent(f"""
        import sys
        from resamplers.cli import main
        sys.exit(main(["compare", "--task", "reconstruction", "--preset", "smoke", "--ops", "plugged,bilinear",
                       "--out", {str(out)!r}]))
    """)
    result = run_python(code, tmp_path, pythonpath=site)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "plugged" in report and "bilinear" in report


def test_broken_plugin_is_reported_not_skipped(tmp_path):
    site = tmp_path / "site"
    (site / "broken_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "broken_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n"
    )
    (site / "broken_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[resamplers.operators]\nbroken = no_such_module_here\n"
    )
    result = run_python("import resamplers; resamplers.list_upsamplers()", tmp_path, pythonpath=site)
    assert result.returncode != 0
    assert "plug-in 'broken'" in result.stderr and "no_such_module_here" in result.stderr
