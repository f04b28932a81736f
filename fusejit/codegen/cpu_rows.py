"""CPU target for row kernels: a ``RowBody`` as numba source (see ``codegen/rows.py``).

The generated module holds ``k_rows(lo, hi, N, ports..., outputs...)``: rows
``lo`` to ``hi``, one row per iteration of its outer loop. Inside, each pass of the schedule is
one loop over the row's N elements: plain scalar code over 1-D row views, which LLVM vectorizes
(8 float32 lanes with AVX2) with the branch-free math of ``fusejit.kernels.cpu_math``. Between
passes the row-space steps run on scalars. A value needed by a later pass that is costly to
recompute (exp, log, ...) is kept in a scratch row (softmax: exp is computed once), or in the
row of the output that the last pass reading it stores (softmax's exp: in the result's row,
which the normalize pass then scales where it lies).

Large launches split the rows into contiguous ranges run at once on several threads (the
kernel is ``nogil``: see ``backends/cpu_kernels.py``). Not numba's ``prange``: a ``parallel=True``
function costs 1.5 to 2.5 s more to compile on the development machine (3 s per new row kernel,
against the 1.5 s the benchmark harness allows), and OpenMP's spinning workers stall for
milliseconds when another process holds a core.

When the rows are fewer than the threads (a whole tensor is one row) and the body is one pass
over a row (a sum, mean, amax or amin of an elementwise expression), the module also holds
``k_part``, which reduces a range of one row's elements into partial results (float sums as
float64 totals of whole ``BLOCK``s), and ``k_final``, which combines a row's partials in order
and computes the row's results: the launcher runs a row's parts on the threads at once.

Numerics (documented bounds, checked by tests/test_reduction_fusion.py):

- Elementwise steps are exactly the elementwise kernels' code: each step rounded to its dtype,
  IEEE semantics, no fast-math. Transcendentals carry cpu_math's error (<= 2 ulp). One
  exception: a division by a value computed along the row (softmax's sum, layer norm's
  deviation) is a multiplication by its reciprocal, made once per row, as the CUDA row kernels
  do (about 1 ulp more than the division; infinities, zeros and NaNs as the division gives
  them; see ``_reciprocal``). A division by an input stays a division.
- float16 is read and written as its bits and held in float32: each float16 step computed in
  float32 and rounded to float16, as eager float16 ops are; float16 sums and means accumulate
  in float32 (as eager), amax/amin are exact.
- Sums and means accumulate in the step's accumulation dtype (float32 for float32, float64 for
  float64, int64 for integers and bool, as eager). A float sum adds with ``radd``: an ``fadd``
  with only LLVM's ``reassoc`` flag, on that instruction alone, so the vectorizer may keep
  several lane-wise partial sums (typically 8 lanes x 4 interleaved) and add them up at the
  end. No other instruction is reassociated, and nothing assumes the absence of NaN, inf or
  signed zeros (the sum starts at +0.0, as numpy's does). Rows are summed in blocks of
  ``BLOCK`` elements, each block's partial sum (in the accumulation dtype) added into a float64
  total: the error of a float32 sum of n terms is at most about
  (min(n, BLOCK) / 32 + 3) * eps32 * sum(|x|) + n / BLOCK * eps64 * sum(|x|), against numpy's
  pairwise (log2 n) * eps32 * sum(|x|). A row in parts adds the parts' float64 totals in
  order (the same blocks, a few more float64 roundings). ``mean`` divides the rounded sum by
  the row length in the accumulation dtype, as numpy does. The order depends on the row
  length alone, never on where the buffers lie (``APART``): equal inputs give equal bits.
- amax / amin use ``llvm.maximum`` / ``llvm.minimum``: exact, NaN-propagating (a row holding
  a NaN gives NaN, as numpy), and vectorized without flags. They order -0.0 below +0.0, where
  numpy returns whichever zero it met first: only the sign of a zero result can differ.
- A reduction of an empty row (N == 0) gives its identity (0, nan for mean, -inf/+inf for
  amax/amin) unless the body is ``strict_empty``, where the launcher raises as eager does.
"""

