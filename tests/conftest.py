"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

# The suite runs under pytest-xdist with one process per core; keep each process single
# threaded unless the caller says otherwise, so workers do not oversubscribe the CPU.
torch.set_num_threads(int(os.environ.get("RESAMPLERS_TEST_THREADS", "1")))

TOLERANCES = {
    torch.float64: dict(rtol=1e-9, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.bfloat16: dict(rtol=3e-2, atol=3e-2),
    torch.float16: dict(rtol=3e-3, atol=3e-3),
}


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype | None = None, scale: float = 1.0
) -> None:
    """``torch.testing.assert_close`` with tolerances chosen by dtype, scaled by ``scale``."""
    tol = TOLERANCES[dtype or actual.dtype]
    torch.testing.assert_close(
        actual.to(expected.dtype), expected, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale, check_stride=False
    )


def import_error_with(variable: str, value: str) -> str:
    """The error output of ``import resamplers`` in a fresh process whose environment sets
    ``variable`` to ``value``; fails the test if the import succeeds."""
    env = {**os.environ, variable: value}
    result = subprocess.run(
        [sys.executable, "-c", "import resamplers"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode != 0, f"import resamplers succeeded with {variable}={value!r}"
    return result.stderr


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
