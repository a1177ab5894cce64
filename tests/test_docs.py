"""The documentation site: every tutorial script runs in smoke mode; the pages cover what they claim.

The site itself is built by `make docs` (mkdocs, strict); these checks do not build it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.py"))


def _hooks():
    """docs/hooks.py, the mkdocs hook (it holds the list of public modules)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as mkdocs loads it (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_there_are_tutorials():
    assert {p.stem for p in TUTORIALS} >= {"fpn_upsampler", "compare_own_data", "export_onnx", "train_matting"}


@pytest.mark.slow  # about 20 s for the four scripts together
@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_in_smoke_mode(script, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script), "--smoke"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{script.name} --smoke failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_each_tutorial_has_a_page_that_includes_it(script):
    page = script.with_suffix(".md")
    assert page.is_file(), f"{script.name} has no page {page.name}"
    assert f'--8<-- "docs/tutorials/{script.name}"' in page.read_text()
    assert f"tutorials/{page.name}" in (ROOT / "mkdocs.yml").read_text()


def test_the_api_reference_renders_every_public_module():
    rendered = {
        m.group(1) for page in (DOCS / "api").glob("*.md") for m in re.finditer(r"^::: (\S+)", page.read_text(), re.M)
    }
    # `make docs` checks (docs/hooks.py, on_post_build) that every name of their __all__ is rendered.
    public = set(_hooks().PUBLIC_MODULES)
    assert public <= rendered, f"no page of docs/api renders {sorted(public - rendered)}"