from __future__ import annotations

import threading

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.codegen.body import half_as_float32, render_step, round_half_consts
from fusejit.codegen.cpu import RENDERER, NumbaRenderer, np_type
from fusejit.codegen.expr import parse
from fusejit.codegen.rows import (
    RowBody,
    expensive,
    is_reduction,
    reduce_facts,
    ref_dtype,
    row_divisor,
    schedule,
)

BLOCK = 4096  # elements per partial sum (see the module docstring)
# Bytes between the start of a buffer a row kernel writes in an element loop (a full output, a
# scratch row) and the start of any other buffer. LLVM guards a vectorized loop that stores
# with a runtime alias check, which fails when two starts lie closer than the vector loop's
# step (up to a few hundred bytes): the loop then runs scalar and sums in another order, so a
# row's results would depend on where malloc put small buffers (1 ulp, seen in tests).
APART = 1024


def _intrinsics() -> dict:
    """``radd``, ``fmaximum`` and ``fminimum``: numba intrinsics the generated row kernels call
    (as ``_rk.radd``), made on first use so that importing this module does not import numba
    (a kernel loaded from its stored machine code runs without numba)."""
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    floats = (types.float32, types.float64)

    @intrinsic
    def radd(typingctx, a, b):
        """``a + b`` marked ``reassoc`` (this instruction only): a loop summing with it
        vectorizes into lane-wise partial sums. No other fast-math assumption is made."""
        if a != b or a not in floats:
            return None

        def codegen(context, builder, sig, args):
            return builder.fadd(args[0], args[1], flags=("reassoc",))

        return a(a, b), codegen

    def minmax(name):
        def typer(typingctx, a, b):
            if a != b or a not in floats:
                return None

            def codegen(context, builder, sig, args):
                ty = args[0].type
                fn = builder.module.declare_intrinsic(
                    f"llvm.{name}", [ty], ir.FunctionType(ty, [ty, ty])
                )
                return builder.call(fn, args)

            return a(a, b), codegen

        typer.__name__ = f"f{name}"
        typer.__doc__ = (
            f"IEEE 754-2019 {name}imum of two floats (``llvm.{name}``): NaN if either is NaN, "
            "-0.0 below +0.0; a loop reducing with it vectorizes."
        )
        return intrinsic(typer)

    return {"radd": radd, "fmaximum": minmax("maximum"), "fminimum": minmax("minimum")}


def intrinsics() -> None:
    """Make ``radd``, ``fmaximum`` and ``fminimum`` (imports numba), once."""
    g = globals()
    if "radd" not in g:
        with _INTRINSICS_LOCK:
            if "radd" not in g:
                g.update(_intrinsics())


def __getattr__(name: str):
    if name in ("radd", "fmaximum", "fminimum"):
        intrinsics()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_INTRINSICS_LOCK = threading.Lock()

# (no cache=True: the backend gives each function the disk cache of its entry)
_OPTS = 'dict(error_model="numpy", nogil=True, boundscheck=False)'


def _held(name: str) -> dt.DType:
    """The dtype a value of dtype ``name`` is held in inside the kernel: float16 in float32
    (read from and written as its bits, as the elementwise kernels do)."""
    return half_as_float32(dt.as_dtype(name))


class _Combiner(NumbaRenderer):
    """Renders a reduction's combine step (the op table's ``Reduce.combine``): float max / min
    as ``fmaximum`` / ``fminimum``, which vectorize; with ``reassoc``, a float ``+`` as
    ``radd`` (the element loop's, whose sum then vectorizes into lane-wise partial sums)."""

    def __init__(self, reassoc: bool) -> None:
        super().__init__()
        self.reassoc = reassoc

    def binop(self, op, a, b, d):
        if self.reassoc and op == "+" and d.is_floating_point:
            return f"_rk.radd({a}, {b})"
        return super().binop(op, a, b, d)

    def extreme(self, name, a, b, d):
        if d.is_floating_point:
            return f"_rk.f{name}imum({a}, {b})"
        return super().extreme(name, a, b, d)


