"""Eager dispatch: checks devices and dtypes at the public call, runs the backend, records traces.

The hot path (a binary elementwise op between two tensors on the CPU) is kept short on purpose:
one dict lookup for the dtypes, one numpy call, one object construction.
"""

from __future__ import annotations

import numpy as np

from fusejit.backends.host_pool import MIN_BYTES, host_empty
from fusejit.base import dtypes as dt
from fusejit.base.errors import DeviceError, DTypeError, ShapeError, fmt_shape
from fusejit.eager import autograd, recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.tensor import Tensor
from fusejit.ops.registry import OpDef, check_allowed, dtype_rule, get_op

_new = object.__new__
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


def fast_entry(op: OpDef, dtype: dt.DType, device, scalar_type):
    """The fast path of the generated op functions (``fusejit/eager/elementwise.py``), for ``op``
    between tensors of ``dtype`` on ``device`` (and a Python scalar of ``scalar_type`` unless it
    is None): (array function, result dtype) where the general path would call that backend
    function on the arrays as they are, with nothing to cast; None where it would not (casts,
    dtype errors, ops without a numpy function, other devices). The caller still checks the
    result's type and dtype and runs the general path on anything unexpected."""
    if op.rule not in ("promote", "float", "compare", "logical"):
        return None
    if getattr(device, "type", None) != "cpu":
        return None
    promoted = dtype
    if scalar_type is not None:
        promoted = dt.promote_with_scalar(dtype, _KIND[scalar_type])
    try:
        compute, out = _rule(op, promoted)
    except DTypeError:
        return None
    if scalar_type is not None:
        compute = opmath(op, compute, (_KIND[scalar_type],))
    if compute is not dtype and op.rule != "logical":
        return None
    if op.np_name is None:  # a generated kernel, for unary ops computed in their own dtype
        if op.arity != 1 or op.expr is None or compute is dt.float16 or out is dt.float16:
            return None
        run = device.backend.run_expr_op
        return (lambda a: run(op, a, compute, out)), out, out.np
    fn = getattr(np, op.np_name, None)
    if fn is None:
        return None
    if type(fn) is np.ufunc and out is dtype and op.rule in ("promote", "float"):
        fn = _pooled(fn, op.arity, out.np)
    return fn, out, out.np


def _pooled(fn, arity: int, np_dtype):
    """``fn`` (a ufunc whose result has its inputs' dtype) writing a large result into a
    buffer from the host pool. A fresh large array costs a page fault per 4 KiB on first touch
    (``x * 2`` on 2^24 float32: 17.4 ms fresh, 11.4 ms into a used buffer); the pool hands
    back the buffers of dead tensors, so a chain of eager ops reuses its temporaries' memory.
    Only contiguous inputs of one shape: numpy's own result would follow other layouts."""
    if arity == 1:

        def run(a):
            if a.nbytes < MIN_BYTES or not a.flags.c_contiguous:
                return fn(a)  # (small: numpy's own allocation is cheaper)
            return fn(a, out=host_empty(a.shape, np_dtype))

        return run

    ndarray = np.ndarray

    def run2(a, b):
        big = a if type(a) is ndarray else b  # (the other one: an array or a Python scalar)
        if big.nbytes < MIN_BYTES:
            return fn(a, b)
        if not big.flags.c_contiguous or (
            type(b) is ndarray and (b.shape != a.shape or not b.flags.c_contiguous)
        ):
            return fn(a, b)
        return fn(a, b, out=host_empty(big.shape, np_dtype))

    return run2


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
    """The promoted dtype of tensors and weak Python scalars among ``args``: the rule of
    ``dtypes.result_type`` (tensors with dimensions, then 0-d tensors, then scalars), written
    out for tensors because every eager op that casts runs it (result_type's general operand
    handling costs 0.3-1 us more a call)."""
    tdt = zdt = None
    kinds = []
    for a in args:
        if isinstance(a, Tensor):
            if a._data.ndim:
                tdt = a._dtype if tdt is None else dt._TABLE[(tdt, a._dtype)]
            else:
                zdt = a._dtype if zdt is None else dt._TABLE[(zdt, a._dtype)]
        else:
            kinds.append(_scalar_kind(a))
    if tdt is None and zdt is None:
        raise TypeError(f"{op.name}: expected at least one tensor argument")
    if zdt is None and not kinds:
        return tdt
    return dt.promote_groups(tdt, zdt, kinds)


