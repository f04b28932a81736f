"""Host time of autograd's bookkeeping on a 4096-element float32 elementwise op (``x * w``, ``w``
requiring grad), against the forward op's own host time without autograd.

Target (issue #19): backward's bookkeeping on such an op at most 2x the forward op's host time.
Bookkeeping = the time of ``z.backward(g)`` less what its derivative rule computes (``g * x``)
and the accumulation into ``w.grad`` (``+=`` of 4096 floats). Measured two ways: a fresh graph
each time (record, backward, free: what a training step does) and a graph kept with
``retain_graph=True`` (the engine's walk alone). Also the recording overhead of the forward op.
Each quantity is the fastest of many short batches, alternated in one process.

    python bench/bench_autograd.py
"""

from __future__ import annotations

import os
import sys
import time

try:
    import fusejit as F
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit as F


def main(rounds: int = 40, batch: int = 300) -> dict:
    x, y = F.rand(4096), F.rand(4096)
    w = F.rand(4096).requires_grad_()
    g = F.ones(4096)
    kept = x * w

    def forward():
        x * y

    def recorded():
        x * w

    def fresh():
        (x * w).backward(g)

    def retained():
        kept.backward(g, retain_graph=True)

    def rule():
        g * x

    def accumulate():
        a = w.grad
        a._data += g._data

    fns = {"forward": forward, "recorded": recorded, "fresh": fresh, "retained": retained,
           "rule": rule, "accumulate": accumulate}  # fmt: skip
    fresh()  # (w.grad exists from here on)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(batch):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t0) / batch * 1e6)
    f = best["forward"]
    out = {
        "forward_us": f,
        "recording_us": best["recorded"] - f,
        "bookkeeping_fresh_us": best["fresh"]
        - best["recorded"]
        - best["rule"]
        - best["accumulate"],
        "bookkeeping_retained_us": best["retained"] - best["rule"] - best["accumulate"],
    }
    for k, v in out.items():
        ratio = "" if k == "forward_us" else f"  ({v / f:.2f}x the forward op)"
        print(f"{k:26s} {v:7.2f}{ratio}")
    return out


if __name__ == "__main__":
    main()
