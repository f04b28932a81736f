"""Cold start: ``import fusejit`` and a new process's first fused call served from the disk
cache, each in fresh processes (issue #21's targets: <= 300 ms and <= 100 ms after import on
the 2-core development machine).

Per process: the time of ``import fusejit``; then ``fusejit.trace`` of ``x * 3 - 2`` on 2^16
float32 elements (the kernel already in the cache folder, built by a first process) and its
first call, together (``first``; wall and CPU time: on a loaded machine the CPU time is the
steadier), and the same again once warm (``steady``: tracing and one
fused call when nothing is loaded: what a new process pays on top is ``first - steady``).
Which heavy modules the process imported by then is printed too (numba: the kernel was not
served by its stored machine code). Prints min and median over ``--runs`` processes; with
``--root`` another checkout (e.g. the one before a change) is measured alternately with this
one, so both see the same load.

    PYTHONPATH=. python bench/bench_cold_start.py [--runs 9] [--root OTHER_CHECKOUT] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, sys, time
c0, t0 = time.process_time(), time.perf_counter()
import fusejit
c1, t1 = time.process_time(), time.perf_counter()
import numpy as np
x = fusejit.from_numpy(np.linspace(-1, 1, 1 << 16, dtype=np.float32))
f = lambda x: x * 3.0 - 2.0
c2, t2 = time.process_time(), time.perf_counter()
tf = fusejit.trace(f, (x,), check_trace=False)
y = tf(x)
c3, t3 = time.process_time(), time.perf_counter()
tf = fusejit.trace(f, (x,), check_trace=False)
y = tf(x)
t4 = time.perf_counter()
heavy = [m for m in ("numba", "scipy", "llvmlite", "fusejit.nn") if m in sys.modules]
print(json.dumps({"import_s": t1 - t0, "first_s": t3 - t2, "steady_s": t4 - t3,
                  "import_cpu_s": c1 - c0, "first_cpu_s": c3 - c2,
                  "disk_hits": fusejit.cache_info()["disk_hits"], "heavy": heavy}))
"""


def one(root: str, cache: str) -> dict:
    env = dict(os.environ, FUSEJIT_CACHE_DIR=cache, PYTHONPATH=root)
    p = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=root, capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    if p.returncode:
        raise RuntimeError(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--root", action="append", default=[], help="another checkout to compare")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    roots = [ROOT, *a.root]
    out = {}
    with tempfile.TemporaryDirectory(prefix="fusejit-cold-") as tmp:
        caches = {r: os.path.join(tmp, str(i)) for i, r in enumerate(roots)}
        for r in roots:  # (the first process builds the kernel)
            one(r, caches[r])
        runs = {r: [] for r in roots}
        for _ in range(a.runs):  # (alternately: both checkouts see the same load)
            for r in roots:
                runs[r].append(one(r, caches[r]))
    for r in roots:
        rs = runs[r]
        row = {"runs": len(rs), "heavy": sorted({m for x in rs for m in x["heavy"]}),
               "disk_hits": min(x["disk_hits"] for x in rs)}  # fmt: skip
        for k in ("import_s", "first_s", "steady_s", "import_cpu_s", "first_cpu_s"):
            v = [x[k] for x in rs]
            row[k] = {"min": min(v), "median": statistics.median(v)}
        out[r] = row
        ms = {k: (1e3 * row[k]["min"], 1e3 * row[k]["median"]) for k in ("import_s", "first_s")}
        heavy = ", ".join(row["heavy"]) or "none of numba, scipy, llvmlite, fusejit.nn"
        print(f"{r}: import fusejit {ms['import_s'][0]:.0f} / {ms['import_s'][1]:.0f} ms "
              f"(min / median), first fused call from disk {ms['first_s'][0]:.0f} / "
              f"{ms['first_s'][1]:.0f} ms (steady {1e3 * row['steady_s']['min']:.1f} ms); CPU "
              f"time (min) {1e3 * row['import_cpu_s']['min']:.0f} ms and "
              f"{1e3 * row['first_cpu_s']['min']:.0f} ms; imported by then: {heavy}")  # fmt: skip
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
