"""Black-Scholes (call and put: log, sqrt, exp, erf) over Dask arrays on a LocalCluster: one
fused fusejit kernel per chunk (``fusejit.dask.map_blocks``) against the same Dask graph with
numpy chunks (``dask.array`` ufuncs, scipy's ``erf``), on 2 workers and on 1.

    PYTHONPATH=. python bench/bench_dask.py [--log2n 27] [--chunks 16] [--repeat 3]

The inputs are drawn on the workers and persisted; a timed run persists both results and waits
for them (then drops them), so it measures the chunks' computation and Dask's scheduling, not
transfers to the client. Each worker has one thread (fusejit's kernels then use one thread
each: ``fusejit/dask/worker.py``). Correctness: the fused and numpy results are compared over
every element inside Dask, and the first chunk of each against a float64 numpy reference.
Memory: 3 inputs and 2 results of 2^log2n float32 (512 MiB each at 2^27), and a second pair of
results while they are compared.
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


def _same(x):
    return x


_RUN = [0]


def fresh(arrays):
    """The arrays under new key names (an identity task a chunk, which Dask fuses into its
    consumer): results built on them are computed again, not found in the workers' memory."""
    _RUN[0] += 1
    return [da.map_blocks(_same, a, token=f"run{_RUN[0]}-{i}") for i, a in enumerate(arrays)]


def timed(client, build, arrays) -> float:
    outs = build(*fresh(arrays))
    t0 = time.perf_counter()
    with client.as_current():
        res = client.persist(list(outs))
        wait(res)
    dt = time.perf_counter() - t0
    del res
    return dt


class Setup:
    """A LocalCluster of ``n_workers`` one-thread worker processes with the inputs persisted."""

    def __init__(self, stack, n_workers: int, n: int, chunks: int) -> None:
        cluster = stack.enter_context(LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
            memory_limit="8GiB"))  # fmt: skip
        self.client = stack.enter_context(Client(cluster, set_as_default=False))
        self.workers = n_workers
        self.inputs = self.client.persist(list(inputs(n, chunks)))
        with self.client.as_current():
            wait(self.inputs)
        self.client.run(fd.worker_stats, reset=True)
        t0 = time.perf_counter()
        fd.map_blocks(bs_fusejit, *self.inputs)  # trace and archive (as each run does again)
        self.build_s = time.perf_counter() - t0
        # the first run: each worker loads the archive and builds (or reads) its kernel
        self.first_fused_s = timed(self.client, fused_graph, self.inputs)
        self.fused: list = []
        self.numpy: list = []


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
    args = ap.parse_args(argv)
    n = 1 << args.log2n
    print(f"# Black-Scholes, 2^{args.log2n} float32 in {args.chunks} chunks; python "
          f"{platform.python_version()}, dask {dask.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    with contextlib.ExitStack() as stack:
        two = Setup(stack, 2, n, args.chunks)
        one = Setup(stack, 1, n, args.chunks)
        res = [two, one]
        print(f"set up; load average {os.getloadavg()[0]:.1f}", flush=True)
        for r in range(args.repeat):  # alternating, so that load from others hits all alike
            for st in res:
                st.fused.append(timed(st.client, fused_graph, st.inputs))
                st.numpy.append(timed(st.client, bs_dask_numpy, st.inputs))
            print(f"round {r}: " + ", ".join(f"{st.workers}w fused {st.fused[-1]:.2f} s numpy "
                                              f"{st.numpy[-1]:.2f} s" for st in res)
                  + f"; load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        for st in res:
            st.stats = st.client.run(fd.worker_stats)
        ok = check(two, n, args.chunks)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for r in res:
        print(f"\n{r.workers} worker(s): trace+archive on the client {r.build_s:.3f} s, "
              f"first fused run {r.first_fused_s:.3f} s")  # fmt: skip
        for w, s in sorted(r.stats.items()):
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
    sys.stdout.flush()


if __name__ == "__main__":
    main()
