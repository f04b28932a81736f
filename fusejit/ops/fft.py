"""Discrete Fourier transforms of the op table (kind "fft"), as ``torch.fft``.

One entry per transform: the one-dim ones (``fft``, ``ifft``, ``rfft``, ``irfft``, ``hfft``,
``ihfft``) take ``n`` (the signal length, or None), ``dim`` (an int) and ``norm``; the n-dim ones
(``fftn``, ``ifftn``, ``rfftn``, ``irfftn``; ``fft2`` and the others are these over the last two
dims) take ``s`` (the lengths) and ``dim`` (the dims), both resolved to tuples by the public
functions (``fusejit/eager/fft_functions.py``), and ``norm`` ("backward", "forward" or
"ortho"). ``impl`` calls ``b.xp.fft`` (numpy.fft on the CPU, cupy.fft on the GPU) on the input
cast to the transform's precision: ints and bool are read as float32, so the results are
complex64 (or float32) from float32 and below and complex128 (float64) from float64, as
PyTorch's, whatever precision the library computes in. float16 is refused by the public
functions (PyTorch computes half transforms only on CUDA, for powers of two).

Complex autograd is not supported: the transforms are not differentiable (``differentiable=False``),
their results are constants to autograd, also those of real inputs, where PyTorch would give a
gradient (see CONTRIBUTING's decisions).
"""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.ops.registry import ANY, ANY_C, OpDef, register

REAL_IN = ANY  # rfft, ihfft: real signals (ints and bool read as float32)
ANY_IN = ANY_C


def complex_result(d: dt.DType) -> dt.DType:
    """The complex dtype of a transform of dtype ``d`` (complex64 from ints, bool, float32)."""
    return dt.complex_of(d)


def real_result(d: dt.DType) -> dt.DType:
    """The real dtype of a transform to real values (irfft, hfft) of dtype ``d``."""
    return dt.real_of(dt.complex_of(d))


def _input(a, complex_in: bool):
    """``a`` cast to the dtype it is transformed in: the complex dtype of its precision for a
    transform of complex values (fft, irfft, ...: real input is the complex signal with zero
    imaginary parts), the real one for a transform of real values (rfft, ihfft)."""
    d = dt.as_dtype(a.dtype)
    want = complex_result(d) if complex_in else real_result(d)
    return a.astype(want.np, copy=False)


def _run(b, name: str, a, out: dt.DType, **kw):
    """``b.xp.fft.<name>(a, **kw)`` as dtype ``out``. An empty batch (no signals) gives an
    empty result of numpy's shape without calling the library (cuFFT takes no empty plan)."""
    if a.size == 0:
        shape = getattr(np.fft, name)(np.zeros(a.shape, a.dtype), **kw).shape
        return b.xp.zeros(shape, out.np)
    return getattr(b.xp.fft, name)(a, **kw).astype(out.np, copy=False)


def _one_dim(name: str, complex_out: bool, allowed=ANY_IN):
    complex_in = allowed is ANY_IN

    def impl(b, a, n, dim, norm):
        d = dt.as_dtype(a.dtype)
        out = complex_result(d) if complex_out else real_result(d)
        return _run(b, name, _input(a, complex_in), out, n=n, axis=dim, norm=norm)

    out_dtype = complex_result if complex_out else real_result
    return register(OpDef(name=f"fft_{name}", kind="fft", arity=1, allowed=allowed, impl=impl,
                          out_dtype=lambda d, n, dim, norm: out_dtype(d),
                          differentiable=False))  # fmt: skip


def _n_dim(name: str, complex_out: bool, allowed=ANY_IN):
    complex_in = allowed is ANY_IN

    def impl(b, a, s, dim, norm):
        d = dt.as_dtype(a.dtype)
        out = complex_result(d) if complex_out else real_result(d)
        return _run(b, name, _input(a, complex_in), out, s=s, axes=dim, norm=norm)

    out_dtype = complex_result if complex_out else real_result
    return register(OpDef(name=f"fft_{name}", kind="fft", arity=1, allowed=allowed, impl=impl,
                          out_dtype=lambda d, s, dim, norm: out_dtype(d),
                          differentiable=False))  # fmt: skip


FFT = _one_dim("fft", True)
IFFT = _one_dim("ifft", True)
RFFT = _one_dim("rfft", True, REAL_IN)
IRFFT = _one_dim("irfft", False)
HFFT = _one_dim("hfft", False)
IHFFT = _one_dim("ihfft", True, REAL_IN)
FFTN = _n_dim("fftn", True)
IFFTN = _n_dim("ifftn", True)
RFFTN = _n_dim("rfftn", True, REAL_IN)
IRFFTN = _n_dim("irfftn", False)
