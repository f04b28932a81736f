"""The CPU backend: numpy arrays as storage, numpy ufuncs where numpy has the op, and kernels
generated from the op table's expressions (compiled with numba) where it does not."""

from __future__ import annotations

import numpy as np

from fusejit import dtypes as dt
from fusejit.codegen.body import KernelBody, Step


class CPUBackend:
    name = "cpu"
    xp = np

    def __init__(self) -> None:
        self._ufuncs: dict = {}

    # storage ----------------------------------------------------------------------------
    def asarray(self, data, dtype: dt.DType):
        return np.asarray(data, dtype=dtype.np)

    def from_numpy(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def to_numpy(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def synchronize(self) -> None:
        pass

    # elementwise ------------------------------------------------------------------------
    def elementwise(self, op, vals, compute: dt.DType, out: dt.DType, attrs):
        if op.rule == "cast":
            return vals[0].astype(out.np)
        fn = self._ufuncs.get(op)
        if fn is None:
            fn = self._ufuncs[op] = getattr(np, op.np_name) if op.np_name else None
        if fn is not None:
            return fn(*vals)
        return self.run_expr_op(op, vals[0], compute, out)

    def run_expr_op(self, op, x: np.ndarray, compute: dt.DType, out: dt.DType):
        """An op numpy lacks, as a one-step generated kernel (float16 computed in float32)."""
        from fusejit.jit.cpu_kernels import cpu_kernel

        c = dt.float32 if compute is dt.float16 else compute
        o = dt.float32 if out is dt.float16 else out
        if x.dtype != c.np:
            x = x.astype(c.np)
        body = KernelBody(
            in_dtypes=(c.name,),
            steps=(Step(op.name, (("in", 0),), (), c.name, o.name),),
            outputs=(("t", 0),),
        )
        res = cpu_kernel(body, x.ndim)(x)[0]
        return res.astype(out.np) if o is not out else res


BACKEND = CPUBackend()
