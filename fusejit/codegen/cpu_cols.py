"""CPU target for column kernels: a ``ColBody`` (see ``codegen/cols.py``) as numba source.

The generated module holds two functions:

- ``k_acc(plo, phi, qlo, qhi, rlo, rhi, ports..., outputs..., w...)``: for the outer columns
  plo to phi and the kept columns qlo to qhi, walks the reduced rows rlo to rhi and
  accumulates every reduction into its work row ``w<j>[p, q]`` (initialized by the launcher
  to the identity). The kept columns go in chunks of ``CHUNK``, so a chunk's accumulators stay
  in L1 while the rows stream past; the loop over a chunk is plain scalar code over 1-D
  contiguous slices, which LLVM vectorizes along the kept dim. Full outputs (an elementwise
  value of the prologue also needed outside) are stored on the way.
- ``k_fin(plo, phi, T, R, ports..., outputs..., w...)``: combines the T partial work rows
  ``w<j>[t]`` in order, finalizes (``mean`` divides by R) and runs the epilogue (the out
  steps), storing the out outputs.

The launcher (``backends/cpu_kernels.CpuColKernel``) splits the work over threads by outer
columns, by chunks of kept columns, or, when the columns are too few, by parts of the reduced
rows (each part its own work rows, combined in order by ``k_fin``): the split depends on the
shape and the thread count only, so results repeat exactly.

Numerics: elementwise steps are the elementwise kernels' code (float16 read as its bits and
computed in float32, rounded after each float16 step). Float sums and means accumulate in
float64, whatever the input dtype (float16, float32, float64): each column adds its terms in
row order, so a float32 column sum of n terms is within about n * eps64 * sum|t| + eps32 /
2 * |sum| of the exact sum (more accurate than eager float32, which adds in float32).
Integer and bool sums accumulate in int64 as eager does; amax/amin are exact and propagate
NaN (``llvm.maximum``: only the sign of a zero result may differ from numpy).
"""

from __future__ import annotations

from fusejit.codegen.body import round_half_consts
from fusejit.codegen.cols import ColBody, acc_dtype, reductions, ref_dtype
from fusejit.codegen.cpu import RENDERER, np_type
from fusejit.codegen.cpu_rows import (
    _OPTS,
    _PARTIALS,
    _combine,
    _held,
    _load,
    _step_code,
    _store,
    _vm_round,
)
from fusejit.codegen.expr import parse
from fusejit.codegen.rows import reduce_facts

CHUNK = 1024  # kept columns per accumulation chunk (8 KiB of float64 accumulators)
UNROLL = 4  # reduced rows an iteration of the accumulation loop handles


def work_dtypes(body: ColBody) -> list:
    """The numpy dtype of each reduction's work rows, in step order."""
    return [acc_dtype(body.steps[j]).np for j in reductions(body)]


def identities(body: ColBody) -> list:
    """The identity each reduction's work rows start from, in step order."""
    out = []
    for j in reductions(body):
        d = acc_dtype(body.steps[j])
        out.append(reduce_facts(body.steps[j].op).identity_of(d))
    return out


def col_kernel_source(body: ColBody) -> str:
    """The numba module of ``body`` (see the module docstring)."""
    body = round_half_consts(body)
    src = [
        "import math",
        "import numpy as np",
        "import numba",
        "from fusejit.codegen import cpu_rows as _rk",
        "from fusejit.kernels import cpu_math as _vm",
        "",
        "",
        *_acc_function(body),
        "",
        "",
        *_fin_function(body),
        "",
    ]
    return "\n".join(src)


def _names(body: ColBody) -> tuple[list, list]:
    io = [*[f"a{i}" for i in range(len(body.ports))], *[f"o{k}" for k in range(len(body.outputs))]]
    return io, [f"w{j}" for j in reductions(body)]


