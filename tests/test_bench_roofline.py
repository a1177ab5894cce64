"""The bench's roofline: bound formulas against hand counts, measured limits, core rows."""

import pytest

from resamplers.bench import BenchConfig, resolve_ops, run_bench
from resamplers.bench.roofline import MachineLimits, Work, measure_limits, module_work, reassembly_work, similarity_work
from resamplers.bench.timing import machine_info
from resamplers.functional import native_available, native_isa, native_threads


def test_reassembly_work_counts_each_tensor_once_per_pass():
    # features 1x2x3x3 (18), kernels 1x9x6x6 (324), output 1x2x6x6 (72); K = 3.
    work = reassembly_work((1, 2, 3, 3), (1, 9, 6, 6), 3, 4)
    assert work.bytes == 4 * (18 + 324 + 72)
    assert work.flops == 2 * 72 * 9
    both = reassembly_work((1, 2, 3, 3), (1, 9, 6, 6), 3, 4, backward=True)
    assert (both.bytes, both.flops) == (3 * work.bytes, 3 * work.flops)


def test_grouped_reassembly_flops_use_k_squared_per_channel():
    # Two groups: kernels hold 2*9 maps, each channel still uses 9 taps.
    work = reassembly_work((1, 4, 2, 2), (1, 18, 4, 4), 3, 4)
    assert work.flops == 2 * (4 * 16) * 9


def test_similarity_work():
    # query 1x3x4x4 (48), keys 1x3x2x2 (12), output 1x25x4x4 (400).
    work = similarity_work((1, 3, 4, 4), (1, 3, 2, 2), 5, 1, 8)
    assert work.bytes == 8 * (48 + 12 + 400)
    assert work.flops == 2 * 48 * 25


def test_module_work_is_compulsory_traffic():
    work = module_work([(1, 2, 2, 2)], [(1, 2, 4, 4)], params=10, macs=100, itemsize=4)
    assert work == Work(4 * (8 + 32 + 10), 200)


def test_bound_is_the_slower_of_memory_and_compute():
    limits = MachineLimits(bandwidth_gbs=10.0, gflops=100.0, dtype="float32", threads=1)
    assert Work(bytes=10**9, flops=0).bound_ms(limits) == pytest.approx(100.0)
    assert Work(bytes=0, flops=10**10).bound_ms(limits) == pytest.approx(100.0)
    assert Work(bytes=10**9, flops=10**11).bound_ms(limits) == pytest.approx(1000.0)


def test_measured_limits_are_positive():
    limits = measure_limits(repeats=1, copy_mib=4, matmul_size=128)
    assert limits.bandwidth_gbs > 0 and limits.gflops > 0
    assert limits.dtype == "float32"


def test_core_cases_resolve_and_report_bounds():
    assert resolve_ops(["reassemble"]) == ["core:reassemble"]
    assert resolve_ops(None)[:2] == ["core:reassemble", "core:window_similarity"]
    with pytest.raises(ValueError, match="argument `--op`"):
        resolve_ops(["core:nothing"])
    config = BenchConfig(channels=4, height=8, width=8, repeats=1, warmup=0)
    report = run_bench(["core:reassemble", "core:window_similarity"], config)
    assert report.limits is not None
    for row in report.ops:
        assert row.forward_bound_ms is not None and row.forward_bound_ms > 0
        assert row.train_bound_ms is not None and row.train_bound_ms > row.forward_bound_ms
    assert {b.op for b in report.baselines} == {"core:reassemble", "core:window_similarity"}
    assert all(b.max_abs_diff < 1e-4 for b in report.baselines)


def test_native_isa_is_reported_with_the_build():
    isa = native_isa()
    if native_available():
        assert isa in {"x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2, FMA)", "baseline"}
    else:
        assert isa is None


def test_where_the_native_kernels_run_is_reported_with_the_build():
    threads = native_threads()
    if native_available():
        assert threads in {"torch's OpenMP threads", "thread pool"}
        assert machine_info()["native_threads"] == threads
    else:
        assert threads is None
