"""Public functions of the elementwise ops, generated from the op table (``fusejit.<name>``
for each entry and each of its method names), with ``where``, ``cast`` and ``gelu``.

Adding an elementwise op to the table adds its function here, and its methods, operators and
in-place form (``fusejit/eager/methods.py``).
"""

from __future__ import annotations

import numpy as np

from fusejit.backends.cpu import WHERE_KERNEL_MIN
from fusejit.base import dtypes as dt
from fusejit.base.device import Device
from fusejit.eager import autograd, dispatch, recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.inplace import write_inplace
from fusejit.eager.tensor import Tensor
from fusejit.ops.registry import OPS, OpDef

_elementwise = dispatch.elementwise
__all__: list[str] = []


# The generated functions first try a fast path: no trace recording, CPU tensors of one dtype
# (or a tensor and a Python scalar) and an op the backend computes with one numpy function on
# the arrays as they are (``dispatch.fast_entry``, looked up once per op, dtype and scalar
# type). The result must come back as an array of the result dtype; anything else, including
# an exception, goes through the general path, which gives the same result or raises the proper
# error. Semantics are those of ``dispatch.elementwise`` in every case.
_ndarray = np.ndarray
_new = object.__new__
_PY_SCALARS = (float, int, bool)
_CPU = Device("cpu")


def _record(op, args, t) -> None:
    """The fast path's result ``t`` of ``op`` on ``args``, recorded for autograd when an
    operand requires grad (as ``dispatch.elementwise`` does). The callers checked that grad
    mode is on, and ``autograd.record`` itself records nothing when no operand requires grad,
    so it is called directly (``needs_grad`` first would walk the operands twice)."""
    autograd.record(op, args, None, (t,))


def _fast_lookup(op, fast, key, dtype, scalar_type):
    e = fast[key] = dispatch.fast_entry(op, dtype, _CPU, scalar_type)
    return e


def _make_function(op: OpDef):
    # dtype or (dtype, scalar type) -> (numpy function, result dtype, its numpy dtype) or None
    fast: dict = {}

    if op.arity == 1:

        def fn(x):
            if type(x) is Tensor and x._device is _CPU and recording.TRACER is None:
                d = x._dtype
                e = fast.get(d, False)
                if e is False:
                    e = _fast_lookup(op, fast, d, d, None)
                if e is not None:
                    try:
                        r = e[0](x._data)
                    except Exception:
                        return _elementwise(op, (x,))
                    if type(r) is _ndarray and r.dtype is e[2]:
                        t = _new(Tensor)
                        t._data, t._dtype, t._device, t._ag = r, e[1], _CPU, None
                        if getattr(x, "_ag", None) is not None and MODE.enabled:
                            _record(op, (x,), t)
                        return t
            return _elementwise(op, (x,))

    elif op.arity == 2:

        def fn(x, y):
            if type(x) is Tensor and x._device is _CPU and recording.TRACER is None:
                ty = type(y)
                if ty is Tensor:
                    key = x._dtype if y._dtype is x._dtype and y._device is _CPU else None
                    b = y._data
                elif ty in _PY_SCALARS:
                    key, b = (x._dtype, ty), y
                else:
                    key = None
                if key is not None:
                    e = fast.get(key, False)
                    if e is False:
                        e = _fast_lookup(op, fast, key, x._dtype, None if ty is Tensor else ty)
                    if e is not None:
                        try:
                            r = e[0](x._data, b)
                        except Exception:
                            return _elementwise(op, (x, y))
                        if type(r) is _ndarray and r.dtype is e[2]:
                            t = _new(Tensor)
                            t._data, t._dtype, t._device, t._ag = r, e[1], _CPU, None
                            if (
                                getattr(x, "_ag", None) is not None
                                or (ty is Tensor and getattr(y, "_ag", None) is not None)
                            ) and MODE.enabled:
                                _record(op, (x, y), t)
                            return t
            return _elementwise(op, (x, y))

    else:

        def fn(x, y, z):
            return _elementwise(op, (x, y, z))

    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = f"Elementwise ``{op.expr}`` (op table entry ``{op.name}``)."
    return fn


