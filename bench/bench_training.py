"""Training on the CPU: the eager MLP step against numpy by hand, autograd's bookkeeping, and the
wall time of the digits runs (issue #19's performance targets).

1. The MLP training step (forward, ``F.cross_entropy``, ``loss.backward()``, ``AdamW.step()``)
   of ``tests/test_training.py``'s model (64 -> 128 -> 10, ReLU, batch 64, float32) against the
   same step written by hand in numpy (the same matmuls, log-softmax, its gradient and the same
   AdamW update). Both are timed in one process, in alternating short batches, each side's
   fastest batch kept. Target: at most 1.3x. Also at a larger size (batch 512, 512 hidden), where
   the matmuls dominate.
2. Backward's bookkeeping on a 4096-element elementwise op against the forward op's host time
   (``bench/bench_autograd.py``). Target: at most 2x.
3. The wall time of the MLP and CNN digits runs (``sklearn.datasets.load_digits``, the test's
   split and seed) until the test accuracy reaches 97%, epoch by epoch. Target: under 60 s each.

Each part runs once with numpy's BLAS at its default thread count and once with one BLAS
thread (through threadpoolctl, when installed): on a loaded 2-core machine, BLAS threads that
spin while waiting for a core were seen to make the small matmuls of these models 10x slower.

    PYTHONPATH=. python bench/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
from fusejit.bench.harness import cpu_name

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_autograd  # noqa: E402

STEP_TARGET = 1.3
BOOKKEEPING_TARGET = 2.0
WALL_TARGET_S = 60.0
LR, BETAS, EPS, WD = 1e-2, (0.9, 0.999), 1e-8, 1e-2


@contextlib.contextmanager
def blas_threads(n: int | None):
    """numpy's BLAS limited to ``n`` threads inside (nothing changed for None, or without
    threadpoolctl)."""
    if n is None:
        yield "default"
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "default (no threadpoolctl)"
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield str(n)


# -- 1. the MLP step ------------------------------------------------------------------------


class NumpyMLP:
    """The step by hand: Linear -> ReLU -> Linear, mean cross-entropy, AdamW (PyTorch's
    formulas: decoupled weight decay, bias-corrected moments)."""

    def __init__(self, params: list[np.ndarray]):
        self.p = [a.copy() for a in params]  # w1 [h, i], b1 [h], w2 [o, h], b2 [o]
        self.m = [np.zeros_like(a) for a in self.p]
        self.v = [np.zeros_like(a) for a in self.p]
        self.t = 0

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        w1, b1, w2, b2 = self.p
        h = x @ w1.T + b1
        r = np.maximum(h, np.float32(0))
        z = r @ w2.T + b2
        zmax = z.max(axis=1, keepdims=True)
        e = np.exp(z - zmax)
        s = e.sum(axis=1, keepdims=True)
        n = x.shape[0]
        rows = np.arange(n)
        loss = float(np.mean(np.log(s[:, 0]) + zmax[:, 0] - z[rows, y]))
        dz = e / s
        dz[rows, y] -= np.float32(1)
        dz *= np.float32(1.0 / n)
        gw2 = dz.T @ r
        gb2 = dz.sum(axis=0)
        dr = dz @ w2
        dh = dr * (h > 0)
        gw1 = dh.T @ x
        gb1 = dh.sum(axis=0)
        self.t += 1
        b1c, b2c = 1 - BETAS[0] ** self.t, 1 - BETAS[1] ** self.t
        for p, g, m, v in zip(self.p, (gw1, gb1, gw2, gb2), self.m, self.v):
            p *= np.float32(1 - LR * WD)
            m *= np.float32(BETAS[0])
            m += np.float32(1 - BETAS[0]) * g
            v *= np.float32(BETAS[1])
            v += np.float32(1 - BETAS[1]) * (g * g)
            denom = np.sqrt(v) / np.float32(np.sqrt(b2c)) + np.float32(EPS)
            p -= np.float32(LR / b1c) * (m / denom)
        return loss


def mlp_step_ratio(batch: int, hidden: int, rounds: int, reps: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 64), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    hand = NumpyMLP([p.numpy() for p in model.parameters()])
    xt, yt = fusejit.tensor(x), fusejit.tensor(y)

    def ours():
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    # the same computation: a few steps agree (float32 rounding apart)
    first = [float(ours().item()) for _ in range(3)]
    ref = [hand.step(x, y) for _ in range(3)]
    if not np.allclose(first, ref, rtol=1e-3, atol=1e-4):
        raise AssertionError(f"fusejit and numpy steps disagree: {first} vs {ref}")

    def forward():
        return F.cross_entropy(model(xt), yt)

    def forward_backward():
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()

    fns = {"fusejit": ours, "numpy": lambda: hand.step(x, y), "forward": forward,
           "forward_backward": forward_backward, "optimizer": opt.step}  # fmt: skip
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / reps * 1e6)
    return {"fusejit_us": best["fusejit"], "numpy_us": best["numpy"],
            "ratio": best["fusejit"] / best["numpy"], "forward_us": best["forward"],
            "backward_us": best["forward_backward"] - best["forward"],
            "optimizer_us": best["optimizer"]}  # fmt: skip


# -- 3. the digits runs ---------------------------------------------------------------------


def digits(conv: bool):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    if conv:
        x = x.reshape(-1, 1, 8, 8)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1400], perm[1400:]
    return (fusejit.tensor(x[tr]), fusejit.tensor(d.target[tr]), fusejit.tensor(x[te]),
            fusejit.tensor(d.target[te]))  # fmt: skip


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        return self.fc(x.flatten(1))


def run_to_target(conv: bool, max_epochs: int = 40, target: float = 0.97) -> dict:
    """Seconds (data loading and model building included) until the test accuracy reaches
    ``target``, checked after each epoch."""
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = digits(conv)
    fusejit.manual_seed(0)
    if conv:
        model = SmallCNN()
    else:
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    n = xtr.shape[0]
    for epoch in range(1, max_epochs + 1):  # noqa: B007 (read after the loop)
        model.train()
        perm = fusejit.randperm(n)
        for i in range(0, n, 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with fusejit.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        if acc >= target:
            break
    return {"seconds": time.perf_counter() - t0, "epochs": epoch, "accuracy": acc}


def main(quick: bool = False) -> None:
    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}, numpy {np.__version__}")  # fmt: skip
    rounds, reps = (5, 20) if quick else (15, 40)
    for threads in (None, 1):
        with blas_threads(threads) as label:
            print(f"\n== BLAS threads: {label}")
            print(f"{'MLP step (fwd, bwd, AdamW)':34s} {'fusejit us':>11s} {'numpy us':>9s} "
                  f"{'ratio':>6s}  target <= {STEP_TARGET}x")  # fmt: skip
            for batch, hidden in ((64, 128), (512, 512)):
                r = mlp_step_ratio(batch, hidden, rounds, reps)
                flag = "met" if r["ratio"] <= STEP_TARGET else "NOT met"
                print(f"  batch {batch:4d}, 64->{hidden}->10{'':10s} {r['fusejit_us']:11.1f} "
                      f"{r['numpy_us']:9.1f} {r['ratio']:6.2f}  {flag}")  # fmt: skip
                print(f"    fusejit's parts: forward {r['forward_us']:.0f} us, zero_grad + "
                      f"backward {r['backward_us']:.0f} us, AdamW step "
                      f"{r['optimizer_us']:.0f} us")  # fmt: skip
            for conv in (False, True):
                r = run_to_target(conv)
                ok = r["seconds"] < WALL_TARGET_S and r["accuracy"] >= 0.97
                flag = "met" if ok else "NOT met"
                print(f"  digits {'CNN' if conv else 'MLP'} to 97%: {r['seconds']:6.2f} s, "
                      f"{r['epochs']} epochs, test accuracy {r['accuracy']:.4f}  "
                      f"(target < {WALL_TARGET_S:.0f} s) {flag}")  # fmt: skip
    print("\n== autograd bookkeeping, 4096-element x * w (bench/bench_autograd.py)")
    out = bench_autograd.main(rounds=10 if quick else 40)
    ratio = out["bookkeeping_fresh_us"] / out["forward_us"]
    flag = "met" if ratio <= BOOKKEEPING_TARGET else "NOT met"
    print(f"bookkeeping (fresh graph) / forward = {ratio:.2f}x (target <= "
          f"{BOOKKEEPING_TARGET}x) {flag}")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    main(**vars(ap.parse_args()))
