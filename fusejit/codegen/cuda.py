"""CUDA target: renders a ``KernelBody`` as CUDA C (compiled with NVRTC at run time, and with
nvcc in the tests), and plans how a kernel is launched over given arrays.

Semantics follow numpy op by op, as the CPU target does: every integer intermediate is cast
back to its dtype (wrapping), ``//`` and ``%`` are Python's, float32 uses the ``f`` versions
of libm (``expf``, ``tanhf``, ...; accurate to a few ulp, no fast-math flags; the one fast
intrinsic is float32 sigmoid's division, by a divisor in [1, 2] where it is accurate: see
``kernels/cuda_prelude.cuh``, at most ~4 ulp). float16 is
stored as ``fj_half`` and computed in float32, each float16 step rounded back to float16 so that
fused results equal eager ones.

Kernel variants (a ``Variant``), all grid-stride loops with sizes and strides as arguments, so
one compiled kernel serves every shape:

- ``flat``: every array contiguous with the output's shape; with ``vec`` > 1 each thread moves
  ``vec`` consecutive elements per array with one aligned load/store of up to 16 bytes, and a
  scalar tail handles ``n % vec`` elements;
- ``nd``: strided or broadcast inputs (stride 0 on broadcast dims) after ``coalesce`` merged
  the dims it can; with ``vec`` > 1, inputs whose innermost stride is 1 are loaded ``vec`` at a
  time and inputs broadcast along it (stride 0) once per chunk;
- ``bits``: 32-bit index arithmetic when every index and offset fits, else 64-bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import CompileError
from fusejit.codegen.body import (
    KernelBody,
    half_as_float32,
    half_rounding,
    render_steps,
    round_half_consts,
)
from fusejit.codegen.expr import Renderer

CUDA_CODEGEN_VERSION = "1"
BLOCK = 256  # threads per block; every kernel is compiled with __launch_bounds__(BLOCK)
_I32 = 1 << 31

C_TYPES = {
    "bool": "bool", "uint8": "unsigned char", "int8": "signed char", "int16": "short",
    "int32": "int", "int64": "long long", "float16": "fj_half", "float32": "float",
    "float64": "double",
}  # fmt: skip
_WIDE_INTS = ("int32", "int64")
_WRAP_FN = {"+": "fj_wadd", "-": "fj_wsub", "*": "fj_wmul"}
_F32_INF = "__int_as_float(0x7f800000)"
_F64_INF = "__longlong_as_double(0x7ff0000000000000LL)"


compute_of = half_as_float32  # the dtype a value is held in inside a kernel


def ctype(d) -> str:
    return C_TYPES[dt.as_dtype(d).name]


class CudaRenderer(Renderer):
    """CUDA C spellings of the expression language (see ``Renderer``)."""

    def const(self, value, d):
        if d is dt.bool_:
            return "true" if value else "false"
        if d.is_floating_point:
            with np.errstate(over="ignore"):
                v = float(value)
                if d is dt.float16:
                    v = float(np.float16(v))
                if d is not dt.float64:
                    v = float(np.float32(v))
            single = d is not dt.float64
            if math.isnan(v):
                return (
                    "__int_as_float(0x7fc00000)"
                    if single
                    else ("__longlong_as_double(0x7ff8000000000000LL)")
                )
            if math.isinf(v):
                inf = _F32_INF if single else _F64_INF
                return f"(-{inf})" if v < 0 else inf
            # repr is the shortest decimal that reads back as the same double, and that double
            # is exactly the float32 value, so the 'f' literal is exact too
            text = repr(v) + ("f" if single else "")
            return f"({text})" if text.startswith("-") else text
        bits = 8 * d.itemsize
        v = int(value) % (1 << bits)
        if d.kind == "i" and v >= 1 << (bits - 1):
            v -= 1 << bits
        if d is dt.int64:
            if v == -(1 << 63):
                return "(-9223372036854775807LL - 1LL)"
            return f"({v}LL)" if v < 0 else f"{v}LL"
        return f"(({ctype(d)}){v})"

    def cast(self, a, src, dst):
        if src is dst:
            return a
        if dst is dt.bool_:
            return f"({a} != 0)"
        if dst is dt.float16:  # only reached when float16 is not mapped to float32
            return f"fj_round_h((float)({a}))"
        if src.is_floating_point and dst.is_integer and dst.itemsize < 4:
            # through int as numpy does on x86, so out-of-range values wrap instead of saturate
            return f"(({ctype(dst)})(int)({a}))"
        return f"(({ctype(dst)})({a}))"

    def func(self, name, args, d):
        if name == "sigmoid":
            fn = "fj_sigmoid"
        elif name == "abs":
            fn = "fabs" if d is dt.float64 else "fabsf"
        else:
            fn = name if d is dt.float64 else name + "f"
        return f"{fn}({', '.join(args)})"

    def extreme(self, name, a, b, d):
        return f"fj_r{name}({a}, {b})"  # (the prelude's NaN-propagating templates)

    def where(self, c, a, b, d):
        if d.is_integer:
            return f"(({ctype(d)})({c} ? {a} : {b}))"
        return f"({c} ? {a} : {b})"

    def classify(self, name, a, d):
        if not d.is_floating_point:
            return "true" if name == "isfinite" else "false"
        return f"fj_{name}({a})"

    def logic(self, op, a, b):
        return f"({a} {'&&' if op == 'and' else '||'} {b})"

    def lnot(self, a):
        return f"(!{a})"

    def binop(self, op, a, b, d):
        if d is dt.bool_:
            # numpy computes bool arithmetic in bool: + is or, * is and
            if op in ("&", "|", "^"):
                return f"((bool)({a} {op} {b}))"
            if op in ("+", "*"):
                return f"({a} {'||' if op == '+' else '&&'} {b})"
            raise CompileError(f"CUDA codegen: operator {op} on bool values")
        if op == "//":
            return f"fj_floordiv({a}, {b})"
        if op == "%":
            return f"fj_mod({a}, {b})"
        if d.is_floating_point:
            if op == "**":
                return f"{'pow' if d is dt.float64 else 'powf'}({a}, {b})"
            return f"({a} {op} {b})"
        t = ctype(d)
        if op == "**":
            return f"fj_ipow<{t}>({a}, {b})"
        if op == "/":
            raise CompileError("CUDA codegen: true division of integers (ops compute it in float)")
        if op in _WRAP_FN and d.name in _WIDE_INTS:
            return f"{_WRAP_FN[op]}({a}, {b})"
        return f"(({t})({a} {op} {b}))"

    def unop(self, op, a, d):
        if op == "-":
            if d.is_floating_point:
                return f"(-{a})"
            if d.name in _WIDE_INTS:
                return f"fj_wneg({a})"
        return f"(({ctype(d)})({op}{a}))"

    def cmp(self, op, a, b, d):
        return f"({a} {op} {b})"

    def truth(self, a, d):
        return a if d is dt.bool_ else f"({a} != 0)"

    def intabs(self, a, d):
        if d.name in _WIDE_INTS:
            return f"fj_wabs({a})"
        if d.kind == "u":
            return a
        return f"(({ctype(d)})({a} < 0 ? -{a} : {a}))"


RENDERER = CudaRenderer()


@dataclass(frozen=True)
class Variant:
    """How a kernel indexes its arrays; part of the compiled kernel's cache key."""

    layout: str  # "flat" (contiguous, same shape) or "nd" (strides as arguments)
    vec: int = 1  # elements per thread and iteration, moved with one wide load/store
    rank: int = 1  # dims of the (coalesced) iteration space, for "nd"
    bits: int = 32  # width of index arithmetic
    inner: tuple = ()  # "nd" with vec > 1: each input's innermost stride, 0 or 1

    @property
    def tag(self) -> str:
        parts = ["flat" if self.layout == "flat" else f"nd{self.rank}", f"i{self.bits}"]
        if self.vec > 1:
            parts.append(f"v{self.vec}")
        if self.inner:
            parts.append("b" + "".join(str(s) for s in self.inner))
        return "-".join(parts)


