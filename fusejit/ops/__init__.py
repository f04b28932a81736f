"""The op table (``registry.OPS``) and its entries, one module per kind of op."""

from . import elementwise, linalg, movement, reductions  # noqa: F401 - registration
from .registry import OPS, OpDef, get_op

__all__ = ["OPS", "OpDef", "get_op"]
