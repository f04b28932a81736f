"""Column reductions on the CPU: a bias gradient ``dy.sum(0)`` and layer norm's weight and bias
gradients ``(dy * xhat).sum(0), dy.sum(0)`` on 4096 x 4096 float32, fused (one column kernel)
against numpy and against the unfused path (the JIT before column fusion: the prologue as an
elementwise kernel, then numpy's sum).

    PYTHONPATH=. python bench/bench_cols.py [--size 4096] [--repeat 7] [--threads N]
    PYTHONPATH=. python bench/bench_cols.py --device cuda      # cupy in numpy's place

Every workload runs in one process, the variants interleaved, each timed ``repeat`` times: min
and median milliseconds per call. GB/s counts the bytes a single pass must move (inputs read
once, outputs written once).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fusejit
from fusejit.jit import api


def _time(fn, number: int, sync=lambda: None) -> float:
    sync()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - t0) / number


def _unfused_trace(fn, args):
    """``fusejit.trace`` without column fusion (what the JIT did before it)."""
    old = api.FUSION
    api.FUSION = tuple(p for p in old if p[0] != "fuse_cols")
    try:
        return fusejit.trace(fn, args)
    finally:
        api.FUSION = old


def workloads(n: int, xp=np):
    rng = np.random.default_rng(0)
    dy = xp.asarray(rng.standard_normal((n, n)).astype(np.float32))
    xhat = xp.asarray(rng.standard_normal((n, n)).astype(np.float32))
    h = xp.asarray(rng.standard_normal((n, n)).astype(np.float32))
    out_bytes = n * 4
    yield (
        "bias-grad dy.sum(0)",
        lambda dy: dy.sum(0),
        lambda: dy.sum(0),
        (dy,),
        dy.nbytes + out_bytes,
    )
    yield (
        "relu-bwd bias ((h>0)*dy).sum(0)",
        lambda dy, h: ((h > 0) * dy).sum(0),
        lambda: ((h > 0) * dy).sum(0),
        (dy, h),
        2 * dy.nbytes + out_bytes,
    )
    yield (
        "layernorm dw, db",
        lambda dy, xh: ((dy * xh).sum(0), dy.sum(0)),
        lambda: ((dy * xhat).sum(0), dy.sum(0)),
        (dy, xhat),
        2 * dy.nbytes + 2 * out_bytes,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="kernel threads (0: the default)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (numpy's place: cupy)")
    args = ap.parse_args()
    if args.threads:
        fusejit.set_num_threads(args.threads)
    xp, sync, lib = np, (lambda: None), "numpy"
    if args.device.startswith("cuda"):
        import cupy as xp  # (only on a GPU machine)

        sync, lib = xp.cuda.Device().synchronize, "cupy"
    print(f"{args.device}, threads: {fusejit.get_num_threads()}, {args.size} x {args.size} float32")
    print(f"{'workload':34s} {'variant':8s} {'min ms':>8s} {'median ms':>10s} {'GB/s':>6s}")
    for name, fn, np_fn, arrays, nbytes in workloads(args.size, xp):
        ts = [fusejit.from_numpy(xp.asnumpy(a) if xp is not np else a).to(args.device)
              for a in arrays]  # fmt: skip
        fused = fusejit.trace(fn, ts)
        unfused = _unfused_trace(fn, ts)
        # same values (float64 accumulation against float32: close, not equal)
        got = fused(*ts)
        want = np_fn()
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,), strict=True):  # fmt: skip
            w = xp.asnumpy(w) if xp is not np else w
            assert np.allclose(g.cpu().numpy(), w, rtol=1e-3, atol=1e-2)
        variants = {
            lib: np_fn,
            "eager": lambda fn=fn, ts=ts: fn(*ts),
            "unfused": lambda u=unfused, ts=ts: u(*ts),
            "fused": lambda f=fused, ts=ts: f(*ts),
        }
        for v in variants.values():  # warm up (compile, caches)
            v()
        times: dict = {k: [] for k in variants}
        for _ in range(args.repeat):
            for k, v in variants.items():
                times[k].append(_time(v, 3, sync))
        for k, tt in times.items():
            lo, med = min(tt), statistics.median(tt)
            print(f"{name:34s} {k:8s} {lo * 1e3:8.2f} {med * 1e3:10.2f} {nbytes / lo / 1e9:6.1f}")
        print(f"{'':34s} fused: {min(times[lib]) / min(times['fused']):.2f}x {lib}, "
              f"{min(times['unfused']) / min(times['fused']):.2f}x unfused")  # fmt: skip


if __name__ == "__main__":
    main()
