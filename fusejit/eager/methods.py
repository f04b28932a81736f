"""The Tensor methods, bound at import time of ``fusejit.eager``.

The methods of the ops come from the op table: each entry's ``methods`` are bound to the public
function of that name (an operator, ``__add__``, to the op's own function), its ``rmethods`` to
the reflected form and its ``inplace`` name to the in-place form. The methods of what is not an
entry of the table (compositions of ops, in-place writes, conversions) are listed here, in
``_OTHER_METHODS``.
"""

from __future__ import annotations

from collections import Counter

from fusejit.base.shapes import shape_arg
from fusejit.eager import (
    complex_functions,
    composites,
    conversion,
    creation,
    elementwise,
    indexing,
    inplace,
    linalg,
    linalg_functions,
    movement,
    reductions,
    sorting,
    statistics,
)
from fusejit.eager.autograd import METHODS as AUTOGRAD_METHODS
from fusejit.eager.interop import METHODS as INTEROP_METHODS
from fusejit.eager.random import METHODS as RANDOM_METHODS
from fusejit.eager.tensor import Tensor
from fusejit.ops.registry import OPS, OpDef

# the modules of the public functions of the table's ops
_FUNCTION_MODULES = (elementwise, movement, indexing, reductions, linalg, sorting, statistics)

# methods whose arguments differ from their function's
_METHOD_FORMS = {
    "where": lambda self, cond, other: elementwise.where(cond, self, other),
    "flip": lambda self, *dims: movement.flip(self, shape_arg("flip", dims, "dims")),
}


def _new_like(factory):
    """``Tensor.new_<kind>``: ``factory`` with the tensor's dtype and device by default."""

    def new(self, *args, dtype=None, device=None):
        return factory(*args, dtype=self.dtype if dtype is None else dtype,
                       device=self.device if device is None else device)  # fmt: skip

    return new


c = composites
_OTHER_METHODS = {
    "clamp": c.clamp, "clip": c.clamp, "clamp_min": c.clamp_min, "clamp_max": c.clamp_max,
    "clamp_": c.clamp_, "masked_fill": c.masked_fill, "lerp": c.lerp, "addcmul": c.addcmul,
    "addcdiv": c.addcdiv, "norm": c.norm, "isclose": c.isclose, "allclose": c.allclose,
    "equal": c.equal, "nan_to_num": c.nan_to_num, "nan_to_num_": c.nan_to_num_,
    "trace": c.trace, "outer": linalg.outer,
    "T": property(movement.reversed_dims), "mT": property(movement.matrix_transpose),
    "__setitem__": indexing.setitem,
    "fill_": inplace.fill_, "zero_": inplace.zero_, "copy_": inplace.copy_,
    "to": conversion.to,
    "type_as": lambda self, other: elementwise.cast(self, other.dtype),
    "is_floating_point": lambda self: self.dtype.is_floating_point,
    "new_zeros": _new_like(creation.zeros), "new_ones": _new_like(creation.ones),
    "new_empty": _new_like(creation.empty), "new_full": _new_like(creation.full),
    "mm": linalg.mm, "addmm": linalg.addmm, "addmv": linalg.addmv, "baddbmm": linalg.baddbmm,
    "addbmm": linalg.addbmm, "kron": linalg.kron, "cross": linalg.cross,
    "det": linalg_functions.det, "inverse": linalg_functions.inv,
    "slogdet": linalg_functions.slogdet, "logdet": linalg_functions.logdet,
    "unflatten": movement.unflatten, "tensor_split": movement.tensor_split,
    "hsplit": movement.hsplit, "vsplit": movement.vsplit, "rot90": movement.rot90,
    "repeat_interleave": movement.repeat_interleave, "nansum": statistics.nansum,
    "nanmean": statistics.nanmean, "aminmax": statistics.aminmax,
    "count_nonzero": statistics.count_nonzero,
    "__hash__": object.__hash__,  # __eq__ is elementwise: identity hashing, as in PyTorch
    "masked_select": indexing.masked_select, "nonzero": indexing.nonzero,
    "argwhere": indexing.argwhere, "unique": indexing.unique, "bincount": indexing.bincount,
    "take": indexing.take, "take_along_dim": indexing.take_along_dim,
    "scatter_": indexing.scatter_, "scatter_add_": indexing.scatter_add_,
    "scatter_reduce_": indexing.scatter_reduce_, "index_add_": indexing.index_add_,
    "index_copy_": indexing.index_copy_, "index_fill_": indexing.index_fill_,
    "index_put_": indexing.index_put_, "masked_scatter_": indexing.masked_scatter_,
    "real": property(complex_functions.real), "imag": property(complex_functions.imag),
    "angle": complex_functions.angle, "conj": complex_functions.conj,
    "is_complex": complex_functions.is_complex,
}  # fmt: skip
del c
# the random fills and draws (fusejit/eager/random.py), the conveniences of interop.py
_OTHER_METHODS.update(RANDOM_METHODS)
_OTHER_METHODS.update(INTEROP_METHODS)
_OTHER_METHODS.update(AUTOGRAD_METHODS)  # backward, grad_fn, detach, register_hook, ...


def _reflected(fn):
    """``self.__rmatmul__(other)``: ``fn(other, self)``."""

    def method(self, other):
        return fn(other, self)

    return method


def _function(op: OpDef, name: str, functions: dict):
    """The function method ``name`` of ``op`` calls: its method form, the public function of
    that name, or (an operator) the op's own function."""
    fn = _METHOD_FORMS.get(name)
    if fn is None and not name.startswith("__"):
        fn = functions.get(name)
    if fn is None:
        fn = functions.get(op.name)
    if fn is None:
        raise AssertionError(f"op {op.name}: no public function for the method {name}")
    return fn


def _bind_op(op: OpDef, functions: dict) -> list[str]:
    """Bind ``op``'s method names; return them."""
    for m in op.methods:
        setattr(Tensor, m, _function(op, m, functions))
    for m in op.rmethods:
        if op.kind == "elementwise":
            setattr(Tensor, m, elementwise.make_reflected(op))
        else:
            setattr(Tensor, m, _reflected(_function(op, op.name, functions)))
    names = list(op.methods + op.rmethods)
    if op.inplace:
        setattr(Tensor, op.inplace, elementwise.make_inplace(op))
        names.append(op.inplace)
        if op.methods[-1].startswith("__"):  # x += y: __iadd__ from __add__
            dunder = "__i" + op.methods[-1][2:]
            setattr(Tensor, dunder, getattr(Tensor, op.inplace))
            names.append(dunder)
    return names


def bind_methods() -> None:
    """Attach every method of the op table and ``_OTHER_METHODS`` to ``Tensor``."""
    functions: dict = {}
    for mod in _FUNCTION_MODULES:
        for name, fn in vars(mod).items():
            if name.startswith("_"):  # (a module's private helpers are no method's function)
                continue
            if callable(fn) and getattr(fn, "__module__", None) == mod.__name__:
                if name in functions:
                    raise AssertionError(f"two public functions named {name}")
                functions[name] = fn
    bound = Counter(m for op in OPS.values() for m in _bind_op(op, functions))
    twice = {m for m, n in bound.items() if n > 1} | (set(bound) & set(_OTHER_METHODS))
    if twice:
        raise AssertionError(f"Tensor methods bound twice: {sorted(twice)}")
    for name, fn in _OTHER_METHODS.items():
        setattr(Tensor, name, fn)
