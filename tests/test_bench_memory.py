"""The bench's two glibc settings: exact peaks while measuring memory, reused blocks while timing.

Each case runs in a fresh process, since the settings are process-wide.
"""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings and /proc are Linux's")


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


_FAULTS_PER_ALLOCATION = """
    import resource, torch
    from resamplers.bench.memory import fix_malloc_mmap_threshold, steady_state_malloc
    assert {setting}()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        torch.empty(4 * 2**20).fill_(1.0)  # 16 MiB, allocated and freed
    before = faults()
    for _ in range(10):
        torch.empty(4 * 2**20).fill_(1.0)
    print((faults() - before) / 10)
"""


def test_steady_state_reuses_freed_blocks_and_the_fixed_threshold_maps_them_fresh():
    pages = 16 * 2**20 // 4096
    steady = float(_run(_FAULTS_PER_ALLOCATION.format(setting="steady_state_malloc")))
    fixed = float(_run(_FAULTS_PER_ALLOCATION.format(setting="fix_malloc_mmap_threshold")))
    # Fresh memory faults once a page (fewer with transparent huge pages); reused memory not at all.
    assert steady < 0.01 * pages
    assert fixed > 10 * max(steady, 1.0)


def test_peak_after_steady_state_work_matches_a_fresh_measure():
    out = _run(
        """
        import torch
        from resamplers.bench.memory import peak_extra_bytes, steady_state_malloc
        def work():
            a = torch.ones(6 * 2**20)  # 24 MiB, live with b (8 MiB): 32 MiB
            b = torch.ones(2 * 2**20)
            return float(a[0] + b[0])
        work()
        fresh = peak_extra_bytes(work)
        steady_state_malloc()
        for _ in range(5):
            work()
            torch.ones(3 * 2**20)
        print(fresh, peak_extra_bytes(work))
        """
    )
    fresh, after = (int(v) / 2**20 for v in out.split())
    assert 31 < fresh < 34
    # The freed heap is handed back before measuring, so reused resident blocks hide nothing.
    assert 31 < after < 34
