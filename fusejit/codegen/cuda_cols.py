"""CUDA target for column kernels: a ``ColBody`` (see ``codegen/cols.py``) as CUDA C.

One thread per kept column c = p * Q + q (P * Q of them, blocks of ``BLOCK``): it walks the
reduced rows r, reading element (p, r, q), so the threads of a warp read consecutive
addresses (coalesced), evaluates the prologue and accumulates the reductions in registers.
When the columns are too few to fill the GPU (a bias gradient of 768 columns over 8192 rows),
the rows are split into ``T_`` parts (``parts``: about ``THREADS_PER_SM`` threads an SM in all,
at least ``MIN_ROWS`` rows a part): blockIdx.y is the part, each part stores its partial
results in a work array, and a second launch of the same kernel (``phase_`` 1) combines the T_
partials of each column in part order and finalizes. With one part, one launch does both
(``phase_`` 2). No atomics: results repeat exactly (they depend on the SM count through T_).

Arguments: the port pointers ``a0..`` (contiguous: full ports (P, R, Q), out ports (P, Q),
row ports (P, R), inner ports (Q,), scalar ports (1,)), the output pointers ``o0..`` (full
(P, R, Q), out (P, Q)),
one work pointer ``w<j>`` per reduction (T_ * P * Q values of its accumulation dtype), then
``P_``, ``R_``, ``Q_``, ``T_`` and ``phase_`` (``long long``; phase 0: accumulate a part, 1:
combine and finalize, 2: both).

Numerics as the CPU column kernels (``codegen/cpu_cols.py``): float sums and means accumulate in
double (float16 and float32 inputs too: one rounding at the end; an H100 adds doubles at half
its float rate, far above what the memory delivers), integer sums in int64, amax/amin exact
(NaN-propagating; the sign of a zero result unspecified). float16 is loaded as float32 and
rounded back after each float16 step, as the elementwise kernels do.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusejit.base import dtypes as dt
from fusejit.codegen import cuda as cg
from fusejit.codegen.body import render_step, round_half_consts
from fusejit.codegen.cols import ColBody, acc_dtype, reductions, ref_dtype
from fusejit.codegen.cuda_rows import _combine_code, _identity
from fusejit.codegen.expr import parse
from fusejit.codegen.rows import reduce_facts

CUDA_COLS_VERSION = "1"
BLOCK = 256
THREADS_PER_SM = 2048  # threads the row parts fill each SM with
MIN_ROWS = 64  # rows a part reduces at least
MAX_PARTS = 1024


@dataclass(frozen=True)
class ColVariant:
    """A column kernel has one form (the phase is an argument); part of its cache key."""

    @property
    def tag(self) -> str:
        return "cols"


COLS = ColVariant()


def parts(C: int, R: int, sm_count: int) -> int:
    """How many parts the R reduced rows of C columns are split into (see the module
    docstring): 1 when the columns fill the GPU or the rows are few."""
    want = -(-sm_count * THREADS_PER_SM // max(C, 1))
    return max(1, min(want, R // MIN_ROWS, MAX_PARTS))


def _cdt(name: str) -> dt.DType:
    return cg.compute_of(dt.as_dtype(name))


def render_col_kernel(body: ColBody, name: str = "fj_kernel") -> str:
    """The ``extern "C" __global__`` function of ``body`` (see the module docstring)."""
    body = round_half_consts(body)
    steps, ports = body.steps, body.ports
    outs = body.out_dtypes()
    reds = reductions(body)
    params = [f"const {cg.ctype(d)}* __restrict__ a{i}" for i, (_, _, d, _r) in enumerate(ports)]
    params += [f"{cg.ctype(d)}* __restrict__ o{k}" for k, d in enumerate(outs)]
    params += [f"{cg.ctype(acc_dtype(steps[j]))}* __restrict__ w{j}" for j in reds]
    params += ["long long P_", "long long R_", "long long Q_", "long long T_", "long long phase_"]
    L = [
        f'extern "C" __global__ void __launch_bounds__({BLOCK}) {name}(',
        "    " + ",\n    ".join(params) + ") {",
        "    const long long C_ = P_ * Q_;",
        f"    const long long c = (long long)blockIdx.x * {BLOCK} + threadIdx.x;",
        "    if (c >= C_) return;",
        "    const long long p = c / Q_;",
        "    const long long q = c - p * Q_;",
    ]
    for i, (_, view, d, _r) in enumerate(ports):
        if view == "scalar":
            L.append(f"    const {cg.ctype(_cdt(d))} v{i} = {cg._load(d, f'a{i}[0]')};")

    def get(ref):
        if ref[0] == "in":
            view, d = ports[ref[1]][1:3]
            return (f"v{ref[1]}" if view == "scalar" else f"x{ref[1]}"), _cdt(d)
        if ref[0] == "t":
            return f"t{ref[1]}", _cdt(steps[ref[1]].out)
        d = _cdt(ref[2])
        return cg.RENDERER.const(ref[1], d), d

    def step_line(j, ind):
        s = steps[j]
        code, d = render_step(s, cg.RENDERER, get, cg.compute_of)
        if s.op == "cast" and s.out == "float16" and ref_dtype(body, s.args[0]) == "float64":
            code = f"fj_h2f(fj_d2h({get(s.args[0])[0]}))"  # one rounding, not two
        elif s.out == "float16":
            code = f"fj_round_h({code})"
        return f"{ind}const {cg.ctype(d)} t{j} = {code};"

    def port_loads(which, ind, index):
        for i in sorted(which):
            view, d = ports[i][1:3]
            if view in index:
                load = cg._load(d, f"a{i}[{index[view]}]")
                L.append(f"{ind}const {cg.ctype(_cdt(d))} x{i} = {load};")

    for j in reds:
        acc = acc_dtype(steps[j])
        L.append(f"    {cg.ctype(acc)} s{j};")
    # the accumulation over a part of the rows (phases 0 and 2)
    needed = _full_needed(body)
    reads = {r[1] for j in needed for r in steps[j].args if r[0] == "in"}
    reads |= {steps[j].args[0][1] for j in reds if steps[j].args[0][0] == "in"}
    full_out = [k for k, (_, form) in enumerate(body.outputs) if form == "full"]
    L += [
        "    if (phase_ != 1) {",
        "        const long long t_ = blockIdx.y;",
        "        const long long rlo = R_ * t_ / T_, rhi = R_ * (t_ + 1) / T_;",
    ]
    port_loads(reads, "        ", {"out": "c", "inner": "q"})
    for j in reds:
        L.append(f"        s{j} = {_identity(steps[j], acc_dtype(steps[j]))};")
    L += [
        "        for (long long r = rlo; r < rhi; ++r) {",
        "            const long long e = (p * R_ + r) * Q_ + q;",
    ]
    port_loads(reads, "            ", {"full": "e", "row": "p * R_ + r"})
    for j in needed:
        L.append(step_line(j, "            "))
    for j in reds:
        s = steps[j]
        acc = acc_dtype(s)
        code, d = get(s.args[0])
        v = cg.RENDERER.cast(code, d, acc)
        L.append(f"            s{j} = {_combine_code(s, f's{j}', v, acc)};")
    for k in full_out:
        ref = body.outputs[k][0]
        code, _ = get(ref)
        L.append(f"            o{k}[e] = {cg._store(ref_dtype(body, ref), code)};")
    L.append("        }")
    L.append("        if (phase_ == 0) {")
    for j in reds:
        L.append(f"            w{j}[t_ * C_ + c] = s{j};")
    L += ["            return;", "        }", "    } else {"]
    for j in reds:
        acc = acc_dtype(steps[j])
        L.append(f"        s{j} = w{j}[c];")
        L.append("        for (long long t = 1; t < T_; ++t)")
        L.append(
            f"            s{j} = {_combine_code(steps[j], f's{j}', f'w{j}[t * C_ + c]', acc)};"
        )
    L.append("    }")
    # finalize and the epilogue, once per column
    out_steps = [j for j, sp in enumerate(body.spaces) if sp == "out"]
    out_reads = {r[1] for j in out_steps for r in steps[j].args if r[0] == "in"}
    port_loads(out_reads, "    ", {"out": "c", "inner": "q"})
    for j in out_steps:
        if j not in reds:
            L.append(step_line(j, "    "))
            continue
        s = steps[j]
        acc = acc_dtype(s)
        val = f"s{j}"
        finalize = reduce_facts(s.op).finalize
        if finalize is not None:  # n: the number of reduced elements
            env = {"x": (val, acc), "n": (f"({cg.ctype(acc)})R_", acc)}
            val = cg.RENDERER.render(parse(finalize), env, acc)[0]
        out = _cdt(s.out)
        code = cg.RENDERER.cast(val, acc, out)
        if s.out == "float16":
            code = f"fj_round_h({code})"
        L.append(f"    const {cg.ctype(out)} t{j} = {code};")
    for k, (ref, form) in enumerate(body.outputs):
        if form != "full":
            code, _ = get(ref)
            L.append(f"    o{k}[c] = {cg._store(ref_dtype(body, ref), code)};")
    L.append("}")
    return "\n".join(L) + "\n"


def _full_needed(body: ColBody) -> list:
    roots = [body.steps[j].args[0] for j in reductions(body)]
    roots += [ref for ref, form in body.outputs if form == "full"]
    need: set = set()
    stack = [r[1] for r in roots if r[0] == "t" and body.spaces[r[1]] == "full"]
    while stack:
        j = stack.pop()
        if j not in need:
            need.add(j)
            stack += [r[1] for r in body.steps[j].args
                      if r[0] == "t" and body.spaces[r[1]] == "full"]  # fmt: skip
    return sorted(need)


def uses_half(body: ColBody) -> bool:
    return "float16" in ({p[2] for p in body.ports} | {s.out for s in body.steps}
                         | {s.compute for s in body.steps})  # fmt: skip


def kernel_source(body: ColBody, v: ColVariant = COLS, name: str = "fj_kernel",
                  fp16_header: bool = True) -> str:  # fmt: skip
    """A complete NVRTC source for one column kernel."""
    head = "#define FJ_HAVE_CUDA_FP16 1\n" if fp16_header and uses_half(body) else ""
    return (
        f"// fusejit column kernel {name}: CUDA cols codegen v{CUDA_COLS_VERSION}\n"
        + head
        + cg.prelude()
        + "\n"
        + render_col_kernel(body, name)
    )


__all__ = ["ColVariant", "COLS", "parts", "render_col_kernel", "kernel_source", "uses_half"]
