"""fusejit on an NVIDIA GPU (cupy + NVRTC): eager ops, interop and fused kernels against the
CPU (numpy) results. Skipped, with the reason, where CUDA cannot be used."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from jit_helpers import programs as jit_programs
from test_composite_api import _table_ops as table_ops
from test_composite_api import _update as composite_update
from test_jit_random import check_program
from test_reduction_fusion import PATTERNS as ROW_PATTERNS
from test_reduction_fusion import _softmax64 as softmax64
from test_reduction_fusion import _special as special_rows
from test_reduction_fusion import (
    _tuple,
    assert_layer_norm_bound,
    assert_softmax_bound,
    check_row_program,
)
from test_reduction_fusion import close as row_close
from test_reduction_fusion import programs as row_programs

import fusejit
from fusejit.base import dtypes as dt
from fusejit.codegen import cuda_rows as cr
from fusejit.eager import dispatch
from fusejit.jit.check import ROUNDING_FACTOR
from fusejit.ops.registry import OPS, dtype_rule


def _why_not() -> str:
    try:
        from fusejit.backends.cuda import _problem

        return _problem(0) or "CUDA is usable"
    except Exception as e:  # pragma: no cover - the backend module itself failed
        return f"fusejit.backends.cuda failed to import: {e}"


pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not fusejit.is_cuda_available(), reason=f"no usable GPU: {_why_not()}"),
]

GPU = "cuda:0"
ROOT = Path(__file__).resolve().parent.parent
EPS = {"float16": 2.0**-10, "float32": 2.0**-23, "float64": 2.0**-52}


def gpu(a) -> fusejit.Tensor:
    return fusejit.from_numpy(np.ascontiguousarray(a)).to(GPU)


def close(got, ref, exact: bool, what: str, ulps: float = 16.0, scale: float = 1.0) -> None:
    """Same dtype and shape; bitwise (NaN equal) when exact, else within ``ulps`` of the
    result dtype relative and ``ulps * eps * scale`` absolute."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != {ref.dtype}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    if exact or got.dtype.kind != "f":
        np.testing.assert_array_equal(got, ref, err_msg=what)
        return
    tol = ulps * EPS[got.dtype.name]
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale, equal_nan=True, err_msg=what)