# float16 arithmetic with a Python number computes in float32 with the number as a float32
# (PyTorch's "opmath"): float16(3 * float32(0.1)) = 0.30005, not 3 * float16(0.1) = 0.2998
_OPMATH_RULES = ("promote", "float")


def opmath(op: OpDef, compute: dt.DType, scalar_kinds) -> dt.DType:
    """The dtype ``op`` computes in when its rule says ``compute`` and Python scalars of
    ``scalar_kinds`` ('b', 'i', 'f') are among its operands: float32 for float16 arithmetic
    with a Python int or float (the result is rounded to float16), else ``compute``."""
    if compute is dt.float16 and op.rule in _OPMATH_RULES:
        for k in scalar_kinds:
            if k != "b":
                return dt.float32
    return compute


def _broadcast_error(op: OpDef, args) -> ShapeError:
    shapes = " and ".join(fmt_shape(a.shape) for a in args if isinstance(a, Tensor))
    return ShapeError(f"{op.name}: shapes {shapes} cannot be broadcast together")


def numpy_operands(name: str, args, tensors) -> tuple:
    """``args`` with each numpy array made a tensor sharing its memory, on the device of
    ``tensors`` when that is the CPU (PyTorch's numpy bridge); with tensors on a GPU, a
    DeviceError naming both devices. Under ``fusejit.trace`` such a tensor is one the function
    reads that is not an input: the graph reads the array's memory at each call."""
    dev = tensors[0]._device
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            if dev.type != "cpu":
                raise DeviceError(
                    f"{name}: a numpy array (on the cpu) cannot be combined with a tensor on "
                    f"{dev}; make it a tensor there first (fusejit.tensor(array, "
                    f"device='{dev}')) or move the tensor with .cpu()"
                )
            d = dt._BY_NP.get(a.dtype)
            if d is None:
                raise DTypeError(f"{name}: a numpy array of dtype {a.dtype} has no fusejit "
                                 "dtype")  # fmt: skip
            a = Tensor._wrap(np.asarray(a), d, dev)
        out.append(a)
    return tuple(out)


def tensor_operands(name: str, args) -> tuple:
    """The operands of a non-elementwise op: numpy arrays made tensors (``numpy_operands``)
    when there is a tensor among them; anything else that is not a tensor is a TypeError."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    if tensors:
        args = numpy_operands(name, args, tensors)
    for a in args:
        if not isinstance(a, Tensor):
            raise TypeError(f"{name}: expected tensors, got {type(a).__name__}")
    return tuple(args)


def elementwise(op: OpDef, args: tuple, attrs: dict | None = None):
    """Run elementwise ``op`` eagerly on tensors and Python scalars (and numpy arrays, made
    tensors: ``numpy_operands``)."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    if tensors and len(tensors) != len(args) and any(isinstance(a, np.ndarray) for a in args):
        args = numpy_operands(op.name, args, tensors)
        tensors = [a for a in args if isinstance(a, Tensor)]
    if not tensors:
        raise TypeError(f"{op.name}: expected at least one tensor argument")
    dev = device_of(op.name, tensors) if len(tensors) > 1 else tensors[0]._device
    if op.rule == "where":
        cond, x, y = args
        if not isinstance(cond, Tensor):
            raise TypeError("where: condition must be a tensor")
        promoted = (
            promote_args(op, (x, y))
            if any(isinstance(a, Tensor) for a in (x, y))
            else dt.result_type(x, y)
        )
        compute, out = promoted, promoted
    elif op.rule == "cast":
        compute = out = attrs["dtype"]
    else:
        compute, out = _rule(op, promote_args(op, args))
        if compute is dt.float16 and len(tensors) < len(args):
            kinds = [_scalar_kind(a) for a in args if not isinstance(a, Tensor)]
            compute = opmath(op, compute, kinds)
    backend = dev.backend
    no_cast = op.rule in ("logical", "cast")
    vals = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
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
        # e.g. numpy's "Integers to negative integer powers are not allowed."
        raise DTypeError(f"{op.name}: {e} (computing in {compute.name})") from None
    except OverflowError as e:
        raise DTypeError(f"{op.name}: {e} (result dtype {out.name})") from None
    t = Tensor._wrap(res, out, dev)
    tracer = recording.TRACER
    if tracer is not None:
        tracer.record(op, args, attrs or {}, (t,))
    elif MODE.enabled:
        for a in tensors:
            info = getattr(a, "_ag", None)
            if info is not None and info.requires_grad:
                autograd.record(op, args, attrs, (t,))
                break
    return t


