"""CUDA target for row kernels: a ``RowBody`` (see ``codegen/rows.py``) as CUDA C.

Each row belongs to one warp (rows of up to ``WARP_MAX`` elements; 8 rows per block of 256
threads) or to one block: of ``SMALL_BLOCK`` (128) threads for rows of up to ``SMALL_ROWS``
elements, of 256 for longer ones. Thread ``lane`` of a row handles its elements
``lane, lane + T, lane + 2T, ...`` (T threads a row), so each warp reads consecutive addresses;
when every row is aligned for it (``vec`` > 1), chunks of 16 bytes instead: elements
``(lane + cT) V ... (lane + cT) V + V - 1``, one wide load and store each (on an H200 this
took softmax on rows of 4096 from 52% to 88% of the copy bandwidth).
Every pass of the schedule is a loop over those elements; a reduction keeps one partial per
thread, combined across the row with ``__shfl_xor_sync`` butterflies (every lane gets the
result) and, for a block, through shared memory: a fixed order, so results are reproducible.

Variants (``RowVariant``), chosen per launch by ``plan_rows`` from the row length N:

- ``cache`` > 0 (rows of up to 256 * ``MAX_CACHE`` elements): every element input is loaded
  into registers, ``cache`` elements per thread (a power of two), by a loop of its own that
  holds nothing but the (predicated) loads, so all of a thread's loads are in flight at once;
  the passes then run over registers and the input is read from global memory once, whatever
  the number of passes. The loops are unrolled so the register arrays are indexed statically.
  The passes are the plain ones (a max, then a sum of exponentials): over registers a pass
  costs little, and the online form's serial rescaling would not.
- ``cache`` = 0 (longer rows): every pass reads global memory again (L2 for rows that fit it),
  a multi-pass fallback. A softmax-like pair (``m = amax(f)``; ``s = sum(exp(f - m'))``, see
  ``rows.online_pairs``) accumulates online in one pass there: each thread keeps (m, s) and
  rescales s by exp(m_old - m_new) when its maximum grows; partial states merge the same way,
  so softmax reads its row twice (max and sum; normalize), not three times.

- ``split`` (rows too few to fill the GPU, each long, the body one pass over a row: a sum,
  mean, amax or amin of an elementwise expression, a whole tensor being one row): ``S_``
  blocks of 256 threads per row (``split_blocks``: about ``SPLIT_BLOCKS_PER_SM`` blocks per SM
  in all, each reducing ``SPLIT_CHUNK`` elements or more), block b reading the stretches
  b, b + S_, ... of 256 elements (of 256 chunks of 16 bytes, with wide loads). Each block
  stores its partial results in a work array and counts itself done in the row's counter
  (``__threadfence`` first, so the partials are visible before the count); the row's last
  block combines the S_ partials in block order (a fixed order: the result depends on S_, so
  on the GPU's SM count, not on timing), sets the counter back to zero for the next launch,
  and computes and stores the row's results. One kernel: no second launch for the final
  reduction.

A persistent form (a grid that fits the GPU, each block looping over rows, a layer norm's weight
loaded once per block) was measured 3-8 points of the copy bandwidth slower on an H200 and
removed (bench/RESULTS.md).

Numerics: float16 is loaded as float32, every step computed in float32 and rounded back to
float16 after each float16 step (as the elementwise kernels do); float16 sums and means
accumulate in float32. A thread adds its elements in order, then the partials are combined
pairwise: the error of a float32 sum of n terms is at most about (n / T + log2 T) * eps32 *
sum(|x|). The online softmax sum carries one extra rounding per rescale (about log n of them per
thread for random data). A division by a value computed along the row (softmax's sum, layer
norm's deviation) is a multiplication by its reciprocal, computed once per row (about 1 ulp
more than the division; infinities, zeros and NaNs as the division gives them; see
``_reciprocal``); a division by an input stays one (an optimizer's bias correction, read as a
scalar, then updates bitwise as eager's, as on the CPU). amax/amin propagate NaN; the sign of
a zero max/min is unspecified.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusejit.base import dtypes as dt
from fusejit.base.errors import CompileError
from fusejit.codegen import cuda as cg
from fusejit.codegen.body import render_step, round_half_consts
from fusejit.codegen.expr import parse
from fusejit.codegen.rows import (
    RowBody,
    deps,
    expensive,
    reduce_facts,
    ref_dtype,
    row_divisor,
    schedule,
)

CUDA_ROWS_VERSION = "1"
WARP = 32
# rows up to this long go to one warp each, longer ones to a block. Measured on an H200
# (bench/RESULTS.md): rows of 1024 ran at 30% (softmax) and 60% (layer norm) of the copy
# bandwidth with a warp each (32 elements per lane: few warps fit), 68% and 79% with a block
WARP_MAX = 256
# rows up to this long go to a block of SMALL_BLOCK threads, longer ones to cg.BLOCK threads.
# Measured on an H200 (bench/RESULTS.md), rows of 1024 in blocks of 128 threads against 256:
# softmax 85-89% of the copy bandwidth against 82-84%, layer norm 77% against 71-74%
SMALL_ROWS = 2048
SMALL_BLOCK = 128
MAX_CACHE = 32  # elements per thread kept in registers, at most
# split rows (see the module docstring), not measured yet (bench/bench_rows_cuda.py times the
# alternatives): as CUB's reductions, a grid that fills the GPU (8 blocks of 256 threads: 2048
# threads an SM), each thread's loop unrolled 4 times (4 loads of 16 bytes in flight)
SPLIT_CHUNK = 4096  # elements a block of a split row reduces at least (16 a thread)
SPLIT_BLOCKS_PER_SM = 8  # blocks of 256 threads the split rows fill each SM with
SPLIT_UNROLL = 4


@dataclass(frozen=True)
class RowVariant:
    """How a row kernel maps rows to threads; part of the compiled kernel's cache key."""

    mode: str  # "warp": a warp per row; "block": a block per row; "split": blocks per row
    cache: int = 0  # elements per thread of each re-read input kept in registers (0: none)
    vec: int = 1  # consecutive elements a thread moves with one load or store (cached rows)
    group: int = 0  # "block": threads per block (a row), 0 for cg.BLOCK

    @property
    def threads(self) -> int:
        """Threads per row."""
        return WARP if self.mode == "warp" else (self.group or cg.BLOCK)

    @property
    def block_threads(self) -> int:
        return cg.BLOCK if self.mode == "warp" else self.threads

    @property
    def rows_per_block(self) -> int:
        return self.block_threads // self.threads

    @property
    def tag(self) -> str:
        tag = f"rows-{self.mode}-c{self.cache}"
        tag += f"-v{self.vec}" if self.vec > 1 else ""
        return tag + (f"-t{self.group}" if self.group else "")


