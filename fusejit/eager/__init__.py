"""Eager execution: the Tensor class, dispatch, factories, and the public functions and methods.

Importing the package binds the Tensor methods (``methods.py``). ``call`` runs an op of the
table eagerly; the code ``TracedFunction.code`` prints calls it as ``fusejit.eager.call``.
"""

from fusejit.eager.dispatch import call
from fusejit.eager.methods import bind_methods as _bind_methods

_bind_methods()

__all__ = ["call"]
