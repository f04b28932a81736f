"""Scripted LSTM over a sequence loop, eager vs ``fusejit.script`` on the CPU (and the GPU when
one is usable): input 512, hidden 512, batch 64, 100 steps, float32.

Checks that the pointwise cell runs as one fused kernel per step, then prints a table of the
time per step. Run: ``PYTHONPATH=. python bench/bench_script_lstm.py [--steps 100] [--reps 5]
[--outputs] [--train]``; ``--outputs`` also returns every step's ``h``, appended to a list and
stacked (one buffer the loop writes row by row), as ``nn.LSTM`` returns its output sequence.
``--train`` times a training step instead (forward with stacked outputs, a loss, backward
through the loop, an SGD step: eager vs scripted, min and median ms per step, after checking
that both give the same gradients) and its peak memory (``tracemalloc``, CPU only).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

import fusejit
from fusejit import nn
from fusejit.ir.control import count_fused


class LSTM(nn.Module):
    def __init__(self, n_in: int, n_hid: int) -> None:
        super().__init__()
        self.ih = nn.Linear(n_in, 4 * n_hid)
        self.hh = nn.Linear(n_hid, 4 * n_hid)

    def forward(self, x, h, c):
        for t in range(x.shape[0]):
            gates = self.ih(x[t]) + self.hh(h)
            i, f, g, o = gates.chunk(4, 1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
        return h, c


class LSTMOutputs(LSTM):
    def forward(self, x, h, c):
        outs = []
        for t in range(x.shape[0]):
            gates = self.ih(x[t]) + self.hh(h)
            i, f, g, o = gates.chunk(4, 1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
            outs.append(h)
        return fusejit.stack(outs), h, c


def timed(fn) -> float:
    t0 = time.perf_counter()
    out = fn()
    if out[0].device.type == "cuda":
        out[0].cpu()  # wait for the device
    return time.perf_counter() - t0


def best_of(fns, reps: int) -> list:
    """Best time of each function, run alternately so that load on a shared machine hits
    both alike."""
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for k, fn in enumerate(fns):
            best[k] = min(best[k], timed(fn))
    return best


def run(device: str, steps: int, reps: int, cls=LSTM) -> tuple[float, float]:
    fusejit.manual_seed(0)
    model = cls(512, 512).to(device)
    x = fusejit.randn(steps, 64, 512, device=device)
    h = fusejit.zeros(64, 512, device=device)
    c = fusejit.zeros(64, 512, device=device)
    scripted = fusejit.script(cls(512, 512).to(device))
    scripted.load_state_dict(model.state_dict())
    want = model(x, h, c)
    got = scripted(x, h, c)  # compiles
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-4, atol=1e-5)
    graph = scripted.forward.graph
    loop = next(n for n in graph.nodes if n.op == "loop")
    cells = [n for n in loop.blocks[0].nodes if n.op == "fused" and
             {m.op for m in n.blocks[0].nodes} >= {"sigmoid", "tanh"}]  # fmt: skip
    assert len(cells) == 1, f"the pointwise cell is {len(cells)} kernels per step"
    print(
        f"[{device}] loop body: {count_fused(loop.blocks[0])} fused kernels per step, the "
        f"pointwise cell ({len(cells[0].blocks[0].nodes)} ops) one of them"
    )
    eager, fused = best_of([lambda: model(x, h, c), lambda: scripted(x, h, c)], reps)
    return eager / steps, fused / steps


def train_run(device: str, steps: int, reps: int, n: int = 512, batch: int = 64) -> dict:
    """A training step of the LSTM (``n`` inputs and hidden units) with stacked outputs, eager
    vs scripted: ms per step (min, median over ``reps`` alternating runs), the first scripted
    call's seconds (compiling the forward and backward graphs) and, on the CPU, the peak
    memory of one step."""
    fusejit.manual_seed(0)
    model = LSTMOutputs(n, n).to(device)
    scripted = fusejit.script(LSTMOutputs(n, n).to(device))
    scripted.load_state_dict(model.state_dict())
    x = fusejit.randn(steps, batch, n, device=device)
    h = fusejit.zeros(batch, n, device=device)
    c = fusejit.zeros(batch, n, device=device)
    target = fusejit.randn(steps, batch, n, device=device)
    opts = {id(m): fusejit.optim.SGD(m.parameters(), lr=1e-3) for m in (model, scripted)}

    def step(m):
        ys, _, _ = m(x, h, c)
        loss = ((ys - target) ** 2).mean()
        opts[id(m)].zero_grad()
        loss.backward()
        opts[id(m)].step()
        return (loss,)

    # same gradients (before any update): compile, then compare
    grads = []
    first = 0.0
    for m in (model, scripted):
        t0 = time.perf_counter()
        ys, _, _ = m(x, h, c)
        for p in m.parameters():
            p.grad = None
        ((ys - target) ** 2).mean().backward()
        grads.append([p.grad.cpu().numpy() for p in m.parameters()])
        first = time.perf_counter() - t0
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3 * float(np.abs(a).max()))
    times: list = [[], []]
    for _ in range(reps):
        for k, m in enumerate((model, scripted)):
            times[k].append(timed(lambda m=m: step(m)))
    out = {"eager": times[0], "scripted": times[1], "first": first}
    if device == "cpu":
        for name, m in (("eager", model), ("scripted", scripted)):
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            step(m)
            out[name + "_peak"] = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
    return out


def main_train(steps: int, reps: int, n: int, batch: int) -> None:
    devices = ["cpu"] + (["cuda"] if fusejit.is_cuda_available() else [])
    print(f"LSTM {n}->{n} training step (stacked outputs, MSE, backward, SGD), batch {batch}, "
          f"{steps} steps, float32, {reps} runs, ms per time step:")  # fmt: skip
    print(f"{'device':<8}{'eager min':>11}{'median':>9}{'scripted min':>14}{'median':>9}"
          f"{'speedup (min)':>15}{'first call s':>14}{'peak MB eager':>15}"
          f"{'scripted':>10}")  # fmt: skip
    for d in devices:
        r = train_run(d, steps, reps, n, batch)
        e, s = r["eager"], r["scripted"]
        peak = (f"{r['eager_peak'] / 2**20:>15.1f}{r['scripted_peak'] / 2**20:>10.1f}"
                if "eager_peak" in r else "")  # fmt: skip
        print(f"{d:<8}{min(e) / steps * 1e3:>11.3f}{statistics.median(e) / steps * 1e3:>9.3f}"
              f"{min(s) / steps * 1e3:>14.3f}{statistics.median(s) / steps * 1e3:>9.3f}"
              f"{min(e) / min(s):>14.2f}x{r['first']:>14.2f}{peak}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--outputs", action="store_true", help="also return the stacked outputs")
    ap.add_argument("--train", action="store_true", help="time a training step instead")
    ap.add_argument("--hidden", type=int, default=512, help="--train: inputs and hidden units")
    ap.add_argument("--batch", type=int, default=64, help="--train: batch size")
    a = ap.parse_args()
    if a.train:
        main_train(a.steps, a.reps, a.hidden, a.batch)
        return
    devices = ["cpu"] + (["cuda"] if fusejit.is_cuda_available() else [])
    cls = LSTMOutputs if a.outputs else LSTM
    rows = [(d, *run(d, a.steps, a.reps, cls)) for d in devices]
    what = " with stacked outputs" if a.outputs else ""
    print(f"\nLSTM 512->512{what}, batch 64, {a.steps} steps, float32 (best of {a.reps}), "
          "per step:")  # fmt: skip
    print(f"{'device':<8}{'eager ms':>10}{'scripted ms':>13}{'speedup':>9}")
    for d, e, s in rows:
        print(f"{d:<8}{e * 1e3:>10.3f}{s * 1e3:>13.3f}{e / s:>8.2f}x")


if __name__ == "__main__":
    main()
