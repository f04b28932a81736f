"""Public functions and Tensor methods, generated from the op table.

Each elementwise entry gives ``fusejit.<name>``, its method names and operators, and its
in-place form; adding an op to the table adds all of these.
"""

from __future__ import annotations

import builtins

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import Device
from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.eager import creation, dispatch, recording
from fusejit.eager.tensor import Tensor
from fusejit.ops import elementwise as _ew_table  # noqa: F401 - registers the elementwise ops
from fusejit.ops import linalg, movement, reductions, sorting
from fusejit.ops.movement import _check_inplace_dtype
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
                        t._data, t._dtype, t._device = r, e[1], _CPU
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
                            t._data, t._dtype, t._device = r, e[1], _CPU
                            return t
            return _elementwise(op, (x, y))

    else:

        def fn(x, y, z):
            return _elementwise(op, (x, y, z))

    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = f"Elementwise ``{op.expr}`` (op table entry ``{op.name}``)."
    return fn


def _make_reflected(op: OpDef):
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
                    t._data, t._dtype, t._device = r, e[1], _CPU
                    return t
        return _elementwise(op, (other, self))

    return fn


def _make_inplace(op: OpDef):
    def fn(self, other=None):
        args = (self,) if op.arity == 1 else (self, other)
        return _inplace(op.name + "_", self, _elementwise(op, args))

    return fn


def _check_writeable(name: str, self: Tensor) -> None:
    flags = getattr(self._data, "flags", None)
    # cupy arrays have no writeable flag (an expanded cupy view writes through)
    if flags is not None and not getattr(flags, "writeable", True):
        raise ShapeError(
            f"{name}: cannot write into this tensor of shape {fmt_shape(self.shape)}: it is an "
            "expanded view whose elements share memory (or read-only memory); clone() it first"
        )


def _inplace(name: str, self: Tensor, result: Tensor) -> Tensor:
    if recording.TRACER is not None:
        recording.TRACER.unsupported(f"in-place op {name}")
    _check_inplace_dtype(name, self.dtype, result.dtype)
    _check_writeable(name, self)
    if result.shape != self.shape:
        raise ShapeError(
            f"{name}: the result of shape {fmt_shape(result.shape)} does not fit the "
            f"tensor of shape {fmt_shape(self.shape)} it would be written into"
        )
    self._data[...] = result._data
    return self


def _install() -> None:
    g = globals()
    for op in OPS.values():
        if op.kind != "elementwise" or op.name in ("where", "cast"):
            continue
        fn = _make_function(op)
        g[op.name] = fn
        __all__.append(op.name)
        for m in op.methods:
            setattr(Tensor, m, fn)
            if not m.startswith("__") and m not in g:
                g[m] = fn
                __all__.append(m)
        for m in op.rmethods:
            setattr(Tensor, m, _make_reflected(op))
        if op.inplace:
            setattr(Tensor, op.inplace, _make_inplace(op))
            dunder = "__i" + op.methods[-1][2:]
            if op.methods[-1].startswith("__"):
                setattr(Tensor, dunder, getattr(Tensor, op.inplace))


_install()
Tensor.__hash__ = object.__hash__  # __eq__ is elementwise, identity hashing as in PyTorch
_WHERE = OPS["where"]
_CAST = OPS["cast"]


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (dtypes of x and y promote)."""
    tensors = type(condition) is Tensor and type(x) is Tensor and type(y) is Tensor
    if (
        tensors
        and condition._dtype is dt.bool_
        and x._dtype is y._dtype
        and condition._device is x._device is y._device is _CPU
        and recording.TRACER is None
    ):  # fast path: what the general path computes here, np.where on the arrays as they are
        try:
            r = np.where(condition._data, x._data, y._data)
        except Exception:
            return _elementwise(_WHERE, (condition, x, y))
        if type(r) is _ndarray and r.dtype is x._dtype.np:
            t = _new(Tensor)
            t._data, t._dtype, t._device = r, x._dtype, _CPU
            return t
    return _elementwise(_WHERE, (condition, x, y))


def cast(x, dtype):
    """``x`` converted to ``dtype`` (float to int truncates toward zero)."""
    d = dt.as_dtype(dtype)
    if type(x) is Tensor and x._device is _CPU and recording.TRACER is None:
        t = _new(Tensor)  # fast path: what the CPU backend does for a cast
        t._data, t._dtype, t._device = x._data.astype(d.np), d, _CPU
        return t
    return _elementwise(_CAST, (x,), {"dtype": d})


def gelu(x, approximate: str = "none"):
    """GELU: ``x * Phi(x)``; ``approximate="tanh"`` uses the tanh form."""
    if approximate == "none":
        return _elementwise(OPS["gelu"], (x,))
    if approximate == "tanh":
        return _elementwise(OPS["gelu_tanh"], (x,))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def clamp(x, min=None, max=None):  # noqa: A002 - torch's names
    """Limit ``x`` to ``[min, max]`` (either may be None; scalars or tensors)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    out = x
    if min is not None:
        out = _elementwise(OPS["maximum"], (out, min))
    if max is not None:
        out = _elementwise(OPS["minimum"], (out, max))
    return out


