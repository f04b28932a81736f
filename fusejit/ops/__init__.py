"""The op table (``registry.OPS``) and its entries, one module per kind of op: facts only.

What runs an op eagerly (``fusejit.eager.call``) and the public functions are in
``fusejit/eager``.
"""

from fusejit.ops import (  # noqa: F401, I001 - registration
    complex_ops, elementwise, fft, indexing, linalg, losses, movement, random, reductions,
    sorting, statistics,
)  # fmt: skip
from fusejit.ops.registry import OPS, OpDef, get_op

__all__ = ["OPS", "OpDef", "get_op"]
