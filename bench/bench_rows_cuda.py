"""Row kernels on a GPU: the generated softmax and layer-norm kernels beside variants of them.

Softmax on rows of 4096 runs at about half the copy bandwidth while layer norm, the same
schedule with one more input, runs at 85% (bench/RESULTS.md). Each variant changes one thing
the kernel does, so one run on a GPU tells which of them matters:

- ``planned``: what fusejit launches for these rows (``plan_rows``), 16-byte loads and stores;
- ``scalar``: the same with 4-byte loads and stores (what rows not aligned for them get);
- ``block-T``: a block of T threads per row (T = 128 ... 1024), the row in registers;
- ``blocks-4``: the planned kernel holding 47 KB of shared memory, so at most 4 blocks fit an
  SM (does the number of rows in flight matter, in either direction?);
- ``fast-exp``: the planned kernel with ``__expf`` for ``expf`` (compute vs memory bound);
- ``full-occupancy``: the planned kernel with ``__launch_bounds__(T, 2048 / T)``, registers
  capped so that 2048 threads fit an SM (occupancy vs the spills it may cost);
- ``no-cache``: the planned block, every pass reading memory again (the long-row fallback);
- ``warp``: a warp per row, for rows that fit 32 registers a lane.

And for a whole-tensor reduction (``mse``: one row, split over many blocks, ``cuda_rows.SPLIT``):
``P/SM``, blocks of 256 threads filling each SM P deep (``SPLIT_BLOCKS_PER_SM``, 2 ... 16),
each thread's loop unrolled ``SPLIT_UNROLL`` times or (``no-unroll``) not.

Every variant's result is checked against the workload's cupy reference; each is timed twice,
the list in order and then reversed, since the order has changed results on these machines,
each call after a flush of the L2 (as the other GPU benchmarks time).
Effective bandwidth counts the unique bytes read and written, as ``python -m fusejit bench``.

    PYTHONPATH=. python bench/bench_rows_cuda.py [--json FILE]
    PYTHONPATH=. python bench/bench_rows_cuda.py --source-only DIR   # no GPU: write sources
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

import fusejit as fj
from fusejit.base.errors import CompileError
from fusejit.bench.workloads import WORKLOADS
from fusejit.codegen import cuda as cg
from fusejit.codegen import cuda_rows as cr
from fusejit.jit.api import optimize_graph

NAMES = ("softmax", "layernorm", "softmax-1k", "layernorm-1k")
THREADS = (128, 256, 512, 1024)
SPLIT_NAMES = ("mse",)  # whole-tensor reductions: rows split over blocks (cuda_rows.SPLIT)
SPLIT_PER_SM = (2, 4, 8, 16)


def row_body(name: str, device: str = "cpu"):
    """The fused row region of workload ``name`` (its RowBody) and the region's inputs, in
    order, from the workload's default-size arrays."""
    w = WORKLOADS[name]
    arrays, shape = w.make(w.size_for("cuda"), "cuda", 0)
    tensors = tuple(fj.from_numpy(a) for a in arrays)
    if device != "cpu":
        tensors = tuple(t.to(device) for t in tensors)
    traced = fj.trace(w.fn, tensors, check_trace=False)
    g = optimize_graph(traced.raw_graph, "cuda")
    (node,) = [n for n in g.block.nodes if n.op == "fused"]
    params = list(g.block.params)
    region_in = [tensors[params.index(v)] for v in node.inputs]
    return node.attr("body"), region_in, tensors, arrays, shape, traced


