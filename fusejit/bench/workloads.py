"""The standard workloads that ``python -m fusejit bench`` and ``bench/`` measure.

The formulas are the project's anchors (so numbers compare across systems). Each workload has a
fusejit function (run eagerly and traced), a reference written against an array module ``xp``
(numpy on the CPU, cupy on a GPU) and an input builder. ``size`` is always the element count of
the workload's main tensor; 2-D workloads keep their column count and take ``size // cols`` rows.

>>> from fusejit.bench.workloads import WORKLOADS
>>> w = WORKLOADS["arith-chain"]
>>> arrays, shape = w.make(1024, "cpu", seed=0)
>>> shape, w.ref(__import__("numpy"), *arrays).shape
('1024', (1024,))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import fusejit as fj

__all__ = ["Workload", "WORKLOADS", "ELEMENTWISE_SIZE", "names"]

ELEMENTWISE_SIZE = 1 << 24

# adam hyper-parameters (step 10 so the bias corrections are not trivial)
LR, B1, B2, EPS, STEP = 1e-3, 0.9, 0.999, 1e-8, 10
BC1, BC2 = 1.0 - B1**STEP, 1.0 - B2**STEP


@dataclass(frozen=True)
class Workload:
    """One benchmark workload.

        ``fn(*tensors)`` is the fusejit function; ``ref(xp, *arrays)`` the reference; ``make(size,
        device_type, seed)`` returns ``(float32 numpy arrays, shape text)``; ``default_size`` maps a
        device type to the default ``size``; ``flops(arrays)`` counts floating-point work where that
        (not memory traffic) bounds the workload. Results must match the reference within ``rtol`` /
        ``atol`` (``|fused - ref| <= atol + rtol * |ref|``). ``probe_size`` caps the size at which
        compile time is measured, where the eager part would otherwise drown it. ``kind``
        "optimizer": an optimizer step (``fusejit/bench/optim_bench.py`` runs it; ``fn`` is None,
    ``ref`` unused, ``make`` gives the parameters, gradients and both moments); "train": a
    training step (``fusejit/bench/train_bench.py``; ``fn`` and ``ref`` None). ``eager``, when
    given, is what the eager column runs instead of ``fn``: the backward workloads' ``fn`` is
    the backward written with fusejit ops as the op table's derivative rules give it (what a
    joint graph records), their ``eager`` the forward and backward through eager autograd.
    """

    name: str
    formula: str
    fn: Callable
    ref: Callable
    make: Callable
    default_size: dict
    rtol: float = 1e-4
    atol: float = 1e-5
    flops: Callable | None = None
    probe_size: int | None = None  # cap on the compile probe's size (matmul-bound workloads)
    kind: str = "function"  # or "optimizer", "train"
    eager: Callable | None = None  # run eagerly instead of ``fn`` (a backward through autograd)

    def size_for(self, device_type: str) -> int:
        return self.default_size.get(device_type, self.default_size["cpu"])


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _rows_cols(size: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, size))
    return max(1, size // cols), cols


# ---- formulas: fusejit -------------------------------------------------------------------------
def arith_chain(x):
    return ((x * 2 + 1) * x - 3) * x + x * 0.5


def chain_8op(x):
    return fj.tanh(fj.exp(x * 2 + 1) * fj.sigmoid(x)) + x * 0.5


def gelu_tanh(x):
    return 0.5 * x * (1 + fj.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def bias_gelu(x, b):
    return gelu_tanh(x + b)


def softmax(x):
    return fj.softmax(x, dim=-1)


def layernorm(x, w, b):
    return fj.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def mse(a, b):
    d = a - b
    return (d * d).mean()


def adam_step(p, g, m, v):
    m2 = B1 * m + (1 - B1) * g
    v2 = B2 * v + (1 - B2) * g * g
    p2 = p - LR * (m2 / BC1) / (fj.sqrt(v2 / BC2) + EPS)
    return p2, m2, v2


def lstm_cell(gates, c):
    i, f, g, o = fj.chunk(gates, 4, dim=1)
    c2 = fj.sigmoid(f) * c + fj.sigmoid(i) * fj.tanh(g)
    h = fj.sigmoid(o) * fj.tanh(c2)
    return h, c2


def mlp_block(x, w1, b1, w2, b2):
    return fj.linear(gelu_tanh(fj.linear(x, w1, b1)), w2, b2)


# ---- backward workloads: fn is the backward as the derivative rules write it (traced and
# fused), eager the same forward + backward through fusejit's eager autograd --------------------
def _grad(fn, inputs, dy, wrt):
    """Gradients of ``fn(*inputs)`` against ``dy`` for the inputs at positions ``wrt``, by
    eager autograd (fresh leaves, so nothing accumulates between calls)."""
    leaves = [t.detach().requires_grad_(i in wrt) if t.dtype.is_floating_point else t
              for i, t in enumerate(inputs)]  # fmt: skip
    out = fn(*leaves)
    gs = fj.autograd.grad(out, [leaves[i] for i in wrt], dy)
    return gs[0] if len(gs) == 1 else tuple(gs)


def softmax_bwd(x, dy):
    y = fj.softmax(x, dim=-1)
    return y * (dy - (dy * y).sum(-1, keepdim=True))


def softmax_bwd_eager(x, dy):
    return _grad(lambda t: fj.softmax(t, dim=-1), (x,), dy, (0,))


def layernorm_bwd(x, w, b, dy):
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    rstd = fj.rsqrt((xc * xc).mean(-1, keepdim=True) + 1e-5)
    xhat = xc * rstd
    gy = dy * w
    dx = rstd * (gy - gy.mean(-1, keepdim=True) - xhat * (gy * xhat).mean(-1, keepdim=True))
    return dx, (dy * xhat).sum(0), dy.sum(0)


def layernorm_bwd_eager(x, w, b, dy):
    return _grad(layernorm, (x, w, b), dy, (0, 1, 2))


def gelu_bwd(x, dy):
    k = 0.7978845608028654
    x2 = x * x
    t = fj.tanh(k * (x + 0.044715 * x2 * x))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * x2))


def gelu_bwd_eager(x, dy):
    return _grad(lambda t: fj.gelu(t, approximate="tanh"), (x,), dy, (0,))


def cross_entropy_fb(x, target):
    """Mean cross entropy of logits ``x`` [R, C] for class indices ``target`` [R] and its
    gradient over the logits (the gradient of the mean is 1), in one pass over each row."""
    z = x - x.amax(-1, keepdim=True)
    lse = fj.log(fj.exp(z).sum(-1, keepdim=True))
    # (the classes compared as float32, exact below 2**24 classes: the CPU row kernels compare
    # float32 lanes about twice as fast as int64 ones)
    hot = fj.arange(x.shape[-1], device=x.device, dtype=fj.float32) == target.unsqueeze(-1).to(
        fj.float32
    )
    loss = lse - fj.where(hot, z, 0.0).sum(-1, keepdim=True)
    dx = (fj.exp(z - lse) - hot.to(x.dtype)) * (1.0 / x.shape[0])
    return loss.mean(), dx


def cross_entropy_fb_eager(x, target):
    leaf = x.detach().requires_grad_(True)
    loss = fj.nn.functional.cross_entropy(leaf, target)
    (dx,) = fj.autograd.grad(loss, [leaf])
    return loss.detach(), dx


# ---- formulas: reference (xp is numpy or cupy) -------------------------------------------------
def _sig(xp, x):
    return 1 / (1 + xp.exp(-x))


def _gelu_ref(xp, x):
    return 0.5 * x * (1 + xp.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def _softmax_ref(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _layernorm_ref(xp, x, w, b):
    mu = x.mean(axis=-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True)
    return d / xp.sqrt(var + 1e-5) * w + b


def _mse_ref(xp, a, b):
    return xp.asarray(((a - b) ** 2).mean())


def _adam_ref(xp, p, g, m, v):
    m2 = B1 * m + (1 - B1) * g
    v2 = B2 * v + (1 - B2) * g * g
    return p - LR * (m2 / BC1) / (xp.sqrt(v2 / BC2) + EPS), m2, v2


def _lstm_ref(xp, gates, c):
    i, f, g, o = xp.split(gates, 4, axis=1)
    c2 = _sig(xp, f) * c + _sig(xp, i) * xp.tanh(g)
    return _sig(xp, o) * xp.tanh(c2), c2


def _mlp_ref(xp, x, w1, b1, w2, b2):
    return _gelu_ref(xp, x @ w1.T + b1) @ w2.T + b2


def _softmax_bwd_ref(xp, x, dy):
    y = _softmax_ref(xp, x)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def _layernorm_bwd_ref(xp, x, w, b, dy):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1 / xp.sqrt((xc * xc).mean(axis=-1, keepdims=True) + 1e-5)
    xhat = xc * rstd
    gy = dy * w
    dx = rstd * (gy - gy.mean(axis=-1, keepdims=True)
                 - xhat * (gy * xhat).mean(axis=-1, keepdims=True))  # fmt: skip
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _gelu_bwd_ref(xp, x, dy):
    k = np.float32(0.7978845608028654)
    t = xp.tanh(k * (x + np.float32(0.044715) * x * x * x))
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + np.float32(3 * 0.044715) * x * x))


def _cross_entropy_ref(xp, x, target):
    r = xp.arange(x.shape[0])
    z = x - x.max(axis=-1, keepdims=True)
    lse = xp.log(xp.exp(z).sum(axis=-1, keepdims=True))
    loss = (lse[:, 0] - z[r, target]).mean()
    p = xp.exp(z - lse)
    p[r, target] -= 1
    return xp.asarray(loss, dtype=xp.float32), p * np.float32(1.0 / x.shape[0])


# ---- inputs ------------------------------------------------------------------------------------
def _make_vector(size, device_type, seed=0):
    return (_rng(seed).standard_normal(size, dtype=np.float32),), f"{size}"


def _make_rows(cols):
    def make(size, device_type, seed=0):
        r, c = _rows_cols(size, cols)
        return (_rng(seed).standard_normal((r, c), dtype=np.float32),), f"{r}x{c}"

    return make


def _make_bias_gelu(size, device_type, seed=0):
    rng = _rng(seed)
    r, c = _rows_cols(size, 4096)
    x = rng.standard_normal((r, c), dtype=np.float32)
    return (x, rng.standard_normal(c, dtype=np.float32)), f"{r}x{c} + {c}"


def _make_layernorm(cols):
    def make(size, device_type, seed=0):
        rng = _rng(seed)
        r, c = _rows_cols(size, cols)
        x = rng.standard_normal((r, c), dtype=np.float32)
        w = 1 + 0.1 * rng.standard_normal(c, dtype=np.float32)
        b = 0.1 * rng.standard_normal(c, dtype=np.float32)
        return (x, w, b), f"{r}x{c}"

    return make


def _make_pair(size, device_type, seed=0):
    rng = _rng(seed)
    a, b = (rng.standard_normal(size, dtype=np.float32) for _ in range(2))
    return (a, b), f"2 x {size}"


def _make_adam(size, device_type, seed=0):
    rng = _rng(seed)
    p = rng.standard_normal(size, dtype=np.float32)
    g = rng.standard_normal(size, dtype=np.float32)
    m = 0.1 * rng.standard_normal(size, dtype=np.float32)
    v = 0.01 * rng.random(size, dtype=np.float32)
    return (p, g, m, v), f"4 x {size}"


def _make_rows_grad(cols):
    def make(size, device_type, seed=0):
        rng = _rng(seed)
        r, c = _rows_cols(size, cols)
        x, dy = (rng.standard_normal((r, c), dtype=np.float32) for _ in range(2))
        return (x, dy), f"{r}x{c}"

    return make


def _make_vector_grad(size, device_type, seed=0):
    rng = _rng(seed)
    return tuple(rng.standard_normal(size, dtype=np.float32) for _ in range(2)), f"2 x {size}"


def _make_layernorm_bwd(cols):
    def make(size, device_type, seed=0):
        (x, w, b), shape = _make_layernorm(cols)(size, device_type, seed)
        dy = _rng(seed + 1).standard_normal(x.shape, dtype=np.float32)
        return (x, w, b, dy), shape

    return make


def _ce_classes(device_type):
    return 32768 if device_type == "cuda" else 8192


def _make_cross_entropy(size, device_type, seed=0):
    rng = _rng(seed)
    r, c = _rows_cols(size, _ce_classes(device_type))
    x = 2 * rng.standard_normal((r, c), dtype=np.float32)
    return (x, rng.integers(0, c, r)), f"{r}x{c}"


TRAIN_WIDTH = {"cpu": 1024, "cuda": 4096}


def _make_mlp_train(size, device_type, seed=0):
    """Batch x [B, W], target [B, W], the two Linear layers' weights and biases (the LayerNorm
    starts at ones and zeros): ``size`` is the batch's element count."""
    rng = _rng(seed)
    w = TRAIN_WIDTH.get(device_type, TRAIN_WIDTH["cpu"])
    b, _ = _rows_cols(size, w)
    s = np.float32(1 / np.sqrt(w))
    x, y = (rng.standard_normal((b, w), dtype=np.float32) for _ in range(2))
    w1, w2 = (s * rng.standard_normal((w, w), dtype=np.float32) for _ in range(2))
    b1, b2 = (s * rng.standard_normal(w, dtype=np.float32) for _ in range(2))
    return (x, y, w1, b1, w2, b2), f"{b}x({w}>{w}>{w})"


