"""ONNX import speed (issue #22, "Import performance"): models and row-heavy blocks loaded with
``fusejit.onnx.load`` against the same thing traced with ``fusejit.trace`` and against
onnxruntime's CPU session on the same ``.onnx`` file, all in one process.

1. Models: an MLP (batch 256, 1024 -> 1024 -> 1024 -> 1024, GELU, LayerNorm) and the
   nanoGPT-style model (``fusejit.bench.models.NanoGPT``, a small config and the default one),
   exported with ``fusejit.onnx.export`` and loaded back, on fusejit's default threads and on
   one (numpy's BLAS too) against onnxruntime on one intra-op thread. Target: imported >= traced
   (ratio traced / imported >= ~1.0 within noise); onnxruntime reported too.
2. Blocks (softmax, layer norm, the tanh-GELU chain written out as exporters write it,
   ``F.gelu``, RMSNorm, bias + GELU) on one R x N float32 matrix, each as two ONNX models: one
   exported from a fusejit function, and one written with ``onnx.helper`` using ONNX's own ops
   (Softmax, LayerNormalization, Gelu, RMSNormalization, opset 23) where they exist. Each model
   runs through ``fusejit.onnx.load`` and through onnxruntime, with its default session options
   (its default threads) and with ``intra_op_num_threads=1`` against fusejit on one thread
   (``fusejit.set_num_threads(1)``). Target: fusejit faster than onnxruntime. onnxruntime's
   threads do not spin between runs (``ORT_SPIN``: spinning took fusejit's second core and
   did not make onnxruntime faster); ``--ort-spin`` keeps its default.

Outputs are compared (allclose) before anything is timed. Timing: after warm-up calls, each
round calls every contender of a row ``--number`` times in turn (alternating, so load on a
shared machine hits all of them alike; the order rotates each round and each batch starts after
a short pause, as spinning threads of the one before slow the next); min and median of the
per-call time over ``--repeat`` rounds are printed, ratios from the medians (> 1: the imported
model is faster). The first call of each imported model (load + trace + compile, with the
kernel cache as found: ``FUSEJIT_CACHE_DIR``) is printed as well.

    PYTHONPATH=. python bench/bench_onnx_import.py                 # everything, 2048 x 2048 blocks
    PYTHONPATH=. python bench/bench_onnx_import.py --quick         # small sizes, few rounds
    PYTHONPATH=. python bench/bench_onnx_import.py --size 4096 4096 --repeat 15 --only blocks
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

try:
    import fusejit
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit

import fusejit.nn as nn
import fusejit.nn.functional as F
from fusejit.bench.harness import cpu_name

OPSET_NATIVE = 23  # RMSNormalization is opset 23; Gelu 20; LayerNormalization 17


def platform_line() -> str:
    import numba

    try:
        import onnxruntime as ort

        ort_v = ort.__version__
    except ImportError:
        ort_v = "not installed"
    la = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{cpu_name()}, {os.cpu_count()} CPUs, load average {la}; Python "
        f"{platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"onnxruntime {ort_v}; fusejit threads {fusejit.get_num_threads()}"
    )


def set_threads(n: int) -> None:
    """fusejit's CPU kernels (and numpy's BLAS, with threadpoolctl) on ``n`` threads."""
    try:
        fusejit.set_num_threads(n)
    except ImportError:  # no threadpoolctl: the kernels' threads only
        from fusejit.backends import cpu_kernels

        cpu_kernels.set_threads(n)


def bench(fns: dict, repeat: int, number: int, warmup: int = 2, settle: float = 0.01) -> dict:
    """{name: (min ms, median ms)} per call, the contenders alternating round by round.

    The order rotates each round and each batch starts after a ``settle`` s pause: on a busy
    machine, threads of one contender (onnxruntime's intra-op pool, OpenBLAS) were seen to slow
    whatever ran next by up to 30x (the MLP of ``--quick``: 12 ms right after onnxruntime's
    default session, 0.4 ms otherwise).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    ts: dict = {k: [] for k in fns}
    for i in range(repeat):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            fn = fns[k]
            time.sleep(settle)
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            ts[k].append((time.perf_counter() - t0) * 1e3 / number)
    return {k: (min(v), statistics.median(v)) for k, v in ts.items()}


def first_call(path: str, inputs) -> tuple:
    """The imported module, its load time and its first call's time (trace + compile), ms."""
    t0 = time.perf_counter()
    mod = fusejit.onnx.load(path)
    t1 = time.perf_counter()
    mod(*inputs)
    t2 = time.perf_counter()
    return mod, (t1 - t0) * 1e3, (t2 - t1) * 1e3


def as_numpy(out) -> list:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() if hasattr(o, "numpy") else np.asarray(o) for o in outs]