def _dtypes_of(body: KernelBody) -> set:
    names = set(body.in_dtypes) | set(body.out_dtypes())
    for s in body.steps:
        names |= {s.compute, s.out}
    return names


def uses_half(body: KernelBody) -> bool:
    return "float16" in _dtypes_of(body)


# Elements per vector when every array has 1-byte elements. NVRTC/nvcc 13.0 for sm_90
# miscompiles wider ones: a 16-byte vector of int8 is unpacked into 16-bit register halves, and
# the low byte of a half is then used without its sign extension (PTX: `neg.s16` and
# `setp.gt.s16` on the half, no `cvt.s16.s8`), so `(int8)(-x) > 0` tested the pair of bytes:
# wrong results on an H200 for x = -7 beside a positive neighbour. With 4 elements the bytes
# are loaded one per register (`ld.v4.u8`) and sign-extended as they should be.
BYTE_VECTOR_MAX = 4


def access_width(itemsizes, max_bytes: int = 16, most: int = 16) -> int:
    """Elements per wide access for arrays of these element sizes: ``max_bytes`` of the widest
    (at most ``most`` elements; ``BYTE_VECTOR_MAX`` when every array has 1-byte elements)."""
    widest = max(itemsizes, default=0)
    if widest == 0:
        return 1
    if widest == 1:
        return BYTE_VECTOR_MAX
    return max(1, min(most, max_bytes // widest))


def vector_width(body: KernelBody, max_bytes: int = 16) -> int:
    """Elements per thread and iteration (``access_width`` of every array of ``body``). Above
    16 bytes a thread issues several 16-byte loads per array at once."""
    return access_width(
        [dt.as_dtype(d).itemsize for d in (*body.in_dtypes, *body.out_dtypes())], max_bytes
    )


@lru_cache(maxsize=1)
def prelude() -> str:
    """The helper functions every kernel source starts with (``kernels/cuda_prelude.cuh``)."""
    here = Path(__file__).resolve().parent
    for p in (here.parent / "kernels", here.parent.parent / "kernels"):
        f = p / "cuda_prelude.cuh"
        if f.is_file():
            return f.read_text()
    raise CompileError(
        "CUDA codegen: kernels/cuda_prelude.cuh is missing from this installation (it must be "
        "installed as package data of fusejit.kernels)"
    )


def _compute_lines(body: KernelBody, loads: list, indent: str):
    """Declarations of the loaded inputs and of every step; returns (lines, output codes)."""
    lines = []
    names = []
    for i, (d, load) in enumerate(zip(body.in_dtypes, loads, strict=True)):
        lines.append(f"{indent}const {ctype(compute_of(dt.as_dtype(d)))} x{i} = {load};")
        names.append(f"x{i}")
    steps, outs = render_steps(body, RENDERER, names, compute_of)
    for step, (name, code, d) in zip(body.steps, steps, strict=True):
        how = half_rounding(body, step)
        if how == "from_float64":
            code = f"fj_h2f(fj_d2h({_ref_code(body, step.args[0])}))"
        elif how == "round":
            code = f"fj_round_h({code})"
        lines.append(f"{indent}const {ctype(d)} {name} = {code};")
    return lines, [code for code, _ in outs]


def _ref_code(body: KernelBody, ref) -> str:
    if ref[0] == "in":
        return f"x{ref[1]}"
    if ref[0] == "t":
        return f"t{ref[1]}"
    return RENDERER.const(ref[1], compute_of(dt.as_dtype(ref[2])))


def _load(d: str, raw: str) -> str:
    return f"fj_h2f({raw})" if d == "float16" else raw


def _store(d: str, code: str) -> str:
    return f"fj_f2h({code})" if d == "float16" else code


def _vec_t(d: str, v: int) -> str:
    return f"fj_vec<{ctype(d)}, {v}>"


def render_kernel(body: KernelBody, v: Variant, name: str = "fj_kernel") -> str:
    """The ``extern "C" __global__`` function of ``body`` in variant ``v`` (no prelude).

    Arguments, in order: the input pointers ``a0..``, the output pointers ``o0..``, the element
    count ``n``; for ``nd`` also the coalesced shape ``s0..`` and each input's strides in
    elements ``st<i>_<d>`` (all ``long long``).
    """
    if v.layout not in ("flat", "nd"):
        raise CompileError(f"CUDA codegen: unknown kernel layout {v.layout!r}")
    body = round_half_consts(body)
    ins = list(body.in_dtypes)
    outs = list(body.out_dtypes())
    nd = v.layout == "nd"
    rank = v.rank if nd else 1
    if nd and v.vec > 1 and len(v.inner) != len(ins):
        raise CompileError("CUDA codegen: a vectorized nd variant needs every input's inner stride")
    params = [f"const {ctype(d)}* __restrict__ a{i}" for i, d in enumerate(ins)]
    params += [f"{ctype(d)}* __restrict__ o{k}" for k, d in enumerate(outs)]
    params.append("long long n_")
    if nd:
        params += [f"long long s{d}_" for d in range(rank)]
        params += [f"long long st{i}_{d}_" for i in range(len(ins)) for d in range(rank)]
    idx, off = ("unsigned int", "int") if v.bits == 32 else ("unsigned long long", "long long")
    L = [
        f'extern "C" __global__ void __launch_bounds__({BLOCK}) {name}(',
        "    " + ",\n    ".join(params) + ") {",
        f"    typedef {idx} fj_idx;",
        f"    typedef {off} fj_off;",
        "    const fj_idx n = (fj_idx)n_;",
        "    const fj_idx gid = (fj_idx)blockIdx.x * blockDim.x + threadIdx.x;",
        "    const fj_idx step = (fj_idx)gridDim.x * blockDim.x;",
    ]
    if nd:
        L += [f"    const fj_idx s{d} = (fj_idx)s{d}_;" for d in range(1, rank)]
        # a vectorized variant knows each input's innermost stride: no variable for it
        L += [
            f"    const fj_off st{i}_{d} = (fj_off)st{i}_{d}_;"
            for i in range(len(ins))
            for d in range(rank - 1 if v.inner else rank)
        ]

    def scalar_body(index: str, ind: str, offsets: list | None) -> list:
        loads = [_load(d, f"a{i}[{offsets[i] if offsets else index}]") for i, d in enumerate(ins)]
        lines, codes = _compute_lines(body, loads, ind)
        lines += [
            f"{ind}o{k}[{index}] = {_store(d, c)};"
            for k, (d, c) in enumerate(zip(outs, codes, strict=True))
        ]
        return lines

    def coords(first: str, ind: str, inner: tuple = ()) -> tuple[list, list]:
        """Split linear index ``first`` into coordinates, then each input's offset."""
        lines = [f"{ind}fj_idx q = {first};"]
        for d in range(rank - 1, 0, -1):
            lines.append(f"{ind}const fj_idx k{d} = q % s{d};")
            lines.append(f"{ind}q /= s{d};")
        lines.append(f"{ind}const fj_idx k0 = q;")
        offs = []
        for i in range(len(ins)):
            terms = []
            for d in range(rank):
                if inner and d == rank - 1:
                    if inner[i] == 1:  # innermost stride known to be 1: no multiply
                        terms.append(f"(fj_off)k{d}")
                    continue  # known 0: broadcast along the innermost dim
                terms.append(f"(fj_off)k{d} * st{i}_{d}")
            lines.append(f"{ind}const fj_off p{i} = {' + '.join(terms) if terms else '0'};")
            offs.append(f"p{i}")
        return lines, offs

    def vec_body(chunk: str, ind: str, offsets: list | None) -> list:
        V = v.vec
        lines = []
        lane_loads = []
        for i, d in enumerate(ins):
            if offsets is None:
                ptr = f"reinterpret_cast<const {_vec_t(d, V)}*>(a{i})[{chunk}]"
                lines.append(f"{ind}const {_vec_t(d, V)} va{i} = {ptr};")
                lane_loads.append(_load(d, f"va{i}.v[l]"))
            elif v.inner[i] == 1:
                ptr = f"*reinterpret_cast<const {_vec_t(d, V)}*>(a{i} + {offsets[i]})"
                lines.append(f"{ind}const {_vec_t(d, V)} va{i} = {ptr};")
                lane_loads.append(_load(d, f"va{i}.v[l]"))
            else:
                lines.append(f"{ind}const {ctype(d)} r{i} = a{i}[{offsets[i]}];")
                lane_loads.append(_load(d, f"r{i}"))
        lines += [f"{ind}{_vec_t(d, V)} vo{k};" for k, d in enumerate(outs)]
        lines += ["#pragma unroll", f"{ind}for (int l = 0; l < {V}; ++l) {{"]
        inner_lines, codes = _compute_lines(body, lane_loads, ind + "    ")
        lines += inner_lines
        lines += [
            f"{ind}    vo{k}.v[l] = {_store(d, c)};"
            for k, (d, c) in enumerate(zip(outs, codes, strict=True))
        ]
        lines.append(f"{ind}}}")
        lines += [
            f"{ind}reinterpret_cast<{_vec_t(d, V)}*>(o{k})[{chunk}] = vo{k};"
            for k, d in enumerate(outs)
        ]
        return lines

    ind = "        "
    if not nd and v.vec == 1:
        L.append("    for (fj_idx i = gid; i < n; i += step) {")
        L += scalar_body("i", ind, None)
        L.append("    }")
    elif not nd:
        L.append(f"    const fj_idx nv = n / {v.vec};")
        L.append("    for (fj_idx c = gid; c < nv; c += step) {")
        L += vec_body("c", ind, None)
        L.append("    }")
        # the n % vec elements past the last full chunk, one per thread
        L.append(f"    const fj_idx i = nv * {v.vec} + gid;")
        L.append("    if (i < n) {")
        L += scalar_body("i", ind, None)
        L.append("    }")
    elif v.vec == 1:
        L.append("    for (fj_idx i = gid; i < n; i += step) {")
        lines, offs = coords("i", ind)
        L += lines
        L += scalar_body("i", ind, offs)
        L.append("    }")
    else:
        # the innermost size is a multiple of vec, so a chunk never crosses a row
        L.append(f"    const fj_idx nv = n / {v.vec};")
        L.append("    for (fj_idx c = gid; c < nv; c += step) {")
        lines, offs = coords(f"c * {v.vec}", ind, v.inner)
        L += lines
        L += vec_body("c", ind, offs)
        L.append("    }")
    L.append("}")
    return "\n".join(L) + "\n"


def source_header(body: KernelBody, fp16_header: bool) -> str:
    """Macros selecting the float16 conversions, then the prelude."""
    head = ""
    if fp16_header and uses_half(body):
        head = "#define FJ_HAVE_CUDA_FP16 1\n"
    return head + prelude()


def kernel_source(
    body: KernelBody, v: Variant, name: str = "fj_kernel", fp16_header: bool = True
) -> str:
    """A complete NVRTC source for one kernel. ``fp16_header`` False converts float16 with
    inline PTX instead of ``<cuda_fp16.h>`` (for when the CUDA headers cannot be found)."""
    return (
        f"// fusejit kernel {name}: variant {v.tag}, CUDA codegen v{CUDA_CODEGEN_VERSION}\n"
        + source_header(body, fp16_header)
        + "\n"
        + render_kernel(body, v, name)
    )


# ---- launch planning (pure Python, so it is tested without a GPU) ------------------------------
def broadcast_strides(out_shape: tuple, shape: tuple, strides: tuple) -> tuple:
    """An input's strides (elements) over ``out_shape``: 0 on new and broadcast dims."""
    pad = len(out_shape) - len(shape)
    return tuple(
        0 if d < pad or shape[d - pad] == 1 else strides[d - pad] for d in range(len(out_shape))
    )


def coalesce(shape: tuple, strides: list) -> tuple[tuple, list]:
    """Drop size-1 dims and merge neighbouring dims that every operand walks contiguously
    (outer stride == inner stride * inner size), so fewer index divisions run per element."""
    dims = [(s, [st[d] for st in strides]) for d, s in enumerate(shape) if s != 1]
    if not dims:
        return (1,), [(1,) for _ in strides]
    merged = [dims[-1]]
    for s, sts in reversed(dims[:-1]):
        s_in, sts_in = merged[-1]
        if all(a == b * s_in for a, b in zip(sts, sts_in, strict=True)):
            merged[-1] = (s * s_in, sts_in)
        else:
            merged.append((s, sts))
    merged.reverse()
    return tuple(s for s, _ in merged), [
        tuple(sts[i] for _, sts in merged) for i in range(len(strides))
    ]


def plan_launch(out_shape, in_shapes, in_strides, in_aligned, out_aligned: bool, vmax: int):
    """The variant and the extra ``nd`` arguments (shape, then strides) for one launch.

    ``in_strides`` are in elements; ``in_aligned[i]`` says input i's pointer is aligned to
    ``vmax`` elements (``out_aligned`` the same for every output).
    """
    n = math.prod(out_shape)
    full = [
        broadcast_strides(tuple(out_shape), tuple(s), tuple(st))
        for s, st in zip(in_shapes, in_strides, strict=True)
    ]
    shape, strides = coalesce(tuple(out_shape), full)
    span = max(
        (sum((s - 1) * abs(x) for s, x in zip(shape, st, strict=True)) for st in strides), default=0
    )
    bits = 32 if n < _I32 and span < _I32 else 64
    if len(shape) == 1 and all(st[0] == 1 for st in strides):
        vec = vmax if vmax > 1 and out_aligned and all(in_aligned) else 1
        return Variant("flat", vec, 1, bits), ()
    vec, inner = 1, ()
    if vmax > 1 and out_aligned and shape[-1] % vmax == 0:
        cand = tuple(st[-1] for st in strides)
        if all(
            x == 0 or (x == 1 and ok and all(o % vmax == 0 for o in st[:-1]))
            for x, st, ok in zip(cand, strides, in_aligned, strict=True)
        ):
            vec, inner = vmax, cand
    extra = tuple(shape) + tuple(x for st in strides for x in st)
    return Variant("nd", vec, len(shape), bits, inner), extra


MAX_GRID = (1 << 31) - 1  # blocks in a grid's x dimension


def grid_size(n: int, v: Variant, max_blocks: int) -> int:
    """Blocks for ``n`` elements: one chunk per thread up to ``max_blocks`` (grid-stride)."""
    work = n // v.vec if v.vec > 1 else n
    return max(1, min((work + BLOCK - 1) // BLOCK, max_blocks))
