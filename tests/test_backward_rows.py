"""Backward row kernels: the backward of softmax, log_softmax, layer norm, RMS norm and
cross-entropy, written as the op table's derivative rules write it, fuses into one row kernel
per row pass (plus column reductions for weight and bias gradients, and the mean of a loss);
gelu / silu backward into one elementwise kernel. Values against numpy float64, gradients
against eager autograd, kernel counts on both targets, and the CUDA C of these kernels compiled
by nvcc (and run on the host through the shim of ``test_cuda_rows_codegen``).
"""

from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest
from cuda_host import find_gxx, require_nvcc
from fusejit.backends import cuda_kernels as cb
from test_cuda_rows_codegen import RowHostLib, _host_backend

import fusejit as fj
from fusejit.base.device import as_device
from fusejit.bench.workloads import (
    cross_entropy_fb,
    gelu_bwd,
    layernorm_bwd,
    softmax_bwd,
)
from fusejit.codegen import cuda as cg
from fusejit.codegen import cuda_rows as cr
from fusejit.codegen.rows import RowBody
from fusejit.jit import runtime
from fusejit.jit.api import optimize_graph
from fusejit.jit.runtime import Plan

EPS = 1e-5


# ---- the backward functions (as the derivative rules in fusejit/ops write them) ------------------
def log_softmax_bwd(x, dy):
    y = fj.log_softmax(x, -1)
    return dy - fj.exp(y) * dy.sum(-1, keepdim=True)


def layernorm_dx(x, w, dy):
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    rstd = fj.rsqrt((xc * xc).mean(-1, keepdim=True) + 1e-5)
    xhat = xc * rstd
    gy = dy * w
    return rstd * (gy - gy.mean(-1, keepdim=True) - xhat * (gy * xhat).mean(-1, keepdim=True))


def rms_norm_bwd(x, w, dy):
    # y = x * r * w, r = rsqrt(mean(x^2) + eps): dx = r * (g - x * r^2 * mean(g * x)), g = dy * w
    r = fj.rsqrt((x * x).mean(-1, keepdim=True) + EPS)
    g = dy * w
    return r * (g - x * (r * r) * (g * x).mean(-1, keepdim=True)), (dy * x * r).sum(0)


def silu_bwd(x, dy):
    s = fj.sigmoid(x)
    return dy * s * (1.0 + x * (1.0 - s))


# ---- numpy float64 references --------------------------------------------------------------------
def _softmax64(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _ref_softmax_bwd(x, dy):
    y = _softmax64(x)
    return y * (dy - (dy * y).sum(-1, keepdims=True))


def _ref_log_softmax_bwd(x, dy):
    return dy - _softmax64(x) * dy.sum(-1, keepdims=True)


def _ref_layernorm_bwd(x, w, dy):
    n = x.shape[-1]
    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    rstd = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    g = dy * w
    dx = rstd / n * (n * g - g.sum(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True))
    return dx, (dy * xhat).sum(0), dy.sum(0)


def _ref_rms_norm_bwd(x, w, dy):
    # central differences of the scalar sum(y * dy) would do; the closed form is checked by them
    ms = (x * x).mean(-1, keepdims=True) + EPS
    g = dy * w
    dx = g / np.sqrt(ms) - x * (g * x).mean(-1, keepdims=True) / ms**1.5
    return dx, (dy * x / np.sqrt(ms)).sum(0)


def _gelu_tanh64(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


def _ref_gelu_bwd(x, dy, h=1e-6):
    return dy * (_gelu_tanh64(x + h) - _gelu_tanh64(x - h)) / (2 * h)


def _ref_silu_bwd(x, dy):
    s = 1 / (1 + np.exp(-x))
    return dy * (s + x * s * (1 - s))


def _ref_cross_entropy(x, t):
    r = np.arange(x.shape[0])
    p = _softmax64(x)
    loss = -np.log(p[r, t]).mean()
    p[r, t] -= 1
    return loss, p / x.shape[0]


def _close(got, want, tol, what):
    got = got.numpy().astype(np.float64) if isinstance(got, fj.Tensor) else np.asarray(got)
    # normwise for sums: the error of a sum is relative to its terms
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


def _data(R=6, N=300, seed=0):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((R, N))).astype(np.float32)
    dy = rng.standard_normal((R, N)).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(N)).astype(np.float32)
    b = (0.1 * rng.standard_normal(N)).astype(np.float32)
    t = rng.integers(0, N, R)
    return x, dy, w, b, t