# ---- an optimizer step over a GPT-2-small-sized parameter set ---------------------------------
GPT2_SMALL = dict(vocab=50257, ctx=1024, embd=768, layers=12)


def gpt2_shapes(vocab: int = 50257, ctx: int = 1024, embd: int = 768, layers: int = 12):
    """The parameter shapes of GPT-2 (``transformers``' ``GPT2LMHeadModel``, the output layer
    tied to the token embedding): 2 + 12 a layer + 2 tensors (148 for 12 layers; 124,439,808
    parameters at GPT-2 small's sizes), weights as (in, out) as GPT-2's Conv1D holds them.

    >>> shapes = gpt2_shapes()
    >>> len(shapes), sum(int(np.prod(s)) for s in shapes)
    (148, 124439808)
    """
    C = embd
    block = [(C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,), (C,), (C,),
             (C, 4 * C), (4 * C,), (4 * C, C), (C,)]  # fmt: skip
    return [(vocab, C), (ctx, C), *block * layers, (C,), (C,)]


def gpt2_shapes_for(size: int) -> list:
    """GPT-2's 148 parameter shapes with the vocabulary, context and width scaled by one factor
    so that the parameters number about ``size`` (GPT-2 small itself at 124,439,808)."""
    g = GPT2_SMALL
    f = min(1.0, (size / 124_439_808) ** 0.5)
    if f == 1.0:
        return gpt2_shapes(**g)
    embd = max(8, int(round(g["embd"] * f / 4)) * 4)
    return gpt2_shapes(max(8, round(g["vocab"] * f)), max(8, round(g["ctx"] * f)), embd,
                       g["layers"])  # fmt: skip


