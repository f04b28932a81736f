"""Black-Scholes (call and put: log, sqrt, exp, erf) over Dask arrays on a LocalCluster: one
fused fusejit kernel per chunk (``fusejit.dask.map_blocks``) against the same Dask graph with
numpy chunks (``dask.array`` ufuncs, scipy's ``erf``), on 2 workers and on 1.

    PYTHONPATH=. python bench/bench_dask.py [--log2n 27] [--chunks 16] [--repeat 3]
        [--placement even|dask] [--clusters together|apart]

The inputs are drawn on the workers and persisted, chunk ``i`` of all three on worker
``i % workers`` (the same number of chunks on each, none split between two); a timed run
starts once the results of the run before are released, persists both results and waits for
them (then drops them), so it measures the chunks' computation and Dask's scheduling, not
transfers to the client. Each worker has one thread (fusejit's kernels then use one thread
each: ``fusejit/dask/worker.py``). Correctness: the fused and numpy results are compared over
every element inside Dask, and the first chunk of each against a float64 numpy reference.
Memory: 3 inputs and 2 results of 2^log2n float32 (512 MiB each at 2^27), and a second pair of
results while they are compared.

Besides the times and ratios it prints where a fused chunk's time goes on each worker, from
``fusejit.dask.worker_stats`` (median over the runs, ms a chunk): the kernel's wall and CPU
time (with the allocation of its outputs), the rest of the block task, the worker process's
CPU outside kernels (Dask's messaging and bookkeeping), and the run's wall time not spent in
a block task (waiting for the scheduler, the small tasks that pick each result out of a
block's pair); and the CPU of this process (the client and the scheduler) per run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import time

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait
from scipy.special import erf

import fusejit
import fusejit.dask as fd

R, V = 0.02, 0.30  # rate and volatility (constants of the graph)
SQRT1_2 = 1.0 / math.sqrt(2.0)


def bs_fusejit(s, k, t):
    """Call and put prices: one fused kernel per chunk."""
    sqrt_t = t.sqrt()
    d1 = ((s / k).log() + (R + 0.5 * V * V) * t) / (V * sqrt_t)
    d2 = d1 - V * sqrt_t
    n1 = 0.5 + 0.5 * fusejit.erf(d1 * SQRT1_2)
    n2 = 0.5 + 0.5 * fusejit.erf(d2 * SQRT1_2)
    disc = k * (-R * t).exp()
    call = s * n1 - disc * n2
    put = disc * (1.0 - n2) - s * (1.0 - n1)
    return call, put


def bs_dask_numpy(s, k, t):
    """The same formula as a Dask graph of numpy chunk operations (Dask fuses the blockwise
    chain into one task per chunk, which runs numpy's ufuncs one after another)."""
    f32 = np.float32
    sqrt_t = da.sqrt(t)
    d1 = (da.log(s / k) + f32(R + 0.5 * V * V) * t) / (f32(V) * sqrt_t)
    d2 = d1 - f32(V) * sqrt_t
    n1 = f32(0.5) + f32(0.5) * da.map_blocks(erf, d1 * f32(SQRT1_2))
    n2 = f32(0.5) + f32(0.5) * da.map_blocks(erf, d2 * f32(SQRT1_2))
    disc = k * da.exp(f32(-R) * t)
    call = s * n1 - disc * n2
    put = disc * (f32(1) - n2) - s * (f32(1) - n1)
    return call, put


def bs_numpy64(s, k, t):
    s, k, t = (np.asarray(a, np.float64) for a in (s, k, t))
    d1 = (np.log(s / k) + (R + 0.5 * V * V) * t) / (V * np.sqrt(t))
    d2 = d1 - V * np.sqrt(t)
    n1, n2 = 0.5 + 0.5 * erf(d1 * SQRT1_2), 0.5 + 0.5 * erf(d2 * SQRT1_2)
    disc = k * np.exp(-R * t)
    return s * n1 - disc * n2, disc * (1 - n2) - s * (1 - n1)


def inputs(n: int, chunks: int):
    rng = da.random.default_rng(7)
    c = n // chunks
    s = rng.uniform(10.0, 100.0, n, chunks=c).astype(np.float32)
    k = rng.uniform(10.0, 100.0, n, chunks=c).astype(np.float32)
    t = rng.uniform(0.1, 3.0, n, chunks=c).astype(np.float32)
    return s, k, t


def placed_inputs(client, n: int, chunks: int, even: bool = True) -> list:
    """The inputs drawn on the workers and persisted, block ``i`` of all three on worker
    ``i % workers``: the same blocks on each worker (as many as can be), and no block's
    inputs split between two workers (which a task would wait for a transfer to gather),
    whatever order the workers happened to draw them in. ``even=False``: where Dask's
    scheduler drew them (the placement of earlier versions of this bench)."""
    addrs = sorted(client.scheduler_info(n_workers=-1)["workers"])

    def where(key) -> list:
        return [addrs[key[1] % len(addrs)]]

    if even:
        with dask.annotate(workers=where, allow_other_workers=False):
            arrays = list(inputs(n, chunks))
    else:
        arrays = list(inputs(n, chunks))
    out = client.persist(arrays, optimize_graph=not even)
    with client.as_current():
        wait(out)
    return out


def _same(x):
    return x


_RUN = [0]


def fresh(arrays):
    """The arrays under new key names (an identity task a chunk, which Dask fuses into its
    consumer): results built on them are computed again, not found in the workers' memory."""
    _RUN[0] += 1
    return [da.map_blocks(_same, a, token=f"run{_RUN[0]}-{i}") for i, a in enumerate(arrays)]


def _n_tasks(dask_scheduler) -> int:
    return len(dask_scheduler.tasks)


def settle(client, base: int, timeout: float = 10.0) -> None:
    """Wait until the scheduler holds no more than ``base`` tasks (the persisted inputs: the
    results of the run before are released on the workers): each run starts alike."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if client.run_on_scheduler(_n_tasks) <= base:
            break
        time.sleep(0.02)


def _transfers(dask_worker) -> int:
    return dask_worker.state.transfer_incoming_count_total


def timed(client, build, arrays, base: int) -> tuple:
    """Seconds for ``build``'s results to be persisted, and where the time went: each
    worker's ``fd.worker_stats`` for the run, and the CPU seconds of this process (the
    client and the LocalCluster's scheduler, which runs in it)."""
    outs = build(*fresh(arrays))
    settle(client, base)
    client.run(fd.worker_stats, reset=True)
    moved = client.run(_transfers)
    c0 = time.process_time()
    t0 = time.perf_counter()
    with client.as_current():
        res = client.persist(list(outs))
        wait(res)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    stats = client.run(fd.worker_stats)
    for w, m in client.run(_transfers).items():
        stats[w]["transfers"] = m - moved.get(w, 0)
    del res
    return dt, {"wall": dt, "client_cpu": cpu, "workers": stats}


class Setup:
    """A LocalCluster of ``n_workers`` one-thread worker processes with the inputs persisted."""

    def __init__(self, stack, n_workers: int, n: int, chunks: int, even: bool = True) -> None:
        cluster = stack.enter_context(LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
            memory_limit="8GiB"))  # fmt: skip
        self.client = stack.enter_context(Client(cluster, set_as_default=False))
        self.workers = n_workers
        self.inputs = placed_inputs(self.client, n, chunks, even)
        self.base = self.client.run_on_scheduler(_n_tasks)  # tasks the scheduler holds
        self.client.run(fd.worker_stats, reset=True)
        t0 = time.perf_counter()
        fd.map_blocks(bs_fusejit, *self.inputs)  # trace and archive (as each run does again)
        self.build_s = time.perf_counter() - t0
        # the first run: each worker loads the archive and builds (or reads) its kernel
        self.first_fused_s, first = timed(self.client, fused_graph, self.inputs, self.base)
        self.totals: dict = {}  # worker -> counts summed over the fused runs
        self.add(first)
        self.fused: list = []
        self.numpy: list = []
        self.fused_runs: list = []  # timed()'s breakdown of each run
        self.numpy_runs: list = []

    def add(self, info: dict) -> None:
        for w, s in info["workers"].items():
            tot = self.totals.setdefault(w, {})
            for k in ("blocks", "kernel_launches", "eager_steps", "archives_loaded",
                      "compiled", "disk_hits"):  # fmt: skip
                tot[k] = tot.get(k, 0) + s[k]