_ELEMENTS, _PARTIALS = _Combiner(reassoc=True), _Combiner(reassoc=False)


def _combine(step, a: str, b: str, d: dt.DType, renderer=_PARTIALS) -> str:
    """Reduction ``step``'s combine of ``a`` and ``b`` (of dtype ``d``)."""
    facts = reduce_facts(step.op)
    return renderer.render(parse(facts.combine), {"x": (a, d), "y": (b, d)}, d)[0]


def _init(step) -> str:
    d = _held(step.compute)
    return RENDERER.const(reduce_facts(step.op).identity_of(d), d)


def _blocked(step) -> bool:
    """Whether ``step`` adds floats: it then sums by blocks (see the module docstring)."""
    combine = parse(reduce_facts(step.op).combine)
    return combine[:2] == ("bin", "+") and _held(step.compute).is_floating_point


def row_kernel_source(body: RowBody) -> str:
    """The numba module of ``body`` (see the module docstring)."""
    body = round_half_consts(body)
    sch = schedule(body)
    L = _function(body, sch, "rows")
    if splittable(body):
        L += ["", ""] + _function(body, sch, "part") + ["", ""] + _function(body, sch, "final")
    src = [
        "import math",
        "import numpy as np",
        "import numba",
        "from fusejit.codegen import cpu_rows as _rk",
        "from fusejit.kernels import cpu_math as _vm",
        "",
        "",
        *L,
        "",
    ]
    return "\n".join(src)


def splittable(body: RowBody) -> bool:
    """Whether ``body`` is one pass over a row: its module then also holds ``k_part`` and
    ``k_final``, which split a row's elements over threads."""
    return len(schedule(body).passes) == 1


def partial_dtypes(body: RowBody) -> list:
    """The numpy dtype of each reduction's partial results (``k_part``'s ``w`` arrays), in
    step order: float64 for float sums (their blocks' total), else the accumulation dtype."""
    out = []
    for s in body.steps:
        if is_reduction(s):
            out.append(np.float64 if _blocked(s) else _held(s.compute).np)
    return out


