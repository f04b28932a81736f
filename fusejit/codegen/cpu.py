"""CPU target: renders a ``KernelBody`` as numba Python source.

Every intermediate is cast back to its dtype (``np.float32(...)``, ``np.int8(...)``), because
numba widens small integers and some math calls to 64 bits; this keeps fused results equal to
eager ones op by op. Transcendental functions come from ``fusejit.kernels.cpu_math`` when it has
a vectorizable version, else from ``math`` (scalar libm calls, correct but not vectorized).

sin, cos and tan (``GUARDED``) have vectorizable versions for arguments up to a bound only
(``cpu_math.trig_in_range_*``): a kernel that uses them also ands together, over its loop,
whether every argument was in range, and when one was not it runs the loop again with libm.
Row kernels use libm for them.

float16 (which numba cannot type) reaches the kernels as uint16 bits: loads convert to float32
(``_vm.h2f``), every float16 step computes in float32 and is rounded back (``_vm.round_h``; a
float64 -> float16 cast rounds once, ``_vm.d2h``), stores convert to bits (``_vm.f2h``).
"""

from __future__ import annotations

from fusejit.base import dtypes as dt
from fusejit.codegen.body import (
    KernelBody,
    half_as_float32,
    half_rounding,
    render_steps,
    round_half_consts,
)
from fusejit.codegen.expr import Renderer

# (cpu_math's names, not cpu_math: it imports numba; names it lacks fall back to libm)
from fusejit.kernels.cpu_math_table import GUARDED_NAMES
from fusejit.kernels.cpu_math_table import VECTOR_MATH_NAMES as VECTOR_MATH

# primitives spelled with numpy's function rather than math's: math has no rint, numba's
# math.floor, ceil and trunc give ints, sqrt is the eager op's ufunc and numba has no math.fmod;
# abs is the builtin. erfinv is cpu_math's (scalar: numba has none). The others are math's
# function of the primitive's name (or, vectorized, cpu_math's).
_NUMPY_FUNCS = frozenset({"sqrt", "floor", "ceil", "trunc", "rint", "fmod"})
_CPU_MATH_SCALAR = frozenset({"erfinv"})
_SHORT = {"float32": "f32", "float64": "f64"}


def np_type(d: dt.DType) -> str:
    return "np.bool_" if d is dt.bool_ else f"np.{d.np.name}"


GUARDED = frozenset(GUARDED_NAMES)  # sin, cos, tan


class NumbaRenderer(Renderer):
    """Numba source for expressions. With ``guards`` (a list), sin / cos / tan use the
    vectorizable versions and their (argument code, precision) pairs are collected there;
    without, they call libm."""

    def __init__(self, guards: list | None = None) -> None:
        self.guards = guards

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
        if op == "%" and d.is_floating_point:  # (a zero takes a's sign, as PyTorch's)
            return f"{np_type(d)}(_vm.remainder({a}, {b}))"
        if op == "**" and d is dt.float32 and b == self.const(3, d):
            # float32 x ** 3 (tanh-GELU's) in float64: x * x is exact there and x * x * x
            # rounds once before the float32 rounding, as accurate as powf, and it vectorizes
            # where the powf call does not (2^19 floats: 0.1 ms against 5.2). x ** 2 and
            # x ** 0.5 need nothing: LLVM turns those pow calls into a product and a sqrt.
            w = f"np.float64({a})"
            return f"np.float32({w} * {w} * {w})"
        return f"{np_type(d)}({a} {op} {b})"

    def unop(self, op, a, d):
        return f"{np_type(d)}({op}{a})"

    def cast(self, a, src, dst):
        if src is dst:
            return a
        if dst is dt.bool_:
            return f"({a} != 0)"
        if src.is_floating_point and dst.is_integer and dst.itemsize < 4:
            # through int32 as numpy does on x86 (and the CUDA target), so out-of-range values
            # wrap as eager's do; straight to int8 LLVM's conversion saturated them
            return f"{np_type(dst)}(np.int32({a}))"
        return f"{np_type(dst)}({a})"

    def func(self, name, args, d):
        short = _SHORT.get(d.name)
        if name in GUARDED:
            if self.guards is not None and (name, short) in VECTOR_MATH:
                self.guards.append((args[0], short))
                return f"_vm.{name}_{short}({args[0]})"
        elif (name, short) in VECTOR_MATH:
            return f"_vm.{name}_{short}({', '.join(args)})"
        if name == "sigmoid":
            one = self.const(1, d)
            e = self.func("exp", [f"(-{args[0]})"], d)
            return f"{np_type(d)}({one} / ({one} + {e}))"
        if name in _CPU_MATH_SCALAR:
            return f"_vm.{name}_{short}({args[0]})"
        if name == "exp2":
            return f"{np_type(d)}({self.const(2, d)} ** {args[0]})"
        fn = "abs" if name == "abs" else f"{'np' if name in _NUMPY_FUNCS else 'math'}.{name}"
        return f"{np_type(d)}({fn}({', '.join(args)}))"

    def extreme(self, name, a, b, d):
        if not d.is_floating_point:
            return f"{name}({a}, {b})"
        # a select, as the elementwise maximum's: NaN-propagating (row kernels use the LLVM
        # intrinsics, see cpu_rows)
        return f"({a} if ({a} {'>' if name == 'max' else '<'} {b}) | ({a} != {a}) else {b})"

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
    """None when the CPU target can compile ``body``, else the reason it cannot (every
    elementwise body compiles: float16 computes in float32, stored as its bits)."""
    return None


