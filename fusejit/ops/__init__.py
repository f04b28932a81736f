"""The op table (``registry.OPS``) and its entries, one module per kind of op: facts only.

What runs an op eagerly (``fusejit.eager.call``) and the public functions are in
``fusejit/eager``.
"""

from fusejit.ops import complex_ops, elementwise, fft, linalg, movement, reductions, sorting  # noqa: F401, E501 - registration
from fusejit.ops.registry import OPS, OpDef, get_op

__all__ = ["OPS", "OpDef", "get_op"]