def _cached(mode: str, threads: int, N: int, vec: int) -> cr.RowVariant | None:
    """The row-in-registers variant for ``threads`` per row and ``vec`` elements per load."""
    chunks = -(-N // (threads * vec))
    if chunks * vec > cr.MAX_CACHE:
        return None
    group = threads if mode == "block" and threads != cg.BLOCK else 0
    return cr.RowVariant(mode, (1 << (chunks - 1).bit_length()) * vec, vec, group)


def variants(body, N: int) -> list[tuple[str, cr.RowVariant, str]]:
    """(label, RowVariant, source transform) of each variant for rows of N (stored in aligned
    rows, as the benchmark's are)."""
    planned = cr.plan_rows(body, N, aligned=True)
    scalar = cr.plan_rows(body, N)
    out = [("planned", planned, "")]
    if scalar != planned:
        out.append(("scalar", scalar, ""))
    for t in THREADS:
        v = _cached("block", t, N, planned.vec)
        if v is not None and v.tag != planned.tag:
            out.append((f"block-{t}", v, ""))
    if "expf(" in cr.render_row_kernel(body, planned):
        out.append(("fast-exp", planned, "fast-exp"))
    out.append(("full-occupancy", planned, "full-occupancy"))
    out.append(("blocks-4", planned, "blocks-4"))
    if planned.mode == "block":
        out.append(("no-cache", cr.RowVariant("block", 0, 1, planned.group), ""))
    v = _cached("warp", cr.WARP, N, planned.vec)
    if v is not None and planned.mode != "warp":
        out.append(("warp", v, ""))
    return out


def split_variants(body) -> list[tuple[str, cr.RowVariant, str, int]]:
    """(label, RowVariant, source transform, blocks per SM) of the split-row experiment: a
    whole tensor reduced by blocks filling each SM 2 ... 16 deep, loops unrolled or not."""
    v = cr.split_variant(body, aligned=True)
    return [(f"{per_sm}/SM" + (" no-unroll" if tr else ""), v, tr, per_sm)
            for per_sm in SPLIT_PER_SM for tr in ("", "no-unroll")]  # fmt: skip


def source(body, v: cr.RowVariant, transform: str, fp16: bool = True) -> str:
    return _transform(cr.kernel_source(body, v, "fj_kernel", fp16_header=fp16), transform)


def _transform(src: str, transform: str) -> str:
    """The variant's change to the generated source."""
    if transform == "full-occupancy":  # registers capped so that 2048 threads fit an SM
        return re.sub(r"__launch_bounds__\((\d+)\)",
                      lambda m: f"__launch_bounds__({m[1]}, {2048 // int(m[1])})", src)  # fmt: skip
    if transform == "fast-exp":
        return src.replace(" expf(", " __expf(")
    if transform == "no-unroll":  # a split row's loop as written, not unrolled
        return src.replace(
            f"#pragma unroll {cr.SPLIT_UNROLL}\n    for (long long j", "    for (long long j"
        )
    if transform == "blocks-4":
        # 47 KB of shared memory per block: at most 4 blocks of the kernel fit an SM (228 KB)
        pad = (
            "    const int N = (int)N_;\n"
            "    __shared__ float fj_pad[11800];\n"
            "    if (R_ < 0 && fj_pad[threadIdx.x] != 0.0f) __trap();  // (never: keeps fj_pad)\n"
        )
        return src.replace("    const int N = (int)N_;\n", pad)
    return src


def combined_source() -> str:
    """Every variant of every workload as one translation unit, for a compile check."""
    parts = [cg.prelude()]
    for name in NAMES:
        body, _, _, arrays, _, _ = row_body(name)
        for label, v, tr in variants(body, arrays[0].shape[-1]):
            kname = f"k_{name}_{label}".replace("-", "_")
            parts.append(_transform(cr.render_row_kernel(body, v, kname), tr))
    for name in SPLIT_NAMES:
        body = row_body(name)[0]
        for v, tr in dict.fromkeys((v, tr) for _, v, tr, _ in split_variants(body)):
            kname = f"k_{name}_{v.tag}_{tr or 'plain'}".replace("-", "_")
            parts.append(_transform(cr.render_row_kernel(body, v, kname), tr))
    return "\n".join(parts)


def _write_sources(folder: str) -> int:
    os.makedirs(folder, exist_ok=True)
    count = 0
    for name in NAMES:
        body, _, _, arrays, _, _ = row_body(name)
        N = arrays[0].shape[-1]
        for label, v, tr in variants(body, N):
            path = os.path.join(folder, f"{name}-{label}.cu")
            with open(path, "w") as f:
                f.write(source(body, v, tr, fp16=False))
            count += 1
    print(f"{count} sources in {folder}")
    return 0


def _time(f, sync, reps: int = 15) -> float:
    """Median device seconds of one call, timed as ``python -m fusejit bench`` and
    bench/gpu_bench.py time (``harness.device_timing``: a warm-up, the L2 flushed first)."""
    from fusejit.bench import harness

    timing = {**harness.device_timing(fj.Device("cuda:0")), "repeat": reps}
    return statistics.median(harness.time_interleaved({"f": f}, sync=sync, **timing)["f"])


def _load(b, body, v, transform):
    """The variant's kernel, compiled and loaded (``raw(grid, block, args)``)."""
    src = source(body, v, transform, fp16=b.fp16_include is not None)
    binary = b._compile(src, f"rows-experiment-{v.tag}-{transform or 'plain'}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"kernel.{b.binary}")
        with open(path, "wb") as f:
            f.write(binary)
        return b._load(Path(path))


def _launcher(b, body, v, transform):
    """A function the row kernel's own call path launches (its ports, strides and outputs),
    run with this variant's grid and block instead of the planned ones."""
    raw = _load(b, body, v, transform)
    n_args = len(body.ports) + len(body.outputs)

    def launch(grid, block, args):
        raw((cr.grid_rows(int(args[n_args]), v),), (v.block_threads,), args)

    return launch


def _time_calls(name, shape, calls: dict, bytes_per_copy_gbs: float, sync) -> list:
    """Each call timed twice, in order and reversed; results as % of the copy bandwidth."""
    order = list(calls)
    times = {k: [] for k in order}
    for seq in (order, order[::-1]):
        for label in seq:
            times[label].append(_time(calls[label][0], sync))
    out = []
    for label in order:
        pct = [100 * bytes_per_copy_gbs / s / 1e9 for s in times[label]]
        out.append({"workload": name, "shape": shape, "variant": label,
                    "tag": calls[label][1], "threads": calls[label][2],
                    "us": [s * 1e6 for s in times[label]], "pct_copy": pct})  # fmt: skip
    return out


def run(json_path: str | None) -> int:
    import cupy
    from fusejit.backends import cuda_kernels as cb

    from fusejit.bench.harness import MismatchError, _check, copy_bandwidth

    dev = fj.Device("cuda:0")
    b = dev.backend
    sync = b.synchronize
    copy = copy_bandwidth("cuda", repeat=20)["gbs"]
    print(f"{cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}: copy {copy:.0f} GB/s")
    results = []
    for name in NAMES:
        w = WORKLOADS[name]
        body, region_in, tensors, arrays, shape, traced = row_body(name, "cuda")
        N = arrays[0].shape[-1]
        ref = w.ref(cupy, *[cupy.asarray(a) for a in arrays])
        outs = ref if isinstance(ref, tuple) else (ref,)
        nbytes = sum(a.nbytes for a in arrays) + sum(int(o.nbytes) for o in outs)
        ins = [t._data for t in region_in]
        calls = {}
        for label, v, tr in variants(body, N):
            k = cb.CudaRowKernel(b, body)
            try:
                fn = _launcher(b, body, v, tr)
                k.fns[cr.plan_rows(body, N)] = k.fns[cr.plan_rows(body, N, True)] = fn
                out = k(*ins)
                _check(name, label, out, ref, w)
            except (MismatchError, CompileError, cupy.cuda.driver.CUDADriverError) as e:
                print(f"{name} {label}: {type(e).__name__}: {str(e).splitlines()[0][:150]}")
                results.append({"workload": name, "variant": label, "error": str(e)[:500]})
                continue
            calls[label] = (lambda k=k, ins=ins: k(*ins), v.tag, v.block_threads)
        planned = cr.plan_rows(body, N, aligned=True)
        calls["fusejit call"] = (lambda f=traced, a=tensors: f(*a), "traced", planned.block_threads)
        results += _time_calls(name, shape, calls, nbytes / copy, sync)
    for name in SPLIT_NAMES:
        w = WORKLOADS[name]
        body, region_in, tensors, arrays, shape, traced = row_body(name, "cuda")
        ref = w.ref(cupy, *[cupy.asarray(a) for a in arrays])
        nbytes = sum(a.nbytes for a in arrays) + int(ref.nbytes)
        ins = [t._data for t in region_in]
        calls = {}
        for label, v, tr, per_sm in split_variants(body):
            k = cb.CudaRowKernel(b, body)

            def call(k=k, per_sm=per_sm, ins=ins):  # (the launch reads the blocks per SM)
                default, cr.SPLIT_BLOCKS_PER_SM = cr.SPLIT_BLOCKS_PER_SM, per_sm
                try:
                    return k(*ins)
                finally:
                    cr.SPLIT_BLOCKS_PER_SM = default

            try:
                k.fns[v] = _load(b, body, v, tr)
                _check(name, label, call(), ref, w)
            except (MismatchError, CompileError, cupy.cuda.driver.CUDADriverError) as e:
                print(f"{name} {label}: {type(e).__name__}: {str(e).splitlines()[0][:150]}")
                results.append({"workload": name, "variant": label, "error": str(e)[:500]})
                continue
            calls[label] = (call, v.tag, v.block_threads)
        calls["fusejit call"] = (lambda f=traced, a=tensors: f(*a), "traced", cg.BLOCK)
        results += _time_calls(name, shape, calls, nbytes / copy, sync)
    print(f"{'workload':13s} {'variant':13s} {'tag':16s} {'% copy (in order / reversed)':>30s}")
    for r in results:
        if "error" in r:
            print(f"{r['workload']:13s} {r['variant']:13s} ERROR")
            continue
        p = r["pct_copy"]
        print(f"{r['workload']:13s} {r['variant']:13s} {r['tag']:16s} "
              f"{p[0]:13.1f}% / {p[1]:5.1f}%")  # fmt: skip
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"copy_gbs": copy, "results": results}, f, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write the results here")
    p.add_argument("--source-only", metavar="DIR", help="write the variants' sources (no GPU)")
    a = p.parse_args(argv)
    if a.source_only:
        return _write_sources(a.source_only)
    if not fj.is_cuda_available():
        print("no usable GPU: nothing timed (--source-only writes the sources)", file=sys.stderr)
        return 2
    return run(a.json)


if __name__ == "__main__":
    sys.exit(main())
