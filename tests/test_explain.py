"""``fusejit.explain`` on whole models, and the ``OptimizeWarning`` a fallback to eager gives.

The model is ``fusejit.bench.models.NanoGPT`` at a small size (2 layers, 128 wide), the same
structure as its default (4 layers, 512 wide).
"""

from __future__ import annotations

import inspect
import re
import shutil
import warnings

import numpy as np
import pytest

import fusejit
from fusejit.bench.models import NanoGPT, generate

SMALL = dict(vocab=96, block_size=32, n_layer=2, n_head=4, n_embd=128)


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSEJIT_CACHE_DIR", str(tmp_path_factory.mktemp("fusejit-cache")))
    yield
    mp.undo()


def small_model(seed: int = 0) -> NanoGPT:
    fusejit.manual_seed(seed)
    # an inference model: with parameters that require grad, trace and optimize also build
    # the backward (tests/test_joint.py), which explain then shows as well
    return NanoGPT(**SMALL).eval().requires_grad_(False)


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


def test_unhashable_argument_warns_once():
    opt = fusejit.optimize(lambda x, opts: x * opts["k"], warmup=0)
    with pytest.warns(fusejit.OptimizeWarning, match="unhashable argument") as rec:
        for _ in range(3):
            assert opt(fusejit.ones(2), {"k": 3.0}).tolist() == [3.0, 3.0]
    assert len([w for w in rec if issubclass(w.category, fusejit.OptimizeWarning)]) == 1
    assert rec[0].filename == __file__


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
    assert len(calls) == 1
    assert t.check_kind == "regions: 1 distinct kernels checked, 0 skipped"
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


def test_region_check_with_infinities_and_nans():
    def f(x):
        return (x * 100).exp() - (x * 100).exp() * 0.5  # inf - inf: nan where exp overflows

    x = fusejit.randn(2, 2048, 1024)
    t = fusejit.trace(f, (x,))
    assert t.check_kind.startswith("regions: 1 distinct kernels checked")
    got, want = t(x).numpy(), f(x).numpy()
    assert np.isnan(want).any() and np.isfinite(want).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-30, equal_nan=True)  # subnormals


def test_trace_of_a_large_model_checks_every_kernel_once():
    # one layer of the default width and vocabulary: its weights alone hold 36 MiB
    fusejit.manual_seed(0)
    model = NanoGPT(n_layer=1).eval()
    calls = []

    def run(i):
        calls.append(1)
        return model(i)

    idx = fusejit.randint(0, 8192, (1, 16))
    t = fusejit.trace(run, (idx,))
    assert len(calls) == 1
    assert "%h.0.attn.c_attn.weight" in str(t.graph)  # named through the module it called
    regions = fusejit.explain(t, as_dict=True)["signatures"][0]["fused_regions"]
    n = len({g["kernel_key"] for g in regions})
    assert t.check_kind == f"regions: {n} distinct kernels checked, 0 skipped"
    np.testing.assert_allclose(t(idx).numpy(), model(idx).numpy(), rtol=1e-4, atol=1e-4)


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


# ---- explain ----------------------------------------------------------------------------------
def _summary_of(text: str) -> list:
    lines = text.splitlines()
    return lines[: lines.index("details:")]


def _check_model_report(r: dict, model, text: str) -> None:
    sig = r["signatures"][0]
    # every parameter and buffer the forward reads is named by its module path
    names = {c["name"] for c in sig["captured"]}
    want = {k for k, _ in model.named_parameters()} | {k for k, _ in model.named_buffers()}
    assert want <= names
    assert "%h.0.attn.c_attn.weight : float32[384, 128] (captured)" in sig["graph"]
    assert "%h.1.attn.bias : float32[1, 1, 32, 32] (captured)" in sig["graph"]
    # one kernel key: the graph shows each fused node by its region's key, in order
    regions = sig["fused_regions"]
    shown = re.findall(r"fused\[region=(\d+), kernel=(\w+)", sig["graph"])
    assert [(int(i), k) for i, k in shown] == [(g["index"], g["kernel_key"]) for g in regions]
    assert "kernel_key=" not in sig["graph"]
    assert all(len(g["kernel_key"]) == 32 for g in regions)
    # unfused nodes grouped by reason with counts: counted again from the optimized graph
    groups = r["summary"]["unfused_by_reason"]
    assert len({g["reason"] for g in groups}) == len(groups)
    assert sum(g["count"] for g in groups) == len(sig["unfused"]) == r["summary"]["unfused"]
    ops = {}
    for g in groups:
        for op, n in g["ops"].items():
            ops[op] = ops.get(op, 0) + n
    n_matmul = sum(1 for line in sig["graph"].splitlines() if "= matmul[" in line)
    assert ops["matmul"] == n_matmul == 2 * 6 + 1  # 6 per block (4 linears), and the head
    summary = _summary_of(text)
    assert len(summary) <= 60, "\n".join(summary)
    for g in groups:  # each reason once in the summary, with its count
        hits = [line for line in summary if g["reason"] in line]
        assert len(hits) == 1 and hits[0].split()[0] == str(g["count"])
    assert len(text.splitlines()) < 40 + len(sig["graph"].splitlines()) + len(regions) * 2 + len(
        groups
    )  # the details: the graph, one line a region (and its broadcast kernel), a reason a line


