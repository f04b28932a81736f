"""The training-step workload of the harness (``mlp-train``): ``Linear > GELU > LayerNorm >
Linear``, an MSE loss, ``loss.backward()`` and an AdamW step, on a batch of rows.

- "eager": fusejit eager autograd;
- "optimized" (and "fused"): the same model through ``fusejit.optimize`` (its forward and
  backward compiled as joint graphs);
- both step with the default ``fusejit.optim.AdamW`` (fused);
- the reference: the same step written with numpy (cupy on a GPU): forward, backward by hand,
  AdamW array by array.

All three start from the same parameters; their first gradients must agree within the
workload's tolerance (relative to each gradient's largest entry). Bytes are each array once:
the batch and target, the parameters, gradients and both moments (read and written), the
activations saved for the backward (three of the hidden width per row).

>>> from fusejit.bench.harness import run_workload
>>> r = run_workload("mlp-train", "cpu", size=8 * 64, repeat=1)
>>> r["verified"]
True
"""

from __future__ import annotations

import importlib.util
import statistics
import time

import numpy as np

import fusejit as fj
from fusejit.bench import harness as h
from fusejit.bench.workloads import Workload

LR, B1, B2, EPS, WD, LN_EPS = 1e-3, 0.9, 0.999, 1e-8, 0.01, 1e-5
JOINT = importlib.util.find_spec("fusejit.jit.joint") is not None


def _model(arrays, dev):
    x, y, w1, b1, w2, b2 = arrays
    width = w1.shape[0]
    nn = fj.nn
    m = nn.Sequential(nn.Linear(x.shape[1], width), nn.GELU(approximate="tanh"),
                      nn.LayerNorm(width, eps=LN_EPS), nn.Linear(width, y.shape[1]))  # fmt: skip
    with fj.no_grad():
        for p, a in zip((m[0].weight, m[0].bias, m[3].weight, m[3].bias), (w1, b1, w2, b2)):
            p.copy_(fj.from_numpy(a))
    return m.to(dev) if dev.type != "cpu" else m


class _Step:
    """One training step of a fusejit model (``optimized``: through ``fusejit.optimize``)."""

    def __init__(self, arrays, dev, optimized: bool) -> None:
        self.module = _model(arrays, dev)
        self.params = list(self.module.parameters())
        # (without joint graphs in this build, optimize's outputs take no gradient: the
        # optimized step then runs its forward and backward eagerly, as ``run`` reports)
        self.model = self.module
        if optimized and JOINT:
            self.model = fj.optimize(self.module, warmup=1)
        # (both with the default AdamW: fused where fusejit fuses it; the columns differ in the
        # forward and backward only)
        self.opt = fj.optim.AdamW(self.params, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD)
        self.x, self.y = h._to_tensors(arrays[:2], dev)

    def grads(self) -> list:
        self.opt.zero_grad()
        fj.nn.functional.mse_loss(self.model(self.x), self.y).backward()
        return [p.grad._data for p in self.params]

    def __call__(self) -> None:
        self.grads()
        self.opt.step()


def _gelu(xp, u):
    k = np.float32(0.7978845608028654)
    t = xp.tanh(k * (u + np.float32(0.044715) * u * u * u))
    d = 0.5 * (1 + t) + 0.5 * u * (1 - t * t) * k * (1 + np.float32(3 * 0.044715) * u * u)
    return 0.5 * u * (1 + t), d


class NumpyStep:
    """The step written with numpy / cupy (``xp``): forward, backward by hand, AdamW."""

    def __init__(self, xp, arrays) -> None:
        self.xp = xp
        self.x, self.y, *ps = (xp.asarray(a.copy()) for a in arrays)
        w = ps[0].shape[0]
        ps[2:2] = [xp.ones(w, xp.float32), xp.zeros(w, xp.float32)]  # LayerNorm weight, bias
        self.p = ps  # w1, b1, ln_w, ln_b, w2, b2 (the module's order)
        self.m = [xp.zeros_like(p) for p in ps]
        self.v = [xp.zeros_like(p) for p in ps]
        self.t = 0

    def grads(self) -> list:
        xp, x, y = self.xp, self.x, self.y
        w1, b1, g, b, w2, b2 = self.p
        u = x @ w1.T + b1
        a, da = _gelu(xp, u)
        mu = a.mean(axis=-1, keepdims=True)
        xc = a - mu
        rstd = 1 / xp.sqrt((xc * xc).mean(axis=-1, keepdims=True) + np.float32(LN_EPS))
        xhat = xc * rstd
        n = xhat * g + b
        out = n @ w2.T + b2
        dout = (out - y) * np.float32(2.0 / out.size)
        dw2, db2 = dout.T @ n, dout.sum(axis=0)
        dn = dout @ w2
        dg, db = (dn * xhat).sum(axis=0), dn.sum(axis=0)
        gy = dn * g
        dxn = rstd * (gy - gy.mean(axis=-1, keepdims=True)
                      - xhat * (gy * xhat).mean(axis=-1, keepdims=True))  # fmt: skip
        du = dxn * da
        return [du.T @ x, du.sum(axis=0), dg, db, dw2, db2]

    def __call__(self) -> None:
        self.t += 1
        bc1, bc2 = 1 - B1**self.t, 1 - B2**self.t
        for p, gr, m, v in zip(self.p, self.grads(), self.m, self.v):
            p *= np.float32(1 - LR * WD)
            m *= np.float32(B1)
            m += np.float32(1 - B1) * gr
            v *= np.float32(B2)
            v += np.float32(1 - B2) * gr * gr
            p -= np.float32(LR / bc1) * m / (self.xp.sqrt(v / np.float32(bc2)) + np.float32(EPS))


