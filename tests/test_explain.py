"""``fusejit.explain`` on whole models, and the ``OptimizeWarning`` a fallback to eager gives.

The model is ``fusejit.bench.models.NanoGPT`` at a small size (2 layers, 64 wide), the same
structure as its default (4 layers, 512 wide).
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import fusejit
from fusejit.bench.models import NanoGPT, generate

SMALL = dict(vocab=96, block_size=32, n_layer=2, n_head=4, n_embd=64)


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSEJIT_CACHE_DIR", str(tmp_path_factory.mktemp("fusejit-cache")))
    yield
    mp.undo()


def small_model(seed: int = 0) -> NanoGPT:
    fusejit.manual_seed(seed)
    return NanoGPT(**SMALL).eval()


class CheckedGPT(NanoGPT):
    """NanoGPT with an input check that reads a tensor's value: a whole-model fallback."""

    def forward(self, idx):
        if idx.max() >= self.wte.num_embeddings:  # reads a value: cannot be traced
            raise ValueError("token id out of range")
        return super().forward(idx)


CHECK_LINE = inspect.getsource(CheckedGPT.forward).splitlines()[3].strip()


def _line_of(fn, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


# ---- OptimizeWarning ------------------------------------------------------------------------
def test_whole_model_fallback_warns_once_with_the_users_line():
    fusejit.manual_seed(0)
    model = CheckedGPT(**SMALL).eval()
    opt = fusejit.optimize(model, warmup=1)
    idx = fusejit.randint(0, SMALL["vocab"], (2, 8))
    with pytest.warns(fusejit.OptimizeWarning) as rec:
        outs = [opt(idx) for _ in range(3)]
        opt(fusejit.randint(0, SMALL["vocab"], (2, 5)))  # a new signature, the same reason
    rec = [w for w in rec if issubclass(w.category, fusejit.OptimizeWarning)]
    assert len(rec) == 1
    w = rec[0]
    msg = str(w.message)
    assert "CheckedGPT" in msg and "runs eager" in msg and "data-dependent" in msg
    assert w.filename == __file__
    assert w.lineno == _line_of(CheckedGPT.forward, "idx.max()")
    assert "idx.max() >= self.wte.num_embeddings" in msg
    want = model(idx).numpy()
    for o in outs:
        np.testing.assert_array_equal(o.numpy(), want)  # eager: the very same values
    r = fusejit.explain(opt, as_dict=True)
    assert r["fallbacks"] and all(s["status"] == "eager" for s in r["signatures"])


def test_untraceable_op_warns_at_the_line_that_calls_it():
    def f(x):
        y = x * 2
        y.add_(1)  # in-place: cannot be recorded
        return y

    opt = fusejit.optimize(f, warmup=0)
    with pytest.warns(fusejit.OptimizeWarning, match="in-place op add_") as rec:
        assert opt(fusejit.ones(3)).tolist() == [3.0, 3.0, 3.0]
    assert rec[0].filename == __file__ and rec[0].lineno == _line_of(f, "y.add_(1)")


def test_quiet_fallbacks_and_strict():
    fusejit.manual_seed(0)
    model = CheckedGPT(**SMALL).eval()
    idx = fusejit.randint(0, SMALL["vocab"], (1, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails
        quiet = fusejit.optimize(model, warmup=0, warn=False)
        for _ in range(2):
            quiet(idx)
        filtered = fusejit.optimize(model, warmup=0)
        warnings.simplefilter("ignore", fusejit.OptimizeWarning)
        filtered(idx)
    assert fusejit.explain(quiet, as_dict=True)["fallbacks"]
    strict = fusejit.optimize(model, warmup=0, strict=True)
    with pytest.raises(fusejit.TraceError, match="data-dependent"):
        strict(idx)


def test_max_specializations_reached_warns_at_the_call():
    model = small_model()
    opt = (
        fusejit.optimize(model, warmup=0, max_specializations=2, dynamic=False)
        if ("dynamic" in inspect.signature(fusejit.optimize).parameters)
        else fusejit.optimize(model, warmup=0, max_specializations=2)
    )
    with pytest.warns(fusejit.OptimizeWarning, match="max_specializations=2 reached") as rec:
        out = generate(opt, fusejit.tensor([[1, 2]]), 4)
    rec = [w for w in rec if issubclass(w.category, fusejit.OptimizeWarning)]
    assert len(rec) == 1
    assert rec[0].filename == inspect.getsourcefile(generate)  # the line calling the model
    assert rec[0].lineno == _line_of(generate, "logits = model(context)")
    assert out.tolist() == generate(model, fusejit.tensor([[1, 2]]), 4).tolist()
    r = fusejit.explain(opt, as_dict=True)
    assert r["guard_failures"] and r["fallbacks"]


# ---- the trace check --------------------------------------------------------------------------
def _big(x):
    # 2 x 2048 x 1024 float32: its values hold more than check.FULL_CHECK_BYTES
    return (x @ x.transpose(-2, -1)[:, :, :1024]).softmax(-1) * 2 + 1


def test_large_trace_checks_regions_without_a_second_forward():
    calls = []

    def f(x):
        calls.append(1)
        return _big(x)

    x = fusejit.randn(2, 2048, 1024)
    t = fusejit.trace(f, (x,))
    assert len(calls) == 1 and t.check_kind == "regions"
    assert set(t.timings) == {"trace", "passes", "compile", "check"}
    assert all(v is not None and v >= 0 for v in t.timings.values())
    ref = np.asarray(_big(x).numpy(), np.float64)
    np.testing.assert_allclose(t(x).numpy(), ref, rtol=1e-5, atol=1e-5)
    calls.clear()
    assert fusejit.trace(f, (x,), check_trace=True).check_kind == "full" and len(calls) == 2
    calls.clear()
    t = fusejit.trace(f, (x,), check_trace=False)
    assert t.check_kind is None and t.timings["check"] is None and len(calls) == 1
    small = fusejit.trace(f, (fusejit.randn(2, 8, 1024),))
    assert small.check_kind == "full"


@pytest.mark.parametrize("size", [(2, 8, 1024), (2, 2048, 1024)], ids=["full", "regions"])
def test_trace_check_catches_a_wrong_kernel(monkeypatch, size):
    from fusejit.jit import runtime

    real = runtime._kernel_for

    def wrong(node, device):
        k = real(node, device)

        def off(*arrays):
            return [r * 1.01 + 0.5 for r in k(*arrays)]

        return off

    monkeypatch.setattr(runtime, "_kernel_for", wrong)
    with pytest.raises(fusejit.TraceError, match="trace check failed for _big") as e:
        fusejit.trace(_big, (fusejit.randn(*size),))
    assert ("fused region" in str(e.value)) == (size[1] == 2048)
