"""What ``fusejit.trace`` of a whole model costs, against one eager forward of it.

    python bench/bench_trace_cost.py [--quick] [--batch B] [--seq T]

The model is ``fusejit.bench.models.NanoGPT`` at its default size (4 layers, 8 heads, 512 wide,
vocab 8192), in eval mode under ``no_grad``. After one trace that fills the kernel cache (so
the timed traces run on a warm cache), eager forwards and traces alternate; each side keeps
its minimum and median. A trace's own timings split it into recording (one eager forward
with the tracer on), the passes, building the plan (kernels from the cache) and the check.

The target (issue #21): a trace costs at most 1.5x one eager forward plus compile, where
compile is the passes and building the plan: ``(trace - passes - plan) / eager <= 1.5``.
``check_trace=True`` (the full check: a second eager run and a compiled run) is timed beside
it for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

try:
    import fusejit
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit

from fusejit.bench.models import NanoGPT


def _stats(xs: list) -> str:
    return f"min {min(xs) * 1e3:7.1f} ms, median {statistics.median(xs) * 1e3:7.1f} ms"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 layers, 256 wide, 3 repeats")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    fusejit.manual_seed(0)
    cfg = dict(n_layer=2, n_embd=256) if a.quick else {}
    repeat = 3 if a.quick else a.repeat
    model = NanoGPT(**cfg).eval()
    idx = fusejit.randint(0, 8192, (a.batch, a.seq))
    eager, total, full, parts = [], [], [], []
    with fusejit.no_grad():
        model(idx)
        fusejit.trace(model, (idx,))  # fills the kernel cache: the timed traces are warm
        for _ in range(repeat):
            t0 = time.perf_counter()
            model(idx)
            eager.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            f = fusejit.trace(model, (idx,))
            total.append(time.perf_counter() - t0)
            parts.append(dict(f.timings))
            t0 = time.perf_counter()
            fusejit.trace(model, (idx,), check_trace=True)
            full.append(time.perf_counter() - t0)
    compile_s = [p["passes"] + p["compile"] for p in parts]
    ratio = [(t - c) / statistics.median(eager) for t, c in zip(total, compile_s, strict=True)]
    print(f"NanoGPT {cfg or 'default'} input {a.batch}x{a.seq}, check={f.check_kind}")
    print(f"eager forward        {_stats(eager)}")
    print(f"trace (default)      {_stats(total)}")
    for k in ("trace", "passes", "compile", "check"):
        print(f"  {k:18} {_stats([p[k] for p in parts])}")
    print(f"trace, full check    {_stats(full)}")
    print(f"(trace - compile) / eager forward: min {min(ratio):.2f}, median "
          f"{statistics.median(ratio):.2f} (target <= 1.5)")  # fmt: skip
    return {"eager": eager, "trace": total, "full": full, "ratio": ratio}


if __name__ == "__main__":
    main()