def check(name: str, got, want, rtol: float = 1e-4, atol: float = 1e-4) -> None:
    for g, w in zip(as_numpy(got), as_numpy(want), strict=True):
        if g.shape != w.shape or not np.allclose(g, w, rtol=rtol, atol=atol):
            err = np.abs(g.astype(np.float64) - w).max() if g.shape == w.shape else "shape"
            raise SystemExit(f"{name}: outputs differ ({g.shape} vs {w.shape}, max err {err})")


# onnxruntime's intra-op threads spin after each run by default. In one process with fusejit
# they were measured taking the second core from fusejit's next call (F.gelu on 2048 x 2048,
# two threads: fusejit 2.60 ms median alone, 4.98 beside a spinning session, 2.56 beside one
# that does not spin), while onnxruntime's own time did not gain from spinning (2.71 / 3.18 ms
# min / median spinning, 2.66 / 2.96 not). Sessions are made without spinning, as onnxruntime
# advises for a process that runs other threaded work; --ort-spin keeps its default.
ORT_SPIN = False


def ort_session(path: str, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    if not ORT_SPIN:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_fn(sess, arrays):
    feeds = {i.name: a for i, a in zip(sess.get_inputs(), arrays, strict=True)}
    return lambda: sess.run(None, feeds)


HEADER = (
    f"{'workload':34s} {'shape':>14s} {'threads':>7s} {'imported ms':>17s} {'traced ms':>17s} "
    f"{'onnxruntime ms':>17s} {'tr/imp':>6s} {'ort/imp':>7s}"
)


def fmt(t) -> str:
    return f"{t[0]:8.2f}/{t[1]:8.2f}" if t else f"{'-':>17s}"


def print_row(name, shape, threads, r: dict) -> None:
    imp, tr, ox = r.get("imported"), r.get("traced"), r.get("onnxruntime")
    ratio_tr = f"{tr[1] / imp[1]:6.2f}" if tr else f"{'-':>6s}"
    ratio_ox = f"{ox[1] / imp[1]:7.2f}" if ox else f"{'-':>7s}"
    print(
        f"{name:34s} {shape:>14s} {threads:>7s} {fmt(imp)} {fmt(tr)} {fmt(ox)} "
        f"{ratio_tr} {ratio_ox}",
        flush=True,
    )


# -- 1. models ------------------------------------------------------------------------------


def frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def mlp(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width),
        nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width),
        nn.Linear(width, width),
    )  # fmt: skip


def models(args, tmp: str, firsts: list) -> None:
    from fusejit.bench.models import NanoGPT

    fusejit.manual_seed(0)
    default_threads = fusejit.get_num_threads()
    if args.quick:
        cases = [
            ("MLP 256 x 256>256>256", mlp(256), fusejit.randn(64, 256), 1e-4),
            ("NanoGPT small (2L, 128 wide)",
             NanoGPT(vocab=512, block_size=64, n_layer=2, n_head=4, n_embd=128),
             fusejit.randint(0, 512, (2, 64)), 1e-3),
        ]  # fmt: skip
    else:
        cases = [
            ("MLP 1024>1024>1024>1024", mlp(1024), fusejit.randn(256, 1024), 1e-4),
            ("NanoGPT small (2L, 128 wide)",
             NanoGPT(vocab=512, block_size=128, n_layer=2, n_head=4, n_embd=128),
             fusejit.randint(0, 512, (4, 128)), 1e-3),
            ("NanoGPT default (4L, 512 wide)", NanoGPT(),
             fusejit.randint(0, 8192, (1, 256)), 1e-3),
        ]  # fmt: skip
    for name, model, x, tol in cases:
        model = frozen(model)
        path = os.path.join(tmp, "model.onnx")
        with fusejit.no_grad():
            fusejit.onnx.export(model, path, x)
            imported, t_load, t_first = first_call(path, (x,))
            t0 = time.perf_counter()
            traced = fusejit.trace(model, x)
            traced(x)
            t_traced = (time.perf_counter() - t0) * 1e3
            firsts.append((name, t_load, t_first, t_traced))
            xa = x.numpy()
            want = model(x)
            check(name + " (imported)", imported(x), want, tol, tol)
            check(name + " (traced)", traced(x), want, tol, tol)
            for threads in (None, 1):
                set_threads(threads or default_threads)
                sess = ort_session(path, threads)
                check(name + " (onnxruntime)", sess.run(None, {sess.get_inputs()[0].name: xa}),
                      want, tol, tol)  # fmt: skip
                r = bench(
                    {
                        "imported": lambda: imported(x),  # noqa: B023
                        "traced": lambda: traced(x),  # noqa: B023
                        "onnxruntime": ort_fn(sess, [xa]),
                    },
                    args.repeat,
                    args.number,
                )
                shape = "x".join(map(str, x.shape))
                print_row(name, shape, "default" if threads is None else "1", r)
            set_threads(default_threads)