def _function(body: RowBody, sch, mode: str) -> list:
    """The lines of one generated function: ``mode`` "rows" is ``k_rows(lo, hi, N, ...)``,
    rows lo to hi; "part" is ``k_part(r, t, jlo, jhi, N, ..., w...)``, the partial results
    of row r's elements jlo to jhi into ``w<j>[t]`` (and its full outputs there); "final" is
    ``k_final(r, T, N, ..., w...)``, which combines the T partials of row r in order, then
    computes and stores the row's results."""
    steps = body.steps
    n_ports, n_out = len(body.ports), len(body.outputs)
    # full steps needed by a later pass than the first that evaluates them, and costly enough
    # to keep in a scratch row rather than recompute
    cached = {
        j: slot
        for slot, j in enumerate(
            j for j in sorted(sch.uses) if len(sch.uses[j]) > 1 and expensive(steps[j])
        )
    }
    # a kept value whose last reader is the pass storing an output of its dtype is kept in
    # that output's row instead of a scratch row (see _kept_in_output)
    in_out = _kept_in_output(body, sch, cached) if mode == "rows" else {}
    io = [*[f"a{i}" for i in range(n_ports)], *[f"o{i}" for i in range(n_out)]]
    reds_all = [j for j, s in enumerate(steps) if is_reduction(s)]
    ws = [f"w{j}" for j in reds_all]
    head = {
        "rows": f"def k_rows(lo, hi, N, {', '.join(io)}):",
        "part": f"def k_part(r, t, jlo, jhi, N, {', '.join(io + ws)}):",
        "final": f"def k_final(r, T, N, {', '.join(io + ws)}):",
    }[mode]
    L = [f"@numba.njit(**{_OPTS})", head]
    if mode == "rows":
        # scratch rows (one per kept step), allocated once per call, not per row
        for j, c in cached.items():
            if j in in_out:
                continue
            d = _held(steps[j].out)
            pad = APART // d.itemsize  # (see APART: padded both sides)
            L.append(f"    c{c} = np.empty(N + {2 * pad}, {np_type(d)})[{pad} : {pad} + N]")
        L.append("    for r in range(lo, hi):")
        ind = "        "
    else:
        ind = "    "
    # a part works on slices of its range, indexed from 0: LLVM vectorizes a loop over
    # range(jlo, jhi) 2-3x slower (measured) than one over range(jhi - jlo)
    cut = ", jlo:jhi" if mode == "part" else ""
    for i, (_, view, _d) in enumerate(body.ports):
        if view == "full":
            L.append(f"{ind}a{i}r = a{i}[r{cut}]")
        elif view == "inner" and cut:
            L.append(f"{ind}a{i} = a{i}[jlo:jhi]")
        elif view in ("keep", "drop"):
            L.append(f"{ind}v{i} = {_load(_d, f'a{i}[r]')}")
        elif view == "scalar":
            L.append(f"{ind}v{i} = {_load(_d, f'a{i}[0]')}")
    for k, (_, form) in enumerate(body.outputs):
        if form == "full" and mode != "final":
            L.append(f"{ind}o{k}r = o{k}[r{cut}]")
    for j, k in in_out.items():
        L.append(f"{ind}c{cached[j]} = o{k}r")
    if cut:
        L.append(f"{ind}n_ = jhi - jlo")

    def get(ref):
        if ref[0] == "in":
            view, d = body.ports[ref[1]][1:]
            name = f"x{ref[1]}" if view in ("full", "inner") else f"v{ref[1]}"
            return name, _held(d)
        if ref[0] == "t":
            return f"t{ref[1]}", _held(steps[ref[1]].out)
        d = _held(ref[2])
        return RENDERER.const(ref[1], d), d

    recips: dict = {}  # div step by a per-row value -> its reciprocal's names (see _reciprocal)

    def row_steps(js, ind):
        for j in js:
            L.append(f"{ind}t{j} = {_step_code(body, j, get, recips)}")

    end = "n_" if mode == "part" else "N"
    done_cache: set = set()
    for p, ps in enumerate(sch.passes):
        row_steps(sch.before[p], ind)
        reds = ps.reductions
        if mode == "final":  # the partials of the T parts, in order
            for j in reds:
                d = dt.float64 if _blocked(steps[j]) else _held(steps[j].compute)
                L.append(f"{ind}s{j} = w{j}[0]")
                L.append(f"{ind}for t in range(1, T):")
                L.append(f"{ind}    s{j} = {_combine(steps[j], f's{j}', f'w{j}[t]', d)}")
        else:
            for j in ps.steps:
                if row_divisor(body, j) and j not in recips:
                    recips[j] = _reciprocal(L, j, get(steps[j].args[1]), steps[j], ind)
            _element_loop(L, body, sch, ps, cached, done_cache, get, ind, end, recips)
        if mode == "part":
            L += [f"{ind}w{j}[t] = s{j}" for j in reds]
            return L
        for j in reds:
            s = steps[j]
            acc, out = _held(s.compute), _held(s.out)
            val = f"{np_type(acc)}(s{j})"
            finalize = reduce_facts(s.op).finalize
            if finalize is not None:  # n: the row length
                env = {"x": (val, acc), "n": (f"{np_type(acc)}(N)", acc)}
                val = RENDERER.render(parse(finalize), env, acc)[0]
            val = RENDERER.cast(val, acc, out)
            L.append(f"{ind}t{j} = {_vm_round(val) if s.out == 'float16' else val}")
    row_steps(sch.before[len(sch.passes)], ind)
    for k, (ref, form) in enumerate(body.outputs):
        if form != "full":
            code, _ = get(ref)
            L.append(f"{ind}o{k}[r] = {_store(ref_dtype(body, ref), code)}")
    return L