@contextlib.contextmanager
def quiet():
    """numpy's division-by-zero and overflow warnings off (the inputs include them)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


# ---- eager elementwise: every op x every dtype it allows --------------------------------------
def _values(op, d: dt.DType, n: int, rng) -> np.ndarray:
    lo, hi = op.domain
    if d is dt.bool_:
        return rng.random(n) < 0.5
    if d.is_integer:
        info = np.iinfo(d.np)
        if op.exact and op.rule != "float":
            v = rng.integers(info.min, info.max, size=n, endpoint=True)
            v[:5] = [info.min, info.max, 0, 1, -1 if d.kind == "i" else 2]
        else:
            v = rng.integers(max(info.min, int(lo)), min(info.max, int(hi)), size=n, endpoint=True)
        return v.astype(d.np)
    v = rng.uniform(lo, hi, n)
    if op.exact:
        v[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0]
    return v.astype(d.np)


CASES = [
    (op, d)
    for op in OPS.values()
    if op.kind == "elementwise" and op.rule not in ("cast", "where")
    for d in dt.ALL_DTYPES
    if d.kind in op.allowed
]


@pytest.mark.parametrize("op,d", CASES, ids=[f"{op.name}-{d.name}" for op, d in CASES])
def test_eager_elementwise(op, d):
    rng = np.random.default_rng(hash((op.name, d.name)) % 2**32)
    arrays = [_values(op, d, 1000, rng) for _ in range(op.arity)]
    if op.arity == 2:
        arrays[1] = arrays[1][:40].reshape(40)  # broadcast: [25, 40] with [40]
        arrays[0] = arrays[0].reshape(25, 40)
    with quiet():
        ref = dispatch.elementwise(op, tuple(fusejit.from_numpy(a) for a in arrays)).numpy()
        got = dispatch.elementwise(op, tuple(gpu(a) for a in arrays))
    assert got.device == fusejit.device(GPU)
    compute, out = dtype_rule(op, d)
    assert got.dtype is out
    if op.name in ("round", "floor", "ceil", "trunc") and d.is_integer:
        ref = arrays[0]  # rounding an integer is the identity (numpy goes through float)
    a0 = arrays[0].astype(np.float64)
    scale = max(1.0, float(np.abs(np.where(np.isfinite(a0), a0, 0)).max()))
    close(got.numpy(), ref, op.exact, f"{op.name} {d.name}", scale=scale)


def test_eager_where_cast_and_scalars():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 9)).astype(np.float32) * 5
    c = x > 0
    x = np.abs(x)  # negative floats into unsigned ints are undefined in C (numpy wraps on x86)
    for dd in dt.ALL_DTYPES:
        got = fusejit.where(gpu(c), gpu(x).to(dd), 2).numpy()
        ref = fusejit.where(fusejit.from_numpy(c), fusejit.from_numpy(x).to(dd), 2).numpy()
        close(got, ref, True, f"where {dd.name}")
    for src in dt.ALL_DTYPES:
        for dst in dt.ALL_DTYPES:
            a = fusejit.from_numpy(x).to(src)
            close(gpu(a.numpy()).to(dst).numpy(), a.to(dst).numpy(), True, f"{src}->{dst}")
    t = gpu(x)
    close((t * 2 + 1.5).numpy(), x * np.float32(2) + np.float32(1.5), True, "scalars")
    close((2 - t).numpy(), np.float32(2) - x, True, "rsub")
    i8 = gpu(np.arange(-5, 5, dtype=np.int8))
    assert (i8 * 3).dtype is fusejit.int8 and (i8 * 2.5).dtype is fusejit.float32
    close((i8 // 2).numpy(), np.arange(-5, 5, dtype=np.int8) // 2, True, "int8 //")
    with pytest.raises(fusejit.DTypeError):
        i8 + 1000


def test_eager_float16_ops():
    x = np.linspace(-4, 4, 301).astype(np.float16)
    t = gpu(x)
    for name in ("sigmoid", "gelu", "exp", "tanh", "silu"):
        got = getattr(fusejit, name)(t)
        ref = getattr(fusejit, name)(fusejit.from_numpy(x))
        assert got.dtype is fusejit.float16
        close(got.numpy(), ref.numpy(), False, name, ulps=2)


# ---- reductions, movement, matmul ------------------------------------------------------------
def test_reductions_match_cpu():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 7, 8)).astype(np.float32)
    c, g = fusejit.from_numpy(x), gpu(x)
    with quiet():
        checks = [
            lambda t: t.sum(), lambda t: t.sum(dim=1), lambda t: t.mean(dim=(0, 2)),
            lambda t: t.var(dim=2), lambda t: t.std(), lambda t: t.prod(dim=0),
            lambda t: t.amax(dim=1, keepdim=True), lambda t: t.amin(), lambda t: t.argmax(),
            lambda t: t.argmin(dim=2), lambda t: t.max(dim=1).values,
            lambda t: t.max(dim=1).indices, lambda t: t.logsumexp(dim=2),
            lambda t: (t > 0).all(dim=0), lambda t: (t > 0).any(), lambda t: t.softmax(-1),
            lambda t: t.log_softmax(1), lambda t: fusejit.layer_norm(t, (8,)),
            lambda t: (t * 10).to(fusejit.int32).sum(dim=2),
            lambda t: t.half().sum(dim=0), lambda t: t.double().mean(),
        ]  # fmt: skip
        for i, f in enumerate(checks):
            ref, got = f(c), f(g)
            assert got.device == fusejit.device(GPU)
            close(got.numpy(), ref.numpy(), False, f"reduction {i}", ulps=64, scale=10)


def test_movement_matches_cpu():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    c, g = fusejit.from_numpy(x.copy()), gpu(x)
    checks = [
        lambda t: t.reshape(4, 6), lambda t: t.view(-1), lambda t: t.permute(2, 0, 1),
        lambda t: t.transpose(0, 1), lambda t: t.T, lambda t: t[:, 1:, ::2],
        lambda t: t[1, None, ..., 2], lambda t: t.unsqueeze(1).expand(2, 5, 3, 4),
        lambda t: t.squeeze(), lambda t: t.flatten(1), lambda t: t.transpose(1, 2).contiguous(),
        lambda t: fusejit.cat([t, t * 2], dim=1), lambda t: fusejit.stack([t, t], dim=3),
        lambda t: t.split([1, 3], dim=2)[1], lambda t: t.chunk(2, dim=1)[-1], lambda t: t.clone(),
        lambda t: t[t > 5], lambda t: t.reshape(6, 4)[fusejit.tensor([0, 2], device=t.device)],
    ]  # fmt: skip
    for i, f in enumerate(checks):
        ref, got = f(c), f(g)
        assert got.device == fusejit.device(GPU)
        close(got.numpy(), ref.numpy(), True, f"movement {i}")
    v = g[:, 1]
    v.add_(100)  # a view writes through to its base
    assert g.numpy()[0, 1, 0] == 104
    g[0] = 7
    assert (g.numpy()[0] == 7).all()


def test_matmul_matches_cpu():
    rng = np.random.default_rng(3)
    for d in (fusejit.float32, fusejit.float64, fusejit.int32, fusejit.float16):
        a = (rng.standard_normal((3, 5, 7)) * 3).astype(d.np)
        b = (rng.standard_normal((7, 4)) * 3).astype(d.np)
        ref = fusejit.from_numpy(a) @ fusejit.from_numpy(b)
        got = gpu(a) @ gpu(b)
        # the GPU may use TF32 / other summation orders: a loose bound for floats
        close(got.numpy(), ref.numpy(), False, f"matmul {d.name}", ulps=2**13, scale=50)
    w, bias, x = (rng.standard_normal(s).astype(np.float32) for s in ((6, 7), (6,), (4, 7)))
    ref = fusejit.linear(fusejit.from_numpy(x), fusejit.from_numpy(w), fusejit.from_numpy(bias))
    got = fusejit.linear(gpu(x), gpu(w), gpu(bias))
    close(got.numpy(), ref.numpy(), False, "linear", ulps=2**13, scale=10)


# ---- devices and interop ---------------------------------------------------------------------
def test_device_moves_and_mixing_is_an_error():
    x = fusejit.arange(6, dtype=fusejit.float32)
    g = x.to(GPU)
    assert g.is_cuda and g.device.type == "cuda" and str(g.device) == GPU
    assert g.cpu().tolist() == x.tolist() and g.to("cpu").device.type == "cpu"
    assert x.cuda(0).device == fusejit.device(GPU)
    assert fusejit.randn(2, 3, device=GPU).is_cuda and fusejit.ones(4, device=GPU).sum().item() == 4
    assert fusejit.tensor([1, 2], device=GPU).to(fusejit.float16).dtype is fusejit.float16
    with pytest.raises(fusejit.DeviceError):
        x + g
    with pytest.raises(fusejit.DeviceError):
        fusejit.cat([x, g])
    assert "cuda:0" in repr(g)


def test_negative_zero_keeps_its_sign_on_the_gpu():
    # cupy writes a 0-d array from a host value, and fills, with a memset for zeros: -0.0 once
    # reached the GPU as +0.0 (found by the random programs: 0.1 * x of a 0-d x = -0.0)
    def signs(t):
        return np.signbit(t.cpu().numpy()).tolist()

    z = np.float32(-0.0)
    assert signs(fusejit.tensor(z).to(GPU)) is True
    assert signs(fusejit.tensor(-0.0, device=GPU)) is True
    assert signs(fusejit.tensor(np.array(-0.0), device=GPU)) is True
    assert signs(fusejit.from_numpy(np.full((), z)).to(GPU)) is True
    assert signs(fusejit.full((3,), -0.0, device=GPU)) == [True] * 3
    assert signs(fusejit.full((3,), 0.0, device=GPU)) == [False] * 3
    assert signs(fusejit.ones(2, 2, device=GPU)[:, 0].fill_(-0.0)) == [True, True]
    assert fusejit.full((2,), -0.0, dtype=fusejit.int32, device=GPU).tolist() == [0, 0]
    x = fusejit.tensor(z).to(GPU)
    for f in (lambda x: 0.1 * x, lambda x: x + -0.0, lambda x: x + 0.0):
        want = np.signbit(f(np.float32(-0.0)))
        assert signs(f(x)) == want and signs(fusejit.trace(f, (x,))(x)) == want


def test_plain_cuda_means_cuda_0():
    x = fusejit.arange(3, dtype=fusejit.float32)
    assert x.cuda().device == fusejit.device(GPU)
    assert x.to("cuda").device == fusejit.device(GPU)
    assert fusejit.zeros(3, device="cuda").device == fusejit.device(GPU)


def test_dlpack_and_cuda_array_interface_share_memory():
    import cupy

    g = fusejit.arange(8, dtype=fusejit.float32, device=GPU)
    c = cupy.from_dlpack(g)  # fusejit -> cupy, zero copy
    c[0] = 42
    assert g[0].item() == 42
    assert g.__cuda_array_interface__["data"][0] == g.data_ptr() == c.data.ptr
    src = cupy.arange(5, dtype=cupy.int32)
    t = fusejit.from_dlpack(src)  # cupy -> fusejit, zero copy
    assert t.device == fusejit.device(GPU) and t.dtype is fusejit.int32
    src[1] = -7
    assert t[1].item() == -7 and t.data_ptr() == src.data.ptr
    assert fusejit.tensor(src).data_ptr() != src.data.ptr  # tensor() copies
    with pytest.raises(AttributeError):
        _ = fusejit.zeros(2).__cuda_array_interface__


# ---- traced and fused on the GPU ---------------------------------------------------------------
def _trace(fn, *args):
    traced = fusejit.trace(fn, args)  # check_trace compares with eager on the GPU
    assert traced.kernel_count() >= 1, traced.graph
    return traced


def _np(t):
    return t.numpy().astype(np.float64)


def chain(x):
    return fusejit.tanh(fusejit.exp(x * 2 + 1) * fusejit.sigmoid(x)) + x * 0.5


def gelu_tanh(x):
    return 0.5 * x * (1 + fusejit.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def adam(p, g, m, v, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, t=10):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr * (m / (1 - b1**t)) / (fusejit.sqrt(v / (1 - b2**t)) + eps)
    return p, m, v


def lstm(gates, c):
    i, f, g, o = gates.chunk(4, 1)
    c2 = fusejit.sigmoid(f) * c + fusejit.sigmoid(i) * fusejit.tanh(g)
    return fusejit.sigmoid(o) * fusejit.tanh(c2), c2


def test_fused_chain_and_gelu_match_numpy():
    x = np.random.default_rng(4).standard_normal(10_001).astype(np.float32)
    for fn, ref in [
        (chain, lambda a: np.tanh(np.exp(a * 2 + 1) / (1 + np.exp(-a))) + a * 0.5),
        (gelu_tanh, lambda a: 0.5 * a * (1 + np.tanh(0.7978845608 * (a + 0.044715 * a**3)))),
    ]:
        f = _trace(fn, gpu(x))
        assert f.kernel_count() == 1
        out = f(gpu(x))
        assert out.is_cuda and out.dtype is fusejit.float32
        np.testing.assert_allclose(_np(out), ref(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
        # shape-generic: another size runs the same kernel (no new compile)
        before = fusejit.cache_info()["compiled"]
        y = x[:777].copy()
        np.testing.assert_allclose(_np(f(gpu(y))), ref(y.astype(np.float64)), rtol=1e-5,
                                   atol=1e-6)  # fmt: skip
        assert fusejit.cache_info()["compiled"] == before


def test_fused_adam_three_outputs():
    rng = np.random.default_rng(5)
    p, g, m = (rng.standard_normal(4099).astype(np.float32) for _ in range(3))
    v = np.abs(rng.standard_normal(4099)).astype(np.float32)
    f = _trace(adam, *map(gpu, (p, g, m, v)))
    assert f.kernel_count() == 1
    outs = f(*map(gpu, (p, g, m, v)))
    p64, g64, m64, v64 = (a.astype(np.float64) for a in (p, g, m, v))
    m2 = 0.9 * m64 + 0.1 * g64
    v2 = 0.999 * v64 + 0.001 * g64 * g64
    p2 = p64 - 1e-3 * (m2 / (1 - 0.9**10)) / (np.sqrt(v2 / (1 - 0.999**10)) + 1e-8)
    for got, ref in zip(outs, (p2, m2, v2), strict=True):
        np.testing.assert_allclose(_np(got), ref, rtol=1e-5, atol=1e-6)


def test_fused_bias_gelu_broadcast_and_lstm_views():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    f = _trace(lambda x, b: gelu_tanh(x + b), gpu(x), gpu(b))
    ref = (lambda a: 0.5 * a * (1 + np.tanh(0.7978845608 * (a + 0.044715 * a**3))))(
        x.astype(np.float64) + b
    )
    np.testing.assert_allclose(_np(f(gpu(x), gpu(b))), ref, rtol=1e-5, atol=1e-6)
    gates = rng.standard_normal((32, 4 * 64)).astype(np.float32)
    c = rng.standard_normal((32, 64)).astype(np.float32)
    f = _trace(lstm, gpu(gates), gpu(c))
    h, c2 = f(gpu(gates), gpu(c))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    i, fg, g, o = np.split(gates.astype(np.float64), 4, axis=1)
    c2r = sig(fg) * c + sig(i) * np.tanh(g)
    np.testing.assert_allclose(_np(c2), c2r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(h), sig(o) * np.tanh(c2r), rtol=1e-5, atol=1e-6)


def test_fused_non_contiguous_and_odd_inputs():
    rng = np.random.default_rng(7)
    base = rng.standard_normal((40, 66)).astype(np.float32)
    fn = lambda x, y: (x * 3).sin() - y * y  # noqa: E731
    ref = lambda x, y: np.sin(x * 3) - y * y  # noqa: E731
    g = gpu(base)
    views = [
        (g.T[:, :30], g[:30].T.contiguous()),  # transposed
        (g[:, 1:65], g[:, 2:66]),  # offset rows: misaligned for vector loads
        (g[::2, ::3], g[1::2, ::3]),  # stepped
        (g[:, :64], g[0, :64]),  # broadcast row
        (g[:, :64], g[:, :1]),  # broadcast column
    ]
    for k, (a, b) in enumerate(views):
        f = _trace(fn, a, b)
        expect = ref(a.cpu().numpy().astype(np.float64), b.cpu().numpy().astype(np.float64))
        np.testing.assert_allclose(_np(f(a, b)), expect, rtol=1e-5, atol=1e-5, err_msg=str(k))


def test_fused_float16():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((33, 48)).astype(np.float16)
    b = rng.standard_normal(48).astype(np.float16)
    f = _trace(lambda x, b: gelu_tanh(x + b) * 2 - 1, gpu(x), gpu(b))
    assert f.kernel_count() == 1
    out = f(gpu(x), gpu(b))
    assert out.dtype is fusejit.float16
    eager = gelu_tanh(gpu(x) + gpu(b)) * 2 - 1
    np.testing.assert_allclose(_np(out), _np(eager), rtol=2e-3, atol=2e-3)
    a = x.astype(np.float64) + b
    ref = (0.5 * a * (1 + np.tanh(0.7978845608 * (a + 0.044715 * a**3)))) * 2 - 1
    np.testing.assert_allclose(_np(out), ref, rtol=1e-2, atol=1e-2)


def test_fused_integer_and_bool_regions():
    rng = np.random.default_rng(9)
    i = rng.integers(-1000, 1000, 5000).astype(np.int32)
    j = rng.integers(-9, 9, 5000).astype(np.int32)
    fn = lambda a, b: ((a * 7 + b) // b % 5, (a > b) & (b != 0))  # noqa: E731
    f = _trace(fn, gpu(i), gpu(j))
    q, m = f(gpu(i), gpu(j))
    with quiet():
        ref_q, ref_m = fn(fusejit.from_numpy(i), fusejit.from_numpy(j))
    close(q.numpy(), ref_q.numpy(), True, "int region")
    close(m.numpy(), ref_m.numpy(), True, "bool region")


@pytest.mark.parametrize("d", [np.int8, np.uint8])
def test_fused_byte_regions_over_every_value(d):
    # every byte value beside every other, at every position of a vector (nvcc 13.0 once mixed
    # neighbouring bytes of 16-byte int8 vectors: cuda.BYTE_VECTOR_MAX)
    rng = np.random.default_rng(3)
    v = rng.permutation(np.repeat(np.arange(256), 37)).astype(np.int64)
    x = (v - 128 if d is np.int8 else v).astype(d)

    def fn(a):
        neg = -1 * a if d is np.int8 else 0 - a  # (uint8: -1 is out of its range)
        return fusejit.where(neg > 0, a, 0), (a * 3 - 1) // 7, a.abs(), a > 100

    f = _trace(fn, gpu(x))
    with quiet():
        want = fn(fusejit.from_numpy(x))
    for k, (got, w) in enumerate(zip(f(gpu(x)), want, strict=True)):
        close(got.numpy(), w.numpy(), True, f"{np.dtype(d).name} output {k}")


def test_64bit_index_variant():
    """More than 2**31 elements: the 64-bit index variant (about 4.3 GB of device memory)."""
    import cupy
    from fusejit.backends.cuda import get_backend

    from fusejit.codegen.body import KernelBody, Step

    n = (1 << 31) + 77
    b = get_backend(0)
    body = KernelBody(("uint8",), (Step("add", (("in", 0), ("c", 3, "uint8")), (), "uint8",
                                        "uint8"),), (("t", 0),))  # fmt: skip
    k = b.fused_kernel(body, 1)
    x = cupy.arange(n, dtype=cupy.uint8)
    (out,) = k(x)
    from fusejit.codegen.cuda import BYTE_VECTOR_MAX

    assert f"flat-i64-v{BYTE_VECTOR_MAX}" in k.variants()
    for sl in (slice(0, 50), slice(n - 50, n), slice((1 << 31) - 20, (1 << 31) + 50)):
        expect = ((x[sl].get().astype(np.int64) + 3) % 256).astype(np.uint8)
        np.testing.assert_array_equal(out[sl].get(), expect)
    del x, out
    cupy.get_default_memory_pool().free_all_blocks()


# ---- the disk cache --------------------------------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import json, sys
    import fusejit
    x = fusejit.randn(1000, device="cuda:0")
    f = fusejit.trace(lambda x: (x * 2 + 1).exp().tanh() + x * 0.5, (x,))
    f(x)
    info = fusejit.cache_info()
    print(json.dumps({k: info[k] for k in ("compiled", "disk_hits", "rebuilt_corrupt")}))
    """
)


