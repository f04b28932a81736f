"""Joint forward/backward graphs on the CPU: a training step's time and peak memory, eager
autograd against ``fusejit.optimize`` (compiled forward and backward), and what the partition
saves.

The model is an MLP (``--width`` wide, two hidden layers, GELU and LayerNorm, MSE loss) on a
batch of ``--batch`` rows, float32. Each side runs the step (zero_grad, forward, loss,
``backward``) in alternating rounds in one process; the fastest round of each is kept. Peak
memory is ``tracemalloc``'s over one step (numpy reports its buffers to it), measured in a
second process with the host pool off (``FUSEJIT_HOST_POOL_BYTES=0``: a buffer handed out by
the pool is no new allocation). Also printed: the bytes the backward reads from memory (saved)
against saving every forward value it reads.

    PYTHONPATH=. python bench/bench_joint.py [--width 1024] [--batch 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc

try:
    import fusejit
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit

import fusejit.nn as nn
import fusejit.nn.functional as F


def make(width: int) -> nn.Module:
    fusejit.manual_seed(0)
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width),
                         nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width),
                         nn.Linear(width, width))  # fmt: skip


def step(model, params, x, y) -> None:
    for p in params:
        p.grad = None
    F.mse_loss(model(x), y).backward()


def peak(model, params, x, y) -> int:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step(model, params, x, y)
    p = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peaks", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.peaks:  # (the second process: peak memory only)
        m = make(a.width)
        params = list(m.parameters())
        om = fusejit.optimize(m, warmup=1)
        x, y = fusejit.randn(a.batch, a.width), fusejit.randn(a.batch, a.width)
        for _ in range(3):
            step(om, params, x, y)
        step(m, params, x, y)
        res = {name: peak(model, params, x, y) for name, model in (("eager", m), ("optimize", om))}
        print(json.dumps(res))
        return
    m = make(a.width)
    params = list(m.parameters())
    om = fusejit.optimize(m, warmup=1)
    x = fusejit.randn(a.batch, a.width)
    y = fusejit.randn(a.batch, a.width)
    t0 = time.perf_counter()
    for _ in range(3):
        step(om, params, x, y)  # warmup, compile, first compiled call
    compile_s = time.perf_counter() - t0
    step(m, params, x, y)
    times: dict = {"eager": [], "optimize": []}
    gc.disable()
    try:
        for _ in range(a.rounds):
            for name, model in (("eager", m), ("optimize", om)):
                t = time.perf_counter()
                step(model, params, x, y)
                times[name].append(time.perf_counter() - t)
    finally:
        gc.enable()
    env = dict(os.environ, FUSEJIT_HOST_POOL_BYTES="0")
    cmd = [sys.executable, __file__, "--peaks", "--width", str(a.width), "--batch", str(a.batch)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    peaks = json.loads(out.strip().splitlines()[-1])
    w = a.width
    print(f"MLP {a.batch} x ({w} > {w} > {w} > {w}), GELU, LayerNorm, MSE, float32; "
          f"{a.rounds} rounds; first three optimized steps {compile_s:.2f} s")  # fmt: skip
    for name in times:
        ts = sorted(times[name])
        print(f"  {name:9s} min {ts[0] * 1e3:8.2f} ms  median {ts[len(ts) // 2] * 1e3:8.2f} ms  "
              f"peak {peaks[name] / 2**20:8.2f} MiB")  # fmt: skip
    ratio = min(times["eager"]) / min(times["optimize"])
    print(f"  optimize vs eager: {ratio:.2f}x faster (min), peak memory "
          f"{peaks['optimize'] / peaks['eager']:.2f}x eager's")  # fmt: skip
    r = fusejit.explain(om, as_dict=True)
    for tr in r["signatures"][0]["training"]:
        if "saved_bytes" in tr:
            print(f"  saved for backward {tr['saved_bytes'] / 2**20:.2f} MiB (saving every value "
                  f"the backward reads: {tr['save_all_bytes'] / 2**20:.2f} MiB); kernels "
                  f"forward {len(tr['forward_kernels'])}, backward "
                  f"{len(tr['backward_kernels'])}")  # fmt: skip


if __name__ == "__main__":
    main()