def element_ports(body: RowBody) -> list:
    """Ports read element by element (full rows or one row shared by all)."""
    return [i for i, p in enumerate(body.ports) if p[1] in ("full", "inner")]


def row_vec(body: RowBody) -> int:
    """Elements per wide load or store (``cuda.access_width`` of the element ports and the
    full outputs, at most 8 elements)."""
    sizes = [dt.as_dtype(body.ports[i][2]).itemsize for i in element_ports(body)]
    full_outs = [d for d, (_, form) in zip(body.out_dtypes(), body.outputs) if form == "full"]
    sizes += [dt.as_dtype(d).itemsize for d in full_outs]
    return cg.access_width(sizes, most=8)


def plan_rows(body: RowBody, N: int, aligned: bool = False) -> RowVariant:
    """The variant for rows of N elements (see the module docstring). ``aligned``: every
    element port's rows start on a multiple of ``row_vec(body)`` elements (so do the full
    outputs'), which allows wide loads and stores when N is such a multiple too."""
    if N >= 1 << 31:
        raise CompileError(f"CUDA row kernel: rows of {N} elements (at most 2**31 - 1)")
    mode = "warp" if N <= WARP_MAX else "block"
    group = SMALL_BLOCK if mode == "block" and N <= SMALL_ROWS else 0
    T = WARP if mode == "warp" else (group or cg.BLOCK)
    V = row_vec(body)
    if not aligned or N % V or V == 1:
        V = 1
    chunks = -(-max(N, 1) // (T * V))
    # registers even for an input read once: its loads are then issued together
    if chunks * V <= MAX_CACHE and element_ports(body):
        return RowVariant(mode, (1 << (chunks - 1).bit_length()) * V, V, group)
    return RowVariant(mode, 0, 1, group)


def grid_rows(R: int, v: RowVariant) -> int:
    """Blocks to launch for R rows: one per ``rows_per_block`` rows."""
    return max(1, -(-R // v.rows_per_block))


SPLIT = RowVariant("split")  # (4-byte loads; ``split_variant`` gives 16-byte ones if it can)


def split_variant(body: RowBody, aligned: bool) -> RowVariant:
    """The split variant: 16-byte loads and stores when ``aligned`` (as ``plan_rows``)."""
    V = row_vec(body)
    return RowVariant("split", 0, V) if aligned and V > 1 else SPLIT


def splittable(body: RowBody) -> bool:
    """Whether ``body`` can run as a split row: one pass over the row (its reductions need
    nothing the row reduces to), so the blocks of a row need each other only at the end."""
    return len(schedule(body, online=True).passes) == 1


def split_blocks(R: int, N: int, sm_count: int) -> int:
    """Blocks per row for R rows of N elements of a ``splittable`` body: more than one when
    the rows are too few to fill the GPU with ``SPLIT_BLOCKS_PER_SM`` blocks per SM, each
    block then reducing at least ``SPLIT_CHUNK`` elements; else 1 (``plan_rows``'s kernels)."""
    blocks = min(sm_count * SPLIT_BLOCKS_PER_SM // max(R, 1), N // SPLIT_CHUNK)
    return blocks if blocks >= 2 else 1


def render_row_kernel(body: RowBody, v: RowVariant, name: str = "fj_kernel") -> str:
    """The ``extern "C" __global__`` function of ``body`` in variant ``v`` (no prelude).

    Arguments, in order: the port pointers ``a0..`` (full ports as (R, N) rows ``ld<i>_``
    elements apart, inner ones as N elements, per-row ones as R, scalar ones as 1), the output
    pointers ``o0..`` (full: (R, N) contiguous; per-row: R), then ``R_``, ``N_`` and each full
    port's ``ld<i>_`` (all ``long long``). A ``split`` kernel (``S_`` blocks per row, a grid of
    R * S_) also takes, after the outputs, ``ws_`` (R * S_ * partials slots of 8 bytes) and
    ``cnt_`` (R counters, zero), and ``S_`` last.
    """
    body = round_half_consts(body)
    sch = schedule(body, online=not v.cache)
    if v.mode == "split" and len(sch.passes) != 1:
        raise CompileError(f"a split row kernel makes one pass over a row, not {len(sch.passes)}")
    steps = body.steps
    T = v.threads
    cached = set(element_ports(body)) if v.cache else set()
    co = cg.compute_of

    def cdt(name_):
        return co(dt.as_dtype(name_))

    ports = body.ports
    outs = body.out_dtypes()
    params = [f"const {cg.ctype(d)}* __restrict__ a{i}" for i, (_, _, d) in enumerate(ports)]
    params += [f"{cg.ctype(d)}* __restrict__ o{k}" for k, d in enumerate(outs)]
    split = v.mode == "split"
    if split:
        params += ["unsigned long long* __restrict__ ws_", "unsigned int* __restrict__ cnt_"]
    params += ["long long R_", "long long N_"]
    params += [f"long long ld{i}_" for i, p in enumerate(ports) if p[1] == "full"]
    if split:
        params.append("long long S_")
    L = [
        f'extern "C" __global__ void __launch_bounds__({v.block_threads}) {name}(',
        "    " + ",\n    ".join(params) + ") {",
    ]
    rpb = v.rows_per_block
    first_row = "(long long)blockIdx.x" + (f" * {rpb} + (threadIdx.x >> 5)" if rpb > 1 else "")
    if split:
        first_row = "(long long)blockIdx.x / S_"
    L += [
        "    const int lane = threadIdx.x" + (" & 31;" if v.mode == "warp" else ";"),
        f"    const long long r = {first_row};",
        "    if (r >= R_) return;  // a whole warp (or block) at once",
        # (a split row may be a whole tensor of 2**31 elements or more)
        "    const long long N = N_;" if split else "    const int N = (int)N_;",
    ]
    if split:
        L.append(
            "    const long long b_ = (long long)blockIdx.x % S_;  // this block's part of row r"
        )
    for i, (_, view, d) in enumerate(ports):
        if view == "full":
            L.append(f"    const {cg.ctype(d)}* a{i}r = a{i} + r * ld{i}_;")
        elif view in ("keep", "drop"):
            L.append(f"    const {cg.ctype(cdt(d))} v{i} = {cg._load(d, f'a{i}[r]')};")
        elif view == "scalar":
            L.append(f"    const {cg.ctype(cdt(d))} v{i} = {cg._load(d, f'a{i}[0]')};")
    for k, (_, form) in enumerate(body.outputs):
        if form == "full":
            L.append(f"    {cg.ctype(outs[k])}* o{k}r = o{k} + r * N_;")
    for i in sorted(cached):
        L.append(f"    {cg.ctype(cdt(ports[i][2]))} xc{i}[{v.cache}];")
    # with the row in registers, an expensive value (an exp, a tanh) that several passes use
    # is computed once and kept in registers too (softmax: exp(x - max) for the sum and the
    # normalization), rather than recomputed in each pass
    keep = set()
    if v.cache:
        keep = {j for j, ps_ in sch.uses.items() if len(ps_) > 1 and expensive(steps[j])}
    for j in sorted(keep):
        L.append(f"    {cg.ctype(cdt(steps[j].out))} tc{j}[{v.cache}];")
    kept: set = set()  # kept values already stored

    def get(ref):
        if ref[0] == "in":
            view, d = ports[ref[1]][1:]
            return (f"x{ref[1]}" if view in ("full", "inner") else f"v{ref[1]}"), cdt(d)
        if ref[0] == "t":
            return f"t{ref[1]}", cdt(steps[ref[1]].out)
        d = cdt(ref[2])
        return cg.RENDERER.const(ref[1], d), d

    recips: dict = {}  # div step by a per-row value -> name of the reciprocal (see _reciprocal)

    def step_code(j):
        s = steps[j]
        if j in recips:  # x / d as (x * (1 / (d * sc))) * sc, see _reciprocal
            a, ad = get(s.args[0])
            a = cg.RENDERER.cast(a, ad, cdt(s.compute))
            code, d = f"(({a} * {recips[j]}) * sc{j})", cdt(s.out)
            return (f"fj_round_h({code})" if s.out == "float16" else code), d
        code, d = render_step(s, cg.RENDERER, get, co)
        if s.op == "cast" and s.out == "float16" and ref_dtype(body, s.args[0]) == "float64":
            code = f"fj_h2f(fj_d2h({get(s.args[0])[0]}))"  # one rounding, not two
        elif s.out == "float16":
            code = f"fj_round_h({code})"
        return code, d

    def row_steps(js):
        for j in js:
            code, d = step_code(j)
            L.append(f"    const {cg.ctype(d)} t{j} = {code};")

    V = v.vec
    L += _load_loop(sorted(cached), ports, v, cdt)
    for p, ps in enumerate(sch.passes):
        row_steps(sch.before[p])
        online = [m for m in ps.reductions if m in sch.online]
        reds = list(ps.reductions) + [sch.online[m][0] for m in online]
        for j in reds:
            acc = cdt(steps[j].compute)
            L.append(f"    {cg.ctype(acc)} s{j} = {_identity(steps[j], acc)};")
        L.append(f"    // pass {p}")
        roots = [steps[j].args[0] for j in ps.reductions]
        pass_steps, from_regs = _pass_steps(body, ps, kept)
        reads = {r[1] for j in pass_steps for r in steps[j].args if r[0] == "in"}
        reads |= {r[1] for r in roots if r[0] == "in"}
        reads = {i for i in reads if ports[i][1] in ("full", "inner")}
        for j in pass_steps:
            if row_divisor(body, j) and j not in recips:
                _reciprocal(L, j, get(steps[j].args[1]), cdt(steps[j].compute))
                recips[j] = f"rcp{j}"

        def pass_loop(ps=ps, reads=reads, regs=from_regs, js=pass_steps) -> list:
            M: list = []
            wide_split = split and V > 1
            if wide_split:  # the block's part: every S_-th stretch of T chunks of V elements
                M += [f"#pragma unroll {SPLIT_UNROLL}",
                      f"    for (long long j0 = (b_ * {T} + lane) * {V}; j0 < N; "
                      f"j0 += S_ * {T * V}) {{"]  # fmt: skip
                M += [_wide_load(i, ports, V, "        ") for i in sorted(reads)]
                M += [f"        {cg._vec_t(outs[k], V)} w{k};" for k in ps.outputs]
                M += ["#pragma unroll", f"        for (int e = 0; e < {V}; ++e) {{"]
                ind = "            "
            elif V > 1:
                M += _chunk_open(v)
                M += [f"            {cg._vec_t(outs[k], V)} w{k};" for k in ps.outputs]
                M += ["#pragma unroll", f"            for (int e = 0; e < {V}; ++e) {{",
                      f"                const int c = cc * {V} + e;"]  # fmt: skip
                ind = "                "
            elif v.cache:
                M += ["#pragma unroll", f"    for (int c = 0; c < {v.cache}; ++c) {{",
                      f"        const int j = lane + c * {T};", "        if (j < N) {"]  # fmt: skip
                ind = "            "
            elif split:  # the block's part: every S_-th stretch of T elements
                M += [
                    f"#pragma unroll {SPLIT_UNROLL}",
                    f"    for (long long j = b_ * {T} + lane; j < N; j += S_ * {T}) {{",
                ]
                ind = "        "
            else:
                M.append(f"    for (int j = lane; j < N; j += {T}) {{")
                ind = "        "
            for i in sorted(reads):
                ty = cg.ctype(cdt(ports[i][2]))
                if v.cache:
                    M.append(f"{ind}const {ty} x{i} = xc{i}[c];")
                elif wide_split:
                    M.append(f"{ind}const {ty} x{i} = {cg._load(ports[i][2], f'u{i}.v[e]')};")
                else:
                    src = f"a{i}r[j]" if ports[i][1] == "full" else f"a{i}[j]"
                    M.append(f"{ind}const {ty} x{i} = {cg._load(ports[i][2], src)};")
            for j in sorted(regs):
                M.append(f"{ind}const {cg.ctype(cdt(steps[j].out))} t{j} = tc{j}[c];")
            for j in js:
                code, d = step_code(j)
                M.append(f"{ind}const {cg.ctype(d)} t{j} = {code};")
                if j in keep and j not in kept:  # noqa: B023 (called at once)
                    M.append(f"{ind}tc{j}[c] = t{j};")
            for j in ps.reductions:
                s = steps[j]
                acc = cdt(s.compute)
                code, d = get(s.args[0])
                val = cg.RENDERER.cast(code, d, acc)
                if j in sch.online:
                    js, stable = sch.online[j]
                    st = "true" if stable else "false"
                    M += [
                        f"{ind}{{",
                        f"{ind}    const {cg.ctype(acc)} mn = fj_rmax(s{j}, {val});",
                        f"{ind}    const {cg.ctype(acc)} on = fj_off(mn, {st});",
                        f"{ind}    s{js} = fj_rescale(s{js}, fj_off(s{j}, {st}), on) + "
                        f"fj_oexp({val}, on);",
                        f"{ind}    s{j} = mn;",
                        f"{ind}}}",
                    ]
                else:
                    M.append(f"{ind}s{j} = {_combine_code(s, f's{j}', val, acc)};")
            for k in ps.outputs:
                code, _ = get(body.outputs[k][0])
                dst = f"w{k}.v[e]" if V > 1 else f"o{k}r[j]"
                M.append(f"{ind}{dst} = {cg._store(outs[k], code)};")
            if V > 1:
                close = "        " if wide_split else "            "
                M.append(close + "}")
                for k in ps.outputs:
                    vt = cg._vec_t(outs[k], V)
                    M.append(f"{close}*reinterpret_cast<{vt}*>(o{k}r + j0) = w{k};")
            M += ["        }", "    }"] if v.cache else ["    }"]
            return M

        L += pass_loop()
        kept |= keep & set(pass_steps)
        _combine(L, body, ps.reductions, sch.online, v)
        if split:
            _gather(L, body, ps.reductions, sch.online, v)
        for j in ps.reductions:
            _finalize(L, steps[j], j)
            if j in sch.online:
                js, stable = sch.online[j]
                if not stable:
                    L.append(f"    s{js} = fj_online_sum(s{js}, s{j});")
                _finalize(L, steps[js], js)
    row_steps(sch.before[len(sch.passes)])
    for k, (ref, form) in enumerate(body.outputs):
        if form != "full":
            code, _ = get(ref)
            L.append(f"    if (lane == 0) o{k}[r] = {cg._store(outs[k], code)};")
    L.append("}")
    return "\n".join(L) + "\n"


def _chunk_open(v: RowVariant) -> list:
    """The head of a loop over a thread's chunks (``vec`` > 1): chunk ``cc`` holds elements
    ``(lane + cc T) V ... (lane + cc T) V + V - 1``, all in the row or none (N % V == 0)."""
    V = v.vec
    return [
        "#pragma unroll",
        f"    for (int cc = 0; cc < {v.cache // V}; ++cc) {{",
        f"        const int j0 = (lane + cc * {v.threads}) * {V};",
        "        if (j0 < N) {",
    ]


def _load_loop(which: list, ports, v: RowVariant, cdt) -> list:
    """The loop loading ports ``which`` into their registers ``xc<i>``, all loads of a thread
    in flight at once: nothing else in the loop (zeros past the row's end)."""
    if not which:
        return []
    T, V = v.threads, v.vec
    L: list = []
    if V == 1:
        L += ["#pragma unroll", f"    for (int c = 0; c < {v.cache}; ++c) {{",
              f"        const int j = lane + c * {T};"]  # fmt: skip
        for i in which:
            d = ports[i][2]
            src = f"a{i}r[j]" if ports[i][1] == "full" else f"a{i}[j]"
            L.append(f"        xc{i}[c] = j < N ? {cg._load(d, src)} : ({cg.ctype(cdt(d))})0;")
        return L + ["    }"]
    L += _chunk_open(v)  # wide loads, a chunk of V elements at a time
    L += [_wide_load(i, ports, V, "            ") for i in which]
    L += ["#pragma unroll", f"            for (int e = 0; e < {V}; ++e) {{"]
    for i in which:
        val = cg._load(ports[i][2], f"u{i}.v[e]")
        L.append(f"                xc{i}[cc * {V} + e] = {val};")
    L += ["            }", "        } else {", "#pragma unroll",
          f"            for (int e = 0; e < {V}; ++e) {{"]  # fmt: skip
    for i in which:
        L.append(f"                xc{i}[cc * {V} + e] = ({cg.ctype(cdt(ports[i][2]))})0;")
    return L + ["            }", "        }", "    }"]


def _wide_load(i: int, ports, V: int, ind: str) -> str:
    """Port ``i``'s V elements from ``j0`` on, in one load (``u<i>``)."""
    vt = cg._vec_t(ports[i][2], V)
    base = f"a{i}r" if ports[i][1] == "full" else f"a{i}"
    return f"{ind}const {vt} u{i} = *reinterpret_cast<const {vt}*>({base} + j0);"


def _reciprocal(L: list, j: int, divisor, ty: dt.DType) -> None:
    """Per row, the reciprocal ``rcp<j>`` of div step ``j``'s divisor and a power-of-two
    scale ``sc<j>``: the step then multiplies, ``(x * rcp) * sc``, one IEEE division per row
    instead of one per element (each a call to a slow path on the GPU). The divisor is scaled
    by ``sc`` first when it is so small or so large that its reciprocal would overflow or be
    subnormal, so the result is x / d within about 1 ulp, with the same infinities, zeros and
    NaNs as the division (d = 0: rcp = inf; d = inf: rcp = 0; NaN stays NaN)."""
    code, d = divisor
    c = cg.ctype(ty)
    k = 64 if ty is not dt.float64 else 512
    d_ = cg.RENDERER.cast(code, d, ty)
    L.append(f"    const {c} d{j} = {d_};")
    ab = f"{'fabs' if ty is dt.float64 else 'fabsf'}(d{j})"
    L.append(f"    const {c} sc{j} = {ab} < ({c})0x1p-{k} ? ({c})0x1p{k} : "
             f"({ab} > ({c})0x1p{k} ? ({c})0x1p-{k} : ({c})1);")  # fmt: skip
    L.append(f"    const {c} rcp{j} = ({c})1 / (d{j} * sc{j});")


def _pass_steps(body: RowBody, ps, kept: set) -> tuple[list, set]:
    """The full steps pass ``ps`` evaluates, in order, and the kept values it reads from
    registers instead (their inputs are then not evaluated, unless needed otherwise)."""
    roots = [body.steps[j].args[0] for j in ps.reductions]
    roots += [body.outputs[i][0] for i in ps.outputs]
    need: set = set()
    regs: set = set()
    stack = [r[1] for r in roots if r[0] == "t" and body.spaces[r[1]] == "full"]
    while stack:
        j = stack.pop()
        if j in need or j in regs:
            continue
        if j in kept:
            regs.add(j)
            continue
        need.add(j)
        stack += [d for d in deps(body, j) if body.spaces[d] == "full"]
    return sorted(need), regs


def _acc(step) -> dt.DType:
    """The dtype reduction ``step`` accumulates in, inside the kernel."""
    return cg.compute_of(dt.as_dtype(step.compute))


def _identity(step, acc: dt.DType) -> str:
    """The neutral element of reduction ``step`` in its accumulation dtype ``acc``."""
    return cg.RENDERER.const(reduce_facts(step.op).identity_of(acc), acc)


def _combine_code(step, a: str, b: str, acc: dt.DType) -> str:
    """Reduction ``step``'s combine of ``a`` and ``b`` (of its accumulation dtype ``acc``)."""
    env = {"x": (a, acc), "y": (b, acc)}
    return cg.RENDERER.render(parse(reduce_facts(step.op).combine), env, acc)[0]


def _combine(L: list, body: RowBody, reds: list, online: dict, v: RowVariant) -> None:
    """Combine the per-thread partials of ``reds`` across the row's threads."""
    if not reds:
        return
    steps = body.steps
    L.append("#pragma unroll")
    L.append("    for (int o = 16; o > 0; o >>= 1) {")
    for j in reds:
        if j in online:
            js, stable = online[j]
            L += _merge_lines(j, js, stable, f"__shfl_xor_sync(0xffffffffu, s{j}, o)",
                              f"__shfl_xor_sync(0xffffffffu, s{js}, o)", "        ",
                              cg.ctype(cg.compute_of(dt.as_dtype(steps[j].compute))))  # fmt: skip
        else:
            acc = _acc(steps[j])
            # (the shuffle widens 8- and 16-bit ints to int: back to the partial's type, so
            # that the combine sees two values of one type)
            other = f"({cg.ctype(acc)})__shfl_xor_sync(0xffffffffu, s{j}, o)"
            L.append(f"        s{j} = {_combine_code(steps[j], f's{j}', other, acc)};")
    L.append("    }")
    if v.mode == "warp":
        return
    n_warps = v.block_threads // WARP
    parts = [(j, None) for j in reds] + [(online[j][0], j) for j in reds if j in online]
    for j, _ in parts:
        ty = cg.ctype(cg.compute_of(dt.as_dtype(steps[j].compute)))
        L.append(f"    __shared__ {ty} sh{j}[{n_warps}];")
    L.append("    if ((threadIdx.x & 31) == 0) {")
    L += [f"        sh{j}[threadIdx.x >> 5] = s{j};" for j, _ in parts]
    L += ["    }", "    __syncthreads();"]
    for j in reds:
        if j in online:
            js, stable = online[j]
            ty = cg.ctype(cg.compute_of(dt.as_dtype(steps[j].compute)))
            L += [f"    s{j} = sh{j}[0];", f"    s{js} = sh{js}[0];"]
            L.append(f"    for (int w = 1; w < {n_warps}; ++w) {{")
            L += _merge_lines(j, js, stable, f"sh{j}[w]", f"sh{js}[w]", "        ", ty)
            L.append("    }")
        else:
            both = _combine_code(steps[j], f"s{j}", f"sh{j}[w]", _acc(steps[j]))
            L.append(f"    s{j} = sh{j}[0];")
            L.append(f"    for (int w = 1; w < {n_warps}; ++w) s{j} = {both};")


def partials(body: RowBody) -> int:
    """The partial results a block of a split row stores: one per reduction (two for an
    online softmax pair's); 0 when ``body`` is not ``splittable``."""
    sch = schedule(body, online=True)
    if len(sch.passes) != 1:
        return 0
    reds = sch.passes[0].reductions
    return len(reds) + sum(m in sch.online for m in reds)


def _gather(L: list, body: RowBody, reds: list, online: dict, v: RowVariant) -> None:
    """Split rows: each block stores its partials of ``reds`` in ``ws_`` (8 bytes each) and
    counts itself in ``cnt_[r]``; the row's last block to count (which sets the count back to
    0 for the next launch) combines every block's partials, in a fixed order, and goes on with
    the row's results. The other blocks return."""
    steps = body.steps
    parts = list(reds) + [online[j][0] for j in reds if j in online]
    slot = {j: p for p, j in enumerate(parts)}
    P = len(parts)

    def acc(j):
        return cg.compute_of(dt.as_dtype(steps[j].compute))

    def ty(j):
        return cg.ctype(acc(j))

    def load(j):
        return f"*reinterpret_cast<const volatile {ty(j)}*>(w_ + {slot[j]})"

    L += ["    __shared__ int last_;", "    if (threadIdx.x == 0) {",
          f"        unsigned long long* w_ = ws_ + (r * S_ + b_) * {P};"]  # fmt: skip
    L += [f"        *reinterpret_cast<{ty(j)}*>(w_ + {slot[j]}) = s{j};" for j in parts]
    L += [
        "        __threadfence();  // the partials are seen by the other blocks before the count",
        "        last_ = atomicAdd(cnt_ + r, 1u) == (unsigned int)(S_ - 1);",
        "    }",
        "    __syncthreads();",
        "    if (!last_) return;",
        "    __threadfence();",
        "    if (threadIdx.x == 0) cnt_[r] = 0u;",
    ]
    L += [f"    s{j} = {_identity(steps[j], acc(j))};" for j in parts]
    L += [f"    for (long long w = lane; w < S_; w += {v.threads}) {{",
          f"        const volatile unsigned long long* w_ = ws_ + (r * S_ + w) * {P};"]  # fmt: skip
    for j in reds:
        if j in online:
            js, stable = online[j]
            L += _merge_lines(j, js, stable, load(j), load(js), "        ", ty(j))
        else:
            L.append(f"        s{j} = {_combine_code(steps[j], f's{j}', load(j), acc(j))};")
    L.append("    }")
    L.append("    {  // (a scope of its own for the combine's shared arrays)")
    _combine(L, body, reds, online, v)
    L.append("    }")


def _merge_lines(m, s, stable, m2, s2, ind, ty) -> list:
    st = "true" if stable else "false"
    return [
        f"{ind}{{",
        f"{ind}    const {ty} mo = {m2};",
        f"{ind}    const {ty} so = {s2};",
        f"{ind}    const {ty} mn = fj_rmax(s{m}, mo);",
        f"{ind}    const {ty} on = fj_off(mn, {st});",
        f"{ind}    s{s} = fj_rescale(s{s}, fj_off(s{m}, {st}), on) + "
        f"fj_rescale(so, fj_off(mo, {st}), on);",
        f"{ind}    s{m} = mn;",
        f"{ind}}}",
    ]


def _finalize(L: list, step, j: int) -> None:
    """The row's result ``t<j>`` of reduction ``step`` (its ``Reduce.finalize``, n the row
    length), rounded to float16 for a float16 result."""
    acc = _acc(step)
    out = dt.as_dtype(step.out)
    val = f"s{j}"
    finalize = reduce_facts(step.op).finalize
    if finalize is not None:
        env = {"x": (val, acc), "n": (f"({cg.ctype(acc)})N", acc)}
        val = cg.RENDERER.render(parse(finalize), env, acc)[0]
    code = cg.RENDERER.cast(val, acc, cg.compute_of(out))
    if out is dt.float16:
        code = f"fj_round_h({code})"
    L.append(f"    const {cg.ctype(cg.compute_of(out))} t{j} = {code};")


def kernel_source(body: RowBody, v: RowVariant, name: str = "fj_kernel",
                  fp16_header: bool = True) -> str:  # fmt: skip
    """A complete NVRTC source for one row kernel."""
    head = "#define FJ_HAVE_CUDA_FP16 1\n" if fp16_header and uses_half(body) else ""
    return (
        f"// fusejit row kernel {name}: variant {v.tag}, CUDA rows codegen v{CUDA_ROWS_VERSION}\n"
        + head
        + cg.prelude()
        + "\n"
        + render_row_kernel(body, v, name)
    )


def uses_half(body: RowBody) -> bool:
    return "float16" in ({p[2] for p in body.ports} | {s.out for s in body.steps}
                         | {s.compute for s in body.steps})  # fmt: skip


__all__ = ["RowVariant", "plan_rows", "row_vec", "grid_rows", "render_row_kernel", "kernel_source",
           "element_ports", "uses_half", "SPLIT", "split_variant", "splittable", "split_blocks",
           "partials"]  # fmt: skip
