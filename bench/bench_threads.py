"""Where should the CPU fused kernels start splitting their loop across threads?

Times traced ``arith-chain`` and ``chain-8op`` for sizes 2^12..2^24, once with
``FUSEJIT_CPU_PARALLEL_THRESHOLD`` forced low (always parallel) and once forced high (always
serial), each setting in its own process (the threshold is read at import), and prints the
crossover: the size from which the parallel kernel is faster for every larger size, and the
threshold that loses least over both functions.

    PYTHONPATH=. python bench/bench_threads.py [--min-exp 12] [--max-exp 24] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCS = ("arith-chain", "chain-8op")
ALWAYS_PARALLEL, ALWAYS_SERIAL = 1, 1 << 62


def measure(min_exp: int, max_exp: int, target_s: float = 0.03, samples: int = 7) -> dict:
    """In this process: per-call seconds of each traced function at each size 2^e."""
    import numpy as np
    from fusejit.backends.cpu_kernels import PARALLEL_THRESHOLD

    import fusejit as fj
    from fusejit.bench.workloads import WORKLOADS

    out = {"threshold": PARALLEL_THRESHOLD, "times": {}}
    for name in FUNCS:
        w = WORKLOADS[name]
        row = {}
        for e in range(min_exp, max_exp + 1):
            n = 1 << e
            x = fj.from_numpy(np.random.default_rng(e).standard_normal(n, dtype=np.float32))
            f = fj.trace(w.fn, (x,), check_trace=False)
            f(x)
            t0 = time.perf_counter()
            f(x)
            one = time.perf_counter() - t0
            calls = max(1, int(target_s / max(one, 1e-7)))
            k = samples if one * calls * samples < 4.0 else 3
            ts = []
            for _ in range(k):
                t0 = time.perf_counter()
                for _ in range(calls):
                    f(x)
                ts.append((time.perf_counter() - t0) / calls)
            row[str(n)] = statistics.median(ts)
        out["times"][name] = row
    import numba

    try:
        out["threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel kernel ran in this process
        out["threading_layer"] = None
    out["loadavg"] = os.getloadavg()[0]
    return out


def _run(threshold: int, min_exp: int, max_exp: int) -> dict:
    env = dict(os.environ, FUSEJIT_CPU_PARALLEL_THRESHOLD=str(threshold))
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import bench_threads as b; "
        "print('RESULT ' + json.dumps(b.measure(int(sys.argv[2]), int(sys.argv[3]))))"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.run([sys.executable, "-c", code, here, str(min_exp), str(max_exp)], env=env,
                       capture_output=True, text=True, timeout=1800)  # fmt: skip
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            if res["threshold"] != threshold:
                raise RuntimeError("FUSEJIT_CPU_PARALLEL_THRESHOLD was not honoured")
            return res
    raise RuntimeError(f"measuring process failed:\n{p.stderr[-3000:]}")


def crossover(serial: dict, parallel: dict) -> int | None:
    """The smallest size from which parallel is faster at every larger size measured."""
    sizes = sorted(int(s) for s in serial)
    best = None
    for n in reversed(sizes):
        if parallel[str(n)] < serial[str(n)]:
            best = n
        else:
            break
    return best


def best_threshold(serial: dict, parallel: dict) -> tuple[int, float]:
    """The threshold (one of the sizes, or above all) minimizing the summed relative loss
    against the better mode, over both functions and all sizes."""
    sizes = sorted(int(s) for s in serial[FUNCS[0]])
    cands = [*sizes, sizes[-1] * 2]
    best = None
    for t in cands:
        loss = 0.0
        for f in FUNCS:
            for n in sizes:
                s, p = serial[f][str(n)], parallel[f][str(n)]
                loss += (p if n >= t else s) / min(s, p) - 1
        if best is None or loss < best[1]:
            best = (t, loss)
    return best


def _exp(n: int) -> str:
    return f"2^{n.bit_length() - 1}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-exp", type=int, default=12)
    ap.add_argument("--max-exp", type=int, default=24)
    ap.add_argument("--json", help="write the timings to this file")
    a = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    print(f"timing serial (threshold {ALWAYS_SERIAL}) ...", file=sys.stderr)
    ser_r = _run(ALWAYS_SERIAL, a.min_exp, a.max_exp)
    print(f"timing parallel (threshold {ALWAYS_PARALLEL}) ...", file=sys.stderr)
    par_r = _run(ALWAYS_PARALLEL, a.min_exp, a.max_exp)
    ser, par = ser_r["times"], par_r["times"]
    cores = os.cpu_count()
    print(f"{cores} cores; numba threading layer {par_r['threading_layer']}; load average "
          f"{load0:.1f} at start, {par_r['loadavg']:.1f} at end")  # fmt: skip
    if max(load0, par_r["loadavg"]) > cores:
        print("warning: the machine was busy with other work (load above the core count): "
              "parallel kernels wait for busy cores, so the crossover moves up")  # fmt: skip
    head = f"{'size':>10}"
    for f in FUNCS:
        head += f"  {f + ' serial':>19}  {'parallel':>10}  {'par/ser':>7}"
    print(head)
    for s in ser[FUNCS[0]]:
        line = f"{_exp(int(s)):>10}"
        for f in FUNCS:
            a_, b_ = ser[f][s], par[f][s]
            line += f"  {a_ * 1e6:16.1f} us  {b_ * 1e6:7.1f} us  {b_ / a_:7.2f}"
        print(line)
    for f in FUNCS:
        c = crossover(ser[f], par[f])
        print(f"{f}: parallel faster from {_exp(c) if c else 'never'} on")
    t, loss = best_threshold(ser, par)
    top = max(int(n) for n in ser[FUNCS[0]])
    where = f"{t} ({_exp(t)})" if t <= top else f"above {top} (serial in the whole range)"
    print(f"recommended FUSEJIT_CPU_PARALLEL_THRESHOLD: {where}; summed relative loss {loss:.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            info = {k: par_r[k] for k in ("threading_layer", "loadavg")}
            json.dump({"serial": ser, "parallel": par, "recommended": t, **info}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
