"""Traced single ops and transposed inputs on the CPU, against numpy, side by side.

Two questions, each answered by ratios measured in one run:

* A lone elementwise op in a traced graph (``x + b`` after a matmul, a cast, an ``exp``): is
  it faster as a kernel of its own ("region") than run eagerly by the plan ("eager op", what
  the fusion pass did before the region of one op) and than numpy?
* A fused kernel whose inputs are transposed views: how close does it get to the same kernel
  over contiguous inputs, and to numpy (which loops in memory order)?

    python bench/bench_traced_ops.py [--quick]

Each configuration is timed in alternating ``timeit`` batches; each side keeps its fastest.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from functools import partial

import numpy as np

try:
    import fusejit as F
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit as F

from fusejit.jit.passes import fuse

RNG = np.random.default_rng(0)


def _arr(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# name -> (fusejit function, numpy function, numpy inputs)
LONE = {
    "add 4096": (lambda x: x + 1, lambda x: x + np.float32(1), (_arr(4096),)),
    "exp 4096": (F.exp, np.exp, (_arr(4096),)),
    "add 2^24": (lambda x: x + 1, lambda x: x + np.float32(1), (_arr(1 << 24),)),
    "mul x*y 2^24": (lambda x, y: x * y, np.multiply, (_arr(1 << 24), _arr(1 << 24))),
    "exp 2^22": (F.exp, np.exp, (_arr(1 << 22),)),
    "tanh 2^22": (F.tanh, np.tanh, (_arr(1 << 22),)),
    "exp f64 2^22": (F.exp, np.exp, (_arr(1 << 22, dtype=np.float64),)),
    "cast f16 2^22": (lambda x: x.to(F.float16), lambda x: x.astype(np.float16), (_arr(1 << 22),)),
    "f16 add 2^22": (
        lambda x: x + 1,
        lambda x: x + np.float16(1),
        (_arr(1 << 22, dtype=np.float16),),
    ),
    "bias add 4096^2": (lambda x, b: x + b, np.add, (_arr(4096, 4096), _arr(4096))),
    "outer add 4096^2": (lambda a, b: a + b, np.add, (_arr(4096, 1), _arr(1, 4096))),
    "where 2^22": (
        lambda c, x, y: F.where(c, x, y),
        np.where,
        (_arr(1 << 22) > 0, _arr(1 << 22), _arr(1 << 22)),
    ),
}


def _chain(x, y):
    return (x * 2 + y).exp() - y


def _chain_np(x, y):
    return np.exp(x * np.float32(2) + y) - y


def _best(timers: dict, budget: float) -> dict:
    """Per-call seconds of each timer, timed in alternating batches, the fastest kept."""
    for t in timers.values():
        t.timeit(1)  # compile, first page faults
    once = max(min(t.repeat(repeat=3, number=1)) for t in timers.values())
    number = max(1, int(0.02 / max(once, 1e-7)))
    best = {k: float("inf") for k in timers}
    rounds = max(3, int(budget / max(once * number * len(timers), 1e-9)))
    for _ in range(min(rounds, 25)):
        for k, t in timers.items():
            best[k] = min(best[k], t.timeit(number) / number)
    return best


def _trace(fn, args, min_size: int | None = None):
    if min_size is None:
        return F.trace(fn, args)
    with fuse.min_region("cpu", min_size):
        return F.trace(fn, args)


def lone_ops(budget: float) -> None:
    print(f"{'lone op':18s} {'numpy':>10s} {'eager op':>10s} {'region':>10s}"
          f" {'eager/region':>12s} {'numpy/region':>12s}")  # fmt: skip
    for name, (fn, np_fn, arrays) in LONE.items():
        args = tuple(F.from_numpy(a) for a in arrays)
        region, eager_op = _trace(fn, args), _trace(fn, args, min_size=2)
        assert region.kernel_count() == 1 and eager_op.kernel_count() == 0
        best = _best({
            "numpy": timeit.Timer(partial(np_fn, *arrays)),
            "eager op": timeit.Timer(partial(eager_op, *args)),
            "region": timeit.Timer(partial(region, *args)),
        }, budget)  # fmt: skip
        r = best["region"]
        print(f"{name:18s} {best['numpy'] * 1e6:8.1f}us {best['eager op'] * 1e6:8.1f}us"
              f" {r * 1e6:8.1f}us {best['eager op'] / r:11.2f}x {best['numpy'] / r:11.2f}x",
              flush=True)  # fmt: skip


def transposed(budget: float) -> None:
    print(f"\n{'(x*2+y).exp()-y':18s} {'numpy':>10s} {'contiguous':>10s} {'transposed':>10s}"
          f" {'numpy/transp':>12s}")  # fmt: skip
    for shape in ((4096, 4096), (64, 256, 256)):
        x, y = _arr(*shape[::-1]), _arr(*shape[::-1])
        xt, yt = x.T, y.T  # views: the last dim is the slowest in memory
        xc, yc = np.ascontiguousarray(xt), np.ascontiguousarray(yt)
        args_t = (F.from_numpy(xt), F.from_numpy(yt))
        args_c = (F.from_numpy(xc), F.from_numpy(yc))
        t = F.trace(_chain, args_c)
        np.testing.assert_allclose(t(*args_t).numpy(), _chain_np(xt, yt), rtol=1e-5, atol=1e-5)
        best = _best({
            "numpy": timeit.Timer(partial(_chain_np, xt, yt)),
            "contiguous": timeit.Timer(partial(t, *args_c)),
            "transposed": timeit.Timer(partial(t, *args_t)),
        }, budget)  # fmt: skip
        label = "x".join(map(str, shape)) + " .T"
        print(f"{label:18s} {best['numpy'] * 1e3:8.2f}ms {best['contiguous'] * 1e3:8.2f}ms"
              f" {best['transposed'] * 1e3:8.2f}ms {best['numpy'] / best['transposed']:11.2f}x",
              flush=True)  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter timing (a smoke run)")
    a = p.parse_args(argv)
    budget = 0.1 if a.quick else 1.0
    with np.errstate(all="ignore"):
        lone_ops(budget)
        transposed(budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
