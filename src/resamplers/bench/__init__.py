"""Benchmarking of registered operators (``resamplers bench``)."""

from .runner import BenchConfig, BenchReport, resolve_ops, run_bench

__all__ = ["BenchConfig", "BenchReport", "resolve_ops", "run_bench"]
