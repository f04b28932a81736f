"""CUDA code generation without a GPU: generated kernels compile with nvcc, and compute the
right values when compiled as host C++ and run on the CPU.

- Every elementwise op of the op table, in every dtype it allows, is rendered as a one-step
  kernel (flat vectorized and N-D, 32- and 64-bit indices) and compiled by nvcc for sm_80 and
  sm_90, all kernels of one arch in one source file (PTX; a smaller file with every launch
  variant, fused regions of traced functions and random programs goes down to cubin).
- The same sources are compiled by g++ with a shim that runs a kernel's grid block by block
  (grid-stride kernels have no synchronization, so a sequential run is exact) and compared
  with eager execution on the CPU, through ``plan_launch``: the semantics of every op (floor
  division, wrapping, casts, float16 rounding) and the index arithmetic of every variant are
  checked here, before any GPU sees them.

nvcc missing: the compile tests fail when the environment variable ``CI`` is set (CI must
compile the generated sources), else they are skipped.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cuda_host import (
    SHIM,
    aligned_empty,
    find_gxx,
    find_nvcc,
    host_cuda_backend,
    require_nvcc,
)  # fmt: skip
from hypothesis import given, settings
from hypothesis import strategies as st

import fusejit
from fusejit.base import dtypes as dt
from fusejit.bench import workloads as W
from fusejit.codegen import cuda as cg
from fusejit.codegen.body import KernelBody, Step
from fusejit.eager import dispatch
from fusejit.jit import runtime
from fusejit.jit.api import optimize_graph
from fusejit.jit.runtime import Plan
from fusejit.ops.registry import OPS, dtype_rule

ARCHS = ("sm_80", "sm_90")
NVCC_FLAGS = ["-std=c++17", "-diag-suppress", "177,186,550"]


# ---- the compilers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nvcc() -> str:
    return require_nvcc("the generated CUDA sources")


@pytest.fixture(scope="module")
def gxx() -> str:
    return find_gxx()


def _nvcc_cmd(nvcc: str, arch: str, src: Path, kind: str) -> list:
    out = src.with_suffix(f".{arch}.{kind}")
    return [nvcc, f"--{kind}", f"-arch={arch}", *NVCC_FLAGS, "-o", str(out), "-x", "cu", str(src)]


def _check(proc: subprocess.Popen, what: str) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"nvcc failed on {what}:\n{out.decode()[-6000:]}"


# ---- bodies ----------------------------------------------------------------------------------
def _one_step(op, d: dt.DType, target: dt.DType | None = None) -> KernelBody:
    """``op`` on inputs of dtype ``d`` (casts inside the kernel as a fused region does)."""
    if op.rule == "cast":
        step = Step("cast", (("in", 0),), (("dtype", target.name),), target.name, target.name)
        return KernelBody((d.name,), (step,), (("t", 0),))
    if op.rule == "where":
        ins, (c, o) = ("bool", d.name, d.name), (d, d)
    else:
        ins, (c, o) = (d.name,) * op.arity, dtype_rule(op, d)
    args = tuple(("in", i) for i in range(op.arity))
    return KernelBody(ins, (Step(op.name, args, (), c.name, o.name),), (("t", 0),))


def op_cases() -> list:
    """(id, op, input dtype, cast target, body) for every elementwise op and allowed dtype."""
    cases = []
    for op in OPS.values():
        if op.kind != "elementwise" or op.expr is None:
            continue
        for d in dt.ALL_DTYPES:
            if d.kind not in op.allowed:
                continue
            targets = dt.ALL_DTYPES if op.rule == "cast" else (None,)
            for t in targets:
                cid = f"{op.name}_{d.short}" + (f"_{t.short}" if t else "")
                cases.append((cid, op, d, t, _one_step(op, d, t)))
    return cases


OP_CASES = op_cases()
LAYOUT_VARIANTS = [
    cg.Variant("flat", 1, 1, 32),
    cg.Variant("flat", 0, 1, 64),  # vec filled in per body
    cg.Variant("nd", 1, 3, 32),
    cg.Variant("nd", 1, 2, 64),
    cg.Variant("nd", 0, 2, 32),
    cg.Variant("nd", 0, 1, 64),
    cg.Variant("flat", -1, 1, 32),  # -1: 32-byte vectors (two 16-byte accesses per array)
    cg.Variant("nd", -1, 2, 64),
]


def _with_vec(v: cg.Variant, body: KernelBody) -> cg.Variant:
    if v.vec > 0:
        return v
    n = cg.vector_width(body, 16 if v.vec == 0 else 32)
    inner = tuple(i % 2 for i in range(len(body.in_dtypes))) if v.layout == "nd" else ()
    return replace(v, vec=n, inner=inner)


def _traced_bodies() -> list:
    """Fused-region bodies (targeting cuda, so float16 regions fuse) of real functions."""

    chain, adam, bias_gelu = W.chain_8op, W.adam_step, W.bias_gelu

    def mixed(x, i):
        y = fusejit.where(x > 0, x, x * 0.1) // 0.7 % 3
        return (i * 3 + 1) % 5 - (i // -3), y.to(fusejit.float16) * 2, (y > 1) & (i < 2)

    f32 = lambda *s: fusejit.randn(*s)  # noqa: E731
    cases = [
        (chain, (f32(64),)),
        (chain, (f32(64).to(fusejit.float16),)),
        (adam, tuple(f32(64).abs() for _ in range(4))),
        (bias_gelu, (f32(8, 16), f32(16))),
        (bias_gelu, (f32(8, 16).half(), f32(16).half())),
        (mixed, (f32(4, 8), fusejit.randint(-9, 9, (4, 8), dtype=fusejit.int32))),
    ]
    bodies = []
    for fn, args in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = fusejit.trace(fn, args, check_trace=False)
        g = optimize_graph(traced.raw_graph, "cuda")
        bodies += [n.attr("body") for n in g.block.nodes if n.op == "fused"]
    return bodies


# ---- render-only checks ----------------------------------------------------------------------
def test_renderer_spellings():
    r = cg.RENDERER
    assert r.func("exp", ["x"], dt.float32) == "expf(x)"
    assert r.func("exp", ["x"], dt.float64) == "exp(x)"
    assert r.func("abs", ["x"], dt.float32) == "fabsf(x)"
    assert r.binop("+", "a", "b", dt.int32) == "fj_wadd(a, b)"
    assert r.binop("*", "a", "b", dt.int8) == "((signed char)(a * b))"
    assert r.binop("//", "a", "b", dt.float32) == "fj_floordiv(a, b)"
    assert r.binop("+", "a", "b", dt.bool_) == "(a || b)"
    assert r.const(0.1, dt.float32) == "0.10000000149011612f"
    assert r.const(-2, dt.float64) == "(-2.0)"
    assert r.const(float("nan"), dt.float32) == "__int_as_float(0x7fc00000)"
    assert r.const(-(2**63), dt.int64) == "(-9223372036854775807LL - 1LL)"
    assert r.const(200, dt.int8) == "((signed char)-56)"
    assert r.cast("x", dt.float32, dt.uint8) == "((unsigned char)(int)(x))"


def test_float16_steps_round_and_constants_are_float16():
    body = _one_step(OPS["mul"], dt.float16)
    body = replace(body, steps=(replace(body.steps[0], args=(("in", 0), ("c", 0.1, "float16"))),))
    src = cg.render_kernel(body, cg.Variant("flat", 8, 1, 32))
    assert "fj_round_h(" in src and "fj_h2f(" in src and "fj_f2h(" in src
    assert repr(float(np.float16(0.1))) + "f" in src  # 0.0999755859375f, not 0.1f


def test_sources_are_shape_generic_and_variants_differ():
    body = _one_step(OPS["add"], dt.float32)
    variants = [_with_vec(v, body) for v in LAYOUT_VARIANTS]
    srcs = {v.tag: cg.kernel_source(body, v) for v in variants}
    assert len(set(srcs.values())) == len(LAYOUT_VARIANTS)
    for src in srcs.values():
        assert "long long n_" in src  # the size is an argument, never a literal
    assert "unsigned long long fj_idx" in srcs["flat-i64-v4"]
    assert "unsigned int fj_idx" in srcs["nd3-i32"]


def test_coalesce_merges_contiguous_dims():
    # contiguous [2, 3, 4] + a row vector [4]: the row dims cannot merge with the broadcast
    shape, st = cg.coalesce((2, 3, 4), [(12, 4, 1), (0, 0, 1)])
    assert shape == (6, 4) and st == [(4, 1), (0, 1)]
    shape, st = cg.coalesce((2, 1, 3), [(3, 3, 1)])
    assert shape == (6,) and st == [(1,)]
    assert cg.coalesce((1, 1), [(5, 7)]) == ((1,), [(1,)])


def test_plan_launch_picks_variants():
    v, extra = cg.plan_launch((8, 16), [(8, 16)], [(16, 1)], [True], True, 4)
    assert v == cg.Variant("flat", 4, 1, 32) and extra == ()
    v, _ = cg.plan_launch((8, 16), [(8, 16)], [(16, 1)], [False], True, 4)
    assert v.layout == "flat" and v.vec == 1
    v, extra = cg.plan_launch((8, 16), [(8, 16), (16,)], [(16, 1), (1,)], [True, True], True, 4)
    assert v == cg.Variant("nd", 4, 2, 32, (1, 1)) and extra == (8, 16, 16, 1, 0, 1)
    # a column vector is broadcast along the inner dim: one scalar load per chunk
    v, _ = cg.plan_launch((8, 16), [(8, 16), (8, 1)], [(16, 1), (1, 1)], [True, False], True, 4)
    assert v.vec == 4 and v.inner == (1, 0)
    # inner size not a multiple of the vector width, or a transposed input: scalar N-D
    v, _ = cg.plan_launch((8, 15), [(8, 15)], [(16, 1)], [True], True, 4)
    assert v == cg.Variant("nd", 1, 2, 32)
    v, _ = cg.plan_launch((8, 16), [(8, 16)], [(1, 8)], [True], True, 4)
    assert v.vec == 1 and v.layout == "nd"
    # sizes or offsets past 2**31 need 64-bit index arithmetic
    assert cg.plan_launch((1 << 31,), [(1 << 31,)], [(1,)], [True], True, 4)[0].bits == 64
    v, _ = cg.plan_launch((4, 2), [(4, 2)], [(1 << 30, 1)], [True], True, 1)
    assert v.bits == 64 and v.layout == "nd"


# ---- host emulation --------------------------------------------------------------------------
# element kernels run one thread at a time: plain globals for the thread and block indices
ELEMENT_SHIM = SHIM + "static fj_dim3 blockIdx, threadIdx, blockDim, gridDim;\n"


class HostLib:
    """Generated kernels compiled as host C++; ``launch`` runs a grid block by block."""

    def __init__(self, gxx: str, folder: Path, kernels: list) -> None:
        parts = [ELEMENT_SHIM, cg.prelude()]
        for name, body, v in kernels:
            parts.append(cg.render_kernel(body, v, name))
            parts.append(self._launcher(name, body, v))
        src = folder / "kernels.cpp"
        src.write_text("\n".join(parts))
        lib = folder / "kernels.so"
        cmd = [gxx, "-O0", "-shared", "-fPIC", "-fno-strict-aliasing", "-w", "-std=c++17",
               "-o", str(lib), str(src)]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"g++ failed:\n{res.stderr[-6000:]}"
        self.lib = ctypes.CDLL(str(lib))

    @staticmethod
    def _launcher(name: str, body: KernelBody, v: cg.Variant) -> str:
        n_in = len(body.in_dtypes)
        args = [f"(const {cg.ctype(d)}*)p[{i}]" for i, d in enumerate(body.in_dtypes)]
        args += [f"({cg.ctype(d)}*)p[{n_in + k}]" for k, d in enumerate(body.out_dtypes())]
        n_int = 1 + (v.rank * (1 + n_in) if v.layout == "nd" else 0)
        args += [f"q[{j}]" for j in range(n_int)]
        return (
            f'extern "C" void launch_{name}(void** p, long long* q, unsigned grid) {{\n'
            f"  gridDim.x = grid; blockDim.x = {cg.BLOCK};\n"
            "  for (unsigned b = 0; b < grid; ++b)\n"
            f"    for (unsigned t = 0; t < {cg.BLOCK}; ++t) {{\n"
            f"      blockIdx.x = b; threadIdx.x = t; {name}({', '.join(args)});\n"
            "    }\n}\n"
        )

    def launch(self, name, body, v, extra, arrays, outs) -> None:
        ptrs = [a.ctypes.data for a in (*arrays, *outs)]
        n = outs[0].size
        ints = [int(n), *map(int, extra)]
        fn = getattr(self.lib, f"launch_{name}")
        grid = cg.grid_size(n, v, max_blocks=2)  # few blocks: threads loop (grid-stride)
        fn((ctypes.c_void_p * len(ptrs))(*ptrs), (ctypes.c_longlong * len(ints))(*ints),
           ctypes.c_uint(grid))  # fmt: skip


def plan_for(body: KernelBody, arrays: list, vec_bytes: int = 16):
    """What the CUDA backend does before a launch, on numpy arrays: the variant and its extra
    arguments, and poisoned outputs (so unwritten elements show)."""
    out_shape = np.broadcast_shapes(*[a.shape for a in arrays])
    vmax = cg.vector_width(body, vec_bytes)
    outs = []
    for d in body.out_dtypes():
        o = np.empty(out_shape, dt.as_dtype(d).np)
        o.reshape(-1).view(np.uint8)[:] = 0xA5
        outs.append(o)
    v, extra = cg.plan_launch(
        out_shape,
        [a.shape for a in arrays],
        [tuple(s // a.itemsize for s in a.strides) for a in arrays],
        [a.ctypes.data % (a.itemsize * vmax) == 0 for a in arrays],
        all(o.ctypes.data % (o.itemsize * vmax) == 0 for o in outs),
        vmax,
    )
    return v, extra, outs


def _values(op, d: dt.DType, n: int, rng, cast_to=None) -> np.ndarray:
    lo, hi = op.domain
    if d is dt.bool_:
        return rng.random(n) < 0.5
    if d.is_integer:
        info = np.iinfo(d.np)
        if op.exact and op.rule != "float" and op.name != "cast":
            vals = rng.integers(info.min, info.max, size=n, endpoint=True)
            vals[:5] = [info.min, info.max, 0, 1, -1 if d.kind == "i" else 2]
        else:
            vals = rng.integers(max(info.min, int(lo)), min(info.max, int(hi)), size=n,
                                endpoint=True)  # fmt: skip
        return vals.astype(d.np)
    vals = rng.uniform(lo, hi, n)
    if op.name in ("floor_divide", "remainder"):
        vals = np.round(vals * 2) / 2  # exact multiples, so quotients land on integers too
    if op.exact and (cast_to is None or not cast_to.is_integer):
        vals[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0]
    return vals.astype(d.np)


def _eager_reference(op, arrays, target):
    """Eager CPU execution where numpy has the op; else the op's numpy ``ref`` in the compute
    dtype (float16 computed in float32), rounded to the result dtype, as eager does, without
    the numba compile of every one-step CPU kernel."""
    tensors = [fusejit.from_numpy(a) for a in arrays]
    attrs = {"dtype": target} if target is not None else None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if op.np_name or op.rule == "cast":
            return dispatch.elementwise(op, tuple(tensors), attrs).numpy()
        compute, out = dtype_rule(op, dt.as_dtype(arrays[0].dtype))
        c = dt.float32 if compute is dt.float16 else compute
        return np.asarray(op.ref(*[a.astype(c.np) for a in arrays])).astype(out.np)


def _assert_close(got, ref, exact: bool, what: str) -> None:
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != {ref.dtype}"
    if got.dtype.kind != "f" or exact:
        np.testing.assert_array_equal(got, ref, err_msg=what)
        return
    tol = {"float16": 2e-3, "float32": 1e-5, "float64": 1e-12}[got.dtype.name]
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, equal_nan=True, err_msg=what)


# Eager round() of an integer tensor on the CPU returns numpy's float array (np.rint promotes
# ints to float) under the integer dtype: the reference is the input there (rounding an integer
# is the identity).


def test_emulated_ops_match_eager(gxx, tmp_path):
    rng = np.random.default_rng(7)
    n = 203  # not a multiple of any vector width: the scalar tail runs too
    runs = []
    kernels = []
    for cid, op, d, t, body in OP_CASES:
        arrays = [_values(op, d, n, rng, t) for _ in range(op.arity)]
        if op.rule == "where":
            arrays[0] = rng.random(n) < 0.5
        v, extra, outs = plan_for(body, arrays)
        assert v.layout == "flat" and v.vec == cg.vector_width(body)
        kernels.append((f"k_{cid}", body, v))
        runs.append((cid, op, t, body, v, extra, arrays, outs))
    lib = HostLib(gxx, tmp_path, kernels)
    failures = []
    for cid, op, t, body, v, extra, arrays, outs in runs:
        lib.launch(f"k_{cid}", body, v, extra, arrays, outs)
        ref = _eager_reference(op, arrays, t)
        if op.name == "round" and not ref.dtype == outs[0].dtype:
            ref = arrays[0]  # rounding an integer is the identity
        try:
            _assert_close(outs[0], ref, op.exact, cid)
        except AssertionError as e:
            failures.append(str(e).strip().splitlines()[0] + " " + cid)
    assert not failures, f"{len(failures)} op/dtype kernels differ from eager:\n" + "\n".join(
        failures[:40]
    )


def _layout_cases(rng) -> list:
    """(name, body, arrays): broadcasting, strided, offset (unaligned), 0-d, tails."""
    f32, f16, i8 = np.float32, np.float16, np.int8

    def r(*shape, dtype=f32):
        return rng.standard_normal(shape).astype(dtype)

    add32 = _one_step(OPS["add"], dt.float32)
    add16 = _one_step(OPS["add"], dt.float16)
    fdiv8 = _one_step(OPS["floor_divide"], dt.int8)
    where16 = _one_step(OPS["where"], dt.float16)
    big = r(6, 40)
    ints = rng.integers(-128, 128, size=(5, 12)).astype(i8)
    return [
        ("contig", add32, [r(37), r(37)]),
        ("rows", add32, [r(9, 16), r(16)]),
        ("rows12", add32, [r(5, 12), r(12)]),  # a multiple of 4 but not of 8 elements
        ("cols", add32, [r(9, 16), r(9, 1)]),
        ("outer", add32, [r(7, 1), r(1, 12)]),
        ("scalar0d", add32, [r(5, 8), np.asarray(r(1)[0])]),
        ("transposed", add32, [r(12, 8).T, r(8, 12)]),
        ("sliced", add32, [big[:, 3:35], big[:, 5:37]]),
        ("stepped", add32, [big[::2, ::3], r(3, 14)]),
        ("offset", add32, [r(41)[1:], r(40)]),
        ("rank3", add16, [r(3, 4, 8, dtype=f16), r(4, 1, dtype=f16)]),
        ("half-rows", add16, [r(5, 24, dtype=f16), r(24, dtype=f16)]),
        ("int8-bcast", fdiv8, [ints, ints[:1] % 7 - 3]),
        ("where-bcast", where16, [rng.random((6, 16)) < 0.5, r(16, dtype=f16), r(6, 1, dtype=f16)]),
        ("empty-dim", add32, [r(0, 8), r(8)]),
    ]


def _run_emulated(lib_cases, gxx, folder: Path) -> None:
    kernels, runs = [], []
    for name, body, arrays, force64, vec_bytes in lib_cases:
        v, extra, outs = plan_for(body, arrays, vec_bytes)
        if force64:
            v = replace(v, bits=64)
        kernels.append((name, body, v))
        runs.append((name, body, v, extra, arrays, outs))
    lib = HostLib(gxx, folder, kernels)
    for name, body, v, extra, arrays, outs in runs:
        if outs[0].size:
            lib.launch(name, body, v, extra, arrays, outs)
        op = OPS[body.steps[0].op]
        ref = _eager_reference(op, arrays, None)
        _assert_close(outs[0], ref, True, f"{name} ({v.tag})")


def test_emulated_layouts_match_eager(gxx, tmp_path):
    rng = np.random.default_rng(3)
    cases = []
    tags = set()
    for name, body, arrays in _layout_cases(rng):
        for force64, vec_bytes in ((False, 16), (True, 16), (False, 32)):
            tag = f"{name.replace('-', '_')}_{int(force64)}_{vec_bytes}"
            cases.append((tag, body, arrays, force64, vec_bytes))
            v, _, _ = plan_for(body, arrays, vec_bytes)
            tags.add((v.layout, v.vec > 1))
    # every layout kind is exercised
    assert tags >= {("flat", True), ("flat", False), ("nd", True), ("nd", False)}
    _run_emulated(cases, gxx, tmp_path)


class _EmulatedKernels:
    """Stands in for the CUDA backend's ``fused_kernel`` inside a ``Plan``: each fused region
    is rendered, compiled as host C++ and run through ``plan_launch``."""

    def __init__(self, gxx: str, folder: Path) -> None:
        self.gxx, self.folder, self.count = gxx, folder, 0

    def __call__(self, node, device):
        body = node.attr("body")
        outer = self

        def run(*arrays):
            arrays = [np.asarray(a) for a in arrays]
            v, extra, outs = plan_for(body, arrays)
            if outs[0].size == 0:
                return outs
            outer.count += 1
            sub = outer.folder / f"k{outer.count}"
            sub.mkdir()
            lib = HostLib(outer.gxx, sub, [("k", body, v)])
            lib.launch("k", body, v, extra, arrays, outs)
            return outs

        return run


def _run_cuda_plan(fn, args, gxx, folder, monkeypatch):
    """``fn`` traced on the CPU, optimized for the cuda target (float16 fuses), run with the
    fused regions emulated; returns (plan outputs, eager outputs, fused node count)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = fusejit.trace(fn, args, check_trace=False)
        g = optimize_graph(traced.raw_graph, "cuda")
        monkeypatch.setattr(runtime, "_kernel_for", _EmulatedKernels(gxx, folder))
        plan = Plan(g)
        with np.errstate(all="ignore"):
            outs = plan.run(list(args), g.captured)
            eager = fn(*args)
    eager = eager if isinstance(eager, (tuple, list)) else (eager,)
    return outs, eager, sum(n.op == "fused" for n in g.block.nodes)