def _make_adamw_step(size, device_type, seed=0):
    """Parameters, gradients, exp_avg and exp_avg_sq (float32) of GPT-2's shapes scaled to
    ``size`` parameters: ``4 x 148`` arrays."""
    rng = _rng(seed)
    shapes = gpt2_shapes_for(size)
    ps = [0.02 * rng.standard_normal(s, dtype=np.float32) for s in shapes]
    gs = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    ms = [0.1 * rng.standard_normal(s, dtype=np.float32) for s in shapes]
    vs = [0.01 * rng.random(s, dtype=np.float32) for s in shapes]
    n = sum(int(p.size) for p in ps)
    return (*ps, *gs, *ms, *vs), f"{len(shapes)} tensors, {n / 1e6:.3g}M"


def _lstm_hidden(device_type):
    return 4096 if device_type == "cuda" else 1024


def _make_lstm(size, device_type, seed=0):
    rng = _rng(seed)
    b, h = _rows_cols(size, _lstm_hidden(device_type))
    gates = rng.standard_normal((b, 4 * h), dtype=np.float32)
    c = rng.standard_normal((b, h), dtype=np.float32)
    return (gates, c), f"B={b} H={h}"


MLP_IN, MLP_HIDDEN = 1024, 4096


def _make_mlp(size, device_type, seed=0):
    rng = _rng(seed)
    batch = max(1, size // MLP_HIDDEN)
    s1, s2 = 1 / np.sqrt(MLP_IN), 1 / np.sqrt(MLP_HIDDEN)
    x = rng.standard_normal((batch, MLP_IN), dtype=np.float32)
    w1 = (s1 * rng.standard_normal((MLP_HIDDEN, MLP_IN), dtype=np.float32)).astype(np.float32)
    b1 = 0.1 * rng.standard_normal(MLP_HIDDEN, dtype=np.float32)
    w2 = (s2 * rng.standard_normal((MLP_IN, MLP_HIDDEN), dtype=np.float32)).astype(np.float32)
    b2 = 0.1 * rng.standard_normal(MLP_IN, dtype=np.float32)
    return (x, w1, b1, w2, b2), f"{batch}x{MLP_IN}>{MLP_HIDDEN}>{MLP_IN}"


def _mlp_flops(arrays):
    batch = arrays[0].shape[0]
    return 2 * 2 * batch * MLP_IN * MLP_HIDDEN


_E = ELEMENTWISE_SIZE
_B = 1 << 22  # backward workloads on the CPU: 4M elements (1024 rows of 4096)
_WL = [
    Workload("arith-chain", "((x*2+1)*x-3)*x + x*0.5", arith_chain,
             lambda xp, x: ((x * 2 + 1) * x - 3) * x + x * 0.5, _make_vector, {"cpu": _E}),
    Workload("chain-8op", "tanh(exp(x*2+1) * sigmoid(x)) + x*0.5", chain_8op,
             lambda xp, x: xp.tanh(xp.exp(x * 2 + 1) * _sig(xp, x)) + x * 0.5,
             _make_vector, {"cpu": _E}),
    Workload("gelu", "0.5*x*(1+tanh(0.7978845608*(x+0.044715*x^3)))", gelu_tanh, _gelu_ref,
             _make_vector, {"cpu": _E}),
    Workload("bias-gelu", "gelu(x + b), x [N,H], b [H]", bias_gelu,
             lambda xp, x, b: _gelu_ref(xp, x + b), _make_bias_gelu, {"cpu": _E}),
    Workload("softmax", "softmax over the last dim (fusejit.softmax)", softmax, _softmax_ref,
             _make_rows(4096), {"cpu": _E}, rtol=1e-4, atol=1e-9),
    Workload("layernorm", "layer_norm over the last dim, eps 1e-5, weight and bias", layernorm,
             _layernorm_ref, _make_layernorm(4096), {"cpu": _E}, rtol=1e-4, atol=1e-4),
    Workload("softmax-1k", "softmax over rows of 1024", softmax, _softmax_ref,
             _make_rows(1024), {"cpu": _E}, rtol=1e-4, atol=1e-9),
    Workload("layernorm-1k", "layer_norm over rows of 1024", layernorm,
             _layernorm_ref, _make_layernorm(1024), {"cpu": _E}, rtol=1e-4, atol=1e-4),
    Workload("mse", "mean((a-b)^2) of whole tensors (a loss)", mse, _mse_ref, _make_pair,
             {"cpu": _E}, rtol=1e-5, atol=0),
    Workload("adam", "adam step: 4 inputs (p, g, m, v), 3 outputs", adam_step, _adam_ref,
             _make_adam, {"cpu": _E}, rtol=1e-5, atol=1e-6),
    Workload("lstm-cell", "lstm-cell pointwise: gates [B,4H] -> h, c2", lstm_cell, _lstm_ref,
             _make_lstm, {"cpu": 2048 * 1024, "cuda": 8192 * 4096}),
    Workload("mlp", "linear -> gelu (tanh) -> linear, with biases", mlp_block, _mlp_ref,
             _make_mlp, {"cpu": 256 * MLP_HIDDEN, "cuda": 8192 * MLP_HIDDEN},
             rtol=1e-3, atol=1e-4, flops=_mlp_flops, probe_size=8 * MLP_HIDDEN),
    Workload("adamw-step", "fusejit.optim.AdamW step over GPT-2-small's 148 parameter shapes "
             "(scaled to size)", None, None, _make_adamw_step,
             {"cpu": _E, "cuda": 124_439_808}, rtol=1e-5, atol=1e-6, kind="optimizer",
             probe_size=1 << 20),
    Workload("softmax-bwd", "softmax backward: y*(dy - sum(dy*y)), y = softmax(x) over rows",
             softmax_bwd, _softmax_bwd_ref, _make_rows_grad(4096),
             {"cpu": _B, "cuda": 4096 * 4096}, rtol=1e-4, atol=1e-9, eager=softmax_bwd_eager),
    Workload("layernorm-bwd", "layer_norm backward: dx (rows), dw and db (columns)",
             layernorm_bwd, _layernorm_bwd_ref, _make_layernorm_bwd(4096),
             {"cpu": _B, "cuda": 4096 * 4096}, rtol=1e-3, atol=1e-3,
             eager=layernorm_bwd_eager),
    Workload("gelu-bwd", "gelu (tanh) backward: dy * gelu'(x)", gelu_bwd, _gelu_bwd_ref,
             _make_vector_grad, {"cpu": _B, "cuda": 4096 * 4096}, rtol=1e-4, atol=1e-5,
             eager=gelu_bwd_eager),
    Workload("cross-entropy", "mean cross entropy of logits [R, C] and its gradient (class "
             "indices)", cross_entropy_fb, _cross_entropy_ref, _make_cross_entropy,
             {"cpu": _B, "cuda": 4096 * 32768}, rtol=1e-4, atol=1e-9,
             eager=cross_entropy_fb_eager),
    Workload("mlp-train", "training step: Linear > GELU (tanh) > LayerNorm > Linear, MSE, "
             "backward, AdamW", None, None, _make_mlp_train,
             {"cpu": 256 * 1024, "cuda": 8192 * 4096}, rtol=1e-3, atol=1e-5, kind="train",
             probe_size=1 << 14),
]  # fmt: skip
WORKLOADS: dict[str, Workload] = {w.name: w for w in _WL}


def names() -> list[str]:
    """The workload names, in benchmark order."""
    return list(WORKLOADS)
