"""Fused optimizers (``SGD`` / ``Adam`` / ``AdamW`` with ``fused=True``): one multi-tensor
kernel per (device, dtype) and step, with results bitwise equal to the single-tensor
(``fused=False``) step over many steps, every option and float16 / float32 / float64; against a
float64 numpy reference; state_dict round trips between the two; the fallbacks (grad None,
non-contiguous parameters); the kernel count over GPT-2's 148 parameter shapes; the CUDA C of
every kernel run on the host (compiled as C++) and compiled by nvcc; on a GPU, fused equal to
unfused there."""

from __future__ import annotations

import collections
import ctypes
import subprocess

import numpy as np
import pytest
from fusejit.backends import multi_tensor as bm

import fusejit
from fusejit import nn, optim
from fusejit.bench.workloads import gpt2_shapes
from fusejit.codegen import cuda as cg
from fusejit.codegen import multi_tensor as mt
from fusejit.optim import fused as fused_mod
from tests.cuda_host import SHIM, find_gxx, find_nvcc, host_cuda_backend, require_nvcc

DTYPES = (np.float16, np.float32, np.float64)
SHAPES = [(37,), (5, 7), (1,), (300,), (2, 3, 4)]

CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, maximize=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.01, betas=(0.3, 0.9), maximize=True, amsgrad=True)),
    (optim.AdamW, dict(lr=0.003, weight_decay=0.5, eps=1e-4)),
]


def _ids(case):
    cls, kw = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


def _train(cls, dtype, fused, kw, steps=25, seed=0, device="cpu", shapes=SHAPES):
    """``steps`` steps with random gradients (some None), the parameters and states after."""
    rng = np.random.default_rng(seed)
    ps = [
        nn.Parameter(fusejit.from_numpy(rng.standard_normal(s).astype(dtype)).to(device))
        for s in shapes
    ]
    opt = cls(ps, fused=fused, **kw)
    for k in range(steps):
        for i, p in enumerate(ps):
            g = (rng.standard_normal(p.shape) * (1 + k % 3)).astype(dtype)
            # parameter 2 has no gradient on some steps: skipped (its step count lags)
            p.grad = None if (i == 2 and k % 4 == 1) else fusejit.from_numpy(g).to(device)
        opt.step()
    return ps, opt