# -- 2. blocks ------------------------------------------------------------------------------

GELU_C = 0.7978845608028654  # sqrt(2 / pi)


def _gelu_tanh_chain(x):
    return x * 0.5 * (1.0 + fusejit.tanh(GELU_C * (x + 0.044715 * x * x * x)))


def _rms_norm(x, w):
    return x * fusejit.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w


FUSEJIT_BLOCKS = {
    "softmax": (lambda x: F.softmax(x, -1), ("x",)),
    "layer norm": (lambda x, w, b: F.layer_norm(x, x.shape[-1:], w, b), ("x", "w", "b")),
    "gelu tanh chain": (_gelu_tanh_chain, ("x",)),
    "F.gelu (erf)": (lambda x: F.gelu(x), ("x",)),
    "RMSNorm": (_rms_norm, ("x", "w")),
    "bias + gelu (tanh)": (lambda x, b: F.gelu(x + b, approximate="tanh"), ("x", "b")),
}


def native_model(kind: str, n: int):
    """The block written with ONNX's own ops (``onnx.helper``), input names as in
    ``FUSEJIT_BLOCKS``."""
    from onnx import TensorProto, helper, numpy_helper

    def const(name, v):
        return numpy_helper.from_array(np.asarray(v, np.float32), name)

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["R", n])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["R", n])
    N = helper.make_node
    inits = []
    if kind == "softmax":
        nodes, ins = [N("Softmax", ["x"], ["y"], axis=-1)], [x]
    elif kind == "layer norm":
        nodes = [N("LayerNormalization", ["x", "w", "b"], ["y"], axis=-1, epsilon=1e-5)]
        ins = [x, w, b]
    elif kind == "F.gelu (erf)":
        nodes, ins = [N("Gelu", ["x"], ["y"])], [x]
    elif kind == "bias + gelu (tanh)":
        nodes = [N("Add", ["x", "b"], ["h"]), N("Gelu", ["h"], ["y"], approximate="tanh")]
        ins = [x, b]
    elif kind == "RMSNorm":
        nodes = [N("RMSNormalization", ["x", "w"], ["y"], axis=-1, epsilon=1e-6)]
        ins = [x, w]
    elif kind == "gelu tanh chain":  # as exporters write it: Pow, Mul, Add, Tanh
        inits = [const("three", 3.0), const("k", 0.044715), const("c", GELU_C),
                 const("one", 1.0), const("half", 0.5)]  # fmt: skip
        nodes = [
            N("Pow", ["x", "three"], ["x3"]), N("Mul", ["x3", "k"], ["kx3"]),
            N("Add", ["x", "kx3"], ["inner"]), N("Mul", ["inner", "c"], ["scaled"]),
            N("Tanh", ["scaled"], ["t"]), N("Add", ["t", "one"], ["t1"]),
            N("Mul", ["x", "half"], ["xh"]), N("Mul", ["xh", "t1"], ["y"]),
        ]  # fmt: skip
        ins = [x]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(nodes, f"native_{kind}", ins, [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET_NATIVE)])
    model.ir_version = 10  # (what onnxruntime 1.2x reads)
    return model


def reference(kind: str, a: dict) -> np.ndarray:
    """float64 numpy reference of a block."""
    from math import erf

    x = a["x"].astype(np.float64)
    if kind == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    if kind == "layer norm":
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * a["w"] + a["b"]
    if kind == "RMSNorm":
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * a["w"]
    if kind == "F.gelu (erf)":
        return x * 0.5 * (1 + np.vectorize(erf)(x / np.sqrt(2)))
    if kind == "bias + gelu (tanh)":
        x = x + a["b"]
    return x * 0.5 * (1 + np.tanh(GELU_C * (x + 0.044715 * x**3)))


