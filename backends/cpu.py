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