def _load(d: str, code: str) -> str:
    # float16 arrays reach the kernel as their uint16 bits (numba has no float16 type)
    return f"_vm.h2f({code})" if d == "float16" else code


def _store(d: str, code: str) -> str:
    return f"_vm.f2h({code})" if d == "float16" else code


def _vm_round(code: str) -> str:
    return f"_vm.round_h({code})"


def _step_code(body: RowBody, j: int, get, recips: dict | None = None) -> str:
    """Step j's code; a float16 step computes in float32 and is rounded to float16 after it,
    as eager float16 ops are (a cast from float64 rounds once, from the float64). A division
    by a per-row value multiplies by the reciprocal made for it (``recips``, _reciprocal)."""
    s = body.steps[j]
    if recips and j in recips:
        rcp, sc, ty = recips[j]
        a, ad = get(s.args[0])
        a = RENDERER.cast(a, ad, ty)
        code = f"{np_type(ty)}({np_type(ty)}({a} * {rcp}) * {sc})"
        return _vm_round(code) if s.out == "float16" else code
    code, _ = render_step(s, RENDERER, get, half_as_float32)
    if s.out != "float16":
        return code
    if s.op == "cast" and ref_dtype(body, s.args[0]) == "float64":
        return f"_vm.h2f(_vm.d2h({get(s.args[0])[0]}))"
    return _vm_round(code)


def _reciprocal(L: list, j: int, divisor, step, ind: str) -> tuple:
    """Per row, the reciprocal ``rcp<j>`` of div step ``j``'s divisor and a power-of-two scale
    ``sc<j>``; returns their names and the compute dtype. The step then multiplies,
    ``(x * rcp) * sc``: one division per row instead of one per element (a vector division
    costs several multiplies' time: softmax on 2048 x 2048 float32, its exp kept in the output
    row, 4.16 ms dividing, 3.77 multiplying). The divisor is scaled by ``sc`` first when it is
    so small or so large that its reciprocal would overflow or be subnormal, so the result is
    x / d within about 1 ulp, with the same infinities, zeros and NaNs as the division (d = 0:
    rcp = inf; d = inf: rcp = 0; NaN stays NaN). The CUDA row kernels do the same
    (``cuda_rows``)."""
    code, d = divisor
    ty = _held(step.compute)
    t = np_type(ty)
    k = 64 if ty is not dt.float64 else 512
    L.append(f"{ind}d{j} = {RENDERER.cast(code, d, ty)}")
    L.append(f"{ind}sc{j} = {t}(2.0**{k}) if abs(d{j}) < {t}(2.0**-{k}) else "
             f"({t}(2.0**-{k}) if abs(d{j}) > {t}(2.0**{k}) else {t}(1.0))")  # fmt: skip
    L.append(f"{ind}rcp{j} = {t}({t}(1.0) / {t}(d{j} * sc{j}))")
    return f"rcp{j}", f"sc{j}", ty


def _kept_in_output(body: RowBody, sch, cached: dict) -> dict:
    """kept step -> full output whose row holds it between passes: the output has the step's
    dtype (not float16, which rows hold as bits), and the pass storing it is the last to read
    the kept value (it reads an element before overwriting it). Outputs are fresh buffers,
    never an input's. Writing the kept value where the result goes saves a scratch row's
    traffic: softmax's exp lands in the output row, which the normalize pass then scales in
    cache (2048 x 2048 float32, dividing: 4.59 ms with a scratch row, 4.16 in the output's)."""
    out_pass = {i: p for p, ps in enumerate(sch.passes) for i in ps.outputs}
    taken: set = set()
    found = {}
    for j in cached:
        d = body.steps[j].out
        if d == "float16":
            continue
        for k, (ref, form) in enumerate(body.outputs):
            if (form == "full" and k not in taken and ref_dtype(body, ref) == d
                    and out_pass.get(k) == max(sch.uses[j])):  # fmt: skip
                found[j] = k
                taken.add(k)
                break
    return found


