"""The optimizer-step workloads of the harness (``adamw-step``): a step of ``fusejit.optim``'s
AdamW over a parameter set, unfused (``fused=False``: table ops, one tensor at a time) as
"eager", fused (``fused=True``: one multi-tensor kernel) as "fused" (and "optimized": there is
no function to trace), and AdamW written with numpy (cupy on a GPU) as the reference.

Bytes are counted as for the forward workloads, each array once: the parameters, gradients and
both moments read, the parameters and both moments written (28 bytes a float32 parameter).

>>> from fusejit.bench.harness import run_workload
>>> r = run_workload("adamw-step", "cpu", size=20000, repeat=1)
>>> r["verified"], r["kernels"]
(True, 1)
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

import fusejit as fj
from fusejit.backends import multi_tensor as bm
from fusejit.bench import harness as h
from fusejit.bench.workloads import LR, STEP, Workload

B1, B2, EPS, WD = 0.9, 0.999, 1e-8, 0.01


class NumpyAdamW:
    """AdamW as a numpy user writes it, tensor by tensor with in-place array ops (``xp``: numpy
    or cupy): the reference the fused step is compared with and timed against."""

    def __init__(self, xp, params, grads, exp_avg, exp_avg_sq, step: int) -> None:
        self.xp, self.p, self.g, self.m, self.v = xp, params, grads, exp_avg, exp_avg_sq
        self.t = step

    def step(self) -> None:
        xp = self.xp
        self.t += 1
        step_size = LR / (1 - B1**self.t)
        bc2_sqrt = math.sqrt(1 - B2**self.t)
        for p, g, m, v in zip(self.p, self.g, self.m, self.v):
            p *= 1 - LR * WD
            m *= B1
            m += (1 - B1) * g
            v *= B2
            v += (1 - B2) * (g * g)
            d = xp.sqrt(v)
            d /= bc2_sqrt
            d += EPS
            u = m / d
            u *= -step_size
            p += u


def _split(arrays: tuple) -> list:
    n = len(arrays) // 4
    return [list(arrays[k * n : (k + 1) * n]) for k in range(4)]


def _optimizer(arrays: tuple, dev: fj.Device, fused: bool):
    """A fusejit AdamW over fresh copies of ``arrays`` (params, grads, moments) on ``dev``,
    its state as after ``STEP - 1`` steps."""
    ps, gs, ms, vs = _split(arrays)
    params = []
    for p, g in zip(ps, gs):
        t = fj.nn.Parameter(fj.from_numpy(p.copy()).to(dev))
        t.grad = fj.from_numpy(g.copy()).to(dev)
        params.append(t)
    opt = fj.optim.AdamW(params, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD, fused=fused)
    opt.load_state_dict({
        "state": {i: {"step": fj.tensor(float(STEP - 1)), "exp_avg": fj.from_numpy(m.copy()),
                      "exp_avg_sq": fj.from_numpy(v.copy())}
                  for i, (m, v) in enumerate(zip(ms, vs))},
        "param_groups": [{**{k: v for k, v in opt.param_groups[0].items() if k != "params"},
                          "params": list(range(len(params)))}],
    })  # fmt: skip
    return opt, params


def _numpy_opt(arrays: tuple, xp) -> NumpyAdamW:
    ps, gs, ms, vs = ([xp.asarray(a.copy()) for a in part] for part in _split(arrays))
    return NumpyAdamW(xp, ps, gs, ms, vs, STEP - 1)


def _check(w: Workload, what: str, got: list, ref: list, exact: bool) -> float:
    worst = 0.0
    for i, (g, r) in enumerate(zip(got, ref)):
        g, r = h._host(g), h._host(r)
        if exact and not np.array_equal(g, r):
            raise h.MismatchError(f"{w.name}: {what} parameter {i} differs from the unfused step")
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        err = np.abs(g64 - r64)
        if not (err <= w.atol + w.rtol * np.abs(r64)).all():
            raise h.MismatchError(
                f"{w.name}: {what} parameter {i} differs from the reference by up to "
                f"{err.max():.3g} (tolerance atol={w.atol:g} rtol={w.rtol:g})"
            )
        worst = max(worst, float(np.max(err / np.maximum(np.abs(r64), w.atol / w.rtol))))
    return worst


def run(w: Workload, device: str, size: int | None, repeat: int | None, *, budget_s: float,
        seed: int) -> dict:  # fmt: skip
    """One optimizer workload, verified then timed (a row of ``harness.run_workload``)."""
    dev = h._device(device)
    xp, sync = h._xp(dev), h._sync_fn(dev)
    size = size or w.size_for(dev.type)
    arrays, shape = w.make(size, dev.type, seed)
    n = sum(int(a.size) for a in _split(arrays)[0])
    eager, pe = _optimizer(arrays, dev, fused=False)
    fused, pf = _optimizer(arrays, dev, fused=True)
    ref = _numpy_opt(arrays, xp)
    eager.step()
    before = bm.LAUNCHES.copy()
    fused.step()
    sync()
    kernels = sum((bm.LAUNCHES - before).values())
    ref.step()
    sync()
    err = _check(w, "fused", [p._data for p in pf], ref.p, exact=False)
    _check(w, "fused", [p._data for p in pf], [p._data for p in pe], exact=True)
    _check(w, "eager", [p._data for p in pe], ref.p, exact=False)
    calls = {"eager": eager.step, "fused": fused.step, "ref": ref.step}
    timing = {"warmup": 0, "budget_s": budget_s, **h.device_timing(dev)}
    t = h.time_interleaved(calls, repeat=repeat, sync=sync, **timing)
    med = {k: statistics.median(v) for k, v in t.items()}
    nbytes = 7 * n * 4
    return {
        "name": w.name, "formula": w.formula, "shape": shape, "size": n, "kernels": kernels,
        "bytes": nbytes, "verified": True, "max_rel_err": err, "repeats": len(t["fused"]),
        "eager_s": med["eager"], "fused_s": med["fused"], "ref_s": med["ref"],
        "optimized_s": med["fused"], "optimized_vs_fused": 1.0, "ref_name": xp.__name__,
        "speedup": med["eager"] / med["fused"], "vs_ref": med["ref"] / med["fused"],
        "fused_gbs": nbytes / med["fused"] / 1e9, "times": t,
    }  # fmt: skip


def probe(w: Workload, size: int, dev: fj.Device, timed) -> dict:
    """The compile probe of an optimizer workload (in a fresh process, as ``harness._probe``
    runs it): the first fused step (which compiles or loads the multi-tensor kernel) minus a
    steady one, at ``size`` parameters."""
    arrays, _ = w.make(size, dev.type, 3)
    eager, _ = _optimizer(arrays, dev, fused=False)
    t_eager_first, _ = timed(eager.step)
    c0 = time.process_time()
    t_eager = min(timed(eager.step)[0] for _ in range(3))
    c_eager = (time.process_time() - c0) / 3
    opt, _ = _optimizer(arrays, dev, fused=True)
    before = fj.cache_info()
    c0 = time.process_time()
    t_first, _ = timed(opt.step)
    c_first = time.process_time() - c0
    after = fj.cache_info()
    c0 = time.process_time()
    t_fused = min(timed(opt.step)[0] for _ in range(3))
    c_fused = (time.process_time() - c0) / 3
    return {
        "compile_s": max(0.0, t_first - t_fused),
        "compile_cpu_s": max(0.0, c_first - c_fused),
        "trace_s": 0.0, "first_call_s": t_first, "eager_s": t_eager, "fused_s": t_fused,
        "eager_first_s": t_eager_first, "eager_cpu_s": c_eager, "kernels": 1,
        "kernels_compiled": after["compiled"] - before["compiled"],
        "kernels_from_disk": after["disk_hits"] - before["disk_hits"],
    }  # fmt: skip


__all__ = ["run", "probe", "NumpyAdamW"]
