"""CUDA row kernels without a GPU: they compile with nvcc (sm_80, sm_90), and compute the right
values when compiled as host C++ with a shim that runs each block's 256 threads as real threads
(``__syncthreads`` is a barrier of the block's threads; ``__shfl_xor_sync`` exchanges through a
per-warp buffer between two phases of a barrier of the warp's threads), through the CUDA
backend's own launch path (``CudaRowKernel``) with numpy standing in for cupy.

nvcc missing: the compile tests fail when ``CI`` is set, else they are skipped.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from cuda_host import SHIM, find_gxx, host_cuda_backend, require_nvcc
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cuda_codegen import _EmulatedKernels
from test_cuda_cols_codegen import host_col_kernel
from test_reduction_fusion import _run, programs

import fusejit
from fusejit.base import dtypes as dt
from fusejit.base.errors import CompileError
from fusejit.codegen import cuda as cg
from fusejit.codegen import cuda_rows as cr
from fusejit.codegen.cols import ColBody
from fusejit.codegen.rows import RowBody, schedule
from fusejit.jit import runtime
from fusejit.jit.api import optimize_graph
from fusejit.jit.passes import fuse
from fusejit.jit.runtime import Plan

ARCHS = ("sm_80", "sm_90")
R_ = fusejit.randn


# ---- the functions -----------------------------------------------------------------------------
def softmax(x):
    return x.softmax(-1)


def log_softmax(x):
    return x.log_softmax(-1)


def lse(x):
    return fusejit.logsumexp(x, -1)


def lse_keep(x):
    return fusejit.logsumexp(x, (-2, -1), keepdim=True)


def layer_norm(x, w, b):
    return fusejit.layer_norm(x, (x.shape[-1],), w, b)


def rms_norm(x, w):
    return x * fusejit.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w


def center(x):
    return x - x.mean(-1, keepdim=True)


def standardize(x):
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)


def cross_entropy(z, y):
    return fusejit.logsumexp(z, -1) - (z * y).sum(-1)


def sum_expr(x, y):
    return (x * y + 1).sum(-1), (x - y).abs().amax(-1, keepdim=True), (x * 2).mean(-1)


def primitive_softmax(x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def int_sum(i):
    return (i * 3 - 1).sum(-1)


def two_outputs(x, s):
    h = (x * s).tanh()  # s is one value per row
    return h, h - h.amax(-1, keepdim=True)


def normalize(x, s):
    # divisions by per-row values: a row sum (1.5 N, -inf or NaN in the special rows) and a
    # per-row input (with zero, infinite, tiny and huge values: see _cases)
    return x / x.sum(-1, keepdim=True) + x / s


def row_range(x):
    return x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True) + x


def _fns(N):
    """(name, fn, args) with rows of N elements."""
    f16 = lambda *s: R_(*s).half()  # noqa: E731
    return [
        ("softmax", softmax, (R_(5, N) * 3,)),
        ("softmax16", softmax, (f16(5, N) * 3,)),
        ("softmax64", softmax, (R_(5, N).double(),)),
        ("normalize", normalize, (R_(5, N), R_(5, 1))),
        ("log_softmax", log_softmax, (R_(5, N),)),
        ("lse", lse, (R_(2, 3, N),)),
        ("lse_keep", lse_keep, (R_(3, 2, N),)),
        ("layer_norm", layer_norm, (R_(5, N), R_(N), R_(N))),
        ("layer_norm16", layer_norm, (f16(5, N), f16(N), f16(N))),
        ("rms_norm", rms_norm, (R_(5, N), R_(N))),
        ("center", center, (R_(5, N),)),
        ("standardize", standardize, (R_(5, N) * 3 + 5,)),
        ("cross_entropy", cross_entropy, (R_(5, N), (R_(5, N) > 1).float())),
        ("sum_expr", sum_expr, (R_(5, N), R_(5, N))),
        ("primitive_softmax", primitive_softmax, (R_(5, N),)),
        ("int_sum", int_sum, (fusejit.randint(-50, 50, (5, N), dtype=fusejit.int32),)),
        ("two_outputs", two_outputs, (R_(5, N), R_(5, 1))),
        # small ints: the warp shuffles widen them to int
        *[
            (f"range_{d.name}", row_range, (fusejit.randint(0, 50, (5, N), dtype=d),))
            for d in (fusejit.int8, fusejit.uint8, fusejit.int16)
        ],
    ]


def _optimized(fn, args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = fusejit.trace(fn, args, check_trace=False)
    return optimize_graph(traced.raw_graph, "cuda")


def _row_bodies(N=40) -> list:
    out = []
    for name, fn, args in _fns(N):
        g = _optimized(fn, args)
        out += [(name, n.attr("body")) for n in g.nodes if n.op == "fused"]
    return out


# ---- render-only checks ------------------------------------------------------------------------
def test_every_pattern_is_one_row_kernel_on_cuda():
    for name, fn, args in _fns(40):
        g = _optimized(fn, args)
        assert [n.op for n in g.nodes] == ["fused"], name
        assert isinstance(g.nodes[0].attr("body"), RowBody), name


def test_plan_rows_picks_warp_block_and_cache():
    body = dict(_row_bodies())["softmax"]
    assert cr.plan_rows(body, 1) == cr.RowVariant("warp", 1)
    assert cr.plan_rows(body, 100) == cr.RowVariant("warp", 4)
    assert cr.plan_rows(body, 256) == cr.RowVariant("warp", 8)
    # rows of up to SMALL_ROWS elements: blocks of 128 threads
    assert cr.plan_rows(body, 257) == cr.RowVariant("block", 4, 1, 128)
    assert cr.plan_rows(body, 1024) == cr.RowVariant("block", 8, 1, 128)
    assert cr.plan_rows(body, 1025) == cr.RowVariant("block", 16, 1, 128)
    assert cr.plan_rows(body, 2049) == cr.RowVariant("block", 16)
    assert cr.plan_rows(body, 4096) == cr.RowVariant("block", 16)
    assert cr.plan_rows(body, 8192) == cr.RowVariant("block", 32)
    assert cr.plan_rows(body, 8193) == cr.RowVariant("block", 0)  # multi-pass fallback
    # a single pass reads its input once, into registers too: its loads are issued together
    one_pass = dict(_row_bodies())["int_sum"]
    assert cr.plan_rows(one_pass, 100).cache == 4
    assert cr.grid_rows(17, cr.RowVariant("warp", 1)) == 3
    assert cr.grid_rows(17, cr.RowVariant("block", 0)) == 17
    # rows aligned for 16-byte accesses: chunks of 4 float32 elements per load and store
    assert cr.row_vec(body) == 4 and cr.row_vec(dict(_row_bodies())["layer_norm16"]) == 8
    assert cr.plan_rows(body, 4096, aligned=True) == cr.RowVariant("block", 16, 4)
    assert cr.plan_rows(body, 1024, aligned=True) == cr.RowVariant("block", 8, 4, 128)
    assert cr.plan_rows(body, 100, aligned=True) == cr.RowVariant("warp", 4, 4)
    assert cr.plan_rows(body, 8, aligned=True) == cr.RowVariant("warp", 4, 4)
    assert cr.plan_rows(body, 8192, aligned=True) == cr.RowVariant("block", 32, 4)
    assert cr.plan_rows(body, 1026, aligned=True) == cr.RowVariant("block", 16, 1, 128)
    assert cr.plan_rows(body, 8193, aligned=True) == cr.RowVariant("block", 0)
    assert cr.RowVariant("block", 16, 4).tag == "rows-block-c16-v4"
    assert cr.RowVariant("block", 8, 4, 128).tag == "rows-block-c8-v4-t128"
    assert cr.RowVariant("block", 8, 4, 128).block_threads == 128
    assert cr.RowVariant("warp", 8).block_threads == 256


def test_softmax_reads_its_input_once():
    body = dict(_row_bodies())["softmax"]
    sch = schedule(body, online=True)
    assert len(sch.passes) == 2 and sch.online  # (max, sum) then normalize
    assert len(schedule(body).passes) == 3
    # in registers: one load loop (nothing else in it), then plain passes over the registers
    src = cr.render_row_kernel(body, cr.RowVariant("block", 16))
    assert src.count("a0r[j]") == 1 and "xc0[c] = j < N ? a0r[j]" in src
    assert "fj_rescale" not in src and src.count("__syncthreads") == 2
    # one division per row: the normalization multiplies by the reciprocal of the sum
    assert "rcp4 = (float)1 / (d4 * sc4)" in src and "((t2 * rcp4) * sc4)" in src
    assert "/ t3" not in src
    # too long for registers: the online (max, sum) pass, so the row is read twice
    long_rows = cr.render_row_kernel(body, cr.RowVariant("block", 0))
    assert long_rows.count("a0r[j]") == 2 and "fj_rescale" in long_rows
    warp = cr.render_row_kernel(body, cr.RowVariant("warp", 2))
    assert "__syncthreads" not in warp and "__shfl_xor_sync" in warp
    # wide: one 16-byte load and one 16-byte store per chunk of 4 elements
    wide = cr.render_row_kernel(body, cr.RowVariant("block", 16, 4))
    assert wide.count("reinterpret_cast<const fj_vec<float, 4>*>(a0r + j0)") == 1
    assert wide.count("reinterpret_cast<fj_vec<float, 4>*>(o0r + j0) = w0") == 1
    assert "a0r[j]" not in wide and "o0r[j]" not in wide


def test_float16_accumulates_in_float32():
    body = dict(_row_bodies())["layer_norm16"]
    src = cr.render_row_kernel(body, cr.RowVariant("block", 8))
    assert "fj_h2f(" in src and "fj_f2h(" in src and "fj_round_h(" in src
    assert "double" not in src and "fj_half s" not in src  # partials are float


@pytest.fixture(autouse=True, scope="module")
def _host_addresses():
    # the launch path asks an array for its device address (row alignment): numpy's, here
    from fusejit.backends import cuda_kernels as cb

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cb, "_ptr", lambda a: a.ctypes.data)
        yield


# ---- host emulation ----------------------------------------------------------------------------
# row kernels run a block's threads as real threads (barriers, warp exchanges): the thread
# index is per thread, and __syncthreads / __shfl_xor_sync are built from barriers
ROW_SHIM = (
    SHIM
    + r"""
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#define __shared__ static
static fj_dim3 blockIdx, blockDim, gridDim;
static thread_local fj_dim3 threadIdx;
struct fj_barrier {  // a reusable barrier for n threads (C++17: no std::barrier)
    explicit fj_barrier(unsigned n) : n(n) {}
    void arrive_and_wait() {
        std::unique_lock<std::mutex> lock(m);
        const unsigned long long phase = gen;
        if (++count == n) {
            count = 0;
            ++gen;
            cv.notify_all();
        } else {
            cv.wait(lock, [&] { return gen != phase; });
        }
    }
    std::mutex m;
    std::condition_variable cv;
    unsigned n, count = 0;
    unsigned long long gen = 0;
};
static fj_barrier* fj_block_bar;
static fj_barrier* fj_warp_bar[32];
static long long fj_xchg[32][32];
static inline void __syncthreads() { fj_block_bar->arrive_and_wait(); }
// (blocks run one after another: a block's writes are seen by the next ones)
static inline void __threadfence() {}
static inline unsigned atomicAdd(unsigned* p, unsigned v) {
    const unsigned o = *p;
    *p += v;
    return o;
}
template <typename T>
static inline T __shfl_xor_sync(unsigned, T v, int o) {
    const unsigned w = threadIdx.x >> 5, l = threadIdx.x & 31;
    memcpy(&fj_xchg[w][l], &v, sizeof(T));
    fj_warp_bar[w]->arrive_and_wait();
    T r;
    memcpy(&r, &fj_xchg[w][l ^ o], sizeof(T));
    fj_warp_bar[w]->arrive_and_wait();
    return r;
}
"""
)


def _launcher(name: str, body: RowBody, v: cr.RowVariant) -> str:
    T = v.block_threads
    n_p = len(body.ports)
    args = [f"(const {cg.ctype(d)}*)p[{i}]" for i, (_, _, d) in enumerate(body.ports)]
    n_o = len(body.outputs)
    args += [f"({cg.ctype(d)}*)p[{n_p + k}]" for k, d in enumerate(body.out_dtypes())]
    split = v.mode == "split"
    if split:  # the partials and the counters
        args += [f"(unsigned long long*)p[{n_p + n_o}]", f"(unsigned*)p[{n_p + n_o + 1}]"]
    n_ld = sum(v == "full" for _, v, _ in body.ports)
    args += [f"q[{j}]" for j in range(2 + n_ld + split)]
    return (
        f'extern "C" void launch_{name}(void** p, long long* q, unsigned grid) {{\n'
        f"  gridDim.x = grid; blockDim.x = {T};\n"
        f"  fj_barrier block({T});\n"
        "  fj_block_bar = &block;\n"
        "  std::vector<std::unique_ptr<fj_barrier>> warps;\n"
        f"  for (int w = 0; w < {T // 32}; ++w) {{\n"
        "    warps.emplace_back(new fj_barrier(32));\n"
        "    fj_warp_bar[w] = warps.back().get();\n"
        "  }\n"
        "  for (unsigned b = 0; b < grid; ++b) {\n"
        "    blockIdx.x = b;\n"
        "    std::vector<std::thread> ts;\n"
        f"    for (unsigned t = 0; t < {T}; ++t)\n"
        f"      ts.emplace_back([=] {{ threadIdx.x = t; {name}({', '.join(args)}); }});\n"
        "    for (auto& th : ts) th.join();\n"
        "  }\n}\n"
    )


class RowHostLib:
    """Row kernels compiled as host C++ (one shared library for many kernels)."""

    def __init__(self, gxx: str, folder: Path, kernels: list) -> None:
        parts = [ROW_SHIM, cg.prelude()]
        self.variants = {name: v for name, _, v in kernels}
        for name, body, v in kernels:
            parts.append(cr.render_row_kernel(body, v, name))
            parts.append(_launcher(name, body, v))
        src = folder / "rows.cpp"
        src.write_text("\n".join(parts))
        lib = folder / "rows.so"
        cmd = [gxx, "-O1", "-shared", "-fPIC", "-pthread", "-w", "-std=c++17", "-o", str(lib),
               str(src)]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"g++ failed:\n{res.stderr[-6000:]}"
        self.lib = ctypes.CDLL(str(lib))

    def function(self, name: str, body: RowBody):
        """``fn(grid, block, args)`` as the CUDA backend launches it."""
        fn = getattr(self.lib, f"launch_{name}")
        n_arr = len(body.ports) + len(body.outputs) + 2 * (self.variants[name].mode == "split")

        def launch(grid, block, args):
            assert block == (self.variants[name].block_threads,) and len(grid) == 1
            arrays, ints = args[:n_arr], args[n_arr:]
            assert all(type(i) is np.int64 for i in ints)  # the kernel's `long long`s
            for a in arrays:
                assert a.dtype.itemsize == 1 or a.ctypes.data % a.dtype.itemsize == 0
            ptrs = [a.ctypes.data for a in arrays]
            fn((ctypes.c_void_p * len(ptrs))(*ptrs),
               (ctypes.c_longlong * len(ints))(*[int(i) for i in ints]),
               ctypes.c_uint(grid[0]))  # fmt: skip

        return launch


@pytest.fixture(scope="module")
def gxx() -> str:
    return find_gxx()


def _host_backend(lib_kernels: dict):
    """``backends.cuda.CudaBackend`` with numpy for cupy, launching prebuilt host kernels."""

    def function(body, v):
        b.launched.append(v)
        return lib_kernels[(body, v)]

    b = host_cuda_backend(function)
    b.launched = []
    return b


def _special_rows(x: np.ndarray, rng) -> np.ndarray:
    """Row 0: all equal; row 1: a -inf; row 2: a nan; row 3: all -inf (float inputs)."""
    x = x.copy()
    if x.dtype.kind != "f" or x.shape[-1] < 2:
        return x
    flat = x.reshape(-1, x.shape[-1])
    flat[0] = 1.5
    flat[1, 1] = -np.inf
    if flat.shape[0] > 3:
        flat[2, 0] = np.nan
        flat[3] = -np.inf
    return x


# N: length 1, warp rows, rows in blocks of 128 and of 256 threads (cached), rows too long to cache
_LENGTHS = (1, 37, 1500, 3000, 8200)


def _cases(rng):
    cases = []
    for N in _LENGTHS:
        for name, fn, args in _fns(N):
            if N in (3000, 8200) and name not in ("softmax", "layer_norm16", "cross_entropy"):
                continue  # the uncached fallback: a few, it is slow to emulate
            arrays = [_special_rows(a.numpy(), rng) if i == 0 else a.numpy()
                      for i, a in enumerate(args)]  # fmt: skip
            if name == "normalize":  # divisors whose reciprocals overflow or are subnormal
                arrays[1] = np.array([[0.0], [np.inf], [1e-40], [3e38], [-2e-39]], np.float32)
            cases.append((f"{name}_N{N}", fn, arrays))
    return cases


def _tol(d):
    return {"float16": 4e-3, "float32": 3e-5, "float64": 1e-12}.get(np.dtype(d).name, 0)


def test_emulated_row_kernels_match_eager(gxx, tmp_path, monkeypatch):
    rng = np.random.default_rng(11)
    cases = _cases(rng)
    runs, kernels = [], []
    for cname, fn, arrays in cases:
        # (traced with rows of length 1, a final reshape to drop the reduced dim cannot be told
        # from a full value: it stays an eager op beside the row kernel, and so does the lone
        # elementwise op after it, since only row kernels are emulated here)
        with fuse.min_region("cuda", 2):
            g = _optimized(fn, tuple(fusejit.from_numpy(a) for a in arrays))
        (node,) = [n for n in g.nodes if n.op == "fused"]
        body = node.attr("body")
        assert isinstance(body, RowBody)
        N = int(np.prod(arrays[0].shape[-body.k :]))  # (the row: the last k dims)
        # (wide loads where the rows are aligned for them: the launch decides)
        for v in {cr.plan_rows(body, N), cr.plan_rows(body, N, aligned=True)}:
            kernels.append((f"k{len(kernels)}", body, v))
        runs.append((cname, fn, arrays, g))
    lib = RowHostLib(gxx, tmp_path, kernels)
    prebuilt = {(body, v): lib.function(name, body) for name, body, v in kernels}
    backend = _host_backend(prebuilt)
    monkeypatch.setattr(runtime, "_kernel_for", lambda node, dev: backend.row_kernel(
        node.attr("body")))  # fmt: skip
    seen = set()
    for cname, fn, arrays, g in runs:
        tensors = [fusejit.from_numpy(a) for a in arrays]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = Plan(g).run(tensors, g.captured)
            want = fn(*tensors)
        want = want if isinstance(want, tuple) else (want,)
        for k, (a, e) in enumerate(zip(got, want, strict=True)):
            x, y = a.numpy(), e.numpy()
            assert x.dtype == y.dtype and x.shape == y.shape, cname
            tol = _tol(x.dtype)
            # normwise for sums: the error of a sum is relative to its terms
            atol = tol * max(1.0, float(np.nanmax(np.abs(y[np.isfinite(y)]), initial=0)))
            np.testing.assert_allclose(x, y, rtol=tol, atol=atol, equal_nan=True,
                                       err_msg=f"{cname} output {k}")  # fmt: skip
        seen.add(backend.launched[-1].tag)
    # (traced with rows of length 1, the input is a per-row port: "c0", nothing re-read)
    assert {"rows-warp-c0", "rows-warp-c2", "rows-block-c16-t128", "rows-block-c16-v4-t128",
            "rows-block-c16-v4",
            "rows-block-c0"} <= seen, seen  # fmt: skip


def test_emulated_strided_and_broadcast_inputs(gxx, tmp_path, monkeypatch):
    # a row slice of a wider array (rows ld apart), a per-row tensor and a scalar tensor
    def f(x, s, c):
        return ((x * s + c).softmax(-1) * 2).sum(-1, keepdim=True) + x

    rng = np.random.default_rng(2)
    wide = rng.standard_normal((6, 50)).astype(np.float32)
    x, s = wide[:, 3:43], rng.standard_normal((6, 1)).astype(np.float32)
    c = np.float32(0.5) * np.ones((1, 1), np.float32)
    g = _optimized(f, tuple(fusejit.from_numpy(a) for a in (x, s, c)))
    (node,) = g.nodes
    body = node.attr("body")
    assert sorted(v for _, v, _ in body.ports) == ["full", "keep", "scalar"]
    v = cr.plan_rows(body, 40)
    lib = RowHostLib(gxx, tmp_path, [("k", body, v)])
    backend = _host_backend({(body, v): lib.function("k", body)})
    k = backend.row_kernel(body)
    assert backend.row_kernel(body) is k
    order = [g.block.params.index(p) for p in node.inputs]
    arrays = [(x, s, c)[i] for i in order]
    (got,) = k(*arrays)
    want = f(*[fusejit.from_numpy(a) for a in (x, s, c)]).numpy()
    np.testing.assert_allclose(got, want, rtol=3e-5, atol=3e-5)
    assert k.variants() == [v.tag]


@pytest.mark.parametrize("N", [37, 1500, 3000])
def test_emulated_rows_aligned_and_offset(gxx, tmp_path, N):
    # the same rows, aligned for 16-byte accesses and one element off: the launch takes the
    # wide variant only for the first, and both compute the eager values
    rng = np.random.default_rng(N)
    wide = rng.standard_normal((6, N + 4)).astype(np.float32)
    w, b = (rng.standard_normal(N).astype(np.float32) for _ in range(2))

    def f(x, w, b):
        return fusejit.layer_norm(x, (N,), w, b), x.softmax(-1)

    for n, x in enumerate((wide[:, :N], wide[:, 1 : N + 1])):
        args = tuple(fusejit.from_numpy(a) for a in (x, w, b))
        g = _optimized(f, args)
        (node,) = [n for n in g.nodes if n.op == "fused"]
        body = node.attr("body")
        aligned = n == 0 and x.ctypes.data % 16 == 0 and N % 4 == 0
        v = cr.plan_rows(body, N, aligned)
        assert v.vec == (4 if aligned else 1)
        folder = tmp_path / f"k{n}"
        folder.mkdir()
        lib = RowHostLib(gxx, folder, [("k", body, v)])
        k = _host_backend({(body, v): lib.function("k", body)}).row_kernel(body)
        order = [g.block.params.index(p) for p in node.inputs]
        got = k(*[(x, w, b)[i] for i in order])
        for out, want in zip(got, f(*args), strict=True):
            np.testing.assert_allclose(out, want.numpy(), rtol=3e-5, atol=3e-5)
        assert k.variants() == [v.tag]


def test_short_rows_and_no_rows_on_host(gxx, tmp_path):
    # a kernel traced with long rows, called with rows of 1 and 2 elements and with no rows
    body = dict(_row_bodies())["softmax"]
    variants = [cr.plan_rows(body, n) for n in (1, 2)]
    assert [v.tag for v in variants] == ["rows-warp-c1", "rows-warp-c1"]
    lib = RowHostLib(gxx, tmp_path, [("k", body, variants[0])])
    backend = _host_backend({(body, variants[0]): lib.function("k", body)})
    k = backend.row_kernel(body)
    for shape in ((3, 1), (3, 2)):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        (got,) = k(x)
        np.testing.assert_allclose(got, fusejit.from_numpy(x).softmax(-1).numpy(), rtol=3e-5)
    (out,) = k(np.zeros((0, 7), np.float32))  # no rows: nothing launched
    assert out.shape == (0, 7) and len(backend.launched) == 1


# ---- split rows: few long rows, a whole tensor -------------------------------------------------
def _exported(x):
    y = x * 2
    return y, y.sum()


def _split_fns():
    """(name, fn, args): one pass over a whole tensor, or over two long rows."""
    rng = np.random.default_rng(5)
    big = lambda *s: fusejit.from_numpy(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    a = rng.standard_normal((30, 1000)).astype(np.float32)
    a[7, 3] = np.nan
    nan = fusejit.from_numpy(a)
    return [
        ("dot", lambda x, y: (x * y).sum(), (big(30, 1000), big(30, 1000))),
        ("dot_offset", lambda x, y: (x * y).sum(), (big(30001)[1:], big(30001)[1:])),
        ("mse", lambda x, y: ((x - y) ** 2).mean(), (big(30, 1000), big(30, 1000))),
        ("max_abs_nan", lambda x: x.abs().amax(), (nan,)),
        ("min_keepdim", lambda x: (x * 3).amin((0, 1), keepdim=True), (big(30, 1000),)),
        ("count", lambda x: (x > 0.5).sum(), (big(30, 1000),)),
        ("int_sum", lambda i: (i * 3 - 1).sum(),
         (fusejit.randint(-50, 50, (30, 1000), dtype=fusejit.int32),)),
        ("half_sum", lambda h: (h * 2).sum(), (big(30, 1000).half(),)),
        ("norm", lambda x: (x * x).sum().sqrt() + 1, (big(30000),)),
        ("exported", _exported, (big(30, 1000),)),
        ("two_rows", lambda x: (x * x).mean(-1), (big(2, 20000),)),
        ("two_rows_lse", lambda x: fusejit.logsumexp(x * 2, -1), (big(2, 20000),)),
        ("sum_of_several_rows", lambda x, y: (x - y).sum(-1), (big(3, 20000), big(3, 20000))),
        ("max_int8", lambda i: (i - 3).amax(),
         (fusejit.randint(-50, 50, (30, 1000), dtype=fusejit.int8),)),
        ("min_uint8", lambda i: (i * 2).amin(),
         (fusejit.randint(1, 100, (30, 1000), dtype=fusejit.uint8),)),
    ]  # fmt: skip


def test_split_rows_are_planned_for_few_long_rows_of_one_pass():
    bodies = {name: [n.attr("body") for n in _optimized(fn, args).nodes if n.op == "fused"]
              for name, fn, args in _split_fns()}  # fmt: skip
    assert all(len(b) == 1 and cr.splittable(b[0]) for b in bodies.values()), bodies
    (dot,) = bodies["dot"]
    assert cr.split_blocks(1, 1 << 24, 132) == 132 * cr.SPLIT_BLOCKS_PER_SM
    assert cr.split_blocks(1, 3 * cr.SPLIT_CHUNK, 132) == 3  # a block reduces a chunk at least
    assert cr.split_blocks(1, cr.SPLIT_CHUNK, 132) == 1  # one block is enough
    assert cr.split_blocks(33, 1 << 20, 132) == 132 * cr.SPLIT_BLOCKS_PER_SM // 33
    assert cr.split_blocks(2000, 1 << 20, 132) == 1  # rows enough to fill the GPU
    # a whole tensor of 2**31 elements or more is one row too: 64-bit indices
    assert cr.split_blocks(1, 1 << 33, 132) == 132 * cr.SPLIT_BLOCKS_PER_SM
    assert "const long long N = N_;" in cr.render_row_kernel(dot, cr.SPLIT)
    (two_pass,) = [b for name, b in _row_bodies() if name == "softmax"]
    assert not cr.splittable(two_pass)
    with pytest.raises(CompileError, match="one pass"):
        cr.render_row_kernel(two_pass, cr.SPLIT)
    (lse,) = bodies["two_rows_lse"]  # an online softmax pair: two partials a block
    assert cr.partials(lse) == 2 and cr.partials(dot) == 1 and cr.partials(two_pass) == 0


def test_emulated_split_rows_match_eager_and_float64(gxx, tmp_path, monkeypatch):
    # the host backend has 1 SM: split rows run on SPLIT_BLOCKS_PER_SM blocks at most, one
    # after another, a block's 256 threads as real threads
    backend = _lazy_backend(gxx, tmp_path)
    # (traced first: the trace builds its own CPU plan, whose kernels are CPU ones)
    graphs = [(name, fn, args, _optimized(fn, args)) for name, fn, args in _split_fns()]
    monkeypatch.setattr(runtime, "_kernel_for", lambda node, dev: backend.row_kernel(
        node.attr("body")))  # fmt: skip
    seen = set()
    for name, fn, args, g in graphs:
        before = len(backend.launched)
        with np.errstate(all="ignore"):
            got = Plan(g).run(list(args), g.captured)
        want = fn(*args)
        launched = backend.launched[before:]
        assert len(launched) == 1, name
        if name != "sum_of_several_rows":
            assert launched[0].mode == "split", (name, launched)
        seen.add(launched[0].tag)
        for k, (a, e) in enumerate(zip(got, want if isinstance(want, tuple) else (want,),
                                       strict=True)):  # fmt: skip
            x, y = a.numpy(), e.numpy()
            assert x.dtype == y.dtype and x.shape == y.shape, (name, k)
            tol = _tol(x.dtype) * (10 if x.dtype == np.float16 else 1)
            np.testing.assert_allclose(x.astype(np.float64), y.astype(np.float64), rtol=tol,
                                       atol=tol * np.nanmax(np.abs(y.astype(np.float64)),
                                                            initial=1), equal_nan=True,
                                       err_msg=f"{name} output {k}")  # fmt: skip
        if name == "dot":  # against float64: a float32 sum's bound (cuda_rows docstring)
            x64, y64 = (a.numpy().astype(np.float64) for a in args)
            terms = np.abs(x64 * y64).sum()
            err = abs(float(got[0].numpy()) - (x64 * y64).sum())
            # roundings: the product, n / (256 S) adds a thread (S = 7 blocks: ~17), 8 + 8
            # pairwise steps in the blocks and the block partials: about 40
            assert err <= 64 * 2.0**-24 * terms
    # 16-byte loads where the rows are aligned for them (as plan_rows), 4-byte ones elsewhere
    assert {"rows-split-c0", "rows-split-c0-v4", "rows-split-c0-v8"} <= seen, seen
    # every launch left its counters zero (the next launch counts from 0)
    for _, cnt in backend._split_scratch.values():
        assert not cnt.any()


# ---- random graphs through the CUDA target ----------------------------------------------------
def _lazy_backend(gxx: str, folder: Path):
    """A host backend compiling each (row body, variant) as it is first launched."""
    libs: dict = {}

    class _Lazy(dict):
        def __missing__(self, key):
            body, v = key
            sub = folder / f"rows{len(libs)}"
            sub.mkdir()
            libs[key] = RowHostLib(gxx, sub, [("k", body, v)]).function("k", body)
            return libs[key]

    return _host_backend(_Lazy())


@settings(max_examples=6, derandomize=True, deadline=None)
@given(prog=programs(), half=st.booleans())
def test_emulated_random_graphs_match_eager(tmp_path_factory, prog, half):
    # elementwise ops and reductions over random dims, optimized for the cuda target: row
    # kernels run through the threaded shim, elementwise ones through test_cuda_codegen's
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        pytest.skip("no host C++ compiler to run generated kernels on the CPU")
    shape, steps, outs = prog
    rng = np.random.default_rng(len(steps))
    d = np.float16 if half else np.float32
    tensors = [
        fusejit.from_numpy(rng.standard_normal(s).astype(d)) for s in (shape, shape, shape[-1:])
    ]

    def fn(x, y, v):
        return _run(shape, steps, outs, x, y, v, None)

    folder = tmp_path_factory.mktemp("prog")
    g = _optimized(fn, tuple(tensors))
    backend = _lazy_backend(gxx, folder)
    (folder / "ew").mkdir()
    ew = _EmulatedKernels(gxx, folder / "ew")

    def kernel_for(node, dev):
        body = node.attr("body")
        if isinstance(body, ColBody):  # (reductions over leading dims: column kernels)
            return host_col_kernel(gxx, folder, body)
        return backend.row_kernel(body) if isinstance(body, RowBody) else ew(node, dev)

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(runtime, "_kernel_for", kernel_for)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = Plan(g).run(tensors, g.captured)
            want = fn(*tensors)
    finally:
        mp.undo()
    for k, (a, e) in enumerate(zip(got, want, strict=True)):
        x, y = a.numpy(), e.numpy()
        assert x.dtype == y.dtype and x.shape == y.shape, f"output {k}"
        tol = 1e-2 if half else 1e-4
        fin = np.abs(y[np.isfinite(y)]).astype(np.float64)
        atol = tol * max(1.0, float(fin.max()) if fin.size else 1.0)
        np.testing.assert_allclose(
            x.astype(np.float64),
            y.astype(np.float64),
            rtol=tol,
            atol=atol,
            equal_nan=True,
            err_msg=f"output {k} of {steps}",
        )


# ---- nvcc --------------------------------------------------------------------------------------
VARIANTS = [
    cr.RowVariant("warp", 1),
    cr.RowVariant("warp", 32),
    cr.RowVariant("warp", 0),
    cr.RowVariant("block", 8),
    cr.RowVariant("block", 32),
    cr.RowVariant("block", 0),
    cr.RowVariant("warp", 8, 4),
    cr.RowVariant("block", 16, 4),
    cr.RowVariant("block", 16, 8),
    cr.RowVariant("block", 8, 4, 128),
    cr.RowVariant("block", 0, 1, 128),
]


def _source(fp16_header: bool) -> str:
    parts = []
    bodies = _row_bodies()
    if not fp16_header:
        bodies = [(n, b) for n, b in bodies if cr.uses_half(b)]
    head = "#define FJ_HAVE_CUDA_FP16 1\n" if fp16_header else ""
    parts.append(head + cg.prelude())
    for name, body in bodies:
        for v in VARIANTS:
            parts.append(cr.render_row_kernel(body, v, f"k_{name}_{v.tag.replace('-', '_')}"))
    splits = [(f"few_{name}", n.attr("body")) for name, fn, args in _split_fns()
              for n in _optimized(fn, args).nodes if n.op == "fused"]  # fmt: skip
    for name, body in splits + [(n, b) for n, b in bodies if cr.splittable(b)]:
        if fp16_header or cr.uses_half(body):
            for v in dict.fromkeys([cr.SPLIT, cr.split_variant(body, aligned=True)]):
                parts.append(cr.render_row_kernel(body, v, f"k_{name}_{v.tag.replace('-', '_')}"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def nvcc_jobs(tmp_path_factory):
    """nvcc processes started once for the module (they run while the emulation tests do)."""
    path = require_nvcc("the generated CUDA row kernels")
    folder = tmp_path_factory.mktemp("nvcc_rows")
    jobs = {}
    for tag, fp16 in (("hdr", True), ("ptx", False)):
        src = folder / f"rows_{tag}.cu"
        src.write_text(_source(fp16))
        for arch in ARCHS:
            out = folder / f"rows_{tag}.{arch}.cubin"
            cmd = [path, "--cubin", f"-arch={arch}", "-std=c++17", "-Werror", "all-warnings",
                   "-o", str(out), "-x", "cu", str(src)]  # fmt: skip
            jobs[(tag, arch)] = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT)  # fmt: skip
    yield jobs
    for p in jobs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("tag", ["hdr", "ptx"], ids=["cuda_fp16", "ptx_cvt"])
def test_nvcc_compiles_every_row_kernel(nvcc_jobs, arch, tag):
    out, _ = nvcc_jobs[(tag, arch)].communicate(timeout=900)
    assert nvcc_jobs[(tag, arch)].returncode == 0, out.decode()[-6000:]


def test_nvcc_compiles_the_row_experiment_variants(tmp_path):
    """bench/bench_rows_cuda.py times variants of the planned row kernels on a GPU (threads
    per row, fast exp, no register cache): they must stay valid CUDA for when it runs."""
    import importlib.util

    path = require_nvcc("the row-kernel experiment's sources")
    script = Path(__file__).resolve().parents[1] / "bench" / "bench_rows_cuda.py"
    spec = importlib.util.spec_from_file_location("bench_rows_cuda", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = tmp_path / "rows_experiment.cu"
    src.write_text(mod.combined_source())
    assert src.read_text().count("__global__") >= 20
    cmd = [path, "--cubin", "-arch=sm_90", "-std=c++17", "-Werror", "all-warnings",
           "-o", str(tmp_path / "rows_experiment.cubin"), "-x", "cu", str(src)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-6000:]


_ = dt  # (dtype names in the helpers above come from the codegen)