def kernel_source(body: KernelBody, fname: str) -> str:
    """numba source for ``body``: ``{fname}_flat`` over 1-D arrays (same shape, contiguous).
    Large calls split it across threads by calling it on slices (``backends/cpu_kernels.py``), so
    there is no second, parallel variant to compile."""
    n_in = len(body.in_dtypes)
    n_out = len(body.outputs)
    ins = [f"a{i}" for i in range(n_in)]
    outs = [f"o{k}" for k in range(n_out)]
    params = ", ".join(ins + outs)

    body = round_half_consts(body)
    # each input loaded once into a temporary at the top of the loop: a load written inside
    # where's conditional (``a1[i] if a0[i] else a2[i]``) stays a branch in LLVM, two loaded
    # values become a branch-free select (20x faster on a random condition)
    loads = [f"x{i}" for i in range(n_in)]
    load_lines = [f"x{i} = {_load(d, f'{a}[i]')}" for i, (a, d) in
                  enumerate(zip(ins, body.in_dtypes))]  # fmt: skip

    def loop(renderer, ind):
        steps, out_codes = _render(body, renderer, loads)
        lines = [f"{ind}for i in range({outs[0]}.shape[0]):"]
        lines += [f"{ind}    {code}" for code in load_lines]
        lines += [f"{ind}    {name} = {code}" for name, code in steps]
        lines += _guard_lines(renderer, ind + "    ")
        lines += [f"{ind}    {o}[i] = {code}" for o, code in zip(outs, out_codes)]
        return lines

    return module_source("\n".join(_guarded(f"def {fname}_flat({params}):", loop)) + "\n")


def _load(d: str, code: str) -> str:
    # float16 arrays reach the kernels as their uint16 bits (numba has no float16 type)
    return f"_vm.h2f({code})" if d == "float16" else code


def _render(body: KernelBody, renderer, loads: list) -> tuple[list, list]:
    """(temp name, code) of each step and the code of each output. float16 computes in float32,
    each float16 step rounded back to float16 as eager float16 ops are, and is stored as bits."""
    steps, out_codes = render_steps(body, renderer, loads, half_as_float32)
    lines = []
    for step, (name, code, _) in zip(body.steps, steps, strict=True):
        how = half_rounding(body, step)
        if how == "from_float64":
            code = f"_vm.h2f(_vm.d2h({_ref_code(body, step.args[0], renderer, loads)}))"
        elif how == "round":
            code = f"_vm.round_h({code})"
        lines.append((name, code))
    outs = [f"_vm.f2h({code})" if d == "float16" else code
            for (code, _), d in zip(out_codes, body.out_dtypes())]  # fmt: skip
    return lines, outs


def _ref_code(body: KernelBody, ref, renderer, loads: list) -> str:
    if ref[0] == "in":
        return loads[ref[1]]
    if ref[0] == "t":
        return f"t{ref[1]}"
    return renderer.const(ref[1], half_as_float32(dt.as_dtype(ref[2])))


def _guard_lines(renderer, ind: str) -> list:
    """In the loop body: and together whether each guarded call's argument was in range."""
    if not renderer.guards:
        return []
    return [f"{ind}ok = ok & _vm.trig_in_range_{short}({arg})"
            for arg, short in dict.fromkeys(renderer.guards)]  # fmt: skip


def _guarded(header: str, loop) -> list:
    """A kernel function: ``header``, then ``loop(renderer, indent)``'s lines. Where the loop
    calls a guarded function, it runs with the vectorizable versions and, if an argument was
    out of their range, once more with libm (whose results overwrite every output)."""
    fast = NumbaRenderer(guards=[])
    lines = loop(fast, "    ")
    if not fast.guards:
        return [header, *lines]
    redo = loop(RENDERER, "        ")
    return [header, "    ok = True", *lines,
            "    if not ok:  # an argument beyond the vectorizable range: libm for all",
            *redo]  # fmt: skip


# how an input of an N-D kernel moves along the output's last dim
UNIT, BROADCAST, STRIDED = "u", "b", "s"


