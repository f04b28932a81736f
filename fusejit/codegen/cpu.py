"""CPU target: renders a ``KernelBody`` as numba Python source.

Every intermediate is cast back to its dtype (``np.float32(...)``, ``np.int8(...)``), because
numba widens small integers and some math calls to 64 bits; this keeps fused results equal to
eager ones op by op. Transcendental functions come from ``fusejit.kernels.cpu_math`` when it has
a vectorizable version, else from ``math`` (scalar libm calls, correct but not vectorized).
"""

from __future__ import annotations

from .. import dtypes as dt
from .body import KernelBody, render_steps
from .expr import Renderer

try:  # the vectorizable math library; absent names fall back to libm
    from ..kernels.cpu_math import VECTOR_MATH
except ImportError:  # pragma: no cover - only while the library is being written
    VECTOR_MATH = {}

_MATH_NAMES = {
    "exp": "math.exp", "expm1": "math.expm1", "log": "math.log", "log2": "math.log2",
    "log10": "math.log10", "log1p": "math.log1p", "sqrt": "np.sqrt", "sin": "math.sin",
    "cos": "math.cos", "tan": "math.tan", "asin": "math.asin", "acos": "math.acos",
    "atan": "math.atan", "atan2": "math.atan2", "sinh": "math.sinh", "cosh": "math.cosh",
    "tanh": "math.tanh", "erf": "math.erf", "floor": "np.floor", "ceil": "np.ceil",
    "trunc": "np.trunc", "rint": "np.rint", "abs": "abs",
}  # fmt: skip
_SHORT = {"float32": "f32", "float64": "f64"}


def np_type(d: dt.DType) -> str:
    return "np.bool_" if d is dt.bool_ else f"np.{d.np.name}"


class NumbaRenderer(Renderer):
    def const(self, value, d):
        if d is dt.bool_:
            return "True" if value else "False"
        if d.is_floating_point:
            v = float(value)
            if v != v:
                return f"{np_type(d)}(np.nan)"
            if v in (float("inf"), float("-inf")):
                return f"{np_type(d)}({'-' if v < 0 else ''}np.inf)"
            return f"{np_type(d)}({v!r})"
        return f"{np_type(d)}({int(value)})"

    def binop(self, op, a, b, d):
        if d is dt.bool_:
            if op in "&|^":
                return f"({a} {op} {b})"
            # arithmetic on bools happens in their own type in numpy (+ is or, * is and)
            return {"+": f"({a} | {b})", "*": f"({a} & {b})"}[op]
        return f"{np_type(d)}({a} {op} {b})"

    def unop(self, op, a, d):
        return f"{np_type(d)}({op}{a})"

    def cast(self, a, src, dst):
        if src is dst:
            return a
        if dst is dt.bool_:
            return f"({a} != 0)"
        return f"{np_type(dst)}({a})"

    def func(self, name, args, d):
        short = _SHORT.get(d.name)
        if (name, short) in VECTOR_MATH:
            return f"_vm.{name}_{short}({', '.join(args)})"
        if name == "sigmoid":
            one = self.const(1, d)
            e = self.func("exp", [f"(-{args[0]})"], d)
            return f"{np_type(d)}({one} / ({one} + {e}))"
        if name == "exp2":
            return f"{np_type(d)}({self.const(2, d)} ** {args[0]})"
        return f"{np_type(d)}({_MATH_NAMES[name]}({', '.join(args)}))"

    def where(self, c, a, b, d):
        return f"({a} if {c} else {b})"

    def classify(self, name, a, d):
        if not d.is_floating_point:
            return "True" if name == "isfinite" else "False"
        if name == "isnan":
            return f"({a} != {a})"
        if name == "isinf":
            return f"(abs({a}) == np.inf)"
        return f"(abs({a}) < np.inf)"

    def logic(self, op, a, b):
        return f"({a} {'&' if op == 'and' else '|'} {b})"

    def lnot(self, a):
        return f"(not {a})"


RENDERER = NumbaRenderer()


def supports(body: KernelBody) -> str | None:
    """None when the CPU target can compile ``body``, else the reason it cannot."""
    names = set(body.in_dtypes) | {s.out for s in body.steps} | {s.compute for s in body.steps}
    if "float16" in names:
        return "numba has no float16 on the CPU; float16 regions run eager"
    return None


def kernel_source(body: KernelBody, fname: str) -> str:
    """numba source for ``body``: ``{fname}_flat`` over 1-D arrays (same shape, contiguous).
    Large calls split it across threads by calling it on slices (``jit/cpu_kernels.py``), so
    there is no second, parallel variant to compile."""
    n_in = len(body.in_dtypes)
    n_out = len(body.outputs)
    ins = [f"a{i}" for i in range(n_in)]
    outs = [f"o{k}" for k in range(n_out)]
    params = ", ".join(ins + outs)

    def body_lines(index: str, indent: str) -> list[str]:
        loads = [f"{a}[{index}]" for a in ins]
        steps, out_codes = render_steps(body, RENDERER, loads)
        lines = [f"{indent}{name} = {code}" for name, code, _ in steps]
        lines += [f"{indent}{o}[{index}] = {code}" for o, (code, _) in zip(outs, out_codes)]
        return lines

    src = [
        "import math",
        "import numpy as np",
        "import numba",
        "",
        "",
        f"def {fname}_flat({params}):",
        f"    for i in range({outs[0]}.shape[0]):",
        *body_lines("i", "        "),
        "",
    ]
    text = "\n".join(src)
    if "_vm." in text:
        vm_import = "from fusejit.kernels import cpu_math as _vm\n"
        text = text.replace("import numba\n", "import numba\n" + vm_import, 1)
    return text


def nd_kernel_source(body: KernelBody, fname: str, rank: int) -> str:
    """numba source of ``{fname}_nd{rank}``: a loop nest over N-D arrays of the output's shape
    (broadcast inputs are stride-0 views, strided inputs keep their strides)."""
    n_in = len(body.in_dtypes)
    n_out = len(body.outputs)
    ins = [f"a{i}" for i in range(n_in)]
    outs = [f"o{k}" for k in range(n_out)]
    idx = ", ".join(f"i{d}" for d in range(rank))
    lines = [f"def {fname}_nd{rank}({', '.join(ins + outs)}):"]
    indent = "    "
    for d in range(rank):
        lines.append(f"{indent}for i{d} in range({outs[0]}.shape[{d}]):")
        indent += "    "
    loads = [f"{a}[{idx}]" for a in ins]
    steps, out_codes = render_steps(body, RENDERER, loads)
    lines += [f"{indent}{name} = {code}" for name, code, _ in steps]
    lines += [f"{indent}{o}[{idx}] = {code}" for o, (code, _) in zip(outs, out_codes)]
    return "\n".join(lines) + "\n"