def test_explain_of_an_optimized_model():
    model = small_model()
    opt = fusejit.optimize(model, warmup=1)
    idx = fusejit.randint(0, SMALL["vocab"], (2, 12))
    for _ in range(3):
        np.testing.assert_allclose(opt(idx).numpy(), model(idx).numpy(), rtol=1e-4, atol=1e-4)
    text = fusejit.explain(opt)
    r = fusejit.explain(opt, as_dict=True)
    assert r["summary"]["statuses"] == {"compiled": 1}
    assert r["summary"]["fallbacks"] == [] and "fallbacks to eager: none" in text
    _check_model_report(r, model, text)
    parts = r["signatures"][0]["timings"]
    assert set(parts) == {"trace", "passes", "compile", "first run", "check"}
    assert all(v >= 0 for v in parts.values())
    assert f"compile time: {sum(parts.values()):.3f} s = trace" in text


def test_explain_of_a_traced_model_and_its_archive(tmp_path):
    model = small_model()
    idx = fusejit.randint(0, SMALL["vocab"], (1, 10))
    traced = fusejit.trace(model, (idx,))
    text = fusejit.explain(traced)
    r = fusejit.explain(traced, format="dict")
    assert r["kind"] == "traced function"
    _check_model_report(r, model, text)
    assert set(r["summary"]["timings"]) == {"trace", "passes", "compile", "check"}
    assert r["signatures"][0]["check"] == "full"
    # the graph printout and the code of the traced function name them too, and show the
    # kernels by the keys of explain's region list
    assert "%h.0.mlp.c_fc.weight" in str(traced.graph)
    keys = [g["kernel_key"] for g in r["signatures"][0]["fused_regions"]]
    assert re.findall(r"kernel=(\w+)", str(traced.graph)) == keys
    assert re.findall(r"# fused region (\w+)", traced.code) == keys
    path = tmp_path / "gpt.fjz"
    fusejit.save(traced, path)
    loaded = fusejit.load(path)
    rl = fusejit.explain(loaded, as_dict=True)
    assert rl["kind"] == "loaded traced" and rl["summary"]["timings"] == {}
    _check_model_report(rl, model, fusejit.explain(loaded))
    np.testing.assert_array_equal(loaded(idx).numpy(), traced(idx).numpy())


def test_explain_groups_guard_failures_and_fallbacks():
    model = small_model()
    kw = {"dynamic": False} if "dynamic" in inspect.signature(fusejit.optimize).parameters else {}
    opt = fusejit.optimize(model, warmup=0, max_specializations=2, warn=False, **kw)
    generate(opt, fusejit.tensor([[1, 2]]), 8)
    r = fusejit.explain(opt, as_dict=True)
    sm = r["summary"]
    # lengths 2 and 3 compiled; 4 hit the limit; 4..9 (6 calls) run eager on its pattern
    assert sm["statuses"] == {"compiled": 2, "eager": 1}
    assert r["signatures"][2]["eager_calls"] == 6
    assert [g["count"] for g in sm["fallbacks"]] == [1]
    assert "max_specializations=2 reached" in sm["fallbacks"][0]["reason"]
    # two guard failures that differ in their sizes only: one group of 2
    assert [g["reason"] for g in r["guard_failures"]] == [
        "input 0: shape [1, 3], traced with [1, 2]",
        "input 0: shape [1, 4], traced with [1, 3]",
    ]
    assert [g["count"] for g in sm["guard_failures"]] == [2]
    summary = _summary_of(fusejit.explain(opt))
    assert sum("max_specializations=2 reached" in line for line in summary) == 2  # sig, reason
    assert sum("traced with" in line for line in summary) == 3  # and one guard failure line
    assert "  guard failures: 2" in summary
    assert "       2  e.g. input 0: shape [1, 3], traced with [1, 2]" in summary
    assert len(summary) <= 60


