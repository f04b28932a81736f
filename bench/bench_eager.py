"""Eager fusejit against the same numpy call, on 2**24 and on 4096 float32 elements.

Targets (the "foundation" issue): at 2**24 elements an eager op takes at most 1.15x the time of
the numpy call it stands for; at 4096 elements it adds at most 3 us to it (the dispatch
overhead). Each fusejit call is timed against the numpy function it stands for (``F.sum(x)``
against ``np.sum(x)``); ops numpy has no function for (relu, sigmoid, silu, gelu, softmax) against
the numpy expression a user would write instead, so there the kernel itself is compared too.

Two ways to run it:

    python bench/bench_eager.py [--quick] [--ops add,exp,...]   # the table, side by side
    python -m pytest bench/bench_eager.py --benchmark-only       # pytest-benchmark

The table measures numpy and fusejit in one process, alternating short ``timeit`` batches of
each and keeping each side's fastest, which is what the targets are checked against.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import timeit

import numpy as np

try:
    import fusejit as F
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit as F

LARGE = 1 << 24
SMALL = 4096
RATIO_TARGET = 1.15
OVERHEAD_TARGET_US = 3.0


def _gelu_tanh_np(a):
    return 0.5 * a * (1 + np.tanh(np.float32(0.7978845608028654) * (a + np.float32(0.044715) * a
                                                                     * a * a)))  # fmt: skip


# name -> (numpy call, fusejit call); each takes (x, y) of its own kind
CASES = {
    "add": (np.add, lambda x, y: x + y),
    "sub": (np.subtract, lambda x, y: x - y),
    "mul": (np.multiply, lambda x, y: x * y),
    "mul_scalar": (lambda x, y: np.multiply(x, 2.0), lambda x, y: x * 2.0),
    "div": (np.true_divide, lambda x, y: x / y),
    "maximum": (np.maximum, F.maximum),
    "gt": (np.greater, lambda x, y: x > y),
    "neg": (lambda x, y: np.negative(x), lambda x, y: -x),
    "abs": (lambda x, y: np.absolute(x), lambda x, y: abs(x)),
    "exp": (lambda x, y: np.exp(x), lambda x, y: F.exp(x)),
    "log": (lambda x, y: np.log(y), lambda x, y: F.log(y)),
    "sqrt": (lambda x, y: np.sqrt(y), lambda x, y: F.sqrt(y)),
    "tanh": (lambda x, y: np.tanh(x), lambda x, y: F.tanh(x)),
    "sin": (lambda x, y: np.sin(x), lambda x, y: F.sin(x)),
    "where": (lambda x, y: np.where(x > 0, x, y), lambda x, y: F.where(x > 0, x, y)),
    "cast_f16": (lambda x, y: x.astype(np.float16), lambda x, y: x.half()),
    "relu": (lambda x, y: np.maximum(x, np.float32(0)), lambda x, y: F.relu(x)),
    "sigmoid": (lambda x, y: 1 / (1 + np.exp(-x)), lambda x, y: F.sigmoid(x)),
    "silu": (lambda x, y: x / (1 + np.exp(-x)), lambda x, y: F.silu(x)),
    "gelu_tanh": (lambda x, y: _gelu_tanh_np(x), lambda x, y: F.gelu(x, approximate="tanh")),
    "sum": (lambda x, y: np.sum(x), lambda x, y: F.sum(x)),
    "mean": (lambda x, y: np.mean(x), lambda x, y: F.mean(x)),
    "amax": (lambda x, y: np.max(x), lambda x, y: F.amax(x)),
    # x is 2-D ([n / 64, 64]) in the cases below whose name ends in "_2d"
    "sum_dim_2d": (lambda x, y: np.sum(x, axis=1), lambda x, y: F.sum(x, 1)),
    "softmax_2d": (lambda x, y: _softmax_np(x), lambda x, y: F.softmax(x, -1)),
    # views: constant time, so only the overhead at 4096 is measured
    "reshape": (lambda x, y: x.reshape(-1, 64), lambda x, y: x.reshape(-1, 64)),
    "transpose_2d": (lambda x, y: x.T, lambda x, y: x.T),
    "slice": (lambda x, y: x[1:-1], lambda x, y: x[1:-1]),
}
VIEWS = {"reshape", "transpose_2d", "slice"}


def _softmax_np(x):
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def inputs(n: int, seed: int = 0, two_d: bool = False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.uniform(0.5, 2.0, n).astype(np.float32)  # positive: log and sqrt
    return (x.reshape(-1, 64), y.reshape(-1, 64)) if two_d else (x, y)


def measure(name: str, n: int, quick: bool = False) -> tuple[float, float]:
    """(numpy seconds, fusejit seconds) per call of case ``name`` on ``n`` elements.

    The two sides alternate, one short batch of calls each, many times over, and each keeps its
    fastest batch: a busy moment of the machine then slows both sides alike, and the minimum is
    the time of the call itself, not of what else ran."""
    np_fn, fj_fn = CASES[name]
    x, y = inputs(n, two_d=name.endswith("_2d"))
    tx, ty = F.from_numpy(x), F.from_numpy(y)
    np.testing.assert_allclose(np.asarray(fj_fn(tx, ty), dtype=np.float64),
                               np.asarray(np_fn(x, y), dtype=np.float64),
                               rtol=1e-3, atol=1e-3 * math.sqrt(n))  # fmt: skip
    if n >= 1 << 20:
        number, samples = 1, (8 if quick else 25)
    else:
        number, samples = (100 if quick else 200), (50 if quick else 200)
    t_np = timeit.Timer("f(x, y)", globals={"f": np_fn, "x": x, "y": y})
    t_fj = timeit.Timer("f(x, y)", globals={"f": fj_fn, "x": tx, "y": ty})
    t_np.timeit(1), t_fj.timeit(1)  # warm up: compilation, first page faults
    best_np = best_fj = math.inf
    for i in range(samples):  # numpy first in even rounds, fusejit first in odd ones
        for first in (t_np, t_fj) if i % 2 == 0 else (t_fj, t_np):
            t = first.timeit(number)
            if first is t_np:
                best_np = min(best_np, t)
            else:
                best_fj = min(best_fj, t)
    return best_np / number, best_fj / number


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", help="comma-separated case names (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--small-only", action="store_true", help="skip the 2**24 measurements")
    args = p.parse_args(argv)
    names = args.ops.split(",") if args.ops else list(CASES)
    print(f"fusejit {F.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs; float32")
    head = (f"{'op':<13} {'numpy 2^24':>11} {'fusejit':>9} {'ratio':>6}   "
            f"{'numpy 4096':>10} {'fusejit':>9} {'overhead':>9}")  # fmt: skip
    print(head)
    print("-" * len(head))
    fails = []
    for name in names:
        if args.small_only or name in VIEWS:
            big = "-"
        else:
            bn, bf = measure(name, LARGE, args.quick)
            ratio = bf / bn
            flag = " " if ratio <= RATIO_TARGET else "!"
            fails += [f"{name}: ratio {ratio:.2f}"] if flag == "!" else []
            big = f"{bn * 1e3:8.2f} ms {bf * 1e3:6.2f} ms {ratio:5.2f}{flag}"
        sn, sf = measure(name, SMALL, args.quick)
        over = (sf - sn) * 1e6
        flag = " " if over <= OVERHEAD_TARGET_US else "!"
        fails += [f"{name}: overhead {over:.2f} us"] if flag == "!" else []
        print(f"{name:<13} {big:>32}   {sn * 1e6:7.2f} us {sf * 1e6:6.2f} us "
              f"{over:+7.2f} us{flag}", flush=True)  # fmt: skip
    print(f"\ntargets: ratio <= {RATIO_TARGET} at 2^24, overhead <= {OVERHEAD_TARGET_US} us at "
          f"4096 ('!' marks a miss)")  # fmt: skip
    for f in fails:
        print("  missed:", f)
    return 1 if fails else 0


# ---- pytest-benchmark ---------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - the script needs no pytest
    pytest = None

if pytest is not None:

    @pytest.mark.parametrize("impl", ["numpy", "fusejit"])
    @pytest.mark.parametrize("n", [SMALL, LARGE], ids=["4096", "2^24"])
    @pytest.mark.parametrize("name", list(CASES))
    def test_eager_vs_numpy(benchmark, name, n, impl):
        np_fn, fj_fn = CASES[name]
        x, y = inputs(n, two_d=name.endswith("_2d"))
        args = (x, y) if impl == "numpy" else (F.from_numpy(x), F.from_numpy(y))
        fn = np_fn if impl == "numpy" else fj_fn
        benchmark.group = f"{name} n={n}"
        fn(*args)  # compile and warm up outside the measurement
        benchmark(fn, *args)


if __name__ == "__main__":
    sys.exit(main())
