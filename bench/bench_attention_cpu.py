"""Eager CPU attention by blocks of queries against the whole score matrix (issue #25, "On the
CPU, a blocked kernel that never materializes T x T scores for long sequences").

``F.scaled_dot_product_attention`` on the CPU, eager and without gradients, runs over blocks of
queries whose scores take at most ``F.ATTENTION_BLOCK`` elements a (batch, head); a causal
block reads only the keys its queries see. This prints, for the default block and for one block
holding the whole matrix (the form a traced graph or a call needing gradients uses), the time
per call (min and median of ``--repeat`` calls, the two forms alternating) and the peak of the
memory numpy allocated during one call (``tracemalloc``), with the largest difference between
the two results.

    PYTHONPATH=. python bench/bench_attention_cpu.py                 # B=1, H=4, T=4096, D=64
    PYTHONPATH=. python bench/bench_attention_cpu.py --shape 1 12 2048 64 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

import numpy as np

try:
    import fusejit
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit

import fusejit.nn.functional as F

WHOLE = 1 << 62  # an ATTENTION_BLOCK no score matrix reaches: one block, the whole matrix


def call(q, k, v, causal: bool, block: int):
    old, F.ATTENTION_BLOCK = F.ATTENTION_BLOCK, block
    try:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    finally:
        F.ATTENTION_BLOCK = old


def peak_mib(q, k, v, causal: bool, block: int) -> float:
    tracemalloc.start()
    try:
        call(q, k, v, causal, block)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=4, default=[1, 4, 4096, 64],
                    metavar=("B", "H", "T", "D"))  # fmt: skip
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="fusejit's and BLAS's threads")
    args = ap.parse_args()
    if args.threads:
        fusejit.set_num_threads(args.threads)
    b, h, t, d = args.shape
    rng = np.random.default_rng(0)
    q, k, v = (fusejit.tensor(rng.standard_normal((b, h, t, d), dtype=np.float32))
               for _ in range(3))  # fmt: skip
    blocked = F.ATTENTION_BLOCK
    print(f"float32 q, k, v of shape {[b, h, t, d]}; fusejit threads {fusejit.get_num_threads()}; "
          f"by blocks: {max(1, blocked // t)} queries a block")  # fmt: skip
    print(f"{'':8s} {'form':13s} {'min ms':>9s} {'median ms':>10s} {'peak MiB':>9s}")
    for causal in (False, True):
        forms = {"whole matrix": WHOLE, "by blocks": blocked}
        outs = {name: call(q, k, v, causal, blk).numpy() for name, blk in forms.items()}
        diff = float(np.abs(outs["whole matrix"] - outs["by blocks"]).max())
        times: dict = {name: [] for name in forms}
        for _ in range(args.repeat):
            for name, blk in forms.items():
                t0 = time.perf_counter()
                call(q, k, v, causal, blk)
                times[name].append((time.perf_counter() - t0) * 1e3)
        for name, blk in forms.items():
            ts, peak = times[name], peak_mib(q, k, v, causal, blk)
            kind = "causal" if causal else "full"
            print(f"{kind:8s} {name:13s} {min(ts):9.1f} {statistics.median(ts):10.1f} {peak:9.1f}")
        ratio = statistics.median(times["whole matrix"]) / statistics.median(times["by blocks"])
        print(f"{'':8s} whole / blocks (median): {ratio:.2f}x; max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
