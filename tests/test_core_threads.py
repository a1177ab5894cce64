"""Where the native kernels run their row ranges: torch's OpenMP team or the loader's pool.

Where torch runs OpenMP the ranges run on its own threads (a second pool competed with its
spinning workers for the cores); ``RESAMPLERS_NATIVE_THREADS=pool`` keeps the pool.  Both
must give bit-identical results at every thread count, and a forked child, where GNU
OpenMP's team does not survive, must still run the kernels.
"""

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import import_error_with
from resamplers.core import native
from resamplers.functional import native_available, reassemble

pytestmark = pytest.mark.skipif(not native_available(), reason="native kernels not built")

# Every kernel family at 1, 2 and 3 threads (3: more ranges than this machine's cores, and
# a range count that does not divide the rows): forward and both gradients in both
# layouts, the window similarity, sampled taps (offsets) and the layout change they use.
CHECK = textwrap.dedent(
    """
    import hashlib, torch
    from resamplers.core.native import native_threads
    from resamplers.functional import reassemble, window_similarity

    assert native_threads() == {expected!r}, native_threads()
    for threads in (1, 2, 3):
        digest = hashlib.sha256()
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        for cl in (False, True):
            x = torch.randn(2, 32, 13, 11)
            m = torch.randn(2, 2 * 25, 26, 22)
            offsets = 0.7 * torch.randn(2, 2 * 2 * 25, 26, 22)
            if cl:
                x, m = x.contiguous(memory_format=torch.channels_last), m.contiguous(memory_format=torch.channels_last)
            for taps in (None, offsets):
                xb, mb = x.clone().requires_grad_(), m.clone().requires_grad_()
                out = reassemble(xb, mb, 5, 2, scale_factor=2, offsets=taps, backend="native")
                out.backward(torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view_as(out))
                q = torch.randn(2, 32, 26, 22)
                sim = window_similarity(q, x, 5, 2, scale_factor=2, offsets=taps, backend="native")
                for t in (out, xb.grad, mb.grad, sim):
                    digest.update(t.detach().contiguous().numpy().tobytes())
        print(threads, digest.hexdigest())
    """
)


def _digests(threads_env: str, expected: str) -> list[str]:
    env = {**os.environ, "RESAMPLERS_NATIVE_THREADS": threads_env}
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(expected=expected)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


@pytest.mark.skipif(not torch.backends.openmp.is_available(), reason="torch runs no OpenMP here")
def test_the_team_and_the_pool_give_identical_results_at_every_thread_count():
    team = _digests("torch", "torch's OpenMP threads")
    pool = _digests("pool", "thread pool")
    assert team == pool
    assert len(team) == 6 and len(set(team[1::2])) == 1  # and the thread count changes nothing


@pytest.mark.skipif(
    not (torch.backends.openmp.is_available() and sys.platform.startswith("linux")),
    reason="torch's OpenMP runtime is found by name on Linux",
)
def test_the_kernels_run_on_torchs_openmp_threads_where_torch_has_them():
    assert native.native_threads() == "torch's OpenMP threads"
    # the runtime bound is the copy torch's wheel ships, where it ships one
    shipped = sorted((Path(torch.__file__).parent / "lib").glob("libgomp*.so*"))
    if shipped:
        found = native._torch_openmp_runtime()
        assert found is not None and Path(found[0]._name).parent == shipped[0].parent


def test_an_unknown_threads_choice_is_refused_by_name():
    error = import_error_with("RESAMPLERS_NATIVE_THREADS", "fibres")
    assert "RESAMPLERS_NATIVE_THREADS" in error and "pool" in error


def _reassemble_in_child(queue: "multiprocessing.Queue[float]") -> None:
    torch.set_num_threads(2)
    torch.manual_seed(1)
    x, m = torch.randn(1, 16, 9, 9), torch.randn(1, 25, 18, 18)
    ours = reassemble(x, m, 5, scale_factor=2, backend="native")
    torch.set_num_threads(1)  # torch's own parallel ops hang in a forked child
    reference = reassemble(x, m, 5, scale_factor=2, backend="torch")
    queue.put(float((ours - reference).abs().max()))


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_still_runs_the_kernels_on_two_threads():
    torch.set_num_threads(2)
    x, m = torch.randn(1, 16, 9, 9), torch.randn(1, 25, 18, 18)
    reassemble(x, m, 5, scale_factor=2, backend="native")  # the parent's team is started
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_reassemble_in_child, args=(queue,))
    child.start()
    child.join(60)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) < 1e-4
