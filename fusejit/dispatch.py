"""Eager dispatch: checks devices and dtypes at the public call, runs the backend, records traces.

The hot path (a binary elementwise op between two tensors on the CPU) is kept short on purpose:
one dict lookup for the dtypes, one numpy call, one object construction.
"""

from __future__ import annotations

import numpy as np

from . import dtypes as dt
from .errors import DeviceError, DTypeError, ShapeError, fmt_shape
from .ops.registry import OpDef, check_allowed, dtype_rule

# Set by fusejit.jit.trace while a trace is being recorded; None otherwise.
TRACER = None

_Tensor = None  # fusejit.tensor.Tensor, bound at import time of tensor.py
_SCALARS = (bool, int, float, np.bool_, np.integer, np.floating)
_KIND = {bool: "b", int: "i", float: "f", np.bool_: "b"}

# (op, promoted dtype) -> (compute dtype, result dtype), filled on first use
_RULES: dict[tuple[OpDef, dt.DType], tuple[dt.DType, dt.DType]] = {}


def _rule(op: OpDef, promoted: dt.DType):
    key = (op, promoted)
    r = _RULES.get(key)
    if r is None:
        check_allowed(op, (promoted,))
        r = _RULES[key] = dtype_rule(op, promoted)
    return r


def _scalar_kind(v) -> str:
    k = _KIND.get(type(v))
    if k is None:
        k = dt.scalar_kind(v)
        if k is None:
            raise TypeError(f"expected a tensor or a Python number, got {type(v).__name__}")
    return k


def device_of(op_name: str, tensors) -> object:
    dev = tensors[0]._device
    for t in tensors[1:]:
        if t._device is not dev:
            devs = ", ".join(str(x._device) for x in tensors)
            raise DeviceError(
                f"{op_name}: expected all tensors on one device, got {devs}; "
                "move them with .to(device) first"
            )
    return dev


def promote_args(op: OpDef, args) -> dt.DType:
    """The promoted dtype of tensors and weak Python scalars among ``args``."""
    tdt = None
    kinds = []
    for a in args:
        if isinstance(a, _Tensor):
            tdt = a._dtype if tdt is None else dt._TABLE[(tdt, a._dtype)]
        else:
            kinds.append(_scalar_kind(a))
    if tdt is None:
        raise TypeError(f"{op.name}: expected at least one tensor argument")
    for k in kinds:
        tdt = dt.promote_with_scalar(tdt, k)
    return tdt


def _broadcast_error(op: OpDef, args) -> ShapeError:
    shapes = " and ".join(fmt_shape(a.shape) for a in args if isinstance(a, _Tensor))
    return ShapeError(f"{op.name}: shapes {shapes} cannot be broadcast together")


def elementwise(op: OpDef, args: tuple, attrs: dict | None = None):
    """Run elementwise ``op`` eagerly on tensors and Python scalars."""
    tensors = [a for a in args if isinstance(a, _Tensor)]
    if not tensors:
        raise TypeError(f"{op.name}: expected at least one tensor argument")
    dev = device_of(op.name, tensors) if len(tensors) > 1 else tensors[0]._device
    if op.rule == "where":
        cond, x, y = args
        if not isinstance(cond, _Tensor):
            raise TypeError("where: condition must be a tensor")
        promoted = promote_args(op, (x, y)) if any(
            isinstance(a, _Tensor) for a in (x, y)
        ) else dt.result_type(x, y)
        compute, out = promoted, promoted
    elif op.rule == "cast":
        compute = out = attrs["dtype"]
    else:
        compute, out = _rule(op, promote_args(op, args))
    backend = dev.backend
    no_cast = op.rule in ("logical", "cast")
    vals = []
    for i, a in enumerate(args):
        if isinstance(a, _Tensor):
            d = a._data
            if a._dtype is not compute and not no_cast and not (op.rule == "where" and i == 0):
                d = d.astype(compute.np)
            vals.append(d)
        else:
            vals.append(a)
    try:
        res = backend.elementwise(op, vals, compute, out, attrs)
    except ValueError as e:
        if "broadcast" in str(e):
            raise _broadcast_error(op, args) from None
        raise
    except OverflowError as e:
        raise DTypeError(f"{op.name}: {e} (result dtype {out.name})") from None
    t = _Tensor._wrap(res, out, dev)
    if TRACER is not None:
        TRACER.record(op, args, attrs or {}, (t,))
    return t


def apply(op: OpDef, tensors: tuple, attrs: dict):
    """Run a non-elementwise op through its table entry: ``op.out_dtype`` gives the result
    dtype(s), ``op.impl(backend, *arrays, **attrs)`` computes the result array(s)."""
    for t in tensors:
        if not isinstance(t, _Tensor):
            raise TypeError(f"{op.name}: expected tensors, got {type(t).__name__}")
    dev = device_of(op.name, tensors)
    out = op.out_dtype(*[t._dtype for t in tensors], **attrs)
    res = op.impl(dev.backend, *[t._data for t in tensors], **attrs)
    if op.n_out == 1:
        result = (_Tensor._wrap(res, out, dev),)
    else:
        outs = out if isinstance(out, tuple) else (out,) * len(res)
        result = tuple(_Tensor._wrap(r, d, dev) for r, d in zip(res, outs))
    if TRACER is not None:
        TRACER.record(op, tensors, attrs, result)
    return result[0] if op.n_out == 1 else result
