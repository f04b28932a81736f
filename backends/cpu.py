"""The CPU backend: numpy arrays as storage, numpy ufuncs where numpy has the op, and kernels
generated from the op table's expressions (compiled with numba) where it does not."""

from __future__ import annotations

import contextlib

import numpy as np
from fusejit.backends.cpu_kernels import cpu_kernel

from fusejit.base import dtypes as dt
from fusejit.codegen.body import KernelBody, Step
from fusejit.ops.elementwise import float_remainder_zero
from fusejit.ops.registry import accumulation_dtype
from fusejit.store import CACHE

_NULL = contextlib.nullcontext()
# ``where`` of at least this many elements runs as a generated kernel (``_where_kernel``)
WHERE_KERNEL_MIN = 1 << 13


class CPUBackend:
    name = "cpu"
    xp = np

    def __init__(self) -> None:
        self._ufuncs: dict = {}
        # (op, compute, out, rank) -> its one-op kernel. Held here, so an eager call neither
        # rebuilds the body and hashes it nor touches the memory cache's LRU order; bounded by
        # the op table, so outside the memory cache's bound, and emptied with the cache.
        self._expr_kernels: dict = {}
        CACHE.hold(self._expr_kernels)

    # storage ----------------------------------------------------------------------------
    def asarray(self, data, dtype: dt.DType):
        return np.asarray(data, dtype=dtype.np)

    def from_numpy(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def fill(self, arr: np.ndarray, value) -> None:
        arr.fill(value)

    def to_numpy(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def synchronize(self) -> None:
        pass

    def scope(self):
        """The context ops of this backend run in (the CPU needs none)."""
        return _NULL

    # elementwise ------------------------------------------------------------------------
    def elementwise(self, op, vals, compute: dt.DType, out: dt.DType, attrs):
        if op.rule == "cast":
            return vals[0].astype(out.np)
        if op.name == "sign" and compute is dt.bool_:  # (as torch's; numpy has no bool sign)
            return vals[0].copy()
        if op.name == "where" and type(vals[0]) is np.ndarray and vals[0].size >= WHERE_KERNEL_MIN:
            # (a condition of fewer elements broadcast to many keeps numpy's where)
            r = self._where_kernel(vals, compute, out)
            if r is not None:
                return r
        fn = self._ufuncs.get(op)
        if fn is None:
            fn = self._ufuncs[op] = getattr(np, op.np_name) if op.np_name else None
        if fn is not None:
            r = fn(*vals)
            if op.name == "remainder" and compute.is_floating_point:
                r = float_remainder_zero(np, r, vals[0])
            # ufuncs give numpy scalars for 0-d inputs, and where(c, 1.5, 2.5) float64
            if type(r) is not np.ndarray or r.dtype is not out.np:
                r = np.asarray(r, dtype=out.np)
            return r
        if len(vals) == 1:
            return self.run_expr_op(op, vals[0], compute, out)
        return self._run_expr_op_n(op, vals, compute, out)

    def _run_expr_op_n(self, op, vals, compute: dt.DType, out: dt.DType):
        """A binary or ternary op numpy lacks (xlogy, heaviside), as one generated kernel over
        the arrays as they are (broadcast, strided); Python scalars become 0-d arrays."""
        c, o = accumulation_dtype(compute), accumulation_dtype(out)
        arrays = [
            np.asarray(v, dtype=c.np) if not isinstance(v, np.ndarray) or v.dtype != c.np else v
            for v in vals
        ]
        rank = max(a.ndim for a in arrays)
        memo = (op, c, o, max(rank, 1))
        k = self._expr_kernels.get(memo)
        if k is None:
            body = KernelBody(
                in_dtypes=(c.name,) * len(arrays),
                steps=(Step(op.name, tuple(("in", i) for i in range(len(arrays))), (), c.name,
                            o.name),),
                outputs=(("t", 0),),
            )  # fmt: skip
            k = self._expr_kernels[memo] = cpu_kernel(body, rank)
        res = k(*arrays)[0]
        return res.astype(out.np) if o is not out else res

    def _where_kernel(self, vals, compute: dt.DType, out: dt.DType):
        """``where(c, x, y)`` of a large bool condition as one generated kernel (a branchless
        select): numpy's ``where`` branches on each element and took 1.1 ms for 512 x 512
        float32 of a random condition, the kernel 55 us (``bench/RESULTS.md``, training). None
        (numpy's where) unless the condition is a bool array and the values are scalars or
        arrays of its shape."""
        cond, x, y = vals
        if cond.dtype != np.bool_ or compute.kind == "c":
            return None
        c, o = accumulation_dtype(compute), accumulation_dtype(out)
        arrays = [cond]
        for v in (x, y):
            if isinstance(v, np.ndarray) and v.shape == cond.shape:
                arrays.append(v if v.dtype == c.np else v.astype(c.np))
            elif isinstance(v, (bool, int, float, np.generic)) or (
                isinstance(v, np.ndarray) and v.ndim == 0
            ):  # (a scalar filled out: the flat kernel over equal shapes is the fast one)
                arrays.append(np.full(cond.shape, v, dtype=c.np))
            else:
                return None  # (broadcast operands: numpy's where)
        rank = max(cond.ndim, 1)
        memo = ("where", c, o, rank)
        k = self._expr_kernels.get(memo)
        if k is None:
            # (the generated loop loads both values before the select: branch-free)
            body = KernelBody(
                in_dtypes=("bool", c.name, c.name),
                steps=(Step("where", (("in", 0), ("in", 1), ("in", 2)), (), c.name, o.name),),
                outputs=(("t", 0),),
            )
            k = self._expr_kernels[memo] = cpu_kernel(body, rank)
        res = k(*arrays)[0]
        return res.astype(out.np) if o is not out else res

    def run_expr_op(self, op, x: np.ndarray, compute: dt.DType, out: dt.DType):
        """An op numpy lacks, as a one-step generated kernel (float16 computed in float32)."""
        c, o = accumulation_dtype(compute), accumulation_dtype(out)
        if x.dtype != c.np:
            x = x.astype(c.np)
        memo = (op, c, o, max(x.ndim, 1))
        k = self._expr_kernels.get(memo)
        if k is None:
            body = KernelBody(
                in_dtypes=(c.name,),
                steps=(Step(op.name, (("in", 0),), (), c.name, o.name),),
                outputs=(("t", 0),),
            )
            k = self._expr_kernels[memo] = cpu_kernel(body, x.ndim)
        res = k(x)[0]
        return res.astype(out.np) if o is not out else res


BACKEND = CPUBackend()
