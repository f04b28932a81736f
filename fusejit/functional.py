"""Public functions and Tensor methods, generated from the op table.

Each elementwise entry gives ``fusejit.<name>``, its method names and operators, and its
in-place form; adding an op to the table adds all of these.
"""

from __future__ import annotations

from . import dispatch
from . import dtypes as dt
from .errors import ShapeError, fmt_shape
from .ops import linalg, movement, reductions
from .ops import elementwise as _ew_table  # noqa: F401 - registers the elementwise ops
from .ops.movement import _check_inplace_dtype
from .ops.registry import OPS, OpDef
from .tensor import Tensor

_elementwise = dispatch.elementwise
__all__: list[str] = []


def _make_function(op: OpDef):
    if op.arity == 1:

        def fn(x):
            return _elementwise(op, (x,))

    elif op.arity == 2:

        def fn(x, y):
            return _elementwise(op, (x, y))

    else:

        def fn(x, y, z):
            return _elementwise(op, (x, y, z))

    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = f"Elementwise ``{op.expr}`` (op table entry ``{op.name}``)."
    return fn


def _make_reflected(op: OpDef):
    def fn(self, other):
        return _elementwise(op, (other, self))

    return fn


def _make_inplace(op: OpDef):
    def fn(self, other=None):
        args = (self,) if op.arity == 1 else (self, other)
        return _inplace(op.name + "_", self, _elementwise(op, args))

    return fn


def _inplace(name: str, self: Tensor, result: Tensor) -> Tensor:
    if dispatch.TRACER is not None:
        dispatch.TRACER.unsupported(f"in-place op {name}")
    _check_inplace_dtype(name, self.dtype, result.dtype)
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
    return _elementwise(_WHERE, (condition, x, y))


def cast(x, dtype):
    """``x`` converted to ``dtype`` (float to int truncates toward zero)."""
    return _elementwise(_CAST, (x,), {"dtype": dt.as_dtype(dtype)})


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


def clamp_(self, min=None, max=None):  # noqa: A002
    return _inplace("clamp_", self, clamp(self, min, max))


def fill_(self, value):
    if dispatch.TRACER is not None:
        dispatch.TRACER.unsupported("in-place op fill_")
    _check_inplace_dtype("fill_", self.dtype, dt.result_type(value))
    self._data.fill(value.item() if isinstance(value, Tensor) else value)
    return self


def zero_(self):
    return fill_(self, 0)


def copy_(self, src):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a tensor, got {type(src).__name__}")
    if dispatch.TRACER is not None:
        dispatch.TRACER.unsupported("in-place op copy_")
    if src.device is not self.device:
        src = src.to(self.device)
    try:
        self._data[...] = src._data
    except ValueError:
        raise ShapeError(
            f"copy_: source of shape {fmt_shape(src.shape)} cannot be broadcast to "
            f"{fmt_shape(self.shape)}"
        ) from None
    return self


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
        "expand_as": lambda self, other: m.expand(self, *other.shape),
        "view_as": lambda self, other: m.view(self, *other.shape),
        "reshape_as": lambda self, other: m.reshape(self, *other.shape),
    }  # fmt: skip
    for name, fn in methods.items():
        setattr(Tensor, name, fn)


_attach_methods()