_PARTS = (  # (heading, ms a block on one worker from its stats and the run's wall time)
    ("kernel (wall)", lambda s, wall: s["kernel_s"]),
    ("kernel (CPU)", lambda s, wall: s["kernel_cpu_s"]),
    ("in the task, outside the kernel", lambda s, wall: s["task_s"] - s["kernel_s"]),
    ("worker CPU outside kernels", lambda s, wall: s["process_cpu_s"] - s["kernel_cpu_s"]),
    ("not in a block task (wall)", lambda s, wall: wall - s["task_s"]),
)


def breakdown(st: Setup) -> tuple:
    """Table rows: per worker (by address), the median over the fused runs of each part of
    a block's time, in ms a block; and the client's CPU (this process, the scheduler with it)
    a run, fused and numpy."""
    med = statistics.median
    rows = []
    workers = sorted({w for info in st.fused_runs for w in info["workers"]})
    for i, w in enumerate(workers):
        runs = [(info["workers"][w], info["wall"]) for info in st.fused_runs
                if info["workers"].get(w, {}).get("blocks")]  # fmt: skip
        if not runs:
            continue
        parts = [med(f(s, wall) / s["blocks"] * 1e3 for s, wall in runs) for _, f in _PARTS]
        blocks = med(s["blocks"] for s, _ in runs)
        moved = med(s["transfers"] for s, _ in runs)
        rows.append(f"| {st.workers}w, worker {i} | {blocks:g} | {moved:g} | "
                    + " | ".join(f"{p:.1f}" for p in parts) + " |")  # fmt: skip
    fc = med(info["client_cpu"] for info in st.fused_runs)
    nc = med(info["client_cpu"] for info in st.numpy_runs)
    nw = med(sum(s["process_cpu_s"] for s in info["workers"].values()) for info in st.numpy_runs)
    note = (f"{st.workers}w: client and scheduler CPU a run: fused {fc:.3f} s, numpy "
                f"{nc:.3f} s; numpy chunks: the workers' CPU a run {nw:.2f} s")  # fmt: skip
    return rows, note