def make_reflected(op: OpDef):
    """``self.__radd__(other)``: ``other + self`` with a Python scalar (or tensor) ``other``."""
    fast: dict = {}

    def fn(self, other):
        ty = type(other)
        fast_ok = type(self) is Tensor and self._device is _CPU and recording.TRACER is None
        if ty in _PY_SCALARS and fast_ok:
            key = (self._dtype, ty)
            e = fast.get(key, False)
            if e is False:
                e = _fast_lookup(op, fast, key, self._dtype, ty)
            if e is not None:
                try:
                    r = e[0](other, self._data)
                except Exception:
                    return _elementwise(op, (other, self))
                if type(r) is _ndarray and r.dtype is e[2]:
                    t = _new(Tensor)
                    t._data, t._dtype, t._device, t._ag = r, e[1], _CPU, None
                    if getattr(self, "_ag", None) is not None and MODE.enabled:
                        _record(op, (other, self), t)
                    return t
        return _elementwise(op, (other, self))

    return fn


def make_inplace(op: OpDef):
    """``self.add_(other)``: the op's result written into ``self``."""

    def fn(self, other=None):
        args = (self,) if op.arity == 1 else (self, other)
        return write_inplace(op.name + "_", self, _elementwise(op, args))

    return fn


def _install() -> None:
    g = globals()
    for op in OPS.values():
        if op.kind != "elementwise" or op.name in ("where", "cast"):
            continue
        fn = _make_function(op)
        g[op.name] = fn
        __all__.append(op.name)
        for m in op.methods:
            if not m.startswith("__") and m not in g:
                g[m] = fn
                __all__.append(m)


_install()
_WHERE = OPS["where"]
_CAST = OPS["cast"]


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (dtypes of x and y promote)."""
    if type(condition) is Tensor and condition._dtype is dt.bool_ and recording.TRACER is None:
        r = _where_fast(condition, x, y)
        if r is not None:
            return r
    return _elementwise(_WHERE, (condition, x, y))


_WHERE_SCALARS = (float, int)
_WHERE_FLOATS = (dt.float32, dt.float64)


def _where_fast(condition, x, y):
    """``where`` on CPU tensors of one dtype, or a float32 / float64 tensor and a Python float
    or int (a gradient masked with 0.0: relu's backward, the losses), computed as the general
    path computes it (numpy's where below ``WHERE_KERNEL_MIN`` elements, the backend's
    branch-free kernel from there), without its promotion and checks; None where that does
    not apply."""
    tx, ty = type(x), type(y)
    if tx is Tensor and ty is Tensor:
        d = x._dtype
        if y._dtype is not d or x._device is not _CPU or y._device is not _CPU:
            return None
        vals = [condition._data, x._data, y._data]
    elif tx is Tensor and ty in _WHERE_SCALARS:
        d = x._dtype
        if d not in _WHERE_FLOATS or x._device is not _CPU:
            return None
        vals = [condition._data, x._data, y]
    elif ty is Tensor and tx in _WHERE_SCALARS:
        d = y._dtype
        if d not in _WHERE_FLOATS or y._device is not _CPU:
            return None
        vals = [condition._data, x, y._data]
    else:
        return None
    if condition._device is not _CPU:
        return None
    try:
        if vals[0].size < WHERE_KERNEL_MIN:
            r = np.where(*vals)
        else:  # (None: shapes the kernel does not take)
            r = _CPU.backend._where_kernel(vals, d, d)
    except Exception:
        return None  # (the general path raises the proper error)
    if type(r) is not _ndarray or r.dtype is not d.np:
        return None
    t = _new(Tensor)
    t._data, t._dtype, t._device, t._ag = r, d, _CPU, None
    if MODE.enabled and (
        getattr(x, "_ag", None) is not None or getattr(y, "_ag", None) is not None
    ):
        _record(_WHERE, (condition, x, y), t)
    return t


def cast(x, dtype):
    """``x`` converted to ``dtype`` (float to int truncates toward zero)."""
    d = dt.as_dtype(dtype)
    if (
        type(x) is Tensor
        and x._device is _CPU
        and recording.TRACER is None
        and getattr(x, "_ag", None) is None
    ):
        t = _new(Tensor)  # fast path: what the CPU backend does for a cast
        t._data, t._dtype, t._device, t._ag = x._data.astype(d.np), d, _CPU, None
        return t
    return _elementwise(_CAST, (x,), {"dtype": d})


def gelu(x, approximate: str = "none"):
    """GELU: ``x * Phi(x)``; ``approximate="tanh"`` uses the tanh form."""
    if approximate == "none":
        return _elementwise(OPS["gelu"], (x,))
    if approximate == "tanh":
        return _elementwise(OPS["gelu_tanh"], (x,))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