def _child(cache: Path) -> dict:
    env = dict(os.environ, FUSEJIT_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                         cwd=ROOT, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_disk_cache_new_process_loads_cubin_and_rebuilds_corrupt(tmp_path):
    first = _child(tmp_path)
    assert first["compiled"] >= 1 and first["disk_hits"] == 0
    second = _child(tmp_path)
    assert second["compiled"] == 0 and second["disk_hits"] >= 1, second
    entries = [p for p in (tmp_path / "cuda").iterdir() if not p.name.startswith(".")]
    assert entries and all((p / "MANIFEST.json").is_file() for p in entries)
    (binary,) = [p for p in entries[0].iterdir() if p.suffix in (".cubin", ".ptx")]
    binary.write_bytes(b"garbage")
    third = _child(tmp_path)
    assert third["rebuilt_corrupt"] >= 1 and third["compiled"] >= 1


# ---- the CPU test bodies again on the GPU ------------------------------------------------------
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(p=jit_programs("float"))
def test_random_float_programs_on_cuda(p):
    check_program(p, GPU)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(p=jit_programs("int"))
def test_random_int_programs_on_cuda(p):
    check_program(p, GPU)


@settings(max_examples=20, deadline=None)
@given(prog=row_programs())
def test_random_row_graphs_on_cuda(prog):
    check_row_program(prog, GPU)


# ---- row kernels (softmax, norms, losses) on the GPU -------------------------------------------
@pytest.mark.parametrize("name", list(ROW_PATTERNS))
def test_row_pattern_is_one_kernel_and_matches_the_cpu(name):
    fn, make = ROW_PATTERNS[name]
    args = make()
    want = _tuple(fn(*args))
    g = tuple(a.to(GPU) for a in args)
    t = fusejit.trace(fn, g)
    assert t.kernel_count() == 1 and [n.op for n in t.graph.nodes] == ["fused"], t.graph
    for k, (got, w) in enumerate(zip(_tuple(t(*g)), want, strict=True)):
        assert got.is_cuda
        row_close(got, w, f"{name} output {k}")


@pytest.mark.parametrize("n", [1 << 24, 3 << 20, 100_003])
def test_few_long_rows_split_over_blocks(n):
    # a whole tensor (one row) and two long rows: several blocks a row (cuda_rows.SPLIT),
    # against float64; called twice, since each launch must leave its counters zero
    rng = np.random.default_rng(n)
    x, y = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    if n == 100_003:
        x[n // 3] = np.nan
    gx, gy = gpu(x), gpu(y)
    # kernels of their own (loaded from disk): a kernel shared with another n would list the
    # variants that n compiled too
    fusejit.clear_cache(disk=False)

    def f(x, y):
        d = x - y
        return (x * y).sum(), (d * d).mean(), d.abs().amax(), (x > 0).sum()

    t = fusejit.trace(f, (gx, gy))
    assert t.kernel_count() == 1
    sm = fusejit.Device(GPU).backend.sm_count
    S = min(sm * cr.SPLIT_BLOCKS_PER_SM, n // cr.SPLIT_CHUNK)  # blocks (cr.split_blocks)
    # roundings: a product, n / (256 S) adds a thread, 8 pairwise steps in each block, S / 256
    # partials a thread of the last block, 8 steps again
    bound = (n / (256 * S) + 8 + S / 256 + 8 + 3) * 2.0**-24
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for _ in range(2):
        dot, mse, mx, count = (o.numpy() for o in t(gx, gy))
        d64 = x64 - y64
        if n == 100_003:  # a NaN: every float result is NaN, the count is not
            assert np.isnan(dot) and np.isnan(mse) and np.isnan(mx)
        else:
            assert abs(dot - (x64 * y64).sum()) <= bound * np.abs(x64 * y64).sum()
            assert abs(mse - (d64 * d64).mean()) <= bound * (d64 * d64).mean()
            assert mx == np.abs(x - y).max()
        assert count == (x > 0).sum() and count.dtype == np.int64
    two = gpu(np.stack([x, y]))
    lse = fusejit.trace(lambda z: fusejit.logsumexp(z * 2, -1), (two,))
    got = lse(two).numpy().astype(np.float64)
    z = 2 * np.stack([x64, y64])
    m = z.max(-1, keepdims=True)
    want = (np.log(np.exp(z - m).sum(-1, keepdims=True)) + m)[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-5, equal_nan=True)
    for traced in (t, lse):  # 16-byte loads where the rows allow them
        tags = [v for _, k in traced.plan.kernels for v in k.variants()]
        assert tags == ["rows-split-c0-v4" if n % 4 == 0 else "rows-split-c0"], tags


def test_trace_check_accepts_an_ill_conditioned_reduction_on_the_gpu():
    # rows whose sums cancel: fused (a reciprocal, another summation order) and eager differ
    # by far more than float32's tolerance; the check judges both against float64
    from test_trace import _cancelling_rows, _normalize

    xs = _cancelling_rows()
    x = gpu(xs)
    traced = fusejit.trace(_normalize, x)  # raises if the check cannot tell rounding apart
    x64 = xs.astype(np.float64)
    exact = x64 / x64.sum(-1, keepdims=True)
    err_fused = np.abs(traced(x).numpy() - exact).max()
    err_eager = np.abs(_normalize(x).numpy() - exact).max()
    assert err_fused <= ROUNDING_FACTOR * err_eager


def _rows(x: np.ndarray, offset: bool):
    """``x`` on the GPU, its rows contiguous and 16-byte aligned, or (offset) one element
    past that: rows of a wider array, so the kernel takes its path without wide loads."""
    if not offset:
        return gpu(x)
    wide = np.zeros((x.shape[0], x.shape[1] + 1), x.dtype)
    wide[:, 1:] = x
    return gpu(wide)[:, 1:]


def S_gpu(n: int) -> float:
    # a thread adds n / T elements in order, then log2(T) pairwise steps combine the threads'
    # partials: T = 32 for rows of up to 256 elements, 128 up to 2048, else 256; in each case
    # n / T + log2(T) is at most this
    return min(n, 256) / 32 + n / 256 + 8


@pytest.mark.parametrize("offset", [False, True], ids=["aligned", "offset"])
@pytest.mark.parametrize("n", [1, 2, 33, 256, 1024, 1500, 4096, 8192, 10_000])
def test_row_kernel_numerics_against_float64(n, offset):
    rng = np.random.default_rng(n)
    x = special_rows(n, rng)
    tx = _rows(x, offset)
    assert tx.is_contiguous() is not offset
    sm = fusejit.trace(lambda x: x.softmax(-1), tx)
    assert_softmax_bound(sm(tx).numpy(), x, S_gpu(n))
    # layer norm with an affine transform, on finite rows
    x[3:7] = rng.standard_normal((4, n)) + 5
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    b = (0.1 * rng.standard_normal(n)).astype(np.float32)
    tx, tw, tb = _rows(x, offset), gpu(w), gpu(b)
    ln = fusejit.trace(lambda x, w, b: fusejit.layer_norm(x, (n,), w, b), (tx, tw, tb))
    assert_layer_norm_bound(ln(tx, tw, tb).numpy(), x, w, b, S_gpu(n))


@pytest.mark.parametrize("n", [8, 1000, 1024, 4096])
def test_float16_rows_accumulate_in_float32(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((16, n)) * 3).astype(np.float16)
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float16)
    f = fusejit.trace(lambda x, w: (x.softmax(-1), fusejit.layer_norm(x, (n,), w)),
                      (gpu(x), gpu(w)))  # fmt: skip
    p, y = f(gpu(x), gpu(w))
    assert p.dtype is fusejit.float16 and y.dtype is fusejit.float16
    x64 = x.astype(np.float64)
    p64, _ = softmax64(x64)
    np.testing.assert_allclose(p.numpy().astype(np.float64), p64, rtol=4e-3, atol=1e-7)
    mu = x64.mean(-1, keepdims=True)
    y64 = (x64 - mu) / np.sqrt(((x64 - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * w
    np.testing.assert_allclose(y.numpy().astype(np.float64), y64, rtol=4e-3, atol=4e-3)


# ---- the benchmark harness on the GPU ----------------------------------------------------------
def test_the_harness_times_gpu_calls_with_events_after_a_warm_up(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "cache"))
    from fusejit.bench import harness

    timing = harness.device_timing(fusejit.Device(GPU))
    assert isinstance(timing["timer"], harness.GpuTimer)
    assert timing["warmup_s"] == harness.GPU_WARMUP_S
    assert harness.copy_bandwidth("cuda", n=1 << 20, repeat=3)["gbs"] > 0
    r = harness.run_workload("softmax", "cuda", size=64 * 4096)
    assert r["verified"] and r["kernels"] == 1
    # at least the GPU's minimum of rounds (a round costs well under the time budget here)
    assert r["repeats"] >= harness.GPU_MIN_ROUNDS
    assert all(s > 0 for v in r["times"].values() for s in v)


def test_torch_compositions_on_the_gpu_match_the_cpu():
    # masked_fill, lerp, addcmul, addcdiv, clamp_min traced into one CUDA kernel; the views
    # and products eager
    rng = np.random.default_rng(12)
    host = [rng.standard_normal((64, 32)).astype(np.float32) for _ in range(3)]
    host.append(rng.standard_normal((64, 32)) > -1)
    cpu_args = [fusejit.from_numpy(a) for a in host]
    args = [gpu(a) for a in host]
    t = fusejit.trace(composite_update, tuple(args))
    assert t.kernel_count() == 1
    for got, want in zip(t(*args), composite_update(*cpu_args), strict=True):
        assert got.is_cuda
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    x, v = gpu(host[0][:4, :5]), gpu(host[1][0, :4])
    np.testing.assert_allclose(x.t().mv(v).numpy(), host[0][:4, :5].T @ host[1][0, :4],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    g = gpu(host[0])
    t = fusejit.trace(lambda x: x / x.norm(dim=-1, keepdim=True), g)
    assert t.kernel_count() == 1
    h64 = host[0].astype(np.float64)
    np.testing.assert_allclose(t(g).numpy(), h64 / np.linalg.norm(h64, axis=-1, keepdims=True),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert fusejit.allclose(g, g + 1e-9) and fusejit.isclose(g, g).all().item()
    parts = x.movedim(0, -1).narrow(0, 1, 3).unbind(1)
    assert [p.shape for p in parts] == [(3,)] * 4 and all(p.is_cuda for p in parts)
    np.testing.assert_array_equal(parts[2].numpy(), host[0][2, 1:4])


def test_flip_roll_repeat_tril_cumsum_index_select_gather_on_the_gpu():
    rng = np.random.default_rng(13)
    a = rng.standard_normal((4, 4)).astype(np.float32)
    idx = np.array([2, 0, 3])
    want = table_ops(fusejit.from_numpy(a), fusejit.from_numpy(idx))
    got = table_ops(gpu(a), gpu(idx))
    t = fusejit.trace(table_ops, (gpu(a), gpu(idx)))
    for out in (got, t(gpu(a), gpu(idx))):
        for g, w in zip(out, want, strict=True):
            assert g.is_cuda
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    # cupy's take wraps an out-of-range index around: the op raises, as on the CPU
    with pytest.raises(fusejit.DimError, match="out of range"):
        gpu(a).index_select(0, gpu(np.array([4])))
    with pytest.raises(fusejit.DimError, match="out of range"):
        gpu(a).gather(0, gpu(np.array([[0, -1, 0, 0]])))
    h = rng.standard_normal(1000).astype(np.float16)
    np.testing.assert_array_equal(gpu(h).cumsum(0).numpy(),
                                  np.cumsum(h.astype(np.float32)).astype(np.float16))  # fmt: skip