def _check(w: Workload, what: str, got: list, ref: list) -> float:
    """Normwise: a gradient is a sum over the batch, its error relative to the largest."""
    worst = 0.0
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        g64, r64 = h._host(g).astype(np.float64), h._host(r).astype(np.float64)
        err = float(np.max(np.abs(g64 - r64)))
        scale = float(np.max(np.abs(r64)))
        if not err <= w.atol + w.rtol * scale:
            raise h.MismatchError(
                f"{w.name}: {what} gradient of parameter {i} differs from the reference by up "
                f"to {err:.3g} (largest {scale:.3g}; tolerance atol={w.atol:g} rtol={w.rtol:g})"
            )
        worst = max(worst, err / max(scale, w.atol / w.rtol))
    return worst


def run(w: Workload, device: str, size: int | None, repeat: int | None, *, budget_s: float,
        seed: int) -> dict:  # fmt: skip
    """The training workload, verified after one step, then timed (a row of
    ``harness.run_workload``)."""
    dev = h._device(device)
    xp, sync = h._xp(dev), h._sync_fn(dev)
    size = size or w.size_for(dev.type)
    arrays, shape = w.make(size, dev.type, seed)
    eager, opt, ref = _Step(arrays, dev, False), _Step(arrays, dev, True), NumpyStep(xp, arrays)
    # the gradients of the first step (after one, Adam's update is about lr * sign(gradient):
    # the parameters would not tell a small gradient's rounding from an error)
    want = ref.grads()
    _check(w, "eager", eager.grads(), want)
    opt.grads()  # (eager: optimize's warm-up call)
    err = _check(w, "optimized", opt.grads(), want)
    for f in (eager, opt, ref):
        f()
    sync()
    kernels = 0  # the fused kernels of the compiled forward and backward
    if opt.model is not opt.module:
        for sig in fj.explain(opt.model, as_dict=True)["signatures"]:
            for tr in sig.get("training", []):
                kernels += len(tr.get("forward_kernels", [])) + len(tr.get("backward_kernels", []))
    calls = {"eager": eager, "optimized": opt, "ref": ref}
    timing = {"warmup": 1, "budget_s": budget_s, **h.device_timing(dev)}
    t = h.time_interleaved(calls, repeat=repeat, sync=sync, **timing)
    med = {k: statistics.median(v) for k, v in t.items()}
    n_par = sum(int(p.size) for p in ref.p)
    batch, width = arrays[0].shape[0], arrays[2].shape[0]
    nbytes = 4 * (arrays[0].size + arrays[1].size + 7 * n_par + 3 * batch * width)
    t["fused"] = t["optimized"]
    return {
        "name": w.name, "formula": w.formula, "shape": shape, "size": size, "kernels": kernels,
        "bytes": nbytes, "verified": True, "max_rel_err": err, "repeats": len(t["optimized"]),
        "eager_s": med["eager"], "fused_s": med["optimized"], "ref_s": med["ref"],
        "optimized_s": med["optimized"], "optimized_vs_fused": 1.0, "ref_name": xp.__name__,
        "speedup": med["eager"] / med["optimized"], "vs_ref": med["ref"] / med["optimized"],
        "fused_gbs": nbytes / med["optimized"] / 1e9, "times": t, "joint_graphs": JOINT,
    }  # fmt: skip


def probe(w: Workload, size: int, dev: fj.Device, timed) -> dict:
    """The compile probe (in a fresh process, as ``harness._probe`` runs it): the first
    compiled step (after the one eager warm-up step of ``fusejit.optimize``) minus a steady
    one."""
    arrays, _ = w.make(size, dev.type, 3)
    eager = _Step(arrays, dev, False)
    t_eager_first, _ = timed(eager)
    c0 = time.process_time()
    t_eager = min(timed(eager)[0] for _ in range(2))
    c_eager = (time.process_time() - c0) / 2
    opt = _Step(arrays, dev, True)
    timed(opt)  # (eager: optimize's warm-up call)
    before = fj.cache_info()
    c0 = time.process_time()
    t_first, _ = timed(opt)
    c_first = time.process_time() - c0
    after = fj.cache_info()
    c0 = time.process_time()
    t_fused = min(timed(opt)[0] for _ in range(2))
    c_fused = (time.process_time() - c0) / 2
    return {
        "compile_s": max(0.0, t_first - t_fused),
        "compile_cpu_s": max(0.0, c_first - c_fused),
        "trace_s": 0.0, "first_call_s": t_first, "eager_s": t_eager, "fused_s": t_fused,
        "eager_first_s": t_eager_first, "eager_cpu_s": c_eager,
        "kernels": after["compiled"] + after["disk_hits"] - before["compiled"]
        - before["disk_hits"],
        "kernels_compiled": after["compiled"] - before["compiled"],
        "kernels_from_disk": after["disk_hits"] - before["disk_hits"],
    }  # fmt: skip


__all__ = ["run", "probe", "NumpyStep"]
