"""ONNX import speed: models exported from fusejit and loaded back (``fusejit.onnx.load``)
against the same model traced in fusejit, and row-heavy blocks against onnxruntime's CPU
provider, in one process; min / median of N calls (ms) and ratios.

    PYTHONPATH=. python bench/bench_onnx_import.py [--n 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import fusejit
import fusejit.nn as nn
import fusejit.nn.functional as Fn


def timed(fn, n: int) -> tuple[float, float]:
    fn()  # (compiled and warm)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return min(ts), statistics.median(ts)


def frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def row(name: str, a: tuple, b: tuple, what_a: str, what_b: str) -> None:
    print(
        f"{name:24} {what_a} {a[0]:8.3f} / {a[1]:8.3f}   {what_b} {b[0]:8.3f} / {b[1]:8.3f}"
        f"   ratio(min) {b[0] / a[0]:5.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    n = args.n
    tmp = tempfile.mkdtemp()
    print("ms, min / median; ratio = other / imported (>1: the import is faster)")

    # imported vs traced in fusejit
    from fusejit.bench.models import NanoGPT

    fusejit.manual_seed(0)
    mlp = frozen(nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 10)))
    gpt = frozen(NanoGPT(vocab=512, block_size=64, n_layer=2, n_head=4, n_embd=128))
    cases = [
        ("MLP 64x256", mlp, fusejit.randn(64, 256)),
        ("NanoGPT 2x64 (small)", gpt, fusejit.randint(0, 512, (2, 64))),
    ]
    for name, model, x in cases:
        path = os.path.join(tmp, "m.onnx")
        fusejit.onnx.export(model, path, x)
        imported = fusejit.onnx.load(path)
        traced = fusejit.trace(model, x)
        with fusejit.no_grad():
            a = timed(lambda imported=imported, x=x: imported(x), n)
            b = timed(lambda traced=traced, x=x: traced(x), n)
        row(name, a, b, "imported", "traced")

    # imported blocks vs onnxruntime
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: the block comparison is skipped")
        return
    ort.set_default_logger_severity(3)
    so = ort.SessionOptions()
    so.intra_op_num_threads = fusejit.get_num_threads()

    def gelu_chain(x):
        return Fn.gelu(x * 1.5 + 0.5) * fusejit.sigmoid(x) - x.tanh()

    def layer_norm(x, w, b):
        return Fn.layer_norm(x, (x.shape[-1],), w, b)

    rng = np.random.default_rng(0)
    x = fusejit.tensor(rng.standard_normal((2048, 1024)).astype(np.float32))
    w = fusejit.tensor(rng.standard_normal(1024).astype(np.float32))
    b = fusejit.tensor(rng.standard_normal(1024).astype(np.float32))
    blocks = [
        ("softmax 2048x1024", lambda x: Fn.softmax(x, -1), (x,)),
        ("layer norm 2048x1024", layer_norm, (x, w, b)),
        ("gelu chain 2048x1024", gelu_chain, (x,)),
    ]
    for name, fn, inputs in blocks:
        path = os.path.join(tmp, "b.onnx")
        fusejit.onnx.export(fusejit.trace(fn, inputs), path)
        imported = fusejit.onnx.load(path)
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
        a = timed(lambda imported=imported, inputs=inputs: imported(*inputs), n)
        o = timed(lambda sess=sess, feeds=feeds: sess.run(None, feeds), n)
        row(name, a, o, "imported", "onnxruntime")


if __name__ == "__main__":
    main()