def clamp_min(x, min):  # noqa: A002
    """``clamp(x, min=min)``."""
    return clamp(x, min=min)


def clamp_max(x, max):  # noqa: A002
    """``clamp(x, max=max)``."""
    return clamp(x, max=max)


def masked_fill(x, mask, value):
    """``x`` with ``value`` where the bool tensor ``mask`` (broadcast to x's shape) is true,
    as ``torch.Tensor.masked_fill``: ``value`` (a Python scalar or a 0-d tensor) is converted
    to x's dtype.

    >>> import fusejit
    >>> x = fusejit.tensor([1.0, 2.0, 3.0])
    >>> x.masked_fill(x > 1.5, 0.0).tolist()
    [1.0, 0.0, 0.0]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"masked_fill: expected a tensor, got {type(x).__name__}")
    if not isinstance(mask, Tensor) or mask.dtype is not dt.bool_:
        got = mask.dtype.name if isinstance(mask, Tensor) else type(mask).__name__
        raise DTypeError(f"masked_fill: mask must be a bool tensor, got {got}")
    if isinstance(value, Tensor) and value.ndim:
        raise ShapeError(
            "masked_fill: value must be a Python scalar or a 0-d tensor, got a tensor of "
            f"shape {fmt_shape(value.shape)}"
        )
    try:
        fits = movement.broadcast_shapes(x.shape, mask.shape) == x.shape
    except ShapeError:
        fits = False
    if not fits:
        raise ShapeError(
            f"masked_fill: mask of shape {fmt_shape(mask.shape)} does not broadcast to the "
            f"tensor's shape {fmt_shape(x.shape)}"
        )
    out = where(mask, value, x)
    return out if out.dtype is x.dtype else cast(out, x.dtype)


def _float_tensor(name: str, x, arg: str | None = None) -> None:
    """A DTypeError unless ``x`` (argument ``arg`` of ``name``) is a floating-point tensor."""
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        got = x.dtype.name if isinstance(x, Tensor) else type(x).__name__
        what = f"{arg} must be" if arg else "expected"
        raise DTypeError(f"{name}: {what} a floating-point tensor, got {got}")


def lerp(start, end, weight):
    """``start + weight * (end - start)`` for float tensors, as ``torch.lerp`` computes it:
    from ``end`` back (``end - (end - start) * (1 - weight)``) where ``|weight| >= 0.5``, so that
    a weight of 1 gives ``end`` exactly.

    >>> import fusejit
    >>> fusejit.lerp(fusejit.zeros(2), fusejit.ones(2) * 10, 0.25).tolist()
    [2.5, 2.5]
    """
    _float_tensor("lerp", start, "start")
    _float_tensor("lerp", end, "end")
    if start.dtype is not end.dtype:
        raise DTypeError(
            f"lerp: start and end must have one dtype, got {start.dtype.name} and {end.dtype.name}"
        )
    diff = end - start
    if isinstance(weight, Tensor):
        return where(abs(weight) < 0.5, start + weight * diff, end - diff * (1 - weight))
    return start + weight * diff if builtins.abs(weight) < 0.5 else end - diff * (1 - weight)


def addcmul(x, tensor1, tensor2, *, value=1):
    """``x + value * tensor1 * tensor2`` (as ``torch.addcmul``)."""
    return x + value * tensor1 * tensor2


def addcdiv(x, tensor1, tensor2, *, value=1):
    """``x + value * tensor1 / tensor2`` (as ``torch.addcdiv``; not for integer tensors)."""
    ints = [t for t in (tensor1, tensor2) if isinstance(t, Tensor) and t.dtype.kind in "biu"]
    if len(ints) == 2:
        raise DTypeError(
            "addcdiv: integer division is not supported (tensor1 and tensor2 are "
            f"{tensor1.dtype.name} and {tensor2.dtype.name}); use x + value * (t1 / t2) or "
            "floor division"
        )
    return x + value * tensor1 / tensor2


def norm(x, p="fro", dim=None, keepdim: bool = False):
    """The vector ``p``-norm of ``x`` over ``dim`` (all dims when None), as ``torch.norm`` /
    ``torch.linalg.vector_norm``: ``p`` is 2 (or "fro"), 1, ``inf``, ``-inf``, 0 (the count
    of nonzeros) or any other number (``sum(|x|**p) ** (1/p)``). Written with reductions, so
    ``x / x.norm(dim=-1, keepdim=True)`` is one row kernel.

    >>> import fusejit
    >>> fusejit.tensor([3.0, 4.0]).norm().item()
    5.0
    """
    _float_tensor("norm", x)
    if p == "fro":
        p = 2
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise ValueError(f"norm: p must be a number or 'fro', got {p!r}")
    if p == 2:
        return reductions.sum(x * x, dim, keepdim).sqrt()
    ax = x.abs()
    if p == 1:
        return reductions.sum(ax, dim, keepdim)
    if p == float("inf"):
        return reductions.amax(ax, dim, keepdim)
    if p == float("-inf"):
        return reductions.amin(ax, dim, keepdim)
    if p == 0:
        return cast(reductions.sum(x != 0, dim, keepdim), x.dtype)
    return reductions.sum(ax**p, dim, keepdim) ** (1.0 / p)


def isclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
    """``|a - b| <= atol + rtol * |b|`` elementwise, as ``torch.isclose`` (equal infinities
    are close; NaN is close to NaN only with ``equal_nan``). Integer and bool tensors compare
    in float64. A bool tensor.

    >>> import fusejit
    >>> fusejit.isclose(fusejit.tensor([1.0, 2.0]), fusejit.tensor([1.0 + 1e-7, 2.1])).tolist()
    [True, False]
    """
    for name, v in (("a", a), ("b", b)):
        if not isinstance(v, Tensor):
            raise TypeError(f"isclose: {name} must be a tensor, got {type(v).__name__}")
    if rtol < 0 or atol < 0:
        raise ValueError(f"isclose: rtol and atol must be non-negative, got {rtol} and {atol}")
    if not a.dtype.is_floating_point:
        a = cast(a, dt.float64)
    if not b.dtype.is_floating_point:
        b = cast(b, dt.float64)
    # (infinities are close only to themselves: |inf - x| <= rtol * inf would hold for any x)
    finite = a.isfinite() & b.isfinite()
    close = (a == b) | (finite & ((a - b).abs() <= atol + rtol * b.abs()))
    if equal_nan:
        close = close | (a.isnan() & b.isnan())
    return close


def allclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether every entry of ``a`` is close to ``b`` (``isclose``), as a Python bool."""
    return bool(isclose(a, b, rtol, atol, equal_nan).all().item())


