"""Matrix products of the op table: ``matmul`` (numpy semantics, batched, broadcast) and
``einsum``. Their public functions are in ``fusejit/eager/linalg.py``."""

from __future__ import annotations

from fusejit.ops.registry import NUM, OpDef, register


def _matmul_impl(b, x, y, dtype):
    return b.xp.matmul(x.astype(dtype.np, copy=False), y.astype(dtype.np, copy=False))


MATMUL = register(
    OpDef(name="matmul", kind="matmul", arity=2, allowed=NUM, impl=_matmul_impl,
          out_dtype=lambda a, b, dtype: dtype,
          methods=("matmul", "__matmul__", "dot", "mv", "bmm"), rmethods=("__rmatmul__",))
)  # fmt: skip


def _einsum_impl(b, *arrays, equation, dtype):
    return b.xp.einsum(equation, *[a.astype(dtype.np, copy=False) for a in arrays],
                       optimize=len(arrays) > 2)  # fmt: skip


EINSUM = register(
    OpDef(name="einsum", kind="matmul", arity=-1, allowed=NUM, impl=_einsum_impl,
          out_dtype=lambda *ds, equation, dtype: dtype)
)  # fmt: skip