def nd_kernel_source(body: KernelBody, fname: str, rank: int, inner: str) -> str:
    """numba source of ``{fname}`` for broadcast and strided inputs, by rows.

    Arguments: ``lo, hi`` (the range of the first dim to run, so threads can split it), each
    input as a 1-D array holding its elements (``f<k>``), each output as a 1-D contiguous
    array of the output's size, ``shape`` (the output's, int64) and ``st`` (each input's
    stride per dim in elements, 0 where it is broadcast; int64 [n_in, rank]). ``inner`` gives,
    per input, how it moves along the last dim: ``u`` unit stride, ``b`` broadcast (one value
    per row, loaded outside the loop), ``s`` another stride. Loops over the leading dims
    compute each input's row offset; the innermost loop runs over contiguous row slices, so it
    vectorizes as the flat kernel does whenever no input is ``s``.
    """
    body = round_half_consts(body)
    n_in, n_out = len(body.in_dtypes), len(body.outputs)
    assert len(inner) == n_in and rank >= 1
    ins = [f"f{k}" for k in range(n_in)]
    outs = [f"o{m}" for m in range(n_out)]
    header = f"def {fname}(lo, hi, {', '.join(ins + outs)}, shape, st):"
    # From rank 2 the innermost loop is a function of its own (``<fname>_row<i>``, called once
    # per row with the row's slices): nested in the row loops, LLVM kept the body's constants
    # out of registers and rematerialized them in every iteration, 1.22x slower than the same
    # loop alone (bias + tanh-GELU on 2048 x 2048 float32: 4.70 ms against 3.86 ms; exp(x + b):
    # 3.2 against 2.55 ms). A loop with guarded calls (sin, cos, tan) stays inline: apart it
    # measured 3% slower.
    helpers: list = []

    def nest(renderer, ind):
        L = [f"{ind}n = shape[{rank - 1}]"]
        if rank == 1:
            base = ["0"] * n_in
            L += [f"{ind}ob = 0"]
            loop = "range(lo, hi)"
        else:
            for d in range(rank - 1):
                rng = "range(lo, hi)" if d == 0 else f"range(shape[{d}])"
                L.append(f"{ind}for i{d} in {rng}:")
                ind += "    "
                for k in range(n_in):
                    prev = f"b{k}_{d - 1} + " if d else ""
                    L.append(f"{ind}b{k}_{d} = {prev}i{d} * st[{k}, {d}]")
                L.append(f"{ind}q{d} = {f'q{d - 1} * shape[{d}] + ' if d else ''}i{d}")
            base = [f"b{k}_{rank - 2}" for k in range(n_in)]
            L.append(f"{ind}ob = q{rank - 2} * n")
            loop = "range(n)"
        loads = []
        for k, kind in enumerate(inner):
            b, d = base[k], body.in_dtypes[k]
            if kind == UNIT:
                L.append(f"{ind}r{k} = f{k}[{b}:{b} + n]")
                loads.append(_load(d, f"r{k}[j]"))
            elif kind == BROADCAST:
                L.append(f"{ind}v{k} = {_load(d, f'f{k}[{b}]')}")
                loads.append(f"v{k}")
            else:
                L.append(f"{ind}s{k} = st[{k}, {rank - 1}]")
                L.append(f"{ind}r{k} = f{k}[{b}:{b} + (n - 1) * s{k} + 1:s{k}]")
                loads.append(_load(d, f"r{k}[j]"))
        for m in range(n_out):
            L.append(f"{ind}w{m} = o{m}[ob:ob + n]")
        steps, out_codes = _render(body, renderer, loads)
        inner_lines = [f"{name} = {code}" for name, code in steps]
        inner_lines += _guard_lines(renderer, "")
        inner_lines += [f"w{m}[j] = {code}" for m, code in enumerate(out_codes)]
        if rank == 1 or renderer.guards:  # (guarded sin/cos/tan: measured 3% slower apart)
            L.append(f"{ind}for j in {loop}:")
            return L + [f"{ind}    {line}" for line in inner_lines]
        args = [f"v{k}" if kind == BROADCAST else f"r{k}" for k, kind in enumerate(inner)]
        args = ", ".join(args + [f"w{m}" for m in range(n_out)] + ["n"])
        name = f"{fname}_row{len(helpers)}"
        guarded = bool(renderer.guards)
        H = [f"@numba.njit(**{_ROW_OPTS})", f"def {name}({args}):"]
        H += ["    ok = True"] if guarded else []
        H += ["    for j in range(n):", *[f"        {line}" for line in inner_lines]]
        H += ["    return ok"] if guarded else []
        helpers.append("\n".join(H))
        L.append(f"{ind}ok = ok & {name}({args})" if guarded else f"{ind}{name}({args})")
        return L

    main = "\n".join(_guarded(header, nest))
    return module_source("\n\n\n".join([*helpers, main]) + "\n")


# the options of the N-D kernels' row functions: those numba compiles the kernels with
_ROW_OPTS = 'dict(error_model="numpy", nogil=True, boundscheck=False)'


def module_source(functions: str) -> str:
    """A kernel module: the imports its functions need, then the functions."""
    head = "import math\nimport numpy as np\nimport numba\n"
    if "_vm." in functions:
        head += "from fusejit.kernels import cpu_math as _vm\n"
    return head + "\n\n" + functions
