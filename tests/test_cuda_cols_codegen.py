"""CUDA column kernels without a GPU: they compile with nvcc (sm_80, sm_90), and compute the
right values when compiled as host C++ (each block's threads run one after another: a column
kernel's threads never wait for each other), launched through the CUDA backend's own path
(``CudaColKernel``) with numpy standing in for cupy, in one launch and in row parts plus a
combining launch.

nvcc missing: the compile test fails when ``CI`` is set, else it is skipped.
"""

from __future__ import annotations

import ctypes
import subprocess
import warnings

import numpy as np
import pytest
from cuda_host import SHIM, find_gxx, host_cuda_backend, require_nvcc
from fusejit.backends.cuda_kernels import CudaColKernel

import fusejit
from fusejit.codegen import cuda as cg
from fusejit.codegen import cuda_cols as cc
from fusejit.codegen.cols import ColBody, acc_dtype, reductions
from fusejit.codegen.rows import is_reduction
from fusejit.jit.api import optimize_graph

ARCHS = ("sm_80", "sm_90")
R_ = fusejit.randn
I32 = fusejit.int32
EPS = float(np.finfo(np.float32).eps)


def _fns():
    """(name, fn, args, reference in float64 or None: compare with eager)."""
    f16 = lambda *s: R_(*s).half()  # noqa: E731
    return [
        ("mul_sum0", lambda x, y: (x * y).sum(0), (R_(300, 37), R_(300, 37))),
        ("ln_grads", lambda dy, xh: ((dy * xh).sum(0), dy.sum(0)), (R_(200, 24), R_(200, 24))),
        ("sum01", lambda x: x.sum((0, 1)), (R_(6, 70, 9),)),
        ("middle", lambda x: (x.exp() + 1).sum(1), (R_(5, 130, 7),)),
        ("keep_epilogue", lambda x: x.sum(1, keepdim=True) * 2 + 1, (R_(3, 90, 11),)),
        ("mean_amax_amin", lambda x: (x.mean(0), x.amax(0), x.amin(0)), (R_(150, 13),)),
        ("bias_bcast", lambda x, b, o: ((x + b) * o).sum(1), (R_(4, 80, 6), R_(6), R_(4, 1, 6))),
        (
            "ln_row",
            lambda dy, x, mu, rs: (dy * ((x - mu) * rs)).sum(0),
            (R_(90, 12), R_(90, 12), R_(90, 1), R_(90, 1).abs()),
        ),  # fmt: skip
        ("exported", lambda x: (x * 3, (x * 3).sum(0)), (R_(100, 8),)),
        ("half", lambda x: (x * x).sum(0), (f16(140, 10),)),
        ("f64", lambda x: (x * x).mean(0), (R_(140, 10).double(),)),
        (
            "int",
            lambda i: (i * 2).sum(0),
            (fusejit.randint(-50, 50, (130, 9), dtype=fusejit.int32),),
        ),
        ("bool", lambda x: (x > 0).sum(0), (R_(120, 5),)),
    ]


def _bodies() -> list:
    out = []
    for name, fn, args in _fns():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = fusejit.trace(fn, args, check_trace=False)
        g = optimize_graph(traced.raw_graph, "cuda")
        nodes = [n for n in g.nodes if n.op == "fused"]
        assert len(nodes) == 1 and isinstance(nodes[0].attr("body"), ColBody), name
        # the kernel takes the fused node's inputs, in their order
        params = list(g.block.params)
        order = [params.index(v) for v in nodes[0].inputs]
        out.append((name, fn, args, nodes[0].attr("body"), order))
    return out


def test_render_shapes_of_the_source():
    src = cc.render_col_kernel(dict((n, b) for n, _, _, b, _o in _bodies())["ln_grads"])
    assert "double s" in src and "phase_" in src and "blockIdx.y" in src
    assert "atomic" not in src


