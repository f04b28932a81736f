"""fusejit.optimize and fusejit.explain: warmup, specialization, guards, fallbacks, weight
updates, threads, and the report of what happened."""

from __future__ import annotations

import logging
import threading
import warnings

import numpy as np
import pytest

import fusejit
from fusejit import nn
from fusejit.jit.optimize import OptimizedModule, OptimizeWarning


def A(t) -> np.ndarray:
    return np.asarray(t.numpy())


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    # one kernel cache for the module, so kernels shared by tests compile once
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSEJIT_CACHE_DIR", str(tmp_path_factory.mktemp("fusejit-cache")))
    yield
    mp.undo()


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty kernel cache (disk and memory): compile counts start at zero."""
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "cache"))
    fusejit.clear_cache(disk=False)
    yield
    fusejit.clear_cache(disk=False)


def chain8(x):
    return ((((x * 2 + 1).exp() - 3).tanh() * 0.5 + 0.25).sigmoid()).relu()


def gelu_fn(x):
    return fusejit.gelu(x * 1.5)


def adam(p, g, m, v, c1, c2, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step; c1, c2 are the bias corrections 1 - beta**t (0-d tensors)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr * (m / c1) / ((v / c2).sqrt() + eps)
    return p, m, v


class MLP(nn.Module):
    def __init__(self, d_in=8, d_hidden=16, d_out=4, p=0.0):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(p)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.fc1(x))))


def report(opt):
    return fusejit.explain(opt, as_dict=True)


def assert_same(a, b, rtol=1e-5, atol=1e-6):
    """Optimized equals eager: the same structure, dtypes and shapes, and close values."""
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y, rtol, atol)
        return
    assert a.dtype is b.dtype and a.shape == b.shape
    np.testing.assert_allclose(A(a), A(b), rtol=rtol, atol=atol)


# ---- equal to eager -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [fusejit.float32, fusejit.float64])
def test_chain_and_gelu_equal_eager(dtype):
    for fn in (chain8, gelu_fn):
        opt = fusejit.optimize(fn)
        for _ in range(5):
            x = fusejit.randn(257, dtype=dtype)
            assert_same(opt(x), fn(x))
        r = report(opt)
        assert r["specializations"] == 1
        assert r["signatures"][0]["status"] == "compiled"
        assert r["signatures"][0]["warmup_calls"] == 2


def test_adam_three_outputs_equal_eager():
    opt = fusejit.optimize(adam)
    p, m, v = fusejit.randn(100), fusejit.zeros(100), fusejit.zeros(100)
    pe, me, ve = p, m, v
    for t in range(1, 7):
        g = fusejit.randn(100)
        c1, c2 = fusejit.tensor(1 - 0.9**t), fusejit.tensor(1 - 0.999**t)
        out = opt(p, g, m, v, c1, c2)
        ref = adam(pe, g, me, ve, c1, c2)
        assert isinstance(out, tuple) and len(out) == 3
        assert_same(out, ref)
        p, m, v = out
        pe, me, ve = ref
    r = report(opt)
    sig = r["signatures"][0]
    assert sig["status"] == "compiled" and sig["shape_generic"]
    assert len(sig["fused_regions"]) >= 1 and r["specializations"] == 1
    # keyword arguments are part of the signature and work compiled too
    kw = fusejit.optimize(adam, warmup=0)
    assert_same(kw(p, g, m, v, c1, c2, lr=0.01), adam(p, g, m, v, c1, c2, lr=0.01))
    assert_same(kw(p, g, m, v, c1, c2, lr=0.01), adam(p, g, m, v, c1, c2, lr=0.01))
    assert report(kw)["signatures"][0]["status"] == "compiled"


def test_mlp_module_equals_eager_and_shares_state():
    fusejit.manual_seed(0)
    model = MLP().eval()
    opt = fusejit.optimize(model)
    assert isinstance(opt, OptimizedModule) and isinstance(opt, nn.Module)
    assert opt.fc1 is model.fc1 and list(opt.state_dict()) == list(model.state_dict())
    assert all(p is q for p, q in zip(opt.parameters(), model.parameters(), strict=True))
    assert "MLP(" in repr(opt)
    for _ in range(4):
        x = fusejit.randn(5, 8)
        assert_same(opt(x), model(x), rtol=1e-5, atol=1e-5)
    r = report(opt)
    assert r["kind"] == "module" and r["name"] == "MLP"
    sig = r["signatures"][0]
    assert sig["status"] == "compiled" and not sig["shape_generic"]
    # the matmuls run outside the fused kernels, each with its reason
    assert [u["op"] for u in sig["unfused"]].count("matmul") == 2
    assert all(u["reason"] for u in sig["unfused"])
    # the mode is forwarded
    opt.train()
    assert model.training and opt.training and model.fc1.training


# ---- warmup, signatures, re-specialization ---------------------------------------------------
def test_warmup_count_respected():
    for warmup in (0, 1, 3):
        calls = []

        def f(x, calls=calls):
            calls.append(1)
            return x * 2 + 1

        opt = fusejit.optimize(f, warmup=warmup)
        x = fusejit.ones(8)
        for _ in range(10):
            assert A(opt(x)).tolist() == [3.0] * 8
        # warmup eager calls, then one run while tracing, then compiled only
        assert len(calls) == warmup + 1
        assert report(opt)["signatures"][0]["warmup_calls"] == warmup


def test_respecialize_on_dtype_change():
    opt = fusejit.optimize(chain8, warmup=1)
    x32 = fusejit.randn(64)
    for _ in range(3):
        assert opt(x32).dtype is fusejit.float32
    x64 = x32.double()
    for _ in range(3):
        y = opt(x64)
        assert_same(y, chain8(x64))
    assert opt(x32).dtype is fusejit.float32  # the first plan is still in use
    r = report(opt)
    assert [s["status"] for s in r["signatures"]] == ["compiled", "compiled"]
    assert r["specializations"] == 2
    assert "dtype float64, traced with float32" in r["signatures"][1]["respecialized_because"]


def test_no_recompile_when_only_sizes_change(fresh_cache):
    opt = fusejit.optimize(chain8, warmup=0)
    opt(fusejit.randn(64))
    compiled = fusejit.cache_info()["compiled"]
    assert compiled >= 1
    for n in (10, 1000, 3, 64):
        x = fusejit.randn(n)
        assert_same(opt(x), chain8(x))
    assert fusejit.cache_info()["compiled"] == compiled
    r = report(opt)
    assert r["specializations"] == 1 and r["signatures"][0]["shape_generic"]
    # a new broadcast pattern (a size-1 dim) is a new signature; results stay right
    add = fusejit.optimize(lambda a, b: (a + b) * 2, warmup=0)
    a = fusejit.randn(3, 4)
    for b in (fusejit.randn(3, 4), fusejit.randn(1, 4), fusejit.randn(1, 4)):
        assert_same(add(a, b), (a + b) * 2)
    assert report(add)["specializations"] == 2


def test_guard_failure_respecializes_shape_specific_graph():
    opt = fusejit.optimize(lambda x: (x @ x.T).relu(), warmup=0)
    for n in (2, 3, 2, 3):
        x = fusejit.randn(n, 5)
        assert_same(opt(x), (x @ x.T).relu())
    r = report(opt)
    assert r["specializations"] == 2
    assert len(r["guard_failures"]) == 1
    assert "shape [3, 5], traced with [2, 5]" in r["guard_failures"][0]["reason"]
    assert "guard failure" in r["signatures"][1]["respecialized_because"]


def test_recompile_limit_runs_eager_with_one_warning():
    opt = fusejit.optimize(lambda x: (x @ x.T).relu(), warmup=0, max_specializations=2,
                           dynamic=False)  # fmt: skip
    shapes = [(2, 4), (3, 4), (4, 4), (5, 4), (4, 4)]
    outs = []
    with pytest.warns(OptimizeWarning, match="max_specializations=2") as rec:
        for s in shapes:
            x = fusejit.randn(*s)
            outs.append((opt(x), (x @ x.T).relu()))
    assert len(rec) == 1
    for got, want in outs:
        assert_same(got, want)
    r = report(opt)
    assert r["specializations"] == 2
    assert [s["status"] for s in r["signatures"]] == ["compiled", "compiled", "eager"]
    assert "max_specializations=2 reached" in r["fallbacks"][0]["reason"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt(fusejit.randn(6, 4))  # eager, silently


# ---- fallbacks ------------------------------------------------------------------------------
def branchy(x):
    if x.sum() > 0:
        return x * 2
    return x * 3


def test_data_dependent_control_flow_falls_back():
    opt = fusejit.optimize(branchy, warmup=1)
    pos, neg = fusejit.ones(4), -fusejit.ones(4)
    for _ in range(3):
        assert A(opt(pos)).tolist() == [2.0] * 4
        assert A(opt(neg)).tolist() == [-3.0] * 4  # not frozen into the positive branch
    r = report(opt)
    sig = r["signatures"][0]
    assert sig["status"] == "eager" and "data-dependent" in sig["reason"]
    assert "x.sum() > 0" in sig["reason"]  # the source line
    assert r["fallbacks"] and "compiled" not in [s["status"] for s in r["signatures"]]
    assert "runs eager: data-dependent" in fusejit.explain(opt)


def test_strict_raises_trace_error():
    opt = fusejit.optimize(branchy, warmup=1, strict=True)
    opt(fusejit.ones(4))  # warmup runs eager
    with pytest.raises(fusejit.TraceError, match="data-dependent"):
        opt(fusejit.ones(4))
    with pytest.raises(fusejit.TraceError, match="data-dependent"):
        opt(fusejit.ones(4))  # still hot, still raising

    def inplace(x):
        y = x * 2
        y.add_(1)
        return y

    with pytest.raises(fusejit.TraceError, match="in-place op add_"):
        fusejit.optimize(inplace, warmup=0, strict=True)(fusejit.ones(3))


def test_untraceable_functions_fall_back_with_reasons():
    def inplace(x):
        y = x * 2
        y.add_(1)
        return y

    def scalar_out(x):
        return x * 2, 3

    def gather(x, i):  # (a bool mask with another index: x[i] alone traces)
        return x[x > 1, None] * 2

    x = fusejit.arange(5.0)
    cases = [
        (inplace, (x,), "in-place op add_"),
        (scalar_out, (x,), "non-tensor value"),
        (gather, (x, fusejit.tensor([0, 2])), "bool mask among other indices"),
    ]
    for fn, args, why in cases:
        opt = fusejit.optimize(fn, warmup=0)
        for _ in range(2):
            got, want = opt(*args), fn(*args)
            if isinstance(want, tuple):
                assert got[1] == want[1]
                got, want = got[0], want[0]
            assert_same(got, want)
        r = report(opt)
        assert r["signatures"][0]["status"] == "eager", fn.__name__
        assert why in r["fallbacks"][0]["reason"], r["fallbacks"]


def test_dropout_in_training_mode_compiles_with_fresh_masks():
    """A train-mode dropout compiles: each call draws a fresh mask, the one eager code draws
    from the same generator state (warm-up, traced and compiled calls alike)."""
    fusejit.manual_seed(1)
    model = MLP(p=0.5)
    opt = fusejit.optimize(model, warmup=1)
    x = fusejit.randn(4, 8)
    fusejit.manual_seed(7)
    outs = [A(opt(x)) for _ in range(4)]
    fusejit.manual_seed(7)
    with fusejit.no_grad():
        want = [A(model(x)) for _ in range(4)]
    for got, w in zip(outs, want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
        assert (got == 0).sum() == (w == 0).sum()  # (the same mask)
    assert not np.array_equal(outs[2], outs[3])  # fresh masks on every call
    r = report(opt)
    assert r["signatures"][0]["status"] == "compiled"
    assert "rand_like" in r["signatures"][0]["graph"]
    opt.eval()
    for _ in range(3):
        assert_same(opt(x), model(x), atol=1e-5)
    r = report(opt)
    assert [s["status"] for s in r["signatures"]] == ["compiled", "compiled"]
    opt.train()  # back to the training signature: its plan, no new trace
    assert not np.array_equal(A(opt(x)), A(opt(x)))
    assert report(opt)["specializations"] == 2


# ---- weight updates -------------------------------------------------------------------------
def test_weight_updates_are_seen():
    fusejit.manual_seed(2)
    model = MLP().eval()
    opt = fusejit.optimize(model, warmup=1)
    x = fusejit.randn(3, 8)
    for _ in range(3):
        opt(x)
    assert report(opt)["signatures"][0]["status"] == "compiled"
    # in-place SGD-like updates (under no_grad: the parameters require grad)
    for _ in range(3):
        with fusejit.no_grad():
            for p in model.parameters():
                p.sub_(p * 0.1 + 0.01)
        assert_same(opt(x), model(x), atol=1e-5)
    # load_state_dict from another model
    other = MLP().eval()
    opt.load_state_dict(other.state_dict())
    assert_same(opt(x), other(x), atol=1e-5)
    assert report(opt)["specializations"] == 1  # all of it without retracing
    # a replaced parameter object: the stale plan is dropped and the new weight used
    model.fc2.weight = nn.Parameter(fusejit.ones(4, 16))
    assert_same(opt(x), model(x), atol=1e-5)
    # a dtype change of the parameters: new plans for float64
    opt.to(dtype=fusejit.float64)
    xd = x.double()
    y = opt(xd)
    assert y.dtype is fusejit.float64
    assert_same(y, model(xd), atol=1e-9)
    events = [e["event"] for e in report(opt)["events"]]
    assert events.count("invalidate") == 2


def inplace_double(x):
    y = x * 2
    y.add_(1)
    return y


# ---- threads --------------------------------------------------------------------------------
def test_threads_compile_each_kernel_once(fresh_cache):
    fusejit.manual_seed(3)
    model = MLP().eval()
    opt_chain = fusejit.optimize(chain8, warmup=1)
    opt_mlp = fusejit.optimize(model, warmup=1)
    # falls back to eager: its in-place op would raise if it ran while another thread traces
    opt_inplace = fusejit.optimize(inplace_double, warmup=1)
    n_threads, n_calls = 4, 12
    xs = [[fusejit.randn(4, 8) for _ in range(n_calls)] for _ in range(n_threads)]
    # references first: eager ops in a thread while another traces would be recorded into
    # that trace (the tracer hook is process-wide)
    want = [[(A(chain8(x)), A(model(x))) for x in row] for row in xs]
    # and the eager kernels of its derivative rules, which the joint graph's recording runs
    model(xs[0][0]).sum().backward()
    before = fusejit.cache_info()["compiled"]  # eager gelu/sigmoid use cached kernels too
    got = [[None] * n_calls for _ in range(n_threads)]
    errors = []
    barrier = threading.Barrier(n_threads)

    def work(t):
        try:
            barrier.wait()
            for i, x in enumerate(xs[t]):
                got[t][i] = (opt_chain(x), opt_mlp(x), opt_inplace(x))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for t in range(n_threads):
        for i in range(n_calls):
            c, m, d = got[t][i]
            np.testing.assert_allclose(A(d), A(xs[t][i]) * 2 + 1, rtol=1e-6)
            np.testing.assert_allclose(A(c), want[t][i][0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(A(m), want[t][i][1], rtol=1e-5, atol=1e-5)
    keys = set()
    for opt in (opt_chain, opt_mlp):
        r = report(opt)
        assert r["specializations"] == 1
        assert [s["status"] for s in r["signatures"]] == ["compiled"]
        for reg in r["signatures"][0]["fused_regions"]:
            keys.add(reg["kernel_key"])
            keys.update(reg["broadcast_kernels"])
            assert reg["origin"] == "compiled"
        # the model's parameters require grad: its forward and backward kernels too
        for tr in r["signatures"][0]["training"]:
            for k in tr["forward_kernels"] + tr["backward_kernels"]:
                keys.add(k["kernel_key"])
                keys.update(k["broadcast_kernels"])
    assert report(opt_inplace)["signatures"][0]["status"] == "eager"
    info = fusejit.cache_info()
    assert info["compiled"] - before == len(keys) and info["disk_hits"] == 0


def test_nested_optimized_calls():
    inner = fusejit.optimize(lambda x: x.exp() + 1, warmup=0)
    outer = fusejit.optimize(lambda x: inner(x) * 2, warmup=1)
    x = fusejit.randn(16)
    for _ in range(4):
        assert_same(outer(x), (x.exp() + 1) * 2)
    assert report(outer)["signatures"][0]["status"] == "compiled"
    # a Parameter passed as an argument works compiled
    p = nn.Parameter(fusejit.randn(16))
    assert_same(inner(p), p.exp() + 1)
    assert_same(inner(p), p.exp() + 1)


# ---- explain --------------------------------------------------------------------------------
def test_explain_reports_kernels_and_origins(fresh_cache):
    opt1 = fusejit.optimize(chain8, warmup=0)
    x = fusejit.randn(32)
    opt1(x)
    r1 = report(opt1)
    sig = r1["signatures"][0]
    traced = opt1._fusejit_executor._specs[0].traced
    assert len(sig["fused_regions"]) == traced.kernel_count() == 1
    reg = sig["fused_regions"][0]
    assert reg["ops"] == ["mul", "add", "exp", "sub", "tanh", "mul", "add", "sigmoid", "relu"]
    assert reg["origin"] == "compiled" and len(reg["kernel_key"]) == 32
    assert sig["unfused"] == [] and sig["compile_seconds"] > 0
    assert "graph(%x : float32[32])" in sig["graph"] and "fused" in sig["graph"]
    # the same kernel again: from memory; after the memory cache is cleared: from disk
    opt2 = fusejit.optimize(chain8, warmup=0)
    opt2(x)
    assert report(opt2)["signatures"][0]["fused_regions"][0]["origin"] == "memory"
    fusejit.clear_cache(disk=False)
    opt3 = fusejit.optimize(chain8, warmup=0)
    opt3(x)
    reg3 = report(opt3)["signatures"][0]["fused_regions"][0]
    assert reg3["origin"] == "disk" and reg3["kernel_key"] == reg["kernel_key"]
    text = fusejit.explain(opt1)
    for part in ("chain8 (function)", "signature 1: (float32[32])", "[compiled, shape-generic]",
                 "fused regions: 1", reg["kernel_key"] + " (compiled)", "unfused nodes: 0",
                 "events:", "1. specialize"):  # fmt: skip
        assert part in text, part
    # a TracedFunction is explained too
    assert fusejit.explain(traced, as_dict=True)["signatures"][0]["fused_regions"][0]["ops"]
    with pytest.raises(TypeError):
        fusejit.explain(chain8)


def test_explain_lists_unfused_nodes_guard_failures_and_fallbacks():
    opt = fusejit.optimize(lambda x: (x @ x.T).relu() + 1, warmup=0, max_specializations=1)
    with pytest.warns(OptimizeWarning):
        for n in (2, 3):
            opt(fusejit.randn(n, 3))
    text = fusejit.explain(opt)
    assert "matmul: matmul op (only elementwise ops fuse)" in text
    assert "guard_failure (float32[2, 3])" in text
    assert "runs eager: max_specializations=1 reached" in text
    r = report(opt)
    assert r["guard_failures"] and r["fallbacks"]
    assert [e["event"] for e in r["events"]] == ["specialize", "guard_failure", "limit"]


def test_explain_says_why_an_op_is_a_kernel_of_its_own():
    # on cuda, row fusion leaves the reader of a whole tensor's reduction to a second kernel
    # (tests/test_reduction_fusion.py); explain shows the reason beside the fused regions
    t = fusejit.trace(lambda x: x.exp() + 1, (fusejit.randn(4),))
    why = "reads the whole tensor's mean and the tensor again"
    t.graph.notes["second_kernel"] = [("sub", why)]
    assert f"(a kernel of its own) sub: {why}" in fusejit.explain(t)
    sig = fusejit.explain(t, as_dict=True)["signatures"][0]
    assert sig["second_kernel"] == [{"op": "sub", "reason": why}]


def test_debug_logging(monkeypatch, caplog):
    monkeypatch.setenv("FUSEJIT_DEBUG", "1")
    opt = fusejit.optimize(branchy, warmup=0)
    with caplog.at_level(logging.INFO, logger="fusejit"):
        opt(fusejit.ones(2))
    assert any("fallback" in m and "data-dependent" in m for m in caplog.messages)


def test_decorator_forms_and_signature():
    import inspect

    @fusejit.optimize
    def f(x, scale: float = 2.0):
        """Doc."""
        return x * scale

    @fusejit.optimize(warmup=0)
    def g(x):
        return x + 1

    assert f.__name__ == "f" and f.__doc__ == "Doc."
    assert list(inspect.signature(f).parameters) == ["x", "scale"]
    assert A(f(fusejit.ones(2), 3.0)).tolist() == [3.0, 3.0]
    assert A(g(fusejit.ones(2))).tolist() == [2.0, 2.0]
    with pytest.raises(TypeError):
        fusejit.optimize(3)


def test_function_closing_over_a_module_tracks_its_mode():
    fusejit.manual_seed(4)
    model = MLP(p=0.5).eval()
    opt = fusejit.optimize(lambda x: model(x) * 1.0, warmup=0)
    x = fusejit.randn(3, 8)
    for _ in range(2):
        assert_same(opt(x), model(x), atol=1e-5)
    assert report(opt)["signatures"][0]["status"] == "compiled"
    model.train()  # the traced eval-mode plan has no dropout: it must not be used now
    a, b = A(opt(x)), A(opt(x))
    assert not np.array_equal(a, b)
    statuses = [s["status"] for s in report(opt)["signatures"]]
    assert statuses == ["compiled", "compiled"]  # (the train-mode plan draws dropout masks)
    model.eval()
    assert_same(opt(x), model(x), atol=1e-5)
    assert report(opt)["specializations"] == 2  # the eval plan is reused


def test_docstring_examples():
    import doctest

    from fusejit.jit import explain as explain_mod
    from fusejit.jit import optimize as optimize_mod

    for mod in (optimize_mod, explain_mod):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


@pytest.mark.cuda
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="needs an NVIDIA GPU with cupy")
def test_optimized_module_on_cuda():
    model = MLP().eval().to("cuda:0")
    opt = fusejit.optimize(model, warmup=1)
    x = fusejit.randn(4, 8, device="cuda:0")
    for _ in range(3):
        y = opt(x)
        assert y.device.type == "cuda"
        assert_same(y, model(x), atol=1e-5)
    assert report(opt)["signatures"][0]["status"] == "compiled"


def test_a_buffer_written_wrong_is_refused_even_where_rounding_is_asked(monkeypatch):
    # the state check asks float64 only whether rounding explains a difference: a compiled
    # run whose running mean is off by 0.1 (eager's and float64's agree to 1e-7) still runs
    # eagerly, with the reason
    from fusejit.jit import optimize as opt_mod

    real = opt_mod._gated
    bn = nn.BatchNorm1d(4)

    def wrong(fn, args):
        out = real(fn, args)
        bn.running_mean._data += 0.1  # (after the compiled run's own write)
        return out

    monkeypatch.setattr(opt_mod, "_gated", wrong)
    fusejit.manual_seed(0)
    x = fusejit.randn(8, 4)
    ob = fusejit.optimize(bn, warmup=0)
    with pytest.warns(OptimizeWarning, match="buffer of shape \\[4\\] written in place.*float64"):
        ob(x)
    (sig,) = fusejit.explain(ob, as_dict=True)["signatures"]
    assert sig["status"] == "eager"
