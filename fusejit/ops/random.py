"""Random ops of the table: ``rand_like`` (uniform on [0, 1) in the shape, dtype and device of
its operand, whose values it does not read). Its public function and the dropout built on it
are in ``fusejit/eager/random.py`` and ``fusejit/nn/functional.py``.

A random op is a graph node like any other: a traced or optimized graph draws fresh values at
each call, from the same default generator and in the same order as eager code does, so one
seed gives the same values eagerly and compiled. The passes treat its nodes as having an effect
(``fusejit/ir/control.py``, ``has_effect``): never merged with another draw, never folded into a
constant, never recomputed by the backward (``fusejit/jit/partition.py`` saves what it reads).

The generators live above the table (``fusejit/eager/random.py``), which installs the draw
here with ``set_source``: the table imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable

from fusejit.ops.registry import FLOAT_ONLY, OpDef, register

# source(backend, shape, numpy dtype) -> an array of uniform values on the backend's device
_SOURCE: list = [None]


def set_source(fn: Callable) -> None:
    """Install the function ``rand_like`` draws its values with."""
    _SOURCE[0] = fn


def _rand_like_impl(b, a):
    return _SOURCE[0](b, a.shape, a.dtype)


RAND_LIKE = register(
    OpDef(
        name="rand_like",
        kind="random",
        arity=1,
        allowed=FLOAT_ONLY,
        impl=_rand_like_impl,
        out_dtype=lambda d: d,
        differentiable=False,  # (its values do not depend on its operand's)
        doc="Uniform values on [0, 1) in the operand's shape, dtype and device.",
    )
)

__all__ = ["RAND_LIKE", "set_source"]
