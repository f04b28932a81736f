"""Ops on complex values (kind "complex"): their parts, magnitude angle and conjugate.

``real``, ``imag`` and ``view_as_real`` give views sharing storage with their input (numpy's and
cupy's ``.real`` / ``.imag`` are views, as PyTorch's); ``view_as_complex`` a view of pairs of
floats; ``conj`` a copy (PyTorch's is a lazy view with a conjugate bit). Complex values are
never fused (no generated kernel takes them): these ops run eagerly, traced as graph nodes.
Their public functions are in ``fusejit/eager/complex_functions.py``.
"""

from __future__ import annotations

import math

from fusejit.base import dtypes as dt
from fusejit.ops import grad_helpers as gh
from fusejit.ops.registry import ANY, FLOAT_ONLY, OpDef, register

_COMPLEX = frozenset("c")


def _cx(name, impl, out_dtype, allowed=_COMPLEX, vjp=None):
    # (complex autograd is not supported: complex tensors cannot require grad, and results of
    # these ops are constants to autograd, but angle's of real values: zero, as PyTorch's)
    return register(OpDef(name=name, kind="complex", arity=1, allowed=allowed, impl=impl,
                          out_dtype=out_dtype, vjp=vjp,
                          differentiable=vjp is not None))  # fmt: skip


REAL = _cx("real", lambda b, a: a.real, dt.real_of)
IMAG = _cx("imag", lambda b, a: a.imag, dt.real_of)
CONJ = _cx("conj", lambda b, a: b.xp.conj(a), lambda d: d)


def _angle_dtype(d: dt.DType) -> dt.DType:
    if d.kind == "c":
        return dt.real_of(d)
    return d if d.is_floating_point else dt.default_float


def _angle_impl(b, a):
    xp = b.xp
    out = _angle_dtype(dt.as_dtype(a.dtype))
    if a.dtype.kind == "c":
        return xp.angle(a).astype(out.np, copy=False)
    # as PyTorch for real values: pi for negative values, 0 else (also for -0.0), nan for nan
    a = a.astype(out.np, copy=False)
    return xp.where(a < 0, out.np.type(math.pi), xp.where(xp.isnan(a), a, out.np.type(0)))


def _angle_vjp(F, ctx, g):
    """angle of real values is piecewise constant: a zero gradient (as PyTorch's)."""
    x = gh.meta(ctx, 0)
    return (gh.zeros(F, x, x.shape) if x.dtype.is_floating_point else None,)


ANGLE = _cx("angle", _angle_impl, _angle_dtype, allowed=ANY | _COMPLEX, vjp=_angle_vjp)


def _view_as_real_impl(b, a):
    # the real parts' view, with a last dim of 2 stepping to the imaginary part: a view for
    # any strides (a complex element is two adjacent floats)
    re = a.real
    return b.xp.lib.stride_tricks.as_strided(re, a.shape + (2,), a.strides + (re.itemsize,))


def _view_as_complex_impl(b, a):
    # (the public function checks: a last dim of 2 with stride 1, even strides elsewhere)
    return a.view(dt.complex_of(dt.as_dtype(a.dtype)).np)[..., 0]


VIEW_AS_REAL = _cx("view_as_real", _view_as_real_impl, dt.real_of)
VIEW_AS_COMPLEX = _cx("view_as_complex", _view_as_complex_impl, dt.complex_of,
                      allowed=FLOAT_ONLY)  # fmt: skip
