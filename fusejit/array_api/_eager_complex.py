"""Complex linear algebra and products, which fusejit's ops (float32 / float64 only) do not
compute: run eagerly on the device's own array module (numpy or cupy, so a CUDA array stays on
its GPU). Under ``fusejit.trace`` they are a TraceError (no graph op computes them)."""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.base.errors import TraceError
from fusejit.eager.recording import tracing
from fusejit.eager.tensor import Tensor

__all__ = ["is_complex", "run"]


def is_complex(*arrays) -> bool:
    return any(isinstance(a, Tensor) and a.dtype.kind == "c" for a in arrays)


def _wrap(xp, v, device) -> Tensor:
    a = xp.asarray(v)
    return Tensor._wrap(a, dt.as_dtype(a.dtype), device)


def _norm_rank(xp, a, rtol):
    s = xp.linalg.svd(a, compute_uv=False)
    if rtol is None:
        rtol = max(a.shape[-2:]) * xp.finfo(s.dtype).eps
    elif isinstance(rtol, Tensor):
        rtol = xp.asarray(rtol._data)[..., None]
    if s.shape[-1] == 0:
        return xp.zeros(s.shape[:-1], dtype=xp.int64)
    tol = rtol * s.max(axis=-1, keepdims=True)
    return xp.count_nonzero(s > tol, axis=-1).astype(xp.int64)


def _pinv(xp, a, rtol):
    if rtol is None:
        rtol = max(a.shape[-2:]) * xp.finfo(a.real.dtype).eps
    elif isinstance(rtol, Tensor):
        rtol = xp.asarray(rtol._data)
    return xp.linalg.pinv(a, rcond=rtol)


def _cholesky(xp, a, upper):
    low = xp.linalg.cholesky(a)
    return xp.conj(xp.swapaxes(low, -1, -2)) if upper else low


_FUNCTIONS = {
    "det": lambda xp, a: xp.linalg.det(a),
    "inv": lambda xp, a: xp.linalg.inv(a),
    "solve": lambda xp, a, b: xp.linalg.solve(a, b),
    "cholesky": lambda xp, a, upper=False: _cholesky(xp, a, upper),
    "slogdet": lambda xp, a: tuple(xp.linalg.slogdet(a)),
    "qr": lambda xp, a, mode="reduced": tuple(xp.linalg.qr(a, mode=mode)),
    "svd": lambda xp, a, full_matrices=True: tuple(xp.linalg.svd(a, full_matrices=full_matrices)),
    "svdvals": lambda xp, a: xp.linalg.svd(a, compute_uv=False),
    "matrix_rank": lambda xp, a, rtol=None: _norm_rank(xp, a, rtol),
    "pinv": lambda xp, a, rtol=None: _pinv(xp, a, rtol),
    "matrix_norm": lambda xp, a, ord="fro", keepdims=False: xp.linalg.norm(
        a, ord=ord, axis=(-2, -1), keepdims=keepdims
    ),
    "trace": lambda xp, a, offset=0, dtype=None: xp.trace(
        a, offset, axis1=-2, axis2=-1, dtype=None if dtype is None else dtype.np
    ),
    "tensordot": lambda xp, a, b, axes=2: xp.tensordot(a, b, axes),
    "matmul": lambda xp, a, b: xp.matmul(a, b),
    "cumsum": lambda xp, a, axis: xp.cumsum(a, axis=axis),
    "cumprod": lambda xp, a, axis: xp.cumprod(a, axis=axis),
    "prod": lambda xp, a, axis=None, dtype=None, keepdims=False: xp.prod(
        a, axis=axis, dtype=None if dtype is None else dtype.np, keepdims=keepdims
    ),
}


def run(name: str, *arrays: Tensor, **kwargs):
    """The function ``name`` of complex ``arrays`` on their device's array module."""
    if tracing() is not None:
        raise TraceError(
            f"{name} of complex arrays runs eagerly only (no op of fusejit's table computes it)"
        )
    device = arrays[0].device
    if any(a.device != device for a in arrays):
        raise ValueError(f"{name}: arrays on {', '.join(str(a.device) for a in arrays)}")
    b = device.backend
    with b.scope():
        r = _FUNCTIONS[name](b.xp, *(a._data for a in arrays), **kwargs)
        if isinstance(r, tuple):
            return tuple(_wrap(b.xp, v, device) for v in r)
        return _wrap(b.xp, r, device)
