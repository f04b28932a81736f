"""Fused against unfused optimizer steps on the CPU: what ``fused=None`` should mean there, and
from how many elements the multi-tensor kernel splits its chunks over the threads.

Part 1 times ``step()`` of SGD (with and without momentum), Adam and AdamW, ``fused=False``
and ``fused=True`` in turn, over a digits MLP's 4 tensors, GPT-2's 148 shapes at 11K and at
16.6M parameters (and a numpy-written AdamW there). Part 2 times the fused AdamW over one
tensor of 2^14..2^22 elements on one thread and on every thread
(``backends/multi_tensor.CPU_PARALLEL_THRESHOLD``).

    PYTHONPATH=. python bench/bench_optim.py [--reps 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fusejit.backends import cpu_kernels as cpk  # noqa: E402
from fusejit.backends import multi_tensor as bm  # noqa: E402

import fusejit as fj  # noqa: E402
from fusejit import nn, optim  # noqa: E402
from fusejit.bench.optim_bench import NumpyAdamW  # noqa: E402
from fusejit.bench.workloads import gpt2_shapes, gpt2_shapes_for  # noqa: E402

SETS = {
    "mlp 4 tensors": [(32, 64), (32,), (10, 32), (10,)],
    "gpt2 148 tensors small": gpt2_shapes(64, 16, 8, 12),
    "gpt2 148 tensors 2^24": gpt2_shapes_for(1 << 24),
}
OPTS = {
    "SGD": (optim.SGD, dict(lr=0.1)),
    "SGD momentum": (optim.SGD, dict(lr=0.1, momentum=0.9)),
    "Adam": (optim.Adam, dict(lr=1e-3)),
    "AdamW": (optim.AdamW, dict(lr=1e-3)),
}


def _params(shapes, rng):
    ps = [nn.Parameter(fj.from_numpy(0.02 * rng.standard_normal(s, dtype=np.float32)))
          for s in shapes]  # fmt: skip
    for p in ps:
        p.grad = fj.from_numpy(rng.standard_normal(p.shape, dtype=np.float32))
    return ps


def _time(calls: dict, reps: int) -> dict:
    for f in calls.values():  # (warm: compiled, memory touched)
        f()
        f()
    out = {k: [] for k in calls}
    for r in range(reps):
        items = list(calls.items())
        for k, f in items[r % len(items) :] + items[: r % len(items)]:
            t0 = time.perf_counter()
            f()
            out[k].append(time.perf_counter() - t0)
    return {k: {"min_s": min(v), "median_s": statistics.median(v)} for k, v in out.items()}


def steps(reps: int) -> list:
    rows = []
    for set_name, shapes in SETS.items():
        big = "2^24" in set_name
        n = sum(int(np.prod(s)) for s in shapes)
        for opt_name, (cls, kw) in OPTS.items():
            if big and opt_name not in ("SGD momentum", "AdamW"):
                continue
            rng = np.random.default_rng(0)
            calls = {}
            for fused in (False, True):
                opt = cls(_params(shapes, rng), fused=fused, **kw)
                calls["fused" if fused else "unfused"] = opt.step
            if opt_name == "AdamW":
                arrays = [0.02 * rng.standard_normal(s, dtype=np.float32) for s in shapes]
                grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
                ref = NumpyAdamW(np, arrays, grads, [np.zeros_like(a) for a in arrays],
                                 [np.zeros_like(a) for a in arrays], 0)  # fmt: skip
                calls["numpy"] = ref.step
            t = _time(calls, max(5, reps // 3) if big else reps)
            row = {"set": set_name, "params": n, "optimizer": opt_name, **t}
            row["unfused_over_fused"] = t["unfused"]["median_s"] / t["fused"]["median_s"]
            if "numpy" in t:
                row["numpy_over_fused"] = t["numpy"]["median_s"] / t["fused"]["median_s"]
            rows.append(row)
            extra = (f", numpy {t['numpy']['median_s'] * 1e3:.3f} ms "
                     f"({row['numpy_over_fused']:.2f}x)" if "numpy" in t else "")  # fmt: skip
            print(f"{set_name:24s} {n:>9d}  {opt_name:13s} unfused "
                  f"{t['unfused']['median_s'] * 1e3:8.3f} ms  fused "
                  f"{t['fused']['median_s'] * 1e3:8.3f} ms  ({row['unfused_over_fused']:.2f}x)"
                  f"{extra}  [min {t['unfused']['min_s'] * 1e3:.3f} / "
                  f"{t['fused']['min_s'] * 1e3:.3f} ms]", flush=True)  # fmt: skip
    return rows


def threads(reps: int) -> list:
    rows = []
    all_threads = cpk.THREADS
    saved = bm.CPU_PARALLEL_THRESHOLD
    try:
        for e in range(14, 23, 2):
            rng = np.random.default_rng(1)
            opt = optim.AdamW(_params([(1 << e,)], rng), lr=1e-3, fused=True)

            def one(th, opt=opt):
                cpk.THREADS = th
                bm.CPU_PARALLEL_THRESHOLD = 1
                opt.step()

            t = _time({"1 thread": lambda: one(1), "all threads": lambda: one(all_threads)}, reps)
            rows.append({"elements": 1 << e, "threads": all_threads, **t})
            print(f"2^{e:<3d} 1 thread {t['1 thread']['median_s'] * 1e6:9.1f} us   "
                  f"{all_threads} threads {t['all threads']['median_s'] * 1e6:9.1f} us  "
                  f"({t['1 thread']['median_s'] / t['all threads']['median_s']:.2f}x)",
                  flush=True)  # fmt: skip
    finally:
        cpk.THREADS = all_threads
        bm.CPU_PARALLEL_THRESHOLD = saved
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"load average {load}; {cpk.THREADS} threads")
    res = {"steps": steps(a.reps), "threads": threads(a.reps), "loadavg_start": load}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