def _assert_same(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if not np.array_equal(a, b, equal_nan=True):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        raise AssertionError(f"{what}: differs at {int((d > 0).sum())} elements, max {d.max()}")


def _assert_states_same(o1, o2, ps1, ps2, what):
    for k, (p1, p2) in enumerate(zip(ps1, ps2)):
        s1, s2 = o1.state.get(p1, {}), o2.state.get(p2, {})
        assert sorted(s1) == sorted(s2), what
        for name in s1:
            _assert_same(s1[name].cpu().numpy(), s2[name].cpu().numpy(), f"{what} {k} {name}")


# (float16 with eps 1e-8: eps rounds to 0, a zero exp_avg_sq divides by zero, in both forms)
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_fused_equals_unfused_bitwise(case, dtype):
    cls, kw = case
    before = collections.Counter(bm.LAUNCHES)
    ps1, o1 = _train(cls, dtype, False, kw)
    assert bm.LAUNCHES == before  # fused=False launches no multi-tensor kernel
    ps2, o2 = _train(cls, dtype, True, kw)
    assert bm.LAUNCHES - before == {("cpu", np.dtype(dtype).name): 25}
    for k, (a, b) in enumerate(zip(ps1, ps2)):
        _assert_same(a.numpy(), b.numpy(), f"parameter {k}")
    _assert_states_same(o1, o2, ps1, ps2, "state")


def _ref_adamw(p, grads, lr, b1, b2, eps, wd):
    """float64 numpy AdamW (PyTorch's documented algorithm)."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        p = p * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return p


def _ref_sgd_nesterov(p, grads, lr, mom, wd):
    buf = None
    for g in grads:
        g = g + wd * p
        buf = g.copy() if buf is None else mom * buf + g
        p = p - lr * (g + mom * buf)
    return p


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_fused_against_float64_numpy(dtype, tol):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(1000)
    grads = [rng.standard_normal(1000) for _ in range(10)]
    p = nn.Parameter(fusejit.from_numpy(p0.astype(dtype)))
    q = nn.Parameter(fusejit.from_numpy(p0.astype(dtype)))
    o1 = optim.AdamW([p], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, fused=True)
    o2 = optim.SGD([q], lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1, fused=True)
    for g in grads:
        p.grad = fusejit.from_numpy(g.astype(dtype))
        q.grad = fusejit.from_numpy(g.astype(dtype))
        o1.step()
        o2.step()
    want = _ref_adamw(p0, grads, 0.01, 0.9, 0.99, 1e-8, 0.1)
    np.testing.assert_allclose(p.numpy(), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(q.numpy(), _ref_sgd_nesterov(p0, grads, 0.01, 0.9, 0.1),
                               rtol=tol, atol=tol)  # fmt: skip


def test_param_groups_with_different_hyper_parameters_and_dtypes():
    rng = np.random.default_rng(5)

    def make():
        r = np.random.default_rng(5)
        a = [nn.Parameter(fusejit.from_numpy(r.standard_normal(9).astype(np.float32)))
             for _ in range(3)]  # fmt: skip
        b = [nn.Parameter(fusejit.from_numpy(r.standard_normal(4).astype(d)))
             for d in (np.float16, np.float64, np.float32)]  # fmt: skip
        return a, b

    grads = [[rng.standard_normal(9 if i < 3 else 4) for i in range(6)] for _ in range(8)]
    results = []
    for fused in (False, True):
        a, b = make()
        opt = optim.Adam([{"params": a}, {"params": b, "lr": 0.1, "betas": (0.5, 0.9),
                          "amsgrad": True}], lr=0.01, fused=fused)  # fmt: skip
        before = collections.Counter(bm.LAUNCHES)
        for gs in grads:
            for p, g in zip(a + b, gs):
                p.grad = fusejit.from_numpy(g.astype(p.numpy().dtype))
            opt.step()
        if fused:  # group 0: float32; group 1: one kernel for each of its three dtypes
            assert bm.LAUNCHES - before == {("cpu", "float32"): 16, ("cpu", "float16"): 8,
                                            ("cpu", "float64"): 8}  # fmt: skip
        results.append(([p.numpy().copy() for p in a + b], opt, a + b))
    (r1, o1, ps1), (r2, o2, ps2) = results
    for k, (x, y) in enumerate(zip(r1, r2)):
        _assert_same(x, y, f"parameter {k}")
    _assert_states_same(o1, o2, ps1, ps2, "state")


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[1].get("momentum") or c[0] is not optim.SGD], ids=_ids
)
def test_state_dict_round_trip_between_fused_and_unfused(case):
    """Steps fused, the state saved and loaded into an unfused optimizer (and the other way
    round), then more steps: the same as all steps in one optimizer."""
    cls, kw = case
    rng = np.random.default_rng(9)
    p0 = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(10)]

    def params():
        return [nn.Parameter(fusejit.from_numpy(x.copy())) for x in p0]

    def run(opt, ps, gs):
        for step in gs:
            for p, g in zip(ps, step):
                p.grad = fusejit.from_numpy(g)
            opt.step()

    whole = params()
    ow = cls(whole, fused=False, **kw)
    run(ow, whole, grads)
    for first, second in ((True, False), (False, True)):
        ps = params()
        o1 = cls(ps, fused=first, **kw)
        run(o1, ps, grads[:4])
        sd = o1.state_dict()
        assert sd["param_groups"][0]["fused"] is first
        ps2 = [nn.Parameter(fusejit.from_numpy(p.numpy().copy())) for p in ps]
        o2 = cls(ps2, fused=second, **kw)
        o2.load_state_dict(sd)
        assert o2.param_groups[0]["fused"] is second  # how it runs stays the optimizer's own
        run(o2, ps2, grads[4:])
        for k, (x, y) in enumerate(zip(whole, ps2)):
            _assert_same(x.numpy(), y.numpy(), f"parameter {k} ({first} -> {second})")
        _assert_states_same(ow, o2, whole, ps2, "state")


def test_non_contiguous_params_and_grads_are_handled():
    """A parameter that is not contiguous (a transposed view) goes through the single-tensor
    update; a non-contiguous gradient is read through a contiguous copy; both match."""
    base = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    outs = []
    for fused in (False, True):
        rng = np.random.default_rng(2)
        w = nn.Parameter(fusejit.from_numpy(base.copy()).t())
        b = nn.Parameter(fusejit.from_numpy(base[0].copy()))
        assert not w.is_contiguous()
        opt = optim.AdamW([w, b], lr=0.01, fused=fused)
        before = collections.Counter(bm.LAUNCHES)
        for _ in range(5):
            g = fusejit.from_numpy(rng.standard_normal((6, 4)).astype(np.float32))
            w.grad = g.t()  # (not contiguous either)
            b.grad = g[:4, 1]  # a strided view
            opt.step()
        if fused:
            assert bm.LAUNCHES - before == {("cpu", "float32"): 5}  # b only
        outs.append((w.numpy().copy(), b.numpy().copy(), opt.state[w]["exp_avg"].numpy()))
    for x, y in zip(*outs):
        _assert_same(x, y, "non-contiguous")


def test_params_without_grad_are_skipped_and_versions_bump():
    p = nn.Parameter(fusejit.ones(4))
    q = nn.Parameter(fusejit.ones(3))
    opt = optim.SGD([p, q], lr=0.5, momentum=0.9, fused=True)
    p.grad = fusejit.ones(4)
    y = (p * p).sum()  # a graph that saved p
    opt.step()
    assert q not in opt.state or not opt.state[q]
    assert p.tolist() == [0.5] * 4 and q.tolist() == [1.0] * 3
    assert opt.state[p]["momentum_buffer"].tolist() == [1.0] * 4
    with pytest.raises(fusejit.AutogradError):
        y.backward()  # p was written in place by the fused step: its version moved


def test_kernel_count_adamw_over_gpt2_shapes():
    """An AdamW step over GPT-2's 148 parameters (sizes scaled down) is one launch per dtype."""
    shapes = gpt2_shapes(vocab=64, ctx=16, embd=8, layers=12)
    assert len(shapes) == 148
    rng = np.random.default_rng(0)
    ps = [nn.Parameter(fusejit.from_numpy(rng.standard_normal(s).astype(np.float32)))
          for s in shapes]  # fmt: skip
    opt = optim.AdamW(ps, lr=1e-3, fused=True)
    for p in ps:
        p.grad = fusejit.from_numpy(rng.standard_normal(p.shape).astype(np.float32))
    before = collections.Counter(bm.LAUNCHES)
    opt.step()
    assert bm.LAUNCHES - before == {("cpu", "float32"): 1}
    # the biases and layer norms' parameters in float64: one launch more
    for i, p in enumerate(ps):
        if p.ndim == 1:
            ps[i] = nn.Parameter(fusejit.from_numpy(p.numpy().astype(np.float64)))
            ps[i].grad = fusejit.ones(p.shape, dtype=fusejit.float64)
    opt = optim.AdamW(ps, lr=1e-3, fused=True)
    before = collections.Counter(bm.LAUNCHES)
    opt.step()
    assert bm.LAUNCHES - before == {("cpu", "float32"): 1, ("cpu", "float64"): 1}


def test_threaded_update_equals_one_thread(monkeypatch):
    """A large update splits its chunks over the threads: the same values."""
    monkeypatch.setattr(bm, "CPU_PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(bm, "CPU_CHUNK", 64)
    monkeypatch.setattr(bm.cpk, "THREADS", 2)
    ps1, o1 = _train(optim.AdamW, np.float32, True, dict(lr=0.01, amsgrad=True), steps=5)
    k = bm.cpu_kernel(mt.UpdateSpec("adam", "float32", weight_decay=True, decoupled=True,
                                    amsgrad=True))  # fmt: skip
    assert k.threaded >= 4
    monkeypatch.setattr(bm.cpk, "THREADS", 1)
    ps2, o2 = _train(optim.AdamW, np.float32, True, dict(lr=0.01, amsgrad=True), steps=5)
    for a, b in zip(ps1, ps2):
        _assert_same(a.numpy(), b.numpy(), "threaded")


def test_default_and_errors():
    p = nn.Parameter(fusejit.ones(2))
    assert optim.AdamW([p]).defaults["fused"] is None
    assert fused_mod.enabled(None, fusejit.Device("cpu")) is fused_mod.CPU_DEFAULT
    assert fused_mod.enabled(None, fusejit.Device("cuda:0")) is True
    with pytest.raises(TypeError, match="fused must be True, False or None"):
        optim.SGD([p], lr=0.1, fused="yes")


def test_traced_step_records_table_ops():
    """Under fusejit.trace the step is recorded op by op (the graph holds its arithmetic),
    never run as an opaque multi-tensor kernel."""
    p = nn.Parameter(fusejit.ones(3))
    opt = optim.SGD([p], lr=0.5, fused=True)
    p.grad = fusejit.ones(3)
    before = collections.Counter(bm.LAUNCHES)
    try:
        fusejit.trace(lambda x: (opt.step(), x + 1)[1], (fusejit.ones(1),), check_trace=False)
    except fusejit.TraceError:
        pass  # (in-place writes of parameters do not trace in every version)
    assert bm.LAUNCHES == before


# ---- CUDA C on the host ------------------------------------------------------------------------
SPECS = [
    mt.UpdateSpec(algo, d, **flags)
    for d in ("float16", "float32", "float64")
    for algo, flags in (
        ("sgd", {}),
        ("sgd", dict(momentum=True, weight_decay=True)),
        ("sgd", dict(momentum=True, nesterov=True, maximize=True)),
        ("adam", dict(weight_decay=True, decoupled=True)),
        ("adam", dict(weight_decay=True, amsgrad=True, maximize=True)),
        ("adam", dict(lerp_from_end=True)),
    )
]
_RN = r"""
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static fj_dim3 blockIdx, threadIdx, blockDim, gridDim;
"""


def _host_launcher(k: int, spec: mt.UpdateSpec) -> str:
    c = "double" if spec.dtype == "float64" else "float"
    n = len(spec.scalars)
    return (
        f'extern "C" void launch_{k}(const long long* tab, long long T, const double* s, '
        "unsigned grid) {\n"
        f"  gridDim.x = grid; blockDim.x = {mt.CUDA_BLOCK};\n"
        "  for (unsigned b = 0; b < grid; ++b)\n"
        f"    for (unsigned t = 0; t < {mt.CUDA_BLOCK}; ++t) {{\n"
        f"      blockIdx.x = b; threadIdx.x = t; k{k}(tab, T, "
        + ", ".join(f"({c})s[{i}]" for i in range(n))
        + ");\n    }\n}\n"
    )


def test_cuda_kernels_on_the_host_equal_the_cpu_kernels(tmp_path):
    """Each CUDA kernel, compiled as host C++ (the CUDA keywords and intrinsics defined away)
    and run block by block over the same table the GPU gets, writes what the numba kernel
    writes, bitwise."""
    gxx = find_gxx()
    parts = [SHIM, _RN, cg.prelude()]
    for k, spec in enumerate(SPECS):
        parts += [mt.cuda_kernel(spec, f"k{k}"), _host_launcher(k, spec)]
    src = tmp_path / "multi.cpp"
    src.write_text("\n".join(parts))
    lib = tmp_path / "multi.so"
    cmd = [gxx, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-w", "-std=c++17", "-o",
           str(lib), str(src)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    so = ctypes.CDLL(str(lib))
    rng = np.random.default_rng(1)
    sizes = [3, mt.CUDA_CHUNK + 5, 1, 700]
    for k, spec in enumerate(SPECS):
        d = np.dtype(spec.dtype)
        lists = [[(rng.standard_normal(n) * (0.1 if name.startswith("exp_avg_sq") else 1))
                  .astype(d) for n in sizes] for name in spec.lists]  # fmt: skip
        for arrays, name in zip(lists, spec.lists):
            if name in ("exp_avg_sq", "max_exp_avg_sq"):
                for a in arrays:
                    np.abs(a, out=a)
        tscal = np.array([[-0.01 / (1 - 0.9**t), np.sqrt(1 - 0.999**t)] for t in (1, 3, 7, 2)])
        flags = np.array([1, 0, 1, 0], np.int64)
        scalars = (0.01, 0.9, 0.999, 1e-3, 1e-8)[: len(spec.scalars)]
        mine = [[a.copy() for a in arrays] for arrays in lists]
        bm.update(spec, mine, tscal, flags, scalars)
        host = [[a.copy() for a in arrays] for arrays in lists]
        # the backend's launch path (its table, its arguments) with the host build as kernel
        k_cuda = bm.CudaMultiTensor(host_cuda_backend(None), spec)
        launch = getattr(so, f"launch_{k}")
        c_type = np.float64 if spec.dtype == "float64" else np.float32

        def fn(grid, block, args, launch=launch, c_type=c_type):
            tab, T, *sc = args
            assert block == (mt.CUDA_BLOCK,) and type(T) is np.int64
            assert all(type(x) is c_type for x in sc)
            sc = np.array(sc, np.float64)
            launch(tab.ctypes.data_as(ctypes.c_void_p), ctypes.c_longlong(T),
                   sc.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint(grid[0]))  # fmt: skip

        k_cuda.fn = fn
        addrs = np.array([[a.ctypes.data for a in arrays] for arrays in host], np.int64)
        k_cuda(addrs, sizes, tscal, flags, scalars)
        for name, xs, ys in zip(spec.lists, mine, host):
            for x, y in zip(xs, ys):
                _assert_same(x, y, f"{spec.key()} {name}")


def test_nvcc_compiles_every_multi_tensor_kernel(tmp_path):
    nvcc = require_nvcc("the multi-tensor CUDA kernels")
    body = [mt.cuda_kernel(s, f"k{k}") for k, s in enumerate(SPECS)]
    for fp16, arch in ((True, "sm_90"), (False, "sm_80")):
        src = tmp_path / f"multi_{arch}.cu"
        head = "#define FJ_HAVE_CUDA_FP16 1\n" if fp16 else ""
        src.write_text(head + cg.prelude() + "\n" + "\n".join(body))
        out = src.with_suffix(".ptx")
        cmd = [nvcc, "--ptx", f"-arch={arch}", "-std=c++17", "-o", str(out), "-x", "cu",
               str(src)]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:]
        ptx = out.read_text()
        assert "fma.rn" not in ptx  # no step contracted into a fused multiply-add


# ---- on a GPU ----------------------------------------------------------------------------------
def _cuda_or_skip():
    if not fusejit.is_cuda_available():
        pytest.skip("no usable GPU (fused optimizers on CUDA run in bench/gpu_check.sh)")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_cuda_fused_equals_unfused(case, dtype):
    _cuda_or_skip()
    cls, kw = case
    ps1, o1 = _train(cls, dtype, False, kw, steps=10, device="cuda")
    before = collections.Counter(bm.LAUNCHES)
    ps2, o2 = _train(cls, dtype, True, kw, steps=10, device="cuda")
    assert bm.LAUNCHES - before == {("cuda", np.dtype(dtype).name): 10}
    for k, (a, b) in enumerate(zip(ps1, ps2)):
        _assert_same(a.cpu().numpy(), b.cpu().numpy(), f"parameter {k}")
    _assert_states_same(o1, o2, ps1, ps2, "state")


def test_cuda_kernel_count_adamw_over_gpt2_shapes():
    _cuda_or_skip()
    shapes = gpt2_shapes(vocab=500, ctx=64, embd=64, layers=12)
    rng = np.random.default_rng(0)
    ps = [nn.Parameter(fusejit.from_numpy(rng.standard_normal(s).astype(np.float32)).cuda())
          for s in shapes]  # fmt: skip
    for p in ps:
        p.grad = fusejit.from_numpy(rng.standard_normal(p.shape).astype(np.float32)).cuda()
    opt = optim.AdamW(ps, lr=1e-3)  # fused by default on CUDA
    before = collections.Counter(bm.LAUNCHES)
    opt.step()
    assert bm.LAUNCHES - before == {("cuda", "float32"): 1}


def test_nvcc_found_or_skipped():
    # (documents where nvcc is looked for; the compile test above skips without it)
    assert find_nvcc() is None or find_nvcc().endswith("nvcc")


def test_kernel_is_cached_on_disk(cache):
    """The multi-tensor kernel goes through the kernel store: compiled once, its numba code
    kept in its entry, loaded from disk once the memory level is emptied."""
    ps1, _ = _train(optim.AdamW, np.float32, True, dict(lr=0.01), steps=2)
    info = fusejit.cache_info()
    assert info["compiled"] == 1 and info["disk_hits"] == 0
    (entry,) = [p for p in cache.rglob("MANIFEST.json")]
    assert any(entry.parent.glob("__pycache__/*.nbi"))  # numba's index, in the entry
    fusejit.clear_cache(disk=False)
    ps2, _ = _train(optim.AdamW, np.float32, True, dict(lr=0.01), steps=2)
    info = fusejit.cache_info()
    assert info["compiled"] == 0 and info["disk_hits"] == 1
    for a, b in zip(ps1, ps2):
        _assert_same(a.numpy(), b.numpy(), "from disk")
