"""fusejit on a GPU: eager vs traced/fused time and effective bandwidth of the anchor workloads.

Measures, on cuda:0 (float32):

- device-to-device copy bandwidth: a cupy copy of 2**26 float32, bytes read + written;
- per workload (the formulas of the project's anchors): fusejit eager and traced/fused time
  (median of timed calls with cupy events after warmup), effective bandwidth (unique bytes
  read + written / time) and its share of the copy bandwidth; fused results are checked
  against eager ones; the fused call also timed in turn with the eager one, as the harness
  times it;
- host time per call of the traced chain-8op on 4096 elements (perf_counter, no sync inside);
- compile time of a never-seen fused kernel (cold, fresh FUSEJIT_CACHE_DIR) and the time a
  NEW process takes to load it from the disk cache.

Writes JSON to --json and prints a table last. Run from the checkout: PYTHONPATH=. python3
bench/gpu_bench.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fusejit as fj  # noqa: E402
from fusejit.bench import harness  # noqa: E402
from fusejit.bench import workloads as W  # noqa: E402

DEV = "cuda:0"
# the standard workloads (fusejit/bench/workloads.py: the anchors' formulas and sizes on a GPU);
# the row workloads take only the default launch (their grid is one row per warp or block)
ELEMENTWISE = ("chain-8op", "gelu", "bias-gelu", "adam", "lstm-cell")
ROWS = ("softmax", "layernorm", "softmax-1k", "layernorm-1k", "mse")
chain = W.chain_8op


def make_inputs(name: str, scale: int) -> tuple:
    """(tensors on the GPU, shape label) of workload ``name`` at its GPU size / ``scale``."""
    w = W.WORKLOADS[name]
    arrays, shape = w.make(w.size_for("cuda") // scale, "cuda", 0)
    return tuple(fj.tensor(a, device=DEV) for a in arrays), shape


# ---- timing ----------------------------------------------------------------------------------
def gpu_time_ms(fn, reps: int = 20) -> float:
    """Median over ``reps`` of one call's device time, timed as ``python -m fusejit bench``
    times (``harness.device_timing``: a 25 ms warm-up, then events around each call, after a
    256 MB fill that flushes the L2)."""
    dev = fj.Device(DEV)
    t = harness.time_interleaved({"f": fn}, sync=dev.backend.synchronize,
                                 **{**harness.device_timing(dev), "repeat": reps})  # fmt: skip
    return statistics.median(t["f"]) * 1e3


# launch settings compared per workload: (bytes per thread and array, grid cap in blocks per
# SM, 0: none); the first is the backend's default
CONFIGS = [(16, 0), (16, 32), (32, 0)]
# row kernels compared at these WARP_MAX (the first: the default)
ROW_WARP_MAX = (256, 1024, 128)


def copy_bandwidth() -> dict:
    import cupy

    a = cupy.random.standard_normal(1 << 26, dtype=cupy.float32)
    b = cupy.empty_like(a)
    ms = gpu_time_ms(lambda: cupy.copyto(b, a), reps=30)
    return {"ms": ms, "gbs": 2 * a.nbytes / ms / 1e6, "bytes": 2 * a.nbytes}


def _max_rel_diff(a: fj.Tensor, b: fj.Tensor) -> float:
    """max |a - b| / max |b| (normwise, so values near zero do not dominate)."""
    import cupy

    x, y = a._data.astype(cupy.float64), b._data.astype(cupy.float64)
    return float(cupy.max(cupy.abs(x - y)) / max(float(cupy.max(cupy.abs(y))), 1e-30))


def _set_config(vec_bytes: int, cap: int | None) -> None:
    from fusejit.backends.cuda import get_backend

    b = get_backend(0)
    b.vec_bytes = vec_bytes
    b.grid_cap = cap
    b._fused.clear()  # kernels made from now on take the new settings


def bench_workload(name, scale, copy_gbs, reps) -> dict:
    import cupy

    fn = W.WORKLOADS[name].fn
    args, shape = make_inputs(name, scale)
    eager_out = fn(*args)
    eager_out = eager_out if isinstance(eager_out, tuple) else (eager_out,)
    # unique bytes: every input read once, every output written once
    nbytes = sum(a._data.nbytes for a in args) + sum(o._data.nbytes for o in eager_out)
    eager_ms = gpu_time_ms(lambda: fn(*args), reps=reps)
    configs = []
    from fusejit.codegen import cuda_rows

    default_warp_max = cuda_rows.WARP_MAX
    settings = CONFIGS if name in ELEMENTWISE else [(*CONFIGS[0], w) for w in ROW_WARP_MAX]
    for vec_bytes, cap, *rest in settings:
        _set_config(vec_bytes, cap)
        # rows up to this long go to a warp each, longer ones to a block (cuda_rows.plan_rows)
        cuda_rows.WARP_MAX = rest[0] if rest else default_warp_max
        t0 = time.perf_counter()
        traced = fj.trace(fn, args)
        cupy.cuda.Device().synchronize()
        trace_s = time.perf_counter() - t0
        fused_out = traced(*args)
        fused_out = fused_out if isinstance(fused_out, tuple) else (fused_out,)
        diff = max(_max_rel_diff(f, e) for f, e in zip(fused_out, eager_out, strict=True))
        del fused_out
        ms = gpu_time_ms(lambda traced=traced: traced(*args), reps=reps)
        variants = [v for _, k in traced.plan.kernels for v in getattr(k, "variants", list)()]
        caps = [getattr(k, "max_blocks", None) for _, k in traced.plan.kernels]
        configs.append(
            {
                "vec_bytes": vec_bytes,
                "grid_cap": cap,
                "warp_max": cuda_rows.WARP_MAX,
                "max_blocks": caps,
                "fused_ms": ms,
                "pct_copy": 100 * nbytes / ms / 1e6 / copy_gbs,
                "variants": variants,
                "trace_and_first_call_s": trace_s,
                "max_rel_diff_vs_eager": diff,
            }
        )
    _set_config(*CONFIGS[0])
    cuda_rows.WARP_MAX = default_warp_max
    del eager_out
    # the default kernel again, timed in turn with the eager call (as the harness times it,
    # where layer norm measured 57-60% of copy after the eager call and 86% on its own)
    traced = fj.trace(fn, args)
    dev = fj.Device(DEV)
    turns = harness.time_interleaved(
        {"eager": lambda: fn(*args), "fused": lambda: traced(*args)},
        sync=dev.backend.synchronize,
        **{**harness.device_timing(dev), "repeat": reps},
    )
    after_eager_ms = statistics.median(turns["fused"]) * 1e3
    default = configs[0]
    fused_ms, variants = default["fused_ms"], default["variants"]
    trace_s, diff = default["trace_and_first_call_s"], default["max_rel_diff_vs_eager"]
    row = {
        "workload": name,
        "shape": shape,
        "bytes": nbytes,
        "eager_ms": eager_ms,
        "fused_ms": fused_ms,
        "eager_gbs": nbytes / eager_ms / 1e6,
        "fused_gbs": nbytes / fused_ms / 1e6,
        "speedup": eager_ms / fused_ms,
        "kernels": traced.kernel_count(),
        "variants": variants,
        "trace_and_first_call_s": trace_s,
        "max_rel_diff_fused_vs_eager": diff,
        "configs": configs,
    }
    row["eager_pct_copy"] = 100 * row["eager_gbs"] / copy_gbs
    row["fused_pct_copy"] = 100 * row["fused_gbs"] / copy_gbs
    row["fused_in_turn_with_eager_ms"] = after_eager_ms
    row["fused_in_turn_with_eager_pct_copy"] = 100 * nbytes / after_eager_ms / 1e6 / copy_gbs
    return row


def host_overhead(calls: int = 2000) -> dict:
    import cupy

    x = fj.randn(4096, device=DEV)
    traced = fj.trace(chain, (x,))
    res = {}
    for label, f in (("fused", lambda: traced(x)), ("eager", lambda: chain(x))):
        for _ in range(50):
            f()
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        t1 = time.perf_counter()
        cupy.cuda.Device().synchronize()
        res[f"{label}_us_per_call"] = (t1 - t0) / calls * 1e6
    return res


# ---- a lone elementwise op: eager (cupy) or a kernel of its own --------------------------------
def _trace_lone(fn, args, ops: int):
    """``fn`` traced with regions of at least ``ops`` ops on CUDA: 1 makes a lone op a
    kernel of its own (the default, ``passes.fuse.MIN_REGION``), 2 leaves it to cupy."""
    from fusejit.jit.passes import fuse

    with fuse.min_region("cuda", ops):
        return fj.trace(fn, args)


def lone_ops(reps: int) -> list:
    """Device time of a lone op run eagerly (cupy's kernel) and as a generated kernel, and
    the host time per call of each on 4096 elements: whether CUDA should fuse lone ops too."""
    import cupy

    x, y = fj.randn(1 << 24, device=DEV), fj.randn(1 << 24, device=DEV)
    m, b = fj.randn(4096, 4096, device=DEV), fj.randn(4096, device=DEV)
    cases = [("x + 1", lambda x: x + 1, (x,)), ("x * y", lambda x, y: x * y, (x, y)),
             ("exp", fj.exp, (x,)), ("bias add", lambda m, b: m + b, (m, b)),
             ("to float16", lambda x: x.half(), (x,))]  # fmt: skip
    out = []
    for label, fn, args in cases:
        eager, region = _trace_lone(fn, args, 2), _trace_lone(fn, args, 1)
        row = {"op": label, "kernels": [eager.kernel_count(), region.kernel_count()]}
        for name, f in (("eager", eager), ("region", region)):
            row[f"{name}_ms"] = gpu_time_ms(lambda f=f, a=args: f(*a), reps)
        small = tuple(a.reshape(-1)[:4096] if a.ndim == 1 else a[:1] for a in args)
        for name, ops in (("eager", 2), ("region", 1)):
            f = _trace_lone(fn, small, ops)
            for _ in range(50):
                f(*small)
            cupy.cuda.Device().synchronize()
            t0 = time.perf_counter()
            for _ in range(2000):
                f(*small)
            row[f"{name}_host_us"] = (time.perf_counter() - t0) / 2000 * 1e6
            cupy.cuda.Device().synchronize()
        out.append(row)
    return out


# ---- compile and disk-load times -------------------------------------------------------------
_BODY_SRC = """
from fusejit.codegen.body import KernelBody, Step

def make_body(c):
    f = "float32"
    s = lambda op, *args: Step(op, args, (), f, f)
    return KernelBody((f,), (
        s("mul", ("in", 0), ("c", 2.0, f)), s("add", ("t", 0), ("c", c, f)), s("exp", ("t", 1)),
        s("sigmoid", ("in", 0)), s("mul", ("t", 2), ("t", 3)), s("tanh", ("t", 4)),
        s("mul", ("in", 0), ("c", 0.5, f)), s("add", ("t", 5), ("t", 6)),
    ), (("t", 7),))
"""

_CHILD = (
    _BODY_SRC
    + """
import json, sys, time
t0 = time.perf_counter()
import cupy
import fusejit
from fusejit.backends.cuda import get_backend
t1 = time.perf_counter()
b = get_backend(0)
x = cupy.random.standard_normal(4096, dtype=cupy.float32)
(x * 1).sum().item()  # context and cupy's own kernels up before timing
k = b.fused_kernel(make_body(float(sys.argv[1])), 1)
t2 = time.perf_counter()
k(x)
cupy.cuda.Device().synchronize()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_call_s": t3 - t2,
                  "cache": {k: v for k, v in fusejit.cache_info().items() if k != "dir"}}))
