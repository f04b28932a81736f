"""The names and error bounds of ``cpu_math``'s functions, without numba: what the CPU
renderer (``codegen/cpu.py``) needs to know which calls a kernel makes to ``cpu_math``, known
without importing numba (a kernel loaded from its stored machine code runs without it)."""

from __future__ import annotations

# Max error in ulp per function, (float32, float64): the table in cpu_math's docstring.
_BOUNDS = {
    "exp": (1, 1),
    "exp2": (1, 1),
    "expm1": (1, 1),
    "log": (1, 1),
    "log2": (2, 2),
    "log10": (2, 2),
    "log1p": (1, 1),
    "tanh": (1, 1),
    "sigmoid": (2, 2),
    "erf": (1, 1),
    "sinh": (1, 1),
    "cosh": (1, 1),
    "atan": (1, 1),
    "asin": (1, 1),
    "acos": (1, 1),
    "atan2": (1, 2),
    "sin": (1, 1),
    "cos": (1, 1),
    "tan": (1, 3),
}

# right only where ``trig_in_range_<prec>`` holds (see codegen/cpu.py)
GUARDED_NAMES = ("sin", "cos", "tan")

# (name, "f32" | "f64") of every function cpu_math has (its ``VECTOR_MATH`` keys)
VECTOR_MATH_NAMES = frozenset((name, prec) for name in _BOUNDS for prec in ("f32", "f64"))