def _assert_outputs(outs, eager, what):
    assert len(outs) == len(eager)
    for k, (a, b) in enumerate(zip(outs, eager, strict=True)):
        x, y = a.numpy(), b.numpy()
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what} output {k}"
        if x.dtype.kind == "f":
            tol = {"float16": 4e-3, "float32": 1e-5, "float64": 1e-12}[x.dtype.name]
            np.testing.assert_allclose(x, y, rtol=tol, atol=tol, equal_nan=True,
                                       err_msg=f"{what} output {k}")  # fmt: skip
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{what} output {k}")


def test_emulated_fused_regions_match_eager(gxx, tmp_path, monkeypatch):
    # the standard workloads' formulas (fusejit/bench/workloads.py), and two odd ones
    chain, adam, lstm = W.chain_8op, W.adam_step, W.lstm_cell

    def mixed(x, i):
        y = fusejit.where(x > 0, x, x * 0.1) // 0.7 % 3
        return (i * 3 + 1) % 5 - (i // -3), (y > 1) & (i < 2)

    r = fusejit.randn
    cases = [
        ("chain", chain, (r(203),)),
        ("chain16", chain, (r(203).half(),)),
        ("adam", adam, tuple(r(77).abs() for _ in range(4))),
        ("lstm", lstm, (r(6, 32), r(6, 8))),
        ("bias_gelu16", W.bias_gelu, (r(5, 24).half(), r(24).half())),
        ("mixed", mixed, (r(4, 8), fusejit.randint(-9, 9, (4, 8), dtype=fusejit.int32))),
        ("transposed", lambda x, y: (x.T * 3).sin() - y, (r(8, 12), r(12, 8))),
    ]  # fmt: skip
    for i, (name, fn, args) in enumerate(cases):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        outs, eager, n_fused = _run_cuda_plan(fn, args, gxx, folder, monkeypatch)
        assert n_fused >= 1, name
        _assert_outputs(outs, eager, name)


class _HostFunction:
    """A compiled variant as the CUDA backend's launch sees it: ``fn(grid, block, args)``."""

    def __init__(self, gxx: str, folder: Path, body: KernelBody, v: cg.Variant) -> None:
        self.body, self.v, self.calls = body, v, 0
        folder.mkdir()
        self.lib = HostLib(gxx, folder, [("k", body, v)])

    def __call__(self, grid, block, args):
        assert block == (cg.BLOCK,) and len(grid) == 1 and grid[0] >= 1
        n_in, n_out = len(self.body.in_dtypes), len(self.body.outputs)
        arrays, outs = args[:n_in], args[n_in : n_in + n_out]
        n, extra = args[n_in + n_out], args[n_in + n_out + 1 :]
        assert all(type(x) is np.int64 for x in (n, *extra))  # the kernel's `long long`s
        assert n == outs[0].size
        self.calls += 1
        self.lib.launch("k", self.body, self.v, extra, arrays, outs)


def _aligned(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


@pytest.fixture(params=[16, 32], ids=["vec16B", "vec32B"])
def host_backend(gxx, tmp_path, monkeypatch, request):
    """``backends.cuda.CudaBackend`` with numpy standing in for cupy and kernels compiled as
    host C++: the eager and fused launch paths of the backend, run without a GPU."""
    from fusejit.backends import cuda_kernels as cb

    made = []

    def function(body, v):
        made.append(v)
        return _HostFunction(gxx, tmp_path / f"f{len(made)}", body, v)

    b = host_cuda_backend(function, request.param)
    b.made = made
    monkeypatch.setattr(cb, "_ptr", lambda a: a.ctypes.data)
    return b


@pytest.mark.parametrize("host_backend", [16], indirect=True, ids=["vec16B"])
def test_kernel_entries_are_the_cache_folders_archives_ship(host_backend, tmp_path, monkeypatch):
    # the disk entries of the variants a kernel compiled are what fusejit.save ships
    import os
    from types import SimpleNamespace

    from fusejit.jit import archive
    from fusejit.store import cache_dir, write_manifest

    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "cache"))
    b = host_backend
    b.arch, b.binary, b.nvrtc_version, b.fp16_include = "sm_90", "cubin", (13, 0), None
    x = fusejit.randn(300)
    traced = fusejit.trace(lambda x: (x * 2).exp() + 1, (x,), check_trace=False)
    (node,) = [n for n in optimize_graph(traced.raw_graph, "cuda").block.nodes if n.op == "fused"]
    k = b.fused_kernel(node.attr("body"), 1)
    assert k.entries() == []
    k(_aligned(x.numpy()))
    (v,) = k.fns
    (entry,) = k.entries()
    key, src = b._key(k.body, v)
    assert entry.folder == cache_dir() / "cuda" / key
    # (what _store_and_load writes for a compiled variant)
    entry.folder.mkdir(parents=True)
    (entry.folder / "kernel.cu").write_text(src)
    (entry.folder / "kernel.cubin").write_bytes(b"compiled code")
    write_manifest(entry.folder)
    files = archive._kernel_files([(SimpleNamespace(kernels=[(node, k)]),)])
    want = {f"kernels/cuda/{key}/{name}" for name in os.listdir(entry.folder)}
    assert {member for member, *_ in files} == want and len(want) == 3


