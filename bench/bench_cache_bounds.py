"""What the kernel cache costs in memory, what ``clear_cache`` gives back, and whether a long
run stays flat.

Each measurement runs in a process of its own on a fresh cache folder:

- ``kernels``: RSS per CPU kernel, N kernels compiled, then the same N loaded from disk in a
  second process; then the RSS ``clear_cache`` returns. With ``--heap`` also the Python heap
  (tracemalloc, which itself adds to the RSS: the RSS of a run without it is the one to quote).
- ``longrun``: a traced function called ``--calls`` times and an optimized one
  ``--opt-calls`` times over ``--shapes`` sizes, after a warm-up round of each size; RSS
  growth over the run.
- ``hot``: the time of ``x.sigmoid()`` (an eager kernel looked up in the memory cache) and a
  traced call, on 100 elements.

    PYTHONPATH=. python bench/bench_cache_bounds.py [--kernels 200] [--calls 1000000]
        [--opt-calls 100000] [--shapes 50] [--only kernels,longrun,hot] [--heap]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 2**20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def kernels(n: int, heap: bool) -> dict:
    """In this process: n distinct traced kernels built (or loaded) and called, then cleared."""
    import gc
    import tracemalloc

    import fusejit as fj

    x = fj.ones(8)
    fj.trace(lambda x: (x * 0.5 + 0.25).exp(), x)(x)  # numba and the math library warmed up
    gc.collect()
    r0 = rss()
    if heap:
        tracemalloc.start()
    h0 = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        f = fj.trace(lambda x, i=i: (x * (i + 0.5) + 1.0).sin(), x, check_trace=False)
        f(x)
        del f
    gc.collect()
    r1, h1 = rss(), tracemalloc.get_traced_memory()[0]
    info = fj.cache_info()
    fj.clear_cache(disk=False)
    r2, h2 = rss(), tracemalloc.get_traced_memory()[0]
    left = sum(m.startswith("fusejit_kernel_") for m in sys.modules)
    return {"kernels": n, "compiled": info["compiled"], "disk_hits": info["disk_hits"],
            "rss_per_kernel_mb": (r1 - r0) / n / MB, "heap_per_kernel_kb": (h1 - h0) / n / 1024,
            "rss_returned_by_clear_mb": (r1 - r2) / MB,
            "heap_left_after_clear_kb": (h2 - h0) / 1024,
            "kernel_modules_left": left}  # fmt: skip


def longrun(calls: int, opt_calls: int, shapes: int) -> dict:
    import time

    import fusejit as fj

    xs = [fj.linspace(-1, 1, 100 + 7 * i) for i in range(shapes)]
    f = fj.trace(lambda x: (x * 2 + 1).sigmoid() * x, xs[0])
    g = fj.optimize(lambda x: (x.tanh() + 1) * x.exp())

    def run(nf: int, ng: int) -> None:
        for i in range(nf):
            f(xs[i % shapes])
        for i in range(ng):
            g(xs[i % shapes])

    run(shapes * 20, shapes * 20)  # warm-up: every shape seen, compiled, pools filled
    r0, t0 = rss(), time.perf_counter()
    samples = []
    for _ in range(10):
        run(calls // 10, opt_calls // 10)
        samples.append((rss() - r0) / MB)
    return {"calls": calls, "opt_calls": opt_calls, "shapes": shapes,
            "seconds": time.perf_counter() - t0, "rss_after_warmup_mb": r0 / MB,
            "growth_mb_per_tenth": [round(s, 2) for s in samples]}  # fmt: skip


def hot() -> dict:
    import timeit

    import fusejit as fj

    x = fj.ones(100)
    x.sigmoid()
    f = fj.trace(lambda x: (x * 2 + 1).sigmoid(), x)
    f(x)
    out = {}
    for name, fn in (("sigmoid_us", lambda: x.sigmoid()), ("traced_call_us", lambda: f(x))):
        out[name] = min(timeit.repeat(fn, number=20000, repeat=9)) / 20000 * 1e6
    return out


def child(args: list[str], cache: str) -> dict:
    env = dict(os.environ, FUSEJIT_CACHE_DIR=cache, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, __file__, "--child", *args], env=env, check=True,
                       capture_output=True, text=True)  # fmt: skip
    return json.loads(p.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=int, default=200)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--opt-calls", type=int, default=100_000)
    ap.add_argument("--shapes", type=int, default=50)
    ap.add_argument("--only", default="kernels,longrun,hot")
    ap.add_argument("--heap", action="store_true", help="also the Python heap per kernel")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        what, *rest = a.child
        res = {"kernels": lambda: kernels(int(rest[0]), rest[1] == "1"), "hot": hot,
               "longrun": lambda: longrun(*map(int, rest))}[what]()  # fmt: skip
        print(json.dumps(res))
        return
    only = a.only.split(",")
    with tempfile.TemporaryDirectory(prefix="fusejit-bench-bounds-") as tmp:
        if "kernels" in only:
            cache = os.path.join(tmp, "kernels")
            args = ["kernels", str(a.kernels), str(int(a.heap))]
            print("compiled: ", json.dumps(child(args, cache)))
            print("from disk:", json.dumps(child(args, cache)))
        if "hot" in only:
            print("hot:      ", json.dumps(child(["hot"], os.path.join(tmp, "hot"))))
        if "longrun" in only:
            args = ["longrun", str(a.calls), str(a.opt_calls), str(a.shapes)]
            print("long run: ", json.dumps(child(args, os.path.join(tmp, "long"))))


if __name__ == "__main__":
    main()