def _T(*arrays):
    return tuple(fj.from_numpy(a) for a in arrays)


def _trace(fn, args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fj.trace(fn, args, check_trace=False)


# ---- values --------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [1, 37, 300, 5000])
def test_backward_values_against_float64(N):
    x, dy, w, b, t = _data(N=N)
    x64, dy64, w64 = (a.astype(np.float64) for a in (x, dy, w))
    tol = 2e-5
    _close(_trace(softmax_bwd, _T(x, dy))(*_T(x, dy)), _ref_softmax_bwd(x64, dy64), tol, "sm")
    _close(_trace(log_softmax_bwd, _T(x, dy))(*_T(x, dy)), _ref_log_softmax_bwd(x64, dy64),
           tol, "log_softmax")  # fmt: skip
    got = _trace(layernorm_bwd, _T(x, w, b, dy))(*_T(x, w, b, dy))
    for k, (g, r) in enumerate(zip(got, _ref_layernorm_bwd(x64, w64, dy64), strict=True)):
        _close(g, r, 1e-4, f"layer_norm output {k}")
    got = _trace(rms_norm_bwd, _T(x, w, dy))(*_T(x, w, dy))
    for k, (g, r) in enumerate(zip(got, _ref_rms_norm_bwd(x64, w64, dy64), strict=True)):
        _close(g, r, 1e-4, f"rms_norm output {k}")
    _close(_trace(gelu_bwd, _T(x, dy))(*_T(x, dy)), _ref_gelu_bwd(x64, dy64), 1e-5, "gelu")
    _close(_trace(silu_bwd, _T(x, dy))(*_T(x, dy)), _ref_silu_bwd(x64, dy64), 1e-5, "silu")
    loss, dx = _trace(cross_entropy_fb, _T(x, t))(*_T(x, t))
    r_loss, r_dx = _ref_cross_entropy(x64, t)
    _close(loss, r_loss, 1e-5, "cross-entropy loss")
    _close(dx, r_dx, 1e-5, "cross-entropy gradient")


def test_rms_norm_reference_is_the_derivative():
    # the closed form the test uses, against central differences in float64
    x, dy, w, _, _ = (a.astype(np.float64) if a.dtype.kind == "f" else a for a in _data(2, 9))

    def f(x):
        return (x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w * dy).sum()

    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1e-6
        num[i] = (f(x + e) - f(x - e)) / 2e-6
    np.testing.assert_allclose(_ref_rms_norm_bwd(x, w, dy)[0], num, rtol=1e-6, atol=1e-8)


def test_fused_backward_equals_eager_autograd():
    """The hand-written backward (traced) gives eager autograd's gradients."""
    x, dy, w, b, t = _data()

    def grads(fn, arrays, wrt, dy):
        leaves = [fj.from_numpy(a).requires_grad_(i in wrt) for i, a in enumerate(arrays)]
        return fj.autograd.grad(fn(*leaves), [leaves[i] for i in wrt], fj.from_numpy(dy))

    tol = 3e-5
    (e,) = grads(lambda a: a.softmax(-1), (x,), (0,), dy)
    _close(_trace(softmax_bwd, _T(x, dy))(*_T(x, dy)), e.numpy(), tol, "softmax")
    (e,) = grads(lambda a: a.log_softmax(-1), (x,), (0,), dy)
    _close(_trace(log_softmax_bwd, _T(x, dy))(*_T(x, dy)), e.numpy(), tol, "log_softmax")
    ln = lambda a, w_, b_: fj.layer_norm(a, (a.shape[-1],), w_, b_)  # noqa: E731
    es = grads(ln, (x, w, b), (0, 1, 2), dy)
    got = _trace(layernorm_bwd, _T(x, w, b, dy))(*_T(x, w, b, dy))
    for k, (g, e) in enumerate(zip(got, es, strict=True)):
        _close(g, e.numpy(), 1e-4, f"layer_norm {k}")
    rms = lambda a, w_: fj.nn.functional.rms_norm(a, (a.shape[-1],), w_, EPS)  # noqa: E731
    es = grads(rms, (x, w), (0, 1), dy)
    got = _trace(rms_norm_bwd, _T(x, w, dy))(*_T(x, w, dy))
    for k, (g, e) in enumerate(zip(got, es, strict=True)):
        _close(g, e.numpy(), 1e-4, f"rms_norm {k}")
    (e,) = grads(lambda a: fj.gelu(a, approximate="tanh"), (x,), (0,), dy)
    _close(_trace(gelu_bwd, _T(x, dy))(*_T(x, dy)), e.numpy(), tol, "gelu")
    (e,) = grads(fj.nn.functional.silu, (x,), (0,), dy)
    _close(_trace(silu_bwd, _T(x, dy))(*_T(x, dy)), e.numpy(), tol, "silu")
    leaf = fj.from_numpy(x).requires_grad_(True)
    loss = fj.nn.functional.cross_entropy(leaf, fj.from_numpy(t))
    (e,) = fj.autograd.grad(loss, [leaf])
    got_loss, got_dx = _trace(cross_entropy_fb, _T(x, t))(*_T(x, t))
    _close(got_loss, loss.detach().numpy(), 1e-5, "cross-entropy loss")
    _close(got_dx, e.numpy(), 1e-5, "cross-entropy gradient")


# ---- kernel counts -------------------------------------------------------------------------------
def _cases():
    return _cases_of(*_data())


def _cases_of(x, dy, w, b, t):
    return {
        "softmax": (softmax_bwd, _T(x, dy)),
        "log_softmax": (log_softmax_bwd, _T(x, dy)),
        "layer_norm": (layernorm_bwd, _T(x, w, b, dy)),
        "layer_norm_dx": (layernorm_dx, _T(x, w, dy)),
        "rms_norm": (rms_norm_bwd, _T(x, w, dy)),
        "gelu": (gelu_bwd, _T(x, dy)),
        "silu": (silu_bwd, _T(x, dy)),
        "cross_entropy": (cross_entropy_fb, _T(x, t)),
    }


def _column_sum(n) -> bool:
    return n.op == "sum" and n.attr("dim") == (0,)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_kernel_counts(target):
    for name, (fn, args) in _cases().items():
        g = optimize_graph(_trace(fn, args).raw_graph, target)
        fused = [n for n in g.nodes if n.op == "fused"]
        rest = [n for n in g.nodes if n.op != "fused"]
        rows = [n for n in fused if isinstance(n.attr("body"), RowBody)]
        if name in ("gelu", "silu"):
            assert len(fused) == 1 and not rows and not rest, (name, g)
            continue
        # one row kernel holds every row pass (softmax: 1 kernel; cross-entropy: forward and
        # backward in one pass over the logits)
        assert len(rows) == 1, (name, target, g)
        if name == "cross_entropy":
            # + the mean of the per-row losses
            assert len(fused) + sum(n.op == "mean" for n in rest) <= 2, (target, g)
            assert all(n.op in ("mean", "reshape", "unsqueeze") for n in rest), (target, g)
        elif name in ("layer_norm", "rms_norm"):
            # the weight and bias gradients: sums over the rows (column reductions)
            assert all(_column_sum(n) or n.op == "fused" for n in rest + fused), (name, g)
            assert len(fused) + sum(map(_column_sum, rest)) <= 3, (name, target, g)
        else:
            assert not rest and len(fused) == 1, (name, target, g)


def test_layer_norm_backward_reads_each_input_once_per_row():
    fn, args = _cases()["layer_norm_dx"]
    g = optimize_graph(_trace(fn, args).raw_graph, "cpu")
    (node,) = g.nodes
    body = node.attr("body")
    # x, w, dy each one port; the two statistics of x and the two of dy*w in the same kernel
    assert sorted(v for _, v, _ in body.ports) == ["full", "full", "inner"]
    assert sum(s.op == "mean" for s in body.steps) == 4


# ---- CUDA: the kernels compile with nvcc ---------------------------------------------------------
def _cuda_bodies():
    out = []
    for name, (fn, args) in _cases().items():
        g = optimize_graph(_trace(fn, args).raw_graph, "cuda")
        out += [(name, n.attr("body")) for n in g.nodes if n.op == "fused"]
    return out


def test_nvcc_compiles_the_backward_row_kernels(tmp_path):
    path = require_nvcc("the backward row kernels")
    parts = ["#define FJ_HAVE_CUDA_FP16 1\n" + cg.prelude()]
    n = 0
    for name, body in _cuda_bodies():
        if not isinstance(body, RowBody):
            continue
        for N in (37, 300, 4096, 9000):
            for aligned in (False, True):
                v = cr.plan_rows(body, N, aligned=aligned)
                parts.append(cr.render_row_kernel(body, v, f"k_{name}_{n}"))
                n += 1
    src = tmp_path / "bwd_rows.cu"
    src.write_text("\n".join(parts))
    cmd = [path, "--cubin", "-arch=sm_90", "-std=c++17", "-Werror", "all-warnings",
           "-o", str(tmp_path / "bwd_rows.cubin"), "-x", "cu", str(src)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-6000:]


@pytest.mark.parametrize("N", [37, 1500])
def test_emulated_cuda_backward_rows_match_cpu(tmp_path, monkeypatch, N):
    """The CUDA row kernels of the backward, run on the host (a block's threads as real
    threads), give the values of the CPU kernels."""

    monkeypatch.setattr(cb, "_ptr", lambda a: a.ctypes.data)
    x, dy, w, b, t = _data(R=5, N=N, seed=3)
    cases = {k: v for k, v in _cases_of(x, dy, w, b, t).items() if k not in ("gelu", "silu")}
    runs, kernels = [], []
    for name, (fn, args) in cases.items():
        g = optimize_graph(_trace(fn, args).raw_graph, "cuda")
        # (the norms' weight and bias gradients are a column kernel: run on the CPU here, its
        # CUDA code is run on the host in tests/test_cuda_cols_codegen.py)
        (node,) = [n for n in g.nodes if n.op == "fused" and isinstance(n.attr("body"), RowBody)]
        body = node.attr("body")
        for v in {cr.plan_rows(body, N), cr.plan_rows(body, N, aligned=True)}:
            kernels.append((f"k{len(kernels)}", body, v))
        runs.append((name, fn, args, g))
    lib = RowHostLib(find_gxx(), tmp_path, kernels)
    backend = _host_backend({(body, v): lib.function(k, body) for k, body, v in kernels})
    real = runtime._kernel_for

    def kernel_for(node, dev):
        body = node.attr("body")
        if isinstance(body, RowBody):
            return backend.row_kernel(body)
        return real(node, as_device("cpu"))

    monkeypatch.setattr(runtime, "_kernel_for", kernel_for)
    for name, fn, args, g in runs:
        n_launched = len(backend.launched)
        got = Plan(g).run(list(args), g.captured)
        assert len(backend.launched) == n_launched + 1, name
        monkeypatch.undo()
        want = _trace(fn, args)(*args)
        monkeypatch.setattr(cb, "_ptr", lambda a: a.ctypes.data)
        monkeypatch.setattr(runtime, "_kernel_for", kernel_for)
        want = want if isinstance(want, tuple) else (want,)
        for k, (a, e) in enumerate(zip(got, want, strict=True)):
            _close(a, e.numpy().astype(np.float64), 3e-5, f"{name} output {k}")


# ---- what the derivative rules of means and sums write: expand, same-shape reshapes, scalars
def _mean_loss_bwd(t, lp, g):
    # the backward of -(lp * t).sum() / R through log_softmax, as a joint graph records it: the
    # incoming gradient scaled (one value), viewed as (1, 1), expanded over the logits
    s = -(g / lp.shape[0])
    e = s.reshape(1, 1).expand(*lp.shape)
    m = e * t
    return m - fj.exp(lp) * m.sum(-1, keepdim=True).reshape(lp.shape[0], 1)


def _mean_loss_bwd_ref(t, lp, g):
    m = -(g / lp.shape[0]) * t
    return m - np.exp(lp) * m.sum(-1, keepdims=True)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_expanded_scalar_gradient_joins_the_row_kernel(target):
    x, _, _, _, _ = _data(R=7, N=50)
    t = np.random.default_rng(1).random(x.shape).astype(np.float32)
    lp = np.log(_softmax64(x.astype(np.float64))).astype(np.float32)
    args = _T(t, lp, np.array(1.5, np.float32))
    tf = _trace(_mean_loss_bwd, args)
    g = optimize_graph(tf.raw_graph, target)
    assert [n.op for n in g.nodes] == ["fused"], g
    assert isinstance(g.nodes[0].attr("body"), RowBody)
    if target == "cpu":
        want = _mean_loss_bwd_ref(t.astype(np.float64), lp.astype(np.float64), 1.5)
        _close(tf(*args), want, 2e-6, "backward")


def test_scalars_and_expands_needed_outside_stay_out():
    def f(t, lp, g):
        s = -(g / lp.shape[0])
        e = s.reshape(1, 1).expand(*lp.shape)
        m = e * t
        return m - fj.exp(lp) * m.sum(-1, keepdim=True), s * 2, e

    x, _, _, _, _ = _data(R=4, N=9)
    t = np.random.default_rng(1).random(x.shape).astype(np.float32)
    args = _T(t, x, np.array(3.0, np.float32))
    tf = _trace(f, args)
    rows = [n for n in tf.graph.nodes if n.op == "fused" and isinstance(n.attr("body"), RowBody)]
    assert len(rows) == 1
    # the per-element results: every output of the row kernel is a full or per-row value
    assert all(f in ("full", "keep", "drop") for _, f in rows[0].attr("body").outputs)
    got = tf(*args)
    want = f(*args)
    for k, (a, e) in enumerate(zip(got, want, strict=True)):
        _close(a, e.numpy().astype(np.float64), 1e-6, f"output {k}")


# ---- through joint graphs: the backward fusejit.trace records from the derivative rules ---------
def _joint_cases(R, N, rng):
    x = rng.standard_normal((R, N)).astype(np.float32)
    w, b = (rng.standard_normal(N).astype(np.float32) for _ in range(2))
    t = rng.integers(0, N, R)
    if R > 2:
        t[1] = -100  # an ignored row
    p = rng.random((R, N)).astype(np.float32)
    F = fj.nn.functional
    # name: (fn, arrays, which require grad, backward kernels)
    return {
        "softmax": (lambda a: a.softmax(-1), (x,), (0,), 1),
        "log_softmax": (lambda a: a.log_softmax(-1), (x,), (0,), 1),
        # (the row kernel for dx, the column kernel for dw and db)
        "layer_norm": (lambda a, w_, b_: fj.layer_norm(a, (N,), w_, b_), (x, w, b), (0, 1, 2), 2),
        "rms_norm": (lambda a, w_: F.rms_norm(a, (N,), w_, EPS), (x, w), (0, 1), 2),
        "gelu": (lambda a: F.gelu(a), (x,), (0,), 1),
        "silu": (F.silu, (x,), (0,), 1),
        "ce_index": (lambda a, t_: F.cross_entropy(a, t_), (x, t), (0,), 1),
        "ce_sum": (lambda a, t_: F.cross_entropy(a, t_, reduction="sum"), (x, t), (0,), 1),
        "ce_probs": (lambda a, t_: F.cross_entropy(a, t_), (x, p), (0,), 1),
    }


@pytest.mark.parametrize("shape", [(16, 128), (5, 37)])
def test_joint_backward_is_one_row_kernel_and_equals_eager(shape):
    from fusejit.jit import joint as jt

    rng = np.random.default_rng(5)
    for name, (fn, arrays, wrt, n_bwd) in _joint_cases(*shape, rng).items():
        eager_in, traced_in = ([fj.from_numpy(a.copy()).requires_grad_(i in wrt)
                                for i, a in enumerate(arrays)] for _ in range(2))  # fmt: skip
        out = fn(*eager_in)
        dy = fj.from_numpy(rng.standard_normal(out.shape).astype(np.float32))
        out.backward(dy)
        tf = _trace(fn, tuple(traced_in))
        tf(*traced_in).backward(dy)
        (info,) = jt.joint_info(tf)
        assert "runs_eager" not in info, (name, info)
        # one row kernel (the norms: their weight (and bias) gradients in a column kernel beside it)
        assert len(info["backward_kernels"]) == n_bwd, (name, jt.joint_text([info]))
        if name in ("softmax", "log_softmax", "layer_norm", "rms_norm", "gelu", "silu", "ce_probs"):
            assert not info["backward_unfused"], (name, info["backward_unfused"])
        if name == "ce_probs":  # forward: the row kernel and the mean
            assert len(info["forward_kernels"]) == 2, jt.joint_text([info])
        for i in wrt:
            e, g = eager_in[i].grad.numpy(), traced_in[i].grad.numpy()
            _close(g, e.astype(np.float64), 3e-6, f"{name} gradient {i}")