def _getter(body: ColBody, suffix: str = ""):
    """Names of refs in generated code; ``suffix`` names the full values of one of the rows
    an unrolled loop handles at once (ports of other views are loaded once for all)."""

    def get(ref):
        if ref[0] == "in":
            view, d = body.ports[ref[1]][1:3]
            if view == "scalar":
                return f"v{ref[1]}", _held(d)
            return f"x{ref[1]}{suffix if view in ('full', 'row') else ''}", _held(d)
        if ref[0] == "t":
            return f"t{ref[1]}{suffix}", _held(body.steps[ref[1]].out)
        d = _held(ref[2])
        return RENDERER.const(ref[1], d), d

    return get


def _full_needed(body: ColBody) -> list:
    """The full steps the accumulation evaluates (those the reductions and full outputs read)."""
    roots = [body.steps[j].args[0] for j in reductions(body)]
    roots += [ref for ref, form in body.outputs if form == "full"]
    need: set = set()
    stack = [r[1] for r in roots if r[0] == "t" and body.spaces[r[1]] == "full"]
    while stack:
        j = stack.pop()
        if j in need:
            continue
        need.add(j)
        stack += [r[1] for r in body.steps[j].args if r[0] == "t" and body.spaces[r[1]] == "full"]
    return sorted(need)


def _acc_function(body: ColBody) -> list:
    io, ws = _names(body)
    steps = body.steps
    L = [
        f"@numba.njit(**{_OPTS})",
        f"def k_acc(plo, phi, qlo, qhi, rlo, rhi, {', '.join(io + ws)}):",
    ]
    for i, (_, view, d, _dr) in enumerate(body.ports):
        if view == "scalar":
            L.append(f"    v{i} = {_load(d, f'a{i}[0]')}")
    L += [
        "    for p in range(plo, phi):",
        f"        for q0 in range(qlo, qhi, {CHUNK}):",
        f"            q1 = min(qhi, q0 + {CHUNK})",
        "            nq = q1 - q0",
    ]
    ind = "            "
    reds = reductions(body)
    for j in reds:
        L.append(f"{ind}w{j}c = w{j}[p, q0:q1]")
    needed = _full_needed(body)
    reads = {r[1] for j in needed for r in steps[j].args if r[0] == "in"}
    reads |= {steps[j].args[0][1] for j in reds if steps[j].args[0][0] == "in"}
    full_out = [k for k, (_, form) in enumerate(body.outputs) if form == "full"]
    for i in sorted(reads):
        view = body.ports[i][1]
        if view == "out":
            L.append(f"{ind}a{i}c = a{i}[p, q0:q1]")
        elif view == "inner":
            L.append(f"{ind}a{i}c = a{i}[q0:q1]")
    full = [i for i in sorted(reads) if body.ports[i][1] == "full"]
    per_row = [i for i in sorted(reads) if body.ports[i][1] == "row"]
    # UNROLL rows at a time (their terms combined pairwise, then into the accumulator: a
    # quarter of the accumulator traffic, and LLVM vectorizes this loop along the kept
    # columns), then the remaining rows one at a time
    L.append(f"{ind}r = rlo")
    for n_rows, loop in ((UNROLL, f"while r + {UNROLL} <= rhi:"), (1, "while r < rhi:")):
        sfx = [f"_{u}" for u in range(n_rows)] if n_rows > 1 else [""]
        L.append(f"{ind}{loop}")
        ind2 = ind + "    "
        for u, sf in enumerate(sfx):
            row = f"r + {u}" if u else "r"
            for i in full:
                L.append(f"{ind2}a{i}c{sf} = a{i}[p, {row}, q0:q1]")
            for i in per_row:  # (one value for the row's kept columns)
                L.append(f"{ind2}x{i}{sf} = {_load(body.ports[i][2], f'a{i}[p, {row}]')}")
            for k in full_out:
                L.append(f"{ind2}o{k}c{sf} = o{k}[p, {row}, q0:q1]")
        L.append(f"{ind2}for q in range(nq):")
        ind3 = ind2 + "    "
        for i in sorted(reads):
            view, d = body.ports[i][1:3]
            if view in ("out", "inner"):
                L.append(f"{ind3}x{i} = {_load(d, f'a{i}c[q]')}")
        for sf in sfx:
            get = _getter(body, sf)
            for i in full:
                L.append(f"{ind3}x{i}{sf} = {_load(body.ports[i][2], f'a{i}c{sf}[q]')}")
            for j in needed:
                L.append(f"{ind3}t{j}{sf} = {_step_code(body, j, get)}")
            for k in full_out:
                ref = body.outputs[k][0]
                code, _ = get(ref)
                L.append(f"{ind3}o{k}c{sf}[q] = {_store(ref_dtype(body, ref), code)}")
        for j in reds:
            s = steps[j]
            acc = acc_dtype(s)
            terms = []
            for sf in sfx:
                code, d = _getter(body, sf)(s.args[0])
                terms.append(RENDERER.cast(code, d, acc))
            while len(terms) > 1:  # pairwise: ((t0 . t1) . (t2 . t3))
                terms = [_combine(s, terms[m], terms[m + 1], acc, _PARTIALS)
                         for m in range(0, len(terms), 2)]  # fmt: skip
            L.append(f"{ind3}w{j}c[q] = {_combine(s, f'w{j}c[q]', terms[0], acc, _PARTIALS)}")
        if not reds and not full_out:
            L.append(f"{ind3}pass")
        L.append(f"{ind2}r += {n_rows}")
    return L