def test_parts_fill_the_gpu_and_keep_rows_per_part():
    assert cc.parts(1 << 20, 4096, 132) == 1  # enough columns
    assert cc.parts(4096, 4096, 132) == 64  # bias gradient of 4096 columns: 64 rows a part
    assert cc.parts(768, 100, 132) == 1  # too few rows to split
    assert cc.parts(8, 1 << 24, 132) == cc.MAX_PARTS


# ---- nvcc ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_compiles_every_col_kernel(tmp_path, arch):
    path = require_nvcc("the generated CUDA column kernels")
    parts = ["#define FJ_HAVE_CUDA_FP16 1\n" + cg.prelude()]
    for name, _, _, body, _o in _bodies():
        parts.append(cc.render_col_kernel(body, f"k_{name}"))
    src = tmp_path / "cols.cu"
    src.write_text("\n".join(parts))
    cmd = [path, "--cubin", f"-arch={arch}", "-std=c++17", "-Werror", "all-warnings",
           "-o", str(tmp_path / f"cols.{arch}.cubin"), "-x", "cu", str(src)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]


# ---- host emulation ------------------------------------------------------------------------------
COL_SHIM = SHIM + "static fj_dim3 blockIdx, blockDim, gridDim, threadIdx;\n"


def _launcher(name: str, body: ColBody) -> str:
    n_p, n_o = len(body.ports), len(body.outputs)
    args = [f"(const {cg.ctype(d)}*)p[{i}]" for i, (_, _, d, _r) in enumerate(body.ports)]
    args += [f"({cg.ctype(d)}*)p[{n_p + k}]" for k, d in enumerate(body.out_dtypes())]
    reds = reductions(body)
    args += [f"({cg.ctype(acc_dtype(body.steps[j]))}*)p[{n_p + n_o + i}]"
             for i, j in enumerate(reds)]  # fmt: skip
    args += [f"q[{k}]" for k in range(5)]
    return (
        f'extern "C" void launch_{name}(void** p, long long* q, unsigned gx, unsigned gy) {{\n'
        f"  gridDim.x = gx; gridDim.y = gy; blockDim.x = {cc.BLOCK};\n"
        "  for (unsigned by = 0; by < gy; ++by)\n"
        "    for (unsigned bx = 0; bx < gx; ++bx)\n"
        f"      for (unsigned t = 0; t < {cc.BLOCK}; ++t) {{\n"
        "        blockIdx.x = bx; blockIdx.y = by; threadIdx.x = t;\n"
        f"        {name}({', '.join(args)});\n"
        "      }\n}\n"
    )


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    gxx = find_gxx()
    folder = tmp_path_factory.mktemp("cols_host")
    bodies = _bodies()
    parts = [COL_SHIM, cg.prelude()]
    for name, _, _, body, _o in bodies:
        parts.append(cc.render_col_kernel(body, f"k_{name}"))
        parts.append(_launcher(f"k_{name}", body))
    src = folder / "cols.cpp"
    src.write_text("\n".join(parts))
    lib = folder / "cols.so"
    cmd = [gxx, "-O1", "-shared", "-fPIC", "-w", "-std=c++17", "-o", str(lib), str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"g++ failed:\n{res.stderr[-6000:]}"
    return ctypes.CDLL(str(lib)), bodies


def _launch_fn(lib, name, body, grids=None):
    fn = getattr(lib, f"launch_k_{name}")
    n_arr = len(body.ports) + len(body.outputs) + len([s for s in body.steps if is_reduction(s)])

    def launch(grid, block, args):
        if grids is not None:
            grids.append(grid)
        assert block == (cc.BLOCK,) and len(grid) == 2
        arrays, ints = args[:n_arr], args[n_arr:]
        assert all(type(i) is np.int64 for i in ints) and len(ints) == 5
        for a in arrays:
            assert a.flags.c_contiguous
        ptrs = [a.ctypes.data for a in arrays]
        fn((ctypes.c_void_p * len(ptrs))(*ptrs),
           (ctypes.c_longlong * len(ints))(*[int(i) for i in ints]),
           ctypes.c_uint(grid[0]), ctypes.c_uint(grid[1]))  # fmt: skip

    return launch


def host_col_kernel(gxx: str, folder, body: ColBody) -> CudaColKernel:
    """``body``'s CUDA column kernel compiled as host C++ (one library per body, in
    ``folder``), behind the backend's own launch path (for other tests' random graphs)."""
    name = body.key()
    lib = folder / f"cols_{name}.so"
    if not lib.exists():
        src = folder / f"cols_{name}.cpp"
        parts = [COL_SHIM, cg.prelude(), cc.render_col_kernel(body, f"k_{name}")]
        src.write_text("\n".join([*parts, _launcher(f"k_{name}", body)]))
        cmd = [gxx, "-O1", "-shared", "-fPIC", "-w", "-std=c++17", "-o", str(lib), str(src)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"g++ failed:\n{res.stderr[-6000:]}"
    launch = _launch_fn(ctypes.CDLL(str(lib)), name, body)
    return CudaColKernel(host_cuda_backend(lambda body_, v: launch), body)


# sm_count 0: one launch (no parts); 64: the rows in parts and a combining launch
@pytest.mark.parametrize("sm_count", [0, 64])
def test_emulated_col_kernels_match_eager(host_lib, sm_count):
    lib, bodies = host_lib
    grids: list = []
    for name, fn, args, body, order in bodies:
        launch = _launch_fn(lib, name, body, grids)
        b = host_cuda_backend(lambda body_, v, launch=launch: launch)
        b.sm_count = sm_count
        got = CudaColKernel(b, body)(*[args[i].numpy() for i in order])
        want = fn(*args)
        want = want if isinstance(want, tuple) else (want,)
        assert len(got) == len(want), name
        for g, w in zip(got, want, strict=True):
            w = w.numpy()
            assert g.dtype == w.dtype and g.shape == w.shape, name
            if w.dtype.kind in "iub":
                np.testing.assert_array_equal(g, w, err_msg=name)
            elif w.dtype == np.float16:  # (eager sums float16 in float32, the kernel in double)
                np.testing.assert_allclose(g.astype(np.float64), w, rtol=2e-3, atol=0.1)
            else:
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5, err_msg=name)
    # with 64 SMs the columns are too few: the rows go in parts, then a combining launch
    assert any(g[1] > 1 for g in grids) == (sm_count > 1)


def test_emulated_float32_sum_is_rounded_once(host_lib):
    # float32 column sums accumulate in double: the result is the float64 sum rounded once
    # (the terms x*y rounded to float32 first, as eager rounds them)
    lib, bodies = host_lib
    name, fn, args, body, _o = bodies[0]
    for sm in (0, 64):
        b = host_cuda_backend(lambda body_, v: _launch_fn(lib, name, body))
        b.sm_count = sm
        x, y = (a.numpy() for a in args)
        (got,) = CudaColKernel(b, body)(x, y)
        terms = (x * y).astype(np.float64)
        want = terms.sum(0)
        bound = EPS * (np.abs(want) / 2 + np.abs(terms).sum(0) * 1e-8) + 1e-30
        assert np.all(np.abs(got.astype(np.float64) - want) <= bound)


def test_emulated_non_contiguous_and_empty(host_lib):
    lib, bodies = host_lib
    name, fn, args, body, _o = bodies[0]
    b = host_cuda_backend(lambda body_, v: _launch_fn(lib, name, body))
    k = CudaColKernel(b, body)
    base = np.random.default_rng(3).standard_normal((37, 300)).astype(np.float32)
    x, y = base.T, base.T[::-1]
    (got,) = k(x, y)
    np.testing.assert_allclose(got, (x.astype(np.float64) * y).sum(0), rtol=1e-5, atol=1e-5)
    (empty,) = k(np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32))
    np.testing.assert_array_equal(empty, np.zeros(5, np.float32))
    (none,) = k(np.zeros((4, 0), np.float32), np.zeros((4, 0), np.float32))
    assert none.shape == (0,)
