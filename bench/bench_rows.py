"""Row kernels on the CPU: where splitting rows across threads starts to pay, and fused softmax /
layer norm against numpy.

    PYTHONPATH=. python bench/bench_rows.py            # threshold table, then 4096 x 4096
    PYTHONPATH=. python bench/bench_rows.py --quick

For each size (R rows x N elements) the same compiled kernel runs on one thread and with its
rows split across threads; the last column is the speedup of the split launch.
``ROW_PARALLEL_THRESHOLD`` in ``backends/cpu_kernels.py`` is set from where it passes ~1.1x.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np
from fusejit.backends import cpu_kernels

import fusejit


def _best(fn, number: int, repeat: int = 5) -> float:
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def _kernel(traced):
    ((_, k),) = traced.plan.kernels
    return k


def threshold_table(quick: bool) -> None:
    sizes = [(r, n) for n in (64, 512, 4096) for r in (4, 16, 64, 256, 1024)]
    if quick:
        sizes = sizes[::3]
    print(f"{'workload':10s} {'R x N':>12s} {'elements':>9s} {'serial us':>10s} "
          f"{'threads us':>10s} {'speedup':>8s}")  # fmt: skip
    for name in ("softmax", "layernorm"):
        for r, n in sizes:
            x = fusejit.randn(r, n)
            if name == "softmax":
                t = fusejit.trace(lambda x: x.softmax(-1), x)
                args = (x,)
            else:
                w, b = fusejit.randn(n), fusejit.randn(n)
                t = fusejit.trace(lambda x, w, b: fusejit.layer_norm(x, x.shape[-1:], w, b),
                                  (x, w, b))  # fmt: skip
                args = (x, w, b)
            k = _kernel(t)
            arrays = [a.numpy() for a in args]
            number = max(3, 2_000_000 // (r * n))
            old = cpu_kernels.ROW_PARALLEL_THRESHOLD
            try:
                cpu_kernels.ROW_PARALLEL_THRESHOLD = 1 << 62
                ts = _best(lambda: k(*arrays), number)  # noqa: B023
                cpu_kernels.ROW_PARALLEL_THRESHOLD = 0
                tp = _best(lambda: k(*arrays), number)  # noqa: B023
            finally:
                cpu_kernels.ROW_PARALLEL_THRESHOLD = old
            print(f"{name:10s} {f'{r}x{n}':>12s} {r * n:9d} {ts * 1e6:10.1f} {tp * 1e6:10.1f} "
                  f"{ts / tp:7.2f}x")  # fmt: skip


def versus_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 4096), dtype=np.float32)
    w = (1 + 0.1 * rng.standard_normal(4096)).astype(np.float32)
    b = (0.1 * rng.standard_normal(4096)).astype(np.float32)

    def np_softmax():
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def np_layernorm():
        mu = x.mean(-1, keepdims=True)
        d = x - mu
        var = (d * d).mean(-1, keepdims=True)
        return d / np.sqrt(var + 1e-5) * w + b

    tx, tw, tb = (fusejit.from_numpy(a) for a in (x, w, b))
    sm = fusejit.trace(lambda x: fusejit.softmax(x, -1), tx)
    ln = fusejit.trace(lambda x, w, b: fusejit.layer_norm(x, (4096,), w, b, eps=1e-5),
                       (tx, tw, tb))  # fmt: skip
    print("\n4096 x 4096 float32, min of 5 repeats x 3 calls:")
    for name, fused, ref in (("softmax", lambda: sm(tx), np_softmax),
                             ("layernorm", lambda: ln(tx, tw, tb), np_layernorm)):  # fmt: skip
        tf, tn = _best(fused, 3), _best(ref, 3)
        print(f"  {name:10s} fused {tf * 1e3:7.2f} ms   numpy {tn * 1e3:7.2f} ms   "
              f"numpy / fused {tn / tf:5.2f}x")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-table", action="store_true")
    a = ap.parse_args()
    if not a.no_table:
        threshold_table(a.quick)
    versus_numpy()


if __name__ == "__main__":
    main()