@pytest.mark.parametrize("host_backend", [16], indirect=True, ids=["vec16B"])
def test_backend_eager_ops_on_host(host_backend):
    b = host_backend
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 10)).astype(np.float32) * 4
    y = rng.standard_normal(10).astype(np.float32) + 0.25
    cases = [("floor_divide", (x, y)), ("remainder", (x, 0.7)), ("maximum", (x, np.nan)),
             ("sign", (x[:, ::2],)), ("gelu", (x.astype(np.float16),)), ("sigmoid", (x,)),
             ("relu", (x.T,)), ("add", (x, y)), ("minimum", (y.astype(np.int32), 0))]  # fmt: skip
    for name, vals in cases:
        op = OPS[name]
        tensors = [fusejit.from_numpy(v) if isinstance(v, np.ndarray) else v for v in vals]
        with np.errstate(all="ignore"):
            ref = dispatch.elementwise(op, tuple(tensors), None)
            promoted = dispatch.promote_args(op, tensors)
            compute, out = dtype_rule(op, promoted)
            arrays = [v.astype(compute.np) if isinstance(v, np.ndarray) else v for v in vals]
            got = b.elementwise(op, arrays, compute, out, None)
        _assert_close(np.asarray(got), ref.numpy(), op.exact, name)
    # a scalar operand is a 0-d array, not a constant: another value reuses the kernel
    n = len(b.made)
    b.elementwise(OPS["remainder"], [x, np.float32(0.3)], dt.float32, dt.float32, None)
    assert len(b.made) == n