def _fin_function(body: ColBody) -> list:
    io, ws = _names(body)
    steps = body.steps
    get = _getter(body)
    L = [
        f"@numba.njit(**{_OPTS})",
        f"def k_fin(plo, phi, T, R, {', '.join(io + ws)}):",
    ]
    for i, (_, view, d, _dr) in enumerate(body.ports):
        if view == "scalar":
            L.append(f"    v{i} = {_load(d, f'a{i}[0]')}")
    reds = reductions(body)
    Q = f"w{reds[0]}.shape[2]"
    L += ["    for p in range(plo, phi):", f"        for q in range({Q}):"]
    ind = "            "
    out_steps = [j for j, sp in enumerate(body.spaces) if sp == "out"]
    reads = {r[1] for j in out_steps for r in steps[j].args if r[0] == "in"}
    for i in sorted(reads):
        view, d = body.ports[i][1:3]
        if view == "out":
            L.append(f"{ind}x{i} = {_load(d, f'a{i}[p, q]')}")
        elif view == "inner":
            L.append(f"{ind}x{i} = {_load(d, f'a{i}[q]')}")
    for j in out_steps:
        s = steps[j]
        if j not in reds:
            L.append(f"{ind}t{j} = {_step_code(body, j, get)}")
            continue
        acc = acc_dtype(s)
        L.append(f"{ind}s{j} = w{j}[0, p, q]")
        L.append(f"{ind}for t in range(1, T):")
        L.append(f"{ind}    s{j} = {_combine(s, f's{j}', f'w{j}[t, p, q]', acc, _PARTIALS)}")
        out = _held(s.out)
        val = f"s{j}"
        finalize = reduce_facts(s.op).finalize
        if finalize is not None:  # n: the number of reduced elements (in float64: one rounding)
            env = {"x": (val, acc), "n": (f"{np_type(acc)}(R)", acc)}
            val = RENDERER.render(parse(finalize), env, acc)[0]
        val = RENDERER.cast(val, acc, out)
        L.append(f"{ind}t{j} = {_vm_round(val) if s.out == 'float16' else val}")
    for k, (ref, form) in enumerate(body.outputs):
        if form != "full":
            code, _ = get(ref)
            L.append(f"{ind}o{k}[p, q] = {_store(ref_dtype(body, ref), code)}")
    return L


__all__ = ["col_kernel_source", "work_dtypes", "identities", "acc_dtype", "CHUNK"]