class ScriptedMLP(fusejit.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = fusejit.nn.Linear(8, 16)
        self.fc2 = fusejit.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(fusejit.nn.functional.gelu(self.fc1(x)) * 2.0)


def test_explain_of_scripted_objects():
    @fusejit.script
    def f(x, y):
        return (x * y).exp() + 1

    x = fusejit.randn(4, 5)
    f(x, x)
    r = fusejit.explain(f, as_dict=True)
    assert r["kind"] == "scripted function"
    assert r["signatures"][0]["fused_regions"][0]["ops"] == ["mul", "exp", "add"]
    assert "fused regions: 1, running 1 distinct kernel" in fusejit.explain(f)
    fusejit.manual_seed(0)
    m = fusejit.script(ScriptedMLP())
    m(fusejit.randn(3, 8))
    r = fusejit.explain(m, as_dict=True)
    assert r["kind"] == "scripted module"
    names = {c["name"] for c in r["signatures"][0]["captured"]}
    assert {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"} <= names


def test_explain_bytes_moved():
    t = fusejit.trace(lambda x: (x * 2).exp(), (fusejit.randn(1000),))
    b = fusejit.explain(t, as_dict=True)["signatures"][0]["bytes_moved"]
    assert b == {"fused": 8000, "unfused": 0, "exact": True}  # 1000 float32 read, written
    t = fusejit.trace(lambda x: (x @ x).relu(), (fusejit.randn(10, 10, dtype=fusejit.float64),))
    b = fusejit.explain(t, as_dict=True)["signatures"][0]["bytes_moved"]
    assert b == {"fused": 1600, "unfused": 2400, "exact": True}
    # views move nothing; index_select reads the rows it gathers and the index
    w = fusejit.randn(50, 8)

    def emb(i):
        return w.index_select(0, i.view(-1)).permute(1, 0) * 1.0

    t = fusejit.trace(emb, (fusejit.tensor([[1, 2, 3]]),))
    b = fusejit.explain(t, as_dict=True)["signatures"][0]["bytes_moved"]
    assert b["unfused"] == 3 * 8 * 4 * 2 + 3 * 8  # rows read and written, int64 index


def test_explain_rejects_other_objects():
    with pytest.raises(TypeError, match="fusejit.optimize, fusejit.trace, fusejit.script"):
        fusejit.explain(lambda x: x)
    t = fusejit.trace(lambda x: x + 1, (fusejit.ones(2),))
    with pytest.raises(ValueError, match="format"):
        fusejit.explain(t, format="svg")


# ---- html ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def traced_model():
    model = small_model()
    return fusejit.trace(model, (fusejit.randint(0, SMALL["vocab"], (1, 6)),))


def test_explain_html_plain_list_without_dot(traced_model, monkeypatch, tmp_path):
    from fusejit.jit import explain as ex

    monkeypatch.setattr(ex.shutil, "which", lambda name: None)
    path = tmp_path / "explain.html"
    page = fusejit.explain(traced_model, format="html", path=path)
    assert path.read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>") and "<svg" not in page
    regions = fusejit.explain(traced_model, as_dict=True)["signatures"][0]["fused_regions"]
    assert page.count('<div class="region">') == len(regions)
    for g in regions:  # each region outlined, headed by its kernel key
        assert f"region {g['index']}: kernel {g['kernel_key']}</h4>" in page
    assert "%h.0.attn.c_attn.weight" in page and "Summary" in page
    # the ops of region 0 sit inside its box, the unfused matmuls outside any box
    box = page.split('<div class="region">')[1].split("</div>\n</div>")[0]
    assert "= add(" in box and "= matmul[" not in box
    assert '<div class="node unfused">' in page


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_explain_html_with_dot(traced_model):
    page = fusejit.explain(traced_model, format="html")
    regions = fusejit.explain(traced_model, as_dict=True)["signatures"][0]["fused_regions"]
    assert "<svg" in page
    assert page.count('class="cluster"') == len(regions)  # each fused region outlined
    assert "h.0.attn.c_attn.weight" in page


@pytest.mark.cuda
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="needs an NVIDIA GPU with cupy")
def test_trace_region_check_on_cuda(monkeypatch):
    x = fusejit.randn(2, 2048, 1024, device="cuda:0")
    t = fusejit.trace(_big, (x,))
    assert t.check_kind.startswith("regions: 1 distinct")
    ref = np.asarray(_big(x.cpu()).numpy(), np.float64)
    np.testing.assert_allclose(t(x).cpu().numpy(), ref, rtol=1e-4, atol=1e-4)
    r = fusejit.explain(t, as_dict=True)["signatures"][0]
    assert r["fused_regions"] and r["bytes_moved"]["fused"] > 0
    from fusejit.jit import runtime

    real = runtime._kernel_for

    def wrong(node, device):
        k = real(node, device)
        return lambda *arrays: [r * 1.01 + 0.5 for r in k(*arrays)]

    monkeypatch.setattr(runtime, "_kernel_for", wrong)
    with pytest.raises(fusejit.TraceError, match="fused region"):
        fusejit.trace(_big, (x,))