def apply(op: OpDef, tensors: tuple, attrs: dict):
    """Run a non-elementwise op through its table entry: ``op.out_dtype`` gives the result
    dtype(s), ``op.impl(backend, *arrays, **attrs)`` computes the result array(s)."""
    for t in tensors:
        if not isinstance(t, Tensor):
            tensors = tensor_operands(op.name, tensors)
            t = tensors[-1]
            break
    if len(tensors) == 1:  # the common case, kept short
        dev = t._device
        if t._dtype.kind == "c" and "c" not in op.allowed:
            check_allowed(op, (t._dtype,))
        out = op.out_dtype(t._dtype, **attrs)
        arrays = (t._data,)
    else:
        dev = device_of(op.name, tensors)
        if "c" not in op.allowed:  # (complex values: only the ops that take them)
            check_allowed(op, [t._dtype for t in tensors if t._dtype.kind == "c"])
        out = op.out_dtype(*[t._dtype for t in tensors], **attrs)
        arrays = [t._data for t in tensors]
    backend = dev._backend or dev.backend
    if backend.name == "cpu":
        res = op.impl(backend, *arrays, **attrs)
    else:
        with backend.scope():  # (cuda:N: launch on that GPU)
            res = op.impl(backend, *arrays, **attrs)
    if op.n_out == 1:
        if isinstance(res, np.generic):  # numpy gives scalars for 0-d results (1-D @ 1-D)
            res = np.asarray(res)
        t = _new(Tensor)
        t._data, t._dtype, t._device, t._ag = res, out, dev, None
        tracer = recording.TRACER
        if tracer is not None:
            tracer.record(op, tensors, attrs, (t,))
        elif MODE.enabled and autograd.needs_grad(tensors):
            autograd.record(op, tensors, attrs, (t,))
        return t
    outs = out if isinstance(out, tuple) else (out,) * len(res)
    result = tuple(Tensor._wrap(r, d, dev) for r, d in zip(res, outs, strict=True))
    tracer = recording.TRACER
    if tracer is not None:
        tracer.record(op, tensors, attrs, result)
    elif MODE.enabled and autograd.needs_grad(tensors):
        autograd.record(op, tensors, attrs, result)
    return result


def call(name: str, *inputs, **attrs):
    """Run op-table op ``name`` on ``inputs`` with ``attrs`` (what the interpreter and the
    code printed by ``TracedFunction.code`` call)."""
    op = get_op(name)
    if op.kind == "elementwise":
        return elementwise(op, inputs, attrs or None)
    return apply(op, inputs, attrs)


def elementwise_dtypes(op: OpDef, operands, attrs: dict | None = None):
    """(compute dtype, result dtype) of elementwise ``op`` whose operands are tensor types
    (``TensorType``: a 0-d one promotes as a 0-d tensor), dtypes (tensors with dimensions) or
    Python scalars; the same rules eager dispatch applies."""
    if op.rule == "where":
        p = dt.result_type(*operands[1:])
        return p, p
    if op.rule == "cast":
        return attrs["dtype"], attrs["dtype"]
    compute, out = _rule(op, dt.result_type(*operands))
    if compute is dt.float16:
        kinds = [dt.scalar_kind(a) for a in operands]
        compute = opmath(op, compute, [k for k in kinds if k is not None])
    return compute, out
