"""Training under ``fusejit.optimize`` against eager on the CPU (issue #20's CPU targets).

1. The digits MLP (64 -> 128 -> 10, ReLU) and the small CNN (two conv + BatchNorm2d in train
   mode + max-pool, a linear head) of ``tests/test_training.py``: the time of one training step
   (forward, cross-entropy, ``zero_grad``, ``backward``, AdamW) at batch 64, and of one epoch
   (1400 samples: 21 batches of 64 and one of 56), eager against ``fusejit.optimize(model)``.
   Target: optimized at least 1.3x faster.
2. ``mlp-train`` at CPU scale: batch 1024, Linear(1024, 1024) -> GELU -> LayerNorm(1024) ->
   Linear(1024, 1024), MSE loss, AdamW; the step's time eager against the model optimized, and
   against the whole loss function (model and MSE) optimized. Target: at least 1.5x.
3. Both also with the whole training step optimized (``fusejit.optimize(train_step)``: forward,
   loss, ``zero_grad``, ``backward`` and the AdamW update as one graph,
   ``fusejit/jit/train_step.py``), and the peak memory one step allocates (tracemalloc, which
   numpy reports its buffers to), each side against eager's.

The optimized side is warmed up first (its compiles are not timed; they are reported). Eager and
optimized run in turn in one process, ``rounds`` times, each round ``reps`` steps; min and median
of the per-step (per-epoch) times are reported. numpy's BLAS is limited to one thread (when
threadpoolctl is installed), as in the training tests: on the loaded 2-core machine BLAS threads
waiting for a core made the small matmuls 10x slower.

    PYTHONPATH=. python bench/bench_training_optimized.py [--quick] [--only mlp,cnn,mlp-train]

``--only mlp-dropout``: the digits MLP with ``Dropout(0.1)`` after the ReLU (its masks are
graph nodes: the optimized sides compile, drawing a fresh mask at each call).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import numpy as np

try:
    import fusejit
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit

import fusejit.nn as nn
import fusejit.nn.functional as F
from fusejit import optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_training import SmallCNN, digits  # noqa: E402

from fusejit.bench.harness import cpu_name  # noqa: E402

DIGITS_TARGET = 1.3
MLP_TRAIN_TARGET = 1.5


@contextlib.contextmanager
def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "default (no threadpoolctl)"
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield "1"


class Side:
    """One model (eager or optimized) with its optimizer and a step function."""

    def __init__(self, make, optimized: bool, loss_fn, whole_loss: bool = False,
                 whole_step: bool = False):  # fmt: skip
        fusejit.manual_seed(0)
        self.model = make()
        self.opt = optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.model.train()
        self.compiled = None
        if whole_step:
            model, opt = self.model, self.opt

            def train_step(x, y):
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                return loss

            self.compiled = self.step = fusejit.optimize(train_step)
        elif whole_loss:
            self.compiled = fusejit.optimize(lambda x, y: loss_fn(self.model(x), y))
            self.loss = self.compiled
        else:
            fwd = fusejit.optimize(self.model) if optimized else self.model
            self.compiled = fwd if optimized else None
            self.loss = lambda x, y: loss_fn(fwd(x), y)

    def status(self) -> str:
        """How the optimized side's signatures run (compiled, or eager with the reason)."""
        if self.compiled is None:
            return ""
        sigs = fusejit.explain(self.compiled, as_dict=True)["signatures"]
        return "; ".join(f"{s['signature']}: {s['status']}" + (f" ({s['reason']})" if
                         s["reason"] else "") for s in sigs)  # fmt: skip

    def step(self, x, y):
        loss = self.loss(x, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self, xtr, ytr, perm, batch: int = 64):
        n = xtr.shape[0]
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            self.step(xtr[idx], ytr[idx])


def peak_bytes(side, x, y) -> int:
    """The peak of the memory one step allocates (tracemalloc), after warm-up."""
    import tracemalloc

    side.step(x, y)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        side.step(x, y)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def report_peaks(sides: dict, x, y) -> None:
    peaks = {k: peak_bytes(s, x, y) for k, s in sides.items() if isinstance(s, Side)}
    base = peaks["eager"]
    print("  peak memory allocated by one step (tracemalloc):")
    for k, b in peaks.items():
        line = f"    {k:32s} {b / 2**20:8.2f} MiB"
        if k != "eager":
            line += f"   {b / base:.2f}x eager's; <= eager's {'met' if b <= base else 'NOT met'}"
        print(line)


def _stats(ts: list) -> str:
    return f"{min(ts) * 1e3:8.2f} {statistics.median(ts) * 1e3:8.2f}"


def compare(sides: dict, fn, rounds: int, reps: int) -> dict:
    """Per side, the seconds of one call of ``fn(side)``: each round times ``reps`` calls of
    each side in turn."""
    times = {k: [] for k in sides}
    for _ in range(rounds):
        for k, side in sides.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn(side)
            times[k].append((time.perf_counter() - t0) / reps)
    return times