def equal(a, b) -> bool:
    """Whether ``a`` and ``b`` have the same shape and the same values (``torch.equal``)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("equal: expected two tensors")
    return a.shape == b.shape and bool((a == b).all().item())


def nan_to_num(x, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None):
    """``x`` with NaN, +inf and -inf replaced (by default by 0 and the dtype's largest and
    lowest finite values), as ``torch.nan_to_num``; other dtypes are returned unchanged."""
    if not isinstance(x, Tensor):
        raise TypeError(f"nan_to_num: expected a tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        return x
    info = np.finfo(x.dtype.np)
    hi = float(info.max) if posinf is None else posinf
    lo = float(info.min) if neginf is None else neginf
    out = where(x.isnan(), nan, x)
    out = where(out == float("inf"), hi, out)
    return where(out == float("-inf"), lo, out)


def clamp_(self, min=None, max=None):  # noqa: A002
    return _inplace("clamp_", self, clamp(self, min, max))


def fill_(self, value):
    if recording.TRACER is not None:
        recording.TRACER.unsupported("in-place op fill_")
    _check_inplace_dtype("fill_", self.dtype, dt.result_type(value))
    _check_writeable("fill_", self)
    self.device.backend.fill(self._data, value.item() if isinstance(value, Tensor) else value)
    return self


def zero_(self):
    return fill_(self, 0)


def copy_(self, src):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a tensor, got {type(src).__name__}")
    if recording.TRACER is not None:
        recording.TRACER.unsupported("in-place op copy_")
    if src.device is not self.device:
        src = src.to(self.device)
    _check_writeable("copy_", self)
    try:
        self._data[...] = src._data
    except ValueError:
        raise ShapeError(
            f"copy_: source of shape {fmt_shape(src.shape)} cannot be broadcast to "
            f"{fmt_shape(self.shape)}"
        ) from None
    return self


def _new_like(factory):
    """``Tensor.new_<kind>``: ``factory`` with the tensor's dtype and device by default."""

    def new(self, *args, dtype=None, device=None):
        return factory(*args, dtype=self.dtype if dtype is None else dtype,
                       device=self.device if device is None else device)  # fmt: skip

    return new


