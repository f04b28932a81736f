"""Public functions written as compositions of table ops (not entries of their own), so that
they trace and fuse as their ops do: ``clamp``, ``masked_fill``, ``lerp``, ``norm``, ``isclose``,
``trace``, ...
"""

from __future__ import annotations

import builtins

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import DimError, DTypeError, ShapeError, fmt_shape
from fusejit.base.shapes import broadcast_shapes
from fusejit.eager import dispatch, reductions
from fusejit.eager.elementwise import cast, where
from fusejit.eager.inplace import scalar_as, write_inplace
from fusejit.eager.movement import clone, diag
from fusejit.eager.tensor import Tensor
from fusejit.ops.registry import OPS


def clamp(x, min=None, max=None):  # noqa: A002 - torch's names
    """Limit ``x`` to ``[min, max]`` (either may be None; scalars or tensors)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    out = x
    if min is not None:
        out = dispatch.elementwise(OPS["maximum"], (out, min))
    if max is not None:
        out = dispatch.elementwise(OPS["minimum"], (out, max))
    return out


def clamp_min(x, min):  # noqa: A002
    """``clamp(x, min=min)``."""
    return clamp(x, min=min)


def clamp_max(x, max):  # noqa: A002
    """``clamp(x, max=max)``."""
    return clamp(x, max=max)


def clamp_(self, min=None, max=None):  # noqa: A002
    """``clamp`` written into ``self``."""
    return write_inplace("clamp_", self, clamp(self, min, max))


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
        fits = broadcast_shapes(x.shape, mask.shape) == x.shape
    except ShapeError:
        fits = False
    if not fits:
        raise ShapeError(
            f"masked_fill: mask of shape {fmt_shape(mask.shape)} does not broadcast to the "
            f"tensor's shape {fmt_shape(x.shape)}"
        )
    # value is converted to x's dtype first (as PyTorch): where then keeps x's dtype and x's
    # elements pass through untouched (not through a wider float: 2**40 + 1 stays)
    if isinstance(value, Tensor):
        if value.device is not x.device:
            value = value.to(x.device)
        v = value if value.dtype is x.dtype else cast(value, x.dtype)
    else:
        v = scalar_as("masked_fill", x.dtype, value)
    return where(mask, v, x)


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
    out_dtype = start.dtype
    if out_dtype is dt.float16:  # computed in float32 and rounded once, as PyTorch's opmath
        start, end = cast(start, dt.float32), cast(end, dt.float32)
        if isinstance(weight, Tensor) and weight.dtype is dt.float16:
            weight = cast(weight, dt.float32)
    diff = end - start
    if isinstance(weight, Tensor):
        r = where(abs(weight) < 0.5, start + weight * diff, end - diff * (1 - weight))
    else:
        r = start + weight * diff if builtins.abs(weight) < 0.5 else end - diff * (1 - weight)
    return r if r.dtype is out_dtype else cast(r, out_dtype)


def _addc_args(name: str, x, tensor1, tensor2, value):
    """The three tensors cast to their common dtype, and ``value`` converted to it, as
    PyTorch's addcmul and addcdiv compute: ``value * tensor1`` never in tensor1's own dtype."""
    for arg, t in (("input", x), ("tensor1", tensor1), ("tensor2", tensor2)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: {arg} must be a tensor, got {type(t).__name__}")
    common = dt.result_type(x.dtype, tensor1.dtype, tensor2.dtype)
    ts = tuple(t if t.dtype is common else cast(t, common) for t in (x, tensor1, tensor2))
    return ts, scalar_as(name, common, value)


def addcmul(x, tensor1, tensor2, *, value=1):
    """``x + value * tensor1 * tensor2`` (as ``torch.addcmul``), computed in the dtype the
    three tensors promote to; ``value`` is converted to it (0.5 is 0 for int tensors).

    >>> import fusejit
    >>> a = fusejit.tensor([300], dtype=fusejit.int16)
    >>> fusejit.addcmul(fusejit.zeros(1, dtype=fusejit.float64), a, a).tolist()
    [90000.0]
    """
    (x, t1, t2), v = _addc_args("addcmul", x, tensor1, tensor2, value)
    return x + v * t1 * t2


def addcdiv(x, tensor1, tensor2, *, value=1):
    """``x + value * tensor1 / tensor2`` (as ``torch.addcdiv``; not for integer tensors),
    computed in the dtype the three tensors promote to."""
    ints = [t for t in (tensor1, tensor2) if isinstance(t, Tensor) and t.dtype.kind in "biu"]
    if len(ints) == 2:
        raise DTypeError(
            "addcdiv: integer division is not supported (tensor1 and tensor2 are "
            f"{tensor1.dtype.name} and {tensor2.dtype.name}); use x + value * (t1 / t2) or "
            "floor division"
        )
    (x, t1, t2), v = _addc_args("addcdiv", x, tensor1, tensor2, value)
    return x + v * t1 / t2


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
    if x.dtype is dt.float16:  # accumulated in float32 (as PyTorch): 300**2 overflows float16
        return cast(norm(cast(x, dt.float32), p, dim, keepdim), dt.float16)
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
    lowest finite values), as ``torch.nan_to_num``; integer and bool tensors come back as a
    copy.

    >>> import fusejit
    >>> fusejit.nan_to_num(fusejit.tensor([float("nan"), float("-inf"), 1.0]), neginf=-9.0)
    tensor([ 0., -9.,  1.])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"nan_to_num: expected a tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        return clone(x)
    info = np.finfo(x.dtype.np)
    hi = float(info.max) if posinf is None else posinf
    lo = float(info.min) if neginf is None else neginf
    out = where(x.isnan(), nan, x)
    out = where(out == float("inf"), hi, out)
    return where(out == float("-inf"), lo, out)


def nan_to_num_(x, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None):
    """``nan_to_num`` written into ``x`` (``Tensor.nan_to_num_``)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"nan_to_num_: expected a tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        return x
    return write_inplace("nan_to_num_", x, nan_to_num(x, nan, posinf, neginf))


def trace(x):
    """The sum of the main diagonal of a 2-D tensor (``Tensor.trace``, as ``torch.trace``;
    ``fusejit.trace`` is the JIT's tracer)."""
    if x.ndim != 2:
        raise DimError(f"trace: expects a 2-D tensor, got shape {fmt_shape(x.shape)}")
    return reductions.sum(diag(x))