def kernel_alone(n: int, repeat: int = 5) -> tuple:
    """The fused kernel on one block of ``n`` elements in this process, on one thread (as on
    a worker), each call writing new outputs (as on a worker, whose results are kept): the
    min wall and thread-CPU ms over ``repeat`` calls, for comparison with the workers'."""
    from fusejit.backends import cpu_kernels  # (the module the kernels read the count from)

    rng = np.random.default_rng(0)
    args = [fusejit.from_numpy(rng.uniform(lo, hi, n).astype(np.float32))
            for lo, hi in ((10.0, 100.0), (10.0, 100.0), (0.1, 3.0))]  # fmt: skip
    fn = fusejit.trace(bs_fusejit, tuple(args))
    old = cpu_kernels.THREADS
    cpu_kernels.set_threads(1)
    walls, cpus, kept = [], [], []
    try:
        fn(*args)
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.thread_time()
            kept.append(fn(*args))  # (kept: no output buffer is reused)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
    finally:
        cpu_kernels.set_threads(old)
    return min(walls) * 1e3, min(cpus) * 1e3


def fused_graph(*arrays):
    return fd.map_blocks(bs_fusejit, *arrays)


def check(setup: Setup, n: int, chunks: int) -> dict:
    out = {}
    client, (s, k, t) = setup.client, setup.inputs
    fc, fp = fused_graph(s, k, t)
    pc, pp = bs_dask_numpy(s, k, t)
    diff = da.maximum(abs(fc - pc).max(), abs(fp - pp).max())
    scale = da.maximum(abs(pc).max(), abs(pp).max())
    out["max_abs_diff"], out["max_abs"] = (float(v) for v in client.compute([diff, scale],
                                                                          sync=True))  # fmt: skip
    c0 = n // chunks
    s0, k0, t0 = client.compute([a[:c0] for a in (s, k, t)], sync=True)
    ref_c, ref_p = bs_numpy64(s0, k0, t0)
    f0 = client.compute([fc[:c0], fp[:c0]], sync=True)
    p0 = client.compute([pc[:c0], pp[:c0]], sync=True)
    out["err_fused_vs_f64"] = max(np.abs(f0[0] - ref_c).max(), np.abs(f0[1] - ref_p).max())
    out["err_numpy_vs_f64"] = max(np.abs(p0[0] - ref_c).max(), np.abs(p0[1] - ref_p).max())
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=27)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--placement", choices=("even", "dask"), default="even",
                    help="inputs: chunk i on worker i %% workers (even), or where Dask drew "
                    "them (dask: as earlier versions of this bench)")  # fmt: skip
    ap.add_argument("--clusters", choices=("together", "apart"), default="together",
                    help="both clusters up at once, runs alternating (together: fair under "
                    "load from others), or one after the other (apart: no idle cluster beside "
                    "the timed one: for a quiet machine)")  # fmt: skip
    args = ap.parse_args(argv)
    n = 1 << args.log2n
    print(f"# Black-Scholes, 2^{args.log2n} float32 in {args.chunks} chunks; python "
          f"{platform.python_version()}, dask {dask.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, inputs placed {args.placement}, clusters {args.clusters}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    alone = kernel_alone(n // args.chunks)
    even = args.placement == "even"

    def rounds(res: list) -> None:
        for r in range(args.repeat):  # alternating, so that load from others hits all alike
            for st in res:
                for kind, build in (("fused", fused_graph), ("numpy", bs_dask_numpy)):
                    dt, info = timed(st.client, build, st.inputs, st.base)
                    getattr(st, kind).append(dt)
                    getattr(st, f"{kind}_runs").append(info)
                    if kind == "fused":
                        st.add(info)
            print(f"round {r}: " + ", ".join(f"{st.workers}w fused {st.fused[-1]:.2f} s numpy "
                                              f"{st.numpy[-1]:.2f} s" for st in res)
                  + f"; load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

    if args.clusters == "together":
        with contextlib.ExitStack() as stack:
            two = Setup(stack, 2, n, args.chunks, even)
            one = Setup(stack, 1, n, args.chunks, even)
            res = [two, one]
            print(f"set up; load average {os.getloadavg()[0]:.1f}", flush=True)
            rounds(res)
            ok = check(two, n, args.chunks)
    else:  # one cluster at a time: none idles beside the one timed (for a quiet machine)
        res = []
        for workers in (2, 1):
            with contextlib.ExitStack() as stack:
                st = Setup(stack, workers, n, args.chunks, even)
                res.append(st)
                print(f"set up {workers}w; load average {os.getloadavg()[0]:.1f}", flush=True)
                rounds([st])
                if workers == 2:
                    ok = check(st, n, args.chunks)
                st.client = None  # (closed with the cluster)
        two, one = res
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for r in res:
        print(f"\n{r.workers} worker(s): trace+archive on the client {r.build_s:.3f} s, "
              f"first fused run {r.first_fused_s:.3f} s")  # fmt: skip
        for w, s in sorted(r.totals.items()):
            print(f"  worker {w}: blocks {s['blocks']}, kernel launches {s['kernel_launches']}, "
                  f"eager steps {s['eager_steps']}, archives loaded {s['archives_loaded']}, "
                  f"kernels compiled {s['compiled']}, read from disk {s['disk_hits']}")  # fmt: skip
    print(f"\nfused vs numpy chunks, all elements: max |diff| {ok['max_abs_diff']:.3g} "
          f"(values up to {ok['max_abs']:.3g}); first chunk against float64: fused "
          f"{ok['err_fused_vs_f64']:.3g}, numpy float32 {ok['err_numpy_vs_f64']:.3g}")  # fmt: skip

    def mm(xs):
        return f"{min(xs):.3f} / {statistics.median(xs):.3f}"

    med = statistics.median
    print("\n| run | time (s, min / median) |\n|---|---|")
    for r in res:
        print(f"| fused, {r.workers} worker(s) | {mm(r.fused)} |")
        print(f"| numpy chunks, {r.workers} worker(s) | {mm(r.numpy)} |")
    print(f"\nfused vs numpy chunks (2 workers): {min(two.numpy) / min(two.fused):.2f}x min, "
          f"{med(two.numpy) / med(two.fused):.2f}x median (target >= 1.6x)")  # fmt: skip
    print(f"fused 2 workers vs 1: {min(one.fused) / min(two.fused):.2f}x min, "
          f"{med(one.fused) / med(two.fused):.2f}x median (target >= 1.6x)")  # fmt: skip
    print(f"numpy chunks 2 workers vs 1: {min(one.numpy) / min(two.numpy):.2f}x min, "
          f"{med(one.numpy) / med(two.numpy):.2f}x median")  # fmt: skip
    print("\nWhere a fused block's time goes (ms a block, median over the runs; the kernel "
          "includes allocating its outputs; 'not in a block task' is the run's wall time less "
          "the worker's block tasks: waiting, Dask's own steps, the result tasks). The same "
          f"kernel in this process, one thread, new outputs each call: {alone[0]:.1f} ms wall, "
          f"{alone[1]:.1f} ms CPU a block (min of 5, before the clusters started):")  # fmt: skip
    print("\n| run, worker | blocks | transfers in | " + " | ".join(h for h, _ in _PARTS) + " |")
    print("|---" * (len(_PARTS) + 3) + "|")
    notes = []
    for r in res:
        rows, note = breakdown(r)
        print("\n".join(rows))
        notes.append(note)
    print("\n" + "\n".join(notes))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