def report(title: str, times: dict, target: float) -> None:
    print(f"  {title:34s} {'min ms':>8s} {'median':>8s}")
    base = times["eager"]
    for k, ts in times.items():
        line = f"    {k:32s} {_stats(ts)}"
        if k != "eager":
            sp_min = min(base) / min(ts)
            sp_med = statistics.median(base) / statistics.median(ts)
            flag = "met" if sp_min >= target else "NOT met"
            line += f"   speed-up {sp_min:.2f}x (min) {sp_med:.2f}x (median); >= {target}x {flag}"
        print(line)


def digits_part(conv: bool, rounds: int, reps: int, dropout: float = 0.0) -> None:
    xtr, ytr, _, _ = digits(conv)
    drop = [nn.Dropout(dropout)] if dropout else []
    make = SmallCNN if conv else (lambda: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), *drop,
                                                        nn.Linear(128, 10)))  # fmt: skip
    sides = {"eager": Side(make, False, F.cross_entropy),
             "optimize(model)": Side(make, True, F.cross_entropy),
             "optimize(model + loss)": Side(make, True, F.cross_entropy,
                                            whole_loss=True),
             "optimize(train_step)": Side(make, True, F.cross_entropy,
                                          whole_step=True)}  # fmt: skip
    perm = fusejit.randperm(xtr.shape[0])
    x, y = xtr[perm[:64]], ytr[perm[:64]]
    t0 = time.perf_counter()
    for s in sides.values():  # warm: both batch sizes compiled, numba's first calls done
        for _ in range(4):
            s.epoch(xtr, ytr, perm)
    warm = time.perf_counter() - t0
    name = "CNN (conv, BatchNorm2d, pool)" if conv else "MLP (64 -> 128 -> 10)"
    if dropout:
        name = f"MLP (64 -> 128 -> Dropout({dropout}) -> 10)"
    print(f"\n== digits {name}; warm-up (4 epochs each, compiles included) {warm:.1f} s")
    for k, side in sides.items():
        if side.status():
            print(f"  {k}: {side.status()}")
    report("step, batch 64", compare(sides, lambda s: s.step(x, y), rounds, reps),
           DIGITS_TARGET)  # fmt: skip
    report("epoch, 1400 samples",
           compare(sides, lambda s: s.epoch(xtr, ytr, perm), max(3, rounds // 3), 1),
           DIGITS_TARGET)  # fmt: skip
    report_peaks(sides, x, y)


class MLPTrain(nn.Module):
    def __init__(self, width: int = 1024):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.act = nn.GELU()
        self.ln = nn.LayerNorm(width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        return self.fc2(self.ln(self.act(self.fc1(x))))


def mlp_train_part(rounds: int, reps: int, batch: int = 1024, width: int = 1024) -> None:
    rng = np.random.default_rng(0)
    x = fusejit.tensor(rng.standard_normal((batch, width), dtype=np.float32))
    y = fusejit.tensor(rng.standard_normal((batch, width), dtype=np.float32))
    make = lambda: MLPTrain(width)  # noqa: E731
    sides = {"eager": Side(make, False, F.mse_loss),
             "optimize(model)": Side(make, True, F.mse_loss),
             "optimize(model + mse)": Side(make, True, F.mse_loss, whole_loss=True),
             "optimize(train_step)": Side(make, True, F.mse_loss, whole_step=True)}  # fmt: skip
    t0 = time.perf_counter()
    for s in sides.values():
        for _ in range(4):
            s.step(x, y)
    warm = time.perf_counter() - t0
    for k, side in sides.items():
        if side.status():
            print(f"  {k}: {side.status()}")
    print(f"\n== mlp-train: batch {batch}, {width} -> GELU -> LayerNorm -> {width}, MSE, AdamW; "
          f"warm-up {warm:.1f} s")  # fmt: skip
    # the floor: the step's six matmuls (two forward, four backward) alone, in numpy
    a = rng.standard_normal((batch, width), dtype=np.float32)
    w = rng.standard_normal((width, width), dtype=np.float32)

    class Floor:
        def step(self, *_):
            for _ in range(3):
                a @ w.T
                a.T @ a

    sides["numpy: the 6 matmuls only"] = Floor()
    report("step", compare(sides, lambda s: s.step(x, y), rounds, reps), MLP_TRAIN_TARGET)
    report_peaks(sides, x, y)


def main(quick: bool = False, only: str = "mlp,cnn,mlp-train") -> None:
    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}, numpy {np.__version__}")  # fmt: skip
    parts = set(only.split(","))
    rounds, reps = (4, 5) if quick else (10, 10)
    with one_blas_thread() as label:
        print(f"BLAS threads: {label}")
        if "mlp" in parts:
            digits_part(False, rounds, reps)
        if "mlp-dropout" in parts:
            digits_part(False, rounds, reps, dropout=0.1)
        if "cnn" in parts:
            digits_part(True, rounds, reps)
        if "mlp-train" in parts:
            mlp_train_part(max(3, rounds // 2), 2 if quick else 3)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--only", default="mlp,cnn,mlp-train",
                    help="comma-separated parts: mlp, mlp-dropout, cnn, mlp-train")  # fmt: skip
    main(**vars(ap.parse_args()))
