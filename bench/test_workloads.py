"""The standard workloads as a pytest-benchmark suite: eager, fused and reference per workload.

Not part of the default test run (pytest's testpaths is ``tests``). Run it with

    PYTHONPATH=. python -m pytest bench/test_workloads.py --benchmark-only -q [-k gelu]

``FUSEJIT_BENCH_DEVICE`` (cpu, cuda; default cpu) and ``FUSEJIT_BENCH_SIZE`` (element count of
each workload's main tensor; default: the workload's own) select what is measured,
``FUSEJIT_BENCH_ROUNDS`` the rounds per benchmark (default 5). Results are checked against the
reference before timing.
"""

from __future__ import annotations

import os

import pytest

import fusejit as fj
from fusejit.bench import harness
from fusejit.bench.workloads import WORKLOADS

DEVICE = os.environ.get("FUSEJIT_BENCH_DEVICE", "cpu")
SIZE = int(os.environ["FUSEJIT_BENCH_SIZE"]) if os.environ.get("FUSEJIT_BENCH_SIZE") else None
ROUNDS = int(os.environ.get("FUSEJIT_BENCH_ROUNDS", "5"))

if DEVICE == "cuda" and not fj.is_cuda_available():
    pytest.skip("FUSEJIT_BENCH_DEVICE=cuda but no CUDA GPU is usable", allow_module_level=True)

_cases: dict = {}


def _case(name: str) -> dict:
    """Inputs, traced function and reference inputs of a workload, built and verified once."""
    c = _cases.get(name)
    if c is None:
        w = WORKLOADS[name]
        dev = harness._device(DEVICE)
        xp = harness._xp(dev)
        arrays, shape = w.make(SIZE or w.size_for(dev.type), dev.type, 0)
        tensors = harness._to_tensors(arrays, dev)
        ref_in = tuple(xp.asarray(a) for a in arrays)
        traced = fj.trace(w.fn, tensors, check_trace=False)
        ref_out = w.ref(xp, *ref_in)
        harness._check(name, "fused", traced(*tensors), ref_out, w)
        harness._check(name, "eager", (w.eager or w.fn)(*tensors), ref_out, w)
        nbytes = sum(a.nbytes for a in arrays) + sum(o.nbytes for o in harness._as_tuple(ref_out))
        calls = {
            "eager": (w.eager or w.fn, tensors),
            "fused": (traced, tensors),
            "ref": (lambda *a: w.ref(xp, *a), ref_in),
        }
        _cases.clear()  # keep one workload's arrays alive at a time
        c = _cases[name] = dict(shape=shape, nbytes=nbytes, calls=calls, sync=harness._sync_fn(dev))
    return c


@pytest.mark.parametrize("variant", ["eager", "fused", "ref"])
# (the optimizer steps, whose calls update state, run in ``python -m fusejit bench`` only)
@pytest.mark.parametrize("name", [n for n, w in WORKLOADS.items() if w.kind == "function"])
def test_workload(benchmark, name, variant):
    c = _case(name)
    fn, args = c["calls"][variant]
    sync = c["sync"]

    def run():
        out = fn(*args)
        sync()
        return out

    benchmark.group = name
    benchmark.extra_info.update(shape=c["shape"], bytes=c["nbytes"], device=DEVICE)
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["GB/s"] = c["nbytes"] / benchmark.stats.stats.median / 1e9