def _attach_methods() -> None:
    m = movement
    r = reductions
    methods = {
        "where": lambda self, cond, other: where(cond, self, other),
        "clamp": clamp, "clip": clamp, "clamp_": clamp_, "fill_": fill_, "zero_": zero_,
        "copy_": copy_, "gelu": gelu,
        "sum": r.sum, "prod": r.prod, "mean": r.mean, "var": r.var, "std": r.std,
        "max": r.max, "min": r.min, "amax": r.amax, "amin": r.amin, "argmax": r.argmax,
        "argmin": r.argmin, "logsumexp": r.logsumexp, "all": r.all, "any": r.any,
        "softmax": r.softmax, "log_softmax": r.log_softmax,
        "reshape": m.reshape, "view": m.view, "flatten": m.flatten, "permute": m.permute,
        "transpose": m.transpose, "expand": m.expand, "broadcast_to": m.broadcast_to,
        "squeeze": m.squeeze, "unsqueeze": m.unsqueeze, "split": m.split, "chunk": m.chunk,
        "matmul": linalg.matmul, "__matmul__": linalg.matmul,
        "__rmatmul__": lambda self, other: linalg.matmul(other, self),
        "__getitem__": m.getitem, "__setitem__": m.setitem,
        "T": property(m.t_), "mT": property(lambda self: m.transpose(self, -2, -1)),
        "t": m.t, "swapaxes": m.swapaxes, "swapdims": m.swapaxes, "movedim": m.movedim,
        "moveaxis": m.movedim, "narrow": m.narrow, "unbind": m.unbind,
        "masked_fill": masked_fill, "clamp_min": clamp_min, "clamp_max": clamp_max,
        "lerp": lerp, "addcmul": addcmul, "addcdiv": addcdiv,
        "type_as": lambda self, other: cast(self, other.dtype),
        "is_floating_point": lambda self: self.dtype.is_floating_point,
        "outer": linalg.outer, "dot": linalg.dot, "mv": linalg.mv, "bmm": linalg.bmm,
        "flip": lambda self, *dims: m.flip(self, m._shape_arg(dims)), "roll": m.roll,
        "repeat": m.repeat, "tile": m.tile, "tril": m.tril, "triu": m.triu,
        "index_select": m.index_select, "gather": m.gather,
        "cumsum": r.cumsum, "cumprod": r.cumprod,
        "sort": sorting.sort, "argsort": sorting.argsort, "topk": sorting.topk,
        "norm": norm, "isclose": isclose, "allclose": allclose, "equal": equal,
        "nan_to_num": nan_to_num, "diag": m.diag, "trace": m.trace,
        "new_zeros": _new_like(creation.zeros), "new_ones": _new_like(creation.ones),
        "new_empty": _new_like(creation.empty), "new_full": _new_like(creation.full),
        "expand_as": lambda self, other: m.expand(self, *other.shape),
        "view_as": lambda self, other: m.view(self, *other.shape),
        "reshape_as": lambda self, other: m.reshape(self, *other.shape),
    }  # fmt: skip
    for name, fn in methods.items():
        setattr(Tensor, name, fn)


_attach_methods()