def blocks(args, tmp: str, firsts: list) -> None:
    import onnx

    r_, n_ = args.size
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.standard_normal((r_, n_), dtype=np.float32),
        "w": (1 + 0.1 * rng.standard_normal(n_)).astype(np.float32),
        "b": (0.1 * rng.standard_normal(n_)).astype(np.float32),
    }
    tensors = {k: fusejit.tensor(v) for k, v in arrays.items()}
    small = {k: v[:64] if k == "x" else v for k, v in arrays.items()}  # the reference's rows
    default_threads = fusejit.get_num_threads()
    for kind, (fn, names) in FUSEJIT_BLOCKS.items():
        ins = tuple(tensors[k] for k in names)
        ref = reference(kind, small)
        exported = os.path.join(tmp, "exported.onnx")
        fusejit.onnx.export(fusejit.trace(fn, ins), exported)
        native = os.path.join(tmp, "native.onnx")
        onnx.save(native_model(kind, n_), native)
        for variant, path in (("exported", exported), ("onnx ops", native)):
            name = f"{kind} [{variant}]"
            imported, t_load, t_first = first_call(path, ins)
            firsts.append((name, t_load, t_first, None))
            feeds = [arrays[k] for k in names]
            for threads in (None, 1):
                set_threads(threads or default_threads)
                sess = ort_session(path, threads)
                got = as_numpy(imported(*ins))[0]
                check(name + " (imported)", got[:64], ref, 2e-5, 2e-5)
                run_ort = ort_fn(sess, feeds)
                want = run_ort()[0]
                check(name + " (onnxruntime)", want[:64], ref, 2e-5, 2e-5)
                check(name + " (imported vs onnxruntime)", got, want, 2e-5, 2e-5)
                fns = {"imported": lambda: imported(*ins), "onnxruntime": run_ort}  # noqa: B023
                if variant == "exported":
                    traced = fusejit.trace(fn, ins)
                    fns["traced"] = lambda: traced(*ins)  # noqa: B023
                r = bench(fns, args.repeat, args.number)
                print_row(name, f"{r_}x{n_}", "default" if threads is None else "1", r)
        set_threads(default_threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    ap.add_argument("--repeat", type=int, default=None, help="rounds (default 10, quick 3)")
    ap.add_argument("--number", type=int, default=None, help="calls per round (default 3)")
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("R", "N"),
                    help="the blocks' matrix (default 2048 2048, quick 512 1024)")  # fmt: skip
    ap.add_argument("--only", choices=("models", "blocks"), default=None)
    ap.add_argument("--ort-spin", action="store_true",
                    help="leave onnxruntime's intra-op threads spinning after each run (its "
                         "default; see ORT_SPIN)")  # fmt: skip
    args = ap.parse_args()
    global ORT_SPIN
    ORT_SPIN = args.ort_spin
    args.repeat = args.repeat or (3 if args.quick else 10)
    args.number = args.number or (2 if args.quick else 3)
    args.size = args.size or ([512, 1024] if args.quick else [2048, 2048])
    try:
        import onnxruntime as ort
    except ImportError:
        msg = "this benchmark needs onnx and onnxruntime (pip install fusejit[test])"
        raise SystemExit(msg) from None
    ort.set_default_logger_severity(3)
    print(platform_line())
    print("ms per call, min/median over rounds; ratios of medians (> 1: the imported model "
          "is faster); threads: fusejit's and onnxruntime's intra-op threads")  # fmt: skip
    print(HEADER, flush=True)
    firsts: list = []
    tmp = tempfile.mkdtemp(prefix="fusejit_onnx_bench_")
    if args.only in (None, "models"):
        models(args, tmp, firsts)
    if args.only in (None, "blocks"):
        blocks(args, tmp, firsts)
    print("\nfirst call of the imported models: load ms, first call ms (trace + compile)"
          ", and fusejit.trace + its first call ms for the models")  # fmt: skip
    for name, t_load, t_first, t_traced in firsts:
        extra = f"   traced: {t_traced:9.1f}" if t_traced is not None else ""
        print(f"{name:34s} load {t_load:8.1f}   first call {t_first:9.1f}{extra}")
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
