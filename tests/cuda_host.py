"""What the CUDA code-generation tests share: finding the compilers, the C++ shim that lets
generated CUDA C run on the host, and a ``CudaBackend`` with numpy standing in for cupy.

The generated kernels are plain C++ once the CUDA keywords and intrinsics are defined away; the
host runs a grid block by block (and, for row kernels, a block's threads as real threads), so
their results can be checked against eager numpy without a GPU.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

# CUDA keywords and intrinsics as host C++ (the parts both element and row kernels use)
SHIM = r"""
#include <math.h>
#include <string.h>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
struct fj_dim3 { unsigned int x, y, z; };
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) { double f; memcpy(&f, &i, 8); return f; }
static inline float __fdividef(float a, float b) { return a / b; }  // (a faster a / b on a GPU)
#define FJ_HALF_PROVIDED 1
typedef _Float16 fj_half;
static inline float fj_h2f(fj_half h) { return (float)h; }
static inline fj_half fj_f2h(float f) { return (fj_half)f; }
static inline fj_half fj_d2h(double d) { return (fj_half)d; }
// CUDA's erfinv / erfinvf, which the host's libm lacks: a first guess, then Halley steps on erf
// (erfc near 1), as kernels/cpu_math.py's erfinv_f64
static inline double erfinv(double x) {
    double a = fabs(x);
    if (!(a < 1.0)) return a == 1.0 ? copysign(__builtin_inf(), x) : __builtin_nan("");
    if (a == 0.0) return x;
    double c = 1.0 - a;
    double ln = a < 0.5 ? log1p(-a * a) : log(c) + log1p(a);
    double b = 2.0 / (3.141592653589793 * 0.147) + 0.5 * ln;
    double y = sqrt(fmax(sqrt(b * b - ln / 0.147) - b, 0.0));
    for (int i = 0; i < 3; ++i) {
        double f = a <= 0.5 ? erf(y) - a : c - erfc(y);
        double r = f / (1.1283791670955126 * exp(-y * y));
        y -= r / (1.0 + y * r);
    }
    return copysign(y, x);
}
static inline float erfinvf(float x) { return (float)erfinv((double)x); }
"""


def find_nvcc() -> str | None:
    path = shutil.which("nvcc")
    if path is None and os.access("/usr/local/cuda/bin/nvcc", os.X_OK):
        path = "/usr/local/cuda/bin/nvcc"
    return path


def require_nvcc(what: str) -> str:
    """nvcc's path; in CI a missing nvcc fails the test (the CUDA sources must be compiled
    there), elsewhere it skips with the reason."""
    path = find_nvcc()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"nvcc not found (PATH or /usr/local/cuda/bin): CI must compile {what}")
        pytest.skip(f"nvcc not found (PATH or /usr/local/cuda/bin); {what} not compiled")
    return path


def find_gxx() -> str:
    path = shutil.which("g++") or shutil.which("c++")
    if path is None:
        pytest.skip("no host C++ compiler to run generated kernels on the CPU")
    return path


def aligned_empty(shape, dtype, align: int = 64) -> np.ndarray:
    """np.empty aligned like a device allocation (numpy only promises 16 bytes)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + align, np.uint8)
    off = (-buf.ctypes.data) % align
    return buf[off : off + nbytes].view(dtype).reshape(shape)


class NumpyAsCupy:
    """numpy where the backend expects cupy, with device-like aligned allocations."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype):
        return aligned_empty(shape, dtype)


def host_cuda_backend(function, vec_bytes: int = 16):
    """``backends.cuda.CudaBackend`` with numpy for cupy; ``function(body, variant)`` gives
    the launchable kernel (compiled as host C++). At most 2 blocks, so threads loop."""
    from fusejit.backends import cuda as cb

    b = object.__new__(cb.CudaBackend)
    b.xp, b.index, b._ndarray, b.vec_bytes = NumpyAsCupy(), 0, np.ndarray, vec_bytes
    b.max_grid, b.sm_count, b.grid_cap = 2, 1, 0
    b._get_device = lambda: 0
    b._ufuncs, b._expr_kernels, b._fused, b._scalars, b._modules = {}, {}, {}, {}, []
    b._split_scratch = {}
    b.function = function
    return b