def test_backend_fused_launch_paths_on_host(host_backend):
    b = host_backend
    rng = np.random.default_rng(6)

    def adam(p, g, m, v):
        m2 = 0.9 * m + 0.1 * g
        v2 = 0.999 * v + 0.001 * g * g
        return p - 1e-3 * (m2 / 0.1) / ((v2 / 0.001).sqrt() + 1e-8), m2, v2

    args = tuple(fusejit.randn(1001).abs() for _ in range(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = fusejit.trace(adam, args, check_trace=False)
    g = optimize_graph(traced.raw_graph, "cuda")
    (node,) = [n for n in g.block.nodes if n.op == "fused"]
    k = b.fused_kernel(node.attr("body"), 1)
    assert b.fused_kernel(node.attr("body"), 1) is k
    eager = adam(*args)
    order = [g.block.params.index(v) for v in node.inputs]  # the region's input order
    cases = [
        [_aligned(a.numpy()) for a in args],  # contiguous, aligned: the vectorized fast path
        # one element off 16-byte alignment: the scalar fast path
        [_aligned(np.concatenate([np.zeros(1, np.float32), a.numpy()]))[1:] for a in args],
        # p has an extra dim the others broadcast over: plan_launch, N-D
        [_aligned(np.stack([args[0].numpy()] * 2)), *[_aligned(a.numpy()) for a in args[1:]]],
    ]  # fmt: skip
    for c, arrays in enumerate(cases):
        outs = k(*[arrays[i] for i in order])
        assert len(outs) == 3
        for o, e in zip(outs, eager, strict=True):
            np.testing.assert_allclose(o.reshape(-1, 1001)[-1], e.numpy(), rtol=1e-5, atol=1e-7,
                                       err_msg=f"case {c}: {b.made[-1].tag}")  # fmt: skip
    w = 4 if b.vec_bytes == 16 else 8
    assert [v.tag for v in b.made] == [f"flat-i32-v{w}", "flat-i32", "nd2-i32"]
    assert k.variants() == [v.tag for v in b.made]
    # new sizes reuse the compiled variants (shape-generic)
    outs = k(*[_aligned(rng.random(64).astype(np.float32)) for _ in range(4)])
    assert len(b.made) == 3 and outs[0].shape == (64,)
    # a region of one output takes its own fast path: aligned (vectorized), then misaligned
    traced1 = fusejit.trace(lambda x, y: (x * y).tanh() + 1, args[:2], check_trace=False)
    g1 = optimize_graph(traced1.raw_graph, "cuda")
    (node1,) = [n for n in g1.block.nodes if n.op == "fused"]
    k1 = b.fused_kernel(node1.attr("body"), 1)
    order1 = [g1.block.params.index(v) for v in node1.inputs]
    for c, arrays in enumerate(cases[:2]):
        ref = np.tanh(arrays[0].astype(np.float64) * arrays[1]) + 1
        (o,) = k1(*[arrays[i] for i in order1])
        np.testing.assert_allclose(o, ref, rtol=1e-6, atol=1e-7, err_msg=f"one output, case {c}")
    assert k1.variants() == [f"flat-i32-v{w}", "flat-i32"]
    (o,) = k1(*[_aligned(rng.random(64).astype(np.float32)) for _ in range(2)])
    assert o.shape == (64,) and k1.variants() == [f"flat-i32-v{w}", "flat-i32"]
    assert k1(*[np.zeros(0, np.float32)] * 2)[0].shape == (0,)
    empty = k(*[np.zeros((0, 3), np.float32)] * 4)
    assert [o.shape for o in empty] == [(0, 3)] * 3


# ---- random elementwise programs ---------------------------------------------------------------
_UNARY = ["exp", "tanh", "sigmoid", "neg", "abs", "sin", "floor", "relu", "square", "sqrt"]
_BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "remainder", "lt"]


@st.composite
def programs(draw):
    """A random DAG of elementwise ops over two inputs (one broadcast) and scalars."""
    dtype = draw(st.sampled_from([fusejit.float32, fusejit.float16, fusejit.float64]))
    n_ops = draw(st.integers(3, 9))
    ops = []
    for k in range(n_ops):
        if draw(st.booleans()):
            ops.append(("u", draw(st.sampled_from(_UNARY)), draw(st.integers(0, k + 1))))
        else:
            a, b = draw(st.integers(0, k + 1)), draw(st.integers(-1, k + 1))
            ops.append(("b", draw(st.sampled_from(_BINARY)), a, b))
    n_out = draw(st.integers(1, 2))
    return dtype, ops, n_out


def _program_fn(ops, n_out):
    def fn(x, y):
        vals = [x, y]
        for op in ops:
            if op[0] == "u":
                a = vals[op[2]]
                if op[1] in ("sqrt",):
                    a = a.abs()
                vals.append(getattr(fusejit, op[1])(a))
            else:
                a = vals[op[2]]
                b = 0.75 if op[3] < 0 else vals[op[3]]
                r = getattr(fusejit, op[1])(a, b)
                vals.append(r.to(a.dtype) if r.dtype is fusejit.bool else r)
        return tuple(vals[-n_out:]) if n_out > 1 else vals[-1]

    return fn


@settings(max_examples=5, derandomize=True, deadline=None)
@given(programs())
def test_emulated_random_programs_match_eager(tmp_path_factory, prog):
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        pytest.skip("no host C++ compiler to run generated kernels on the CPU")
    dtype, ops, n_out = prog
    fn = _program_fn(ops, n_out)
    x = (fusejit.randn(6, 20) * 2).to(dtype)
    y = (fusejit.randn(20) * 2).to(dtype)
    mp = pytest.MonkeyPatch()
    try:
        outs, eager, _ = _run_cuda_plan(fn, (x, y), gxx, tmp_path_factory.mktemp("prog"), mp)
    finally:
        mp.undo()
    _assert_outputs(outs, eager, f"program {ops}")


# ---- nvcc: every compile starts at module setup and runs while the tests above do ------------
def _op_table_source() -> str:
    """Every op x dtype kernel, flat vectorized with 32-bit and N-D with 64-bit indices."""
    parts = [cg.source_header(KernelBody(("float16",), (), (("in", 0),)), True)]
    for cid, _op, _d, _t, body in OP_CASES:
        vw = cg.vector_width(body)
        parts.append(cg.render_kernel(body, cg.Variant("flat", vw, 1, 32), f"k_{cid}_flat"))
        parts.append(cg.render_kernel(body, cg.Variant("nd", 1, 3, 64), f"k_{cid}_nd"))
    return "\n".join(parts)


def _variant_matrix_source(fp16_header: bool) -> str:
    """Every launch variant for bodies of several dtype mixes and the traced fused regions
    (without the header: only the bodies that use float16, converted with PTX)."""
    bodies = [
        _one_step(OPS["add"], dt.float32),
        _one_step(OPS["where"], dt.float16),
        _one_step(OPS["floor_divide"], dt.int8),
        _one_step(OPS["gelu"], dt.float64),
        _one_step(OPS["logical_xor"], dt.bool_),
        _one_step(OPS["cast"], dt.float64, dt.float16),
        *_traced_bodies(),
    ]
    if not fp16_header:
        bodies = [b for b in bodies if cg.uses_half(b)]
    parts = [cg.source_header(KernelBody(("float16",), (), (("in", 0),)), fp16_header)]
    for b, body in enumerate(bodies):
        for j, v in enumerate(LAYOUT_VARIANTS):
            parts.append(cg.render_kernel(body, _with_vec(v, body), f"k{b}_{j}"))
    return "\n".join(parts)


@pytest.fixture(scope="module", autouse=True)
def nvcc_jobs(tmp_path_factory):
    """nvcc processes by name, started at once (the OS shares them out over the cores)."""
    path = find_nvcc()
    jobs: dict = {}
    if path is not None:
        folder = tmp_path_factory.mktemp("nvcc")
        ops, var, half = folder / "ops.cu", folder / "variants.cu", folder / "half_ptx.cu"
        ops.write_text(_op_table_source())
        var.write_text(_variant_matrix_source(True))
        half.write_text(_variant_matrix_source(False))
        cmds = {
            "ops-sm_80": _nvcc_cmd(path, "sm_80", ops, "ptx"),
            "ops-sm_90": _nvcc_cmd(path, "sm_90", ops, "ptx"),
            "variants-sm_80": _nvcc_cmd(path, "sm_80", var, "ptx"),
            "variants-sm_90": _nvcc_cmd(path, "sm_90", var, "cubin"),
            "half-ptx-cvt-sm_80": _nvcc_cmd(path, "sm_80", half, "cubin"),
        }
        for name, cmd in cmds.items():
            jobs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    yield jobs
    for p in jobs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_compiles_every_op_and_dtype(nvcc, nvcc_jobs, arch):
    _check(nvcc_jobs[f"ops-{arch}"], f"the op-table kernels for {arch}")


@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_compiles_every_variant_and_fused_region(nvcc, nvcc_jobs, arch):
    _check(nvcc_jobs[f"variants-{arch}"], f"the launch variants and fused regions for {arch}")


def test_nvcc_compiles_float16_without_cuda_fp16_header(nvcc, nvcc_jobs):
    _check(nvcc_jobs["half-ptx-cvt-sm_80"], "float16 kernels converting with PTX cvt")


def test_byte_arrays_are_loaded_one_byte_per_register(nvcc, tmp_path):
    # (cuda.BYTE_VECTOR_MAX) 16-byte vectors of int8 were unpacked into 16-bit halves whose
    # low byte lost its sign extension; 4-element vectors load each byte on its own
    def f(x):
        return fusejit.where(-1 * x > 0, x, 0)

    x = fusejit.from_numpy(np.arange(-128, 128, dtype=np.int8))
    g = optimize_graph(fusejit.trace(f, (x,), check_trace=False).raw_graph, "cuda")
    (node,) = [n for n in g.block.nodes if n.op == "fused"]
    body = node.attr("body")
    assert cg.vector_width(body) == cg.BYTE_VECTOR_MAX == 4
    src = tmp_path / "bytes.cu"
    src.write_text(cg.prelude() + cg.render_kernel(body, cg.Variant("flat", 4, 1, 32), "k"))
    res = subprocess.run(_nvcc_cmd(nvcc, "sm_90", src, "ptx"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    ptx = src.with_suffix(".sm_90.ptx").read_text()
    assert "ld.global.nc.v4.u8" in ptx and "v4.u32" not in ptx
