"""Build script for the optional native CPU kernels.

The extension is plain C (no torch headers) and is marked optional: on a machine
without a C compiler `pip install` still succeeds and the library falls back to its
pure-PyTorch path.
"""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "resamplers._native",
            sources=["src/resamplers/_native.c"],
            # -fopenmp-simd: the `omp simd` loops vectorise (reductions in a fixed order
            # per build); it links no OpenMP runtime.
            extra_compile_args=["-O3", "-std=c99", "-fopenmp-simd", "-ffp-contract=fast"],
            optional=True,
        )
    ]
)