def _element_loop(L, body, sch, ps, cached, done_cache, get, ind, end, recips) -> None:
    """One pass's loop over the elements 0 to ``end`` of a row: its reductions (``s<j>``,
    float sums by blocks of ``BLOCK``), its full outputs."""
    steps = body.steps
    reds = ps.reductions
    for j in reds:
        L.append(f"{ind}s{j} = {_init(steps[j])}")
        if _blocked(steps[j]):
            L.append(f"{ind}s{j} = np.float64(s{j})")
    blocked = [j for j in reds if _blocked(steps[j])]
    if blocked:
        L.append(f"{ind}for j0 in range(0, {end}, {BLOCK}):")
        L.append(f"{ind}    j1 = min({end}, j0 + {BLOCK})")
        for j in blocked:
            L.append(f"{ind}    b{j} = {_init(steps[j])}")
        L.append(f"{ind}    for j in range(j0, j1):")
        inner = ind + "        "
    else:
        L.append(f"{ind}for j in range({end}):")
        inner = ind + "    "
    order = _needed(body, ps, cached.keys() & done_cache)
    # loads of the element ports this pass reads
    reads = set()
    for j in order:
        if j in cached and j in done_cache:
            continue
        reads |= {r[1] for r in steps[j].args if r[0] == "in"}
    for j in reds:
        r = steps[j].args[0]
        if r[0] == "in":
            reads.add(r[1])
    for i in sorted(reads):
        view, d = body.ports[i][1:]
        if view == "full":
            L.append(f"{inner}x{i} = {_load(d, f'a{i}r[j]')}")
        elif view == "inner":
            L.append(f"{inner}x{i} = {_load(d, f'a{i}[j]')}")
    evaluated = set()
    for j in order:
        if j in cached and j in done_cache:
            L.append(f"{inner}t{j} = c{cached[j]}[j]")
            evaluated.add(j)
            continue
        L.append(f"{inner}t{j} = {_step_code(body, j, get, recips)}")
        if j in cached:
            L.append(f"{inner}c{cached[j]}[j] = t{j}")
        evaluated.add(j)
    done_cache |= evaluated & set(cached)
    for j in reds:
        s = steps[j]
        acc = _held(s.compute)
        code, d = get(s.args[0])
        v = RENDERER.cast(code, d, acc)
        into = f"b{j}" if _blocked(s) else f"s{j}"  # (a float sum: into its block's sum)
        L.append(f"{inner}{into} = {_combine(s, into, v, acc, _ELEMENTS)}")
    for i in ps.outputs:
        ref, _ = body.outputs[i]
        code, d = get(ref)
        L.append(f"{inner}o{i}r[j] = {_store(ref_dtype(body, ref), code)}")
    if blocked:
        for j in blocked:
            L.append(f"{ind}    s{j} = s{j} + np.float64(b{j})")


def _needed(body: RowBody, ps, stored: set) -> list:
    """The full steps pass ``ps`` evaluates, in order; ``stored`` steps (kept in scratch rows
    by an earlier pass) are reloaded, not recomputed from their inputs."""
    roots = [body.steps[j].args[0] for j in ps.reductions]
    roots += [body.outputs[i][0] for i in ps.outputs]
    need: set = set()
    stack = [r[1] for r in roots if r[0] == "t" and body.spaces[r[1]] == "full"]
    while stack:
        j = stack.pop()
        if j in need:
            continue
        need.add(j)
        if j not in stored:
            stack += [r[1] for r in body.steps[j].args
                      if r[0] == "t" and body.spaces[r[1]] == "full"]  # fmt: skip
    return sorted(need)


__all__ = ["row_kernel_source", "radd", "fmaximum", "fminimum", "BLOCK"]  # noqa: F822 (made lazily)