"""
)


def compile_and_load_times() -> dict:
    """Cold compile of a never-seen kernel in this process, then a new process loading it."""
    import cupy
    from fusejit.backends.cuda import get_backend

    ns: dict = {}
    exec(_BODY_SRC, ns)  # noqa: S102 - the same body definition the child runs
    c = 1.0 + (time.time_ns() % 1_000_000) * 1e-9  # a constant no cache has seen
    cache = tempfile.mkdtemp(prefix="fusejit-bench-cache-")
    old = os.environ.get("FUSEJIT_CACHE_DIR")
    os.environ["FUSEJIT_CACHE_DIR"] = cache
    try:
        b = get_backend(0)
        x = cupy.random.standard_normal(4096, dtype=cupy.float32)
        k = b.fused_kernel(ns["make_body"](c), 1)
        t0 = time.perf_counter()
        k(x)
        cupy.cuda.Device().synchronize()
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        k(x)
        cupy.cuda.Device().synchronize()
        warm = time.perf_counter() - t0
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        res = subprocess.run([sys.executable, "-c", _CHILD, repr(c)], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        if res.returncode != 0:
            child = {"error": res.stderr[-2000:]}
        else:
            child = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        if old is None:
            os.environ.pop("FUSEJIT_CACHE_DIR", None)
        else:
            os.environ["FUSEJIT_CACHE_DIR"] = old
    return {"cold_compile_first_call_s": cold, "warm_call_s": warm, "new_process": child}


# ---- main ------------------------------------------------------------------------------------
def _print_lone(rows: list) -> int:
    print(json.dumps({"lone_ops": rows}), flush=True)
    print("a lone op, eager (cupy) / a kernel of its own: device ms on 2^24 or 4096^2 "
          "elements; host us per call on 4096")  # fmt: skip
    for r in rows:
        print(f"  {r['op']:12s} {r['eager_ms']:.3f} / {r['region_ms']:.3f} ms   "
              f"{r['eager_host_us']:.1f} / {r['region_host_us']:.1f} us")  # fmt: skip
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--scale", type=int, default=1, help="divide the sizes by this (quick runs)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--lone", action="store_true",
                    help="only time lone ops, eager against a kernel of their own")  # fmt: skip
    args = ap.parse_args(argv)
    if not fj.is_cuda_available():
        from fusejit.backends.cuda import _problem

        print(f"gpu_bench: no usable GPU: {_problem(0)}", file=sys.stderr)
        return 2
    import cupy
    from fusejit.backends.cuda import get_backend

    b = get_backend(0)
    props = cupy.cuda.runtime.getDeviceProperties(0)
    info = {
        "device": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "compute_capability": b.cc,
        "arch": b.arch,
        "nvrtc": list(b.nvrtc_version),
        "cupy": cupy.__version__,
        "fp16_include": b.fp16_include,
        "sm_count": b.sm_count,
    }
    print(json.dumps(info), flush=True)
    results: dict = {"info": info}
    if args.lone:
        return _print_lone(lone_ops(args.reps))
    copy = copy_bandwidth()
    results["copy"] = copy
    print(f"copy: {copy['ms']:.4f} ms  {copy['gbs']:.0f} GB/s", flush=True)
    rows = []
    for name in ELEMENTWISE + ROWS:
        try:
            row = bench_workload(name, args.scale, copy["gbs"], args.reps)
        except Exception as e:  # one broken workload must not hide the others
            row = {"workload": name, "error": f"{type(e).__name__}: {e}"[:2000]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        cupy.get_default_memory_pool().free_all_blocks()
    results["workloads"] = rows
    for key, f in (("host_overhead", host_overhead), ("compile", compile_and_load_times)):
        try:
            results[key] = f()
        except Exception as e:
            results[key] = {"error": f"{type(e).__name__}: {e}"[:2000]}
        print(json.dumps({key: results[key]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print()
    print(f"{info['device']} (sm_{b.cc}); copy {copy['gbs']:.0f} GB/s (read + written)")
    print(f"{'workload':12s} {'shape':>12s} {'eager ms':>9s} {'fused ms':>9s} {'x':>5s} "
          f"{'eager %':>8s} {'fused %':>8s} {'in turn %':>9s}  variants")  # fmt: skip
    for r in rows:
        if "error" in r:
            print(f"{r['workload']:12s} ERROR {r['error'][:80]}")
            continue
        print(f"{r['workload']:12s} {r['shape']:>12s} {r['eager_ms']:9.3f} {r['fused_ms']:9.3f} "
              f"{r['speedup']:5.1f} "
              f"{r['eager_pct_copy']:7.1f}% {r['fused_pct_copy']:7.1f}% "
              f"{r['fused_in_turn_with_eager_pct_copy']:8.1f}%  "
              f"{','.join(r['variants'])}")  # fmt: skip
    print("in turn %: the fused call timed in turn with the eager one (as the harness does)")
    print("launch settings (bytes per thread and array / grid cap in blocks per SM, 0: none): "
          "fused % of copy")  # fmt: skip
    print("row kernels (rows up to WARP_MAX elements to a warp each): fused % of copy")
    print(f"{'workload':12s} " + " ".join(f"{'warp<=' + str(w):>10s}" for w in ROW_WARP_MAX))
    for r in rows:
        if r.get("workload") in ROWS and "configs" in r:
            print(f"{r['workload']:12s} " + " ".join(
                f"{c['pct_copy']:9.1f}%" for c in r["configs"]))  # fmt: skip
    heads = [f"{v}B/{c}" for v, c in CONFIGS]
    print(f"{'workload':12s} " + " ".join(f"{h:>10s}" for h in heads))
    for r in rows:
        if r.get("workload") in ELEMENTWISE and "configs" in r:
            print(f"{r['workload']:12s} " + " ".join(
                f"{c['pct_copy']:9.1f}%" for c in r["configs"]))  # fmt: skip
    ho, co = results["host_overhead"], results["compile"]
    if "error" not in ho:
        print(f"host time per call, chain-8op @4096: fused {ho['fused_us_per_call']:.1f} us, "
              f"eager {ho['eager_us_per_call']:.1f} us")  # fmt: skip
    if "error" not in co:
        child = co["new_process"]
        load = child.get("first_call_s")
        print(f"new kernel: cold compile + first call {co['cold_compile_first_call_s'] * 1e3:.0f} "
              f"ms; new process, disk cache: first call "
              f"{load * 1e3 if load is not None else float('nan'):.1f} ms "
              f"(cache {child.get('cache')})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
