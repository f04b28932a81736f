"""fusejit.onnx.export: traced graphs written as ONNX, checked by onnx's checker and run by
onnxruntime, whose results must equal fusejit's: bitwise for the table's exact ops, and within
``ULPS`` ulps of max(|result|, 1) otherwise (the rounding of another runtime's libm; of
max(|result|, |operands|, 1) for elementwise ops, of the sum of |products| for matmul)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="fusejit.onnx tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="fusejit.onnx tests need onnxruntime")

import fusejit  # noqa: E402
import fusejit.nn as nn  # noqa: E402
import fusejit.nn.functional as Fn  # noqa: E402
import fusejit.onnx as fonnx  # noqa: E402
from fusejit.base import dtypes as dt  # noqa: E402
from fusejit.eager import dispatch  # noqa: E402
from fusejit.onnx.rules import REFUSED  # noqa: E402
from fusejit.ops.registry import OPS  # noqa: E402

ort.set_default_logger_severity(3)

ULPS = 8

# Ops of the table that cannot be exported, and why. An op added to the table without an export
# rule fails test_every_op_has_a_rule_or_is_listed; an op of this list that gets one must leave it.
NOT_EXPORTABLE = frozenset(
    # LAPACK's algorithms iterate to convergence (SVD, eigenvalues) or rest on one (pinv,
    # matrix_rank, lstsq)
    """
linalg_svd linalg_svdvals linalg_eigh linalg_eigvalsh linalg_pinv linalg_matrix_rank
linalg_lstsq
""".split()
    # eager only: a trace records their compositions
    + ["linear", "cross_entropy"]
)

# valid ONNX that onnxruntime's CPU provider has no float64 kernel for (Asin, Acos, Atan, Erf)
ORT_NO_FLOAT64 = frozenset("asin acos atan atan2 erf erfc erfinv gelu".split())

RNG = np.random.default_rng(0)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def roundtrip(fn, inputs, tmp_path, **kw):
    """Trace ``fn`` on ``inputs``, export it, run it in onnxruntime: (onnx outputs, fusejit's)."""
    traced = fusejit.trace(fn, tuple(inputs))
    path = tmp_path / "model.onnx"
    fonnx.export(traced, path, **kw)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = _session(path)
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    got = sess.run(None, feeds)
    want = traced(*inputs)
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    return got, [w.numpy() for w in want]


def assert_same(got, want, exact: bool, what="", scale=1.0):
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    both_nan = np.isnan(got) & np.isnan(want)
    if exact:
        ok = (got == want) | both_nan
        assert ok.all(), (what, got[~ok], want[~ok])
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    eps = float(np.finfo(want.dtype).eps)
    with np.errstate(invalid="ignore"):
        err = np.where(both_nan | (g == w), 0.0, np.abs(g - w))
    ok = both_nan | (err <= ULPS * eps * (np.abs(w) + scale))
    assert ok.all(), (what, got[~ok], want[~ok])


def sample(op, d, shape):
    lo, hi = op.domain
    if d is dt.bool_:
        return RNG.random(shape) < 0.5
    if d.kind in "iu":
        lo = 0 if d.kind == "u" else max(lo, -20)
        a = RNG.integers(int(np.floor(lo)), int(np.ceil(min(hi, 20))) + 1, shape)
        return a.astype(d.np)
    return RNG.uniform(lo, hi, shape).astype(d.np)


DTYPES = (dt.float32, dt.float64, dt.float16, dt.int32, dt.int64, dt.int8, dt.uint8, dt.bool_)
ELEMENTWISE = [n for n, op in OPS.items() if op.kind == "elementwise" and n in fonnx.RULES]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_op(name, tmp_path):
    """The op on every dtype it allows, in one exported graph (one output per dtype)."""
    op = OPS[name]
    dtypes = [d for d in DTYPES if d.kind in op.allowed]
    dtypes = [d for d in dtypes if not (d is dt.float64 and name in ORT_NO_FLOAT64)]
    inputs, calls = [], []
    for d in dtypes:
        attrs = {"dtype": dt.int32 if d.is_floating_point else dt.float32} if name == "cast" else {}
        xs = [fusejit.tensor(sample(op, d, (3, 5))) for _ in range(op.arity)]
        if name == "where":
            xs[0] = fusejit.tensor(RNG.random((3, 5)) < 0.5)
        if name in ("floor_divide", "remainder", "fmod") and d.kind in "iu":
            xs[1] = fusejit.where(xs[1] == 0, 3, xs[1])  # (an int by zero is undefined in ONNX)
        calls.append((len(inputs), len(xs), attrs))
        inputs += xs

    def fn(*a):
        return tuple(dispatch.call(name, *a[i : i + n], **kw) for i, n, kw in calls)

    with np.errstate(all="ignore"):
        got, want = roundtrip(fn, inputs, tmp_path)
    for k, (d, g, w) in enumerate(zip(dtypes, got, want)):
        # ulps of max(|result|, |operands|, 1): an expr like gelu_tanh's 0.5 x (1 + tanh(..))
        # cancels, and scales the rounding of its tanh by |x|
        i, n, _ = calls[k]
        scale = np.maximum.reduce([np.abs(t.numpy().astype(np.float64)) for t in inputs[i : i + n]
                                   if t.dtype is not dt.bool_] + [np.ones((3, 5))])  # fmt: skip
        assert_same(g, w, op.exact, f"{name} {d.name}", scale)


def test_float64_functions_ort_lacks_are_still_valid_onnx(tmp_path):
    x = fusejit.tensor(RNG.uniform(-0.9, 0.9, (4,)))
    for name in sorted(ORT_NO_FLOAT64):
        args = (x, x.clone()) if OPS[name].arity == 2 else (x,)
        traced = fusejit.trace(lambda *a, name=name: dispatch.call(name, *a), args)
        proto = fonnx.export(traced, tmp_path / "m.onnx")
        onnx.checker.check_model(proto, full_check=True)


def test_float_edges_and_int_semantics(tmp_path):
    """Python's floored // and % (numpy's), NaN-propagating maximum, weak scalars, wrapping
    int8 arithmetic and float16 opmath, all as fusejit computes them."""
    a = fusejit.tensor([-7.5, 7.5, -0.0, 3.0, np.nan, np.inf, -2.0, 1e-30])
    b = fusejit.tensor([2.0, -2.0, 1.0, np.nan, 1.0, 2.0, -np.inf, -3.0])
    with np.errstate(all="ignore"):
        for name in ("floor_divide", "remainder", "fmod", "maximum", "minimum", "copysign"):
            fn = lambda x, y, name=name: dispatch.call(name, x, y)  # noqa: E731
            got, want = roundtrip(fn, (a, b), tmp_path)
            assert_same(got[0], want[0], True, name)
    i = fusejit.tensor(np.array([-7, 7, -8, 9, 100, -128], np.int8))
    j = fusejit.tensor(np.array([2, -2, 3, -4, 100, 3], np.int8))

    def ints(x, y):
        return x // y, x % y, x * y + 100, (x * 3).float() / 2, -x, x + 2.5, x > 3

    got, want = roundtrip(ints, (i, j), tmp_path)
    for g, w in zip(got, want):
        assert_same(g, w, True, "int8")
    h = fusejit.tensor(RNG.uniform(-4, 4, (16,)).astype(np.float16))
    got, want = roundtrip(lambda x: (x * 0.1, x * 3 + 1e-3, x.exp()), (h,), tmp_path)
    for g, w in zip(got[:2], want[:2]):
        assert_same(g, w, True, "float16 opmath")  # one rounding of the float32 result
    assert_same(got[2], want[2], False, "float16 exp")


def _readme_mlp():
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("opset", [17, None])
def test_readme_mlp(opset, tmp_path):
    model = _readme_mlp()
    x = fusejit.randn(8, 64)
    proto = fonnx.export(model, tmp_path / "mlp.onnx", x, opset=opset, input_names=["pixels"],
                         output_names=["logits"])  # fmt: skip
    assert {i.name for i in proto.graph.initializer} >= {"0.weight", "0.bias", "2.weight"}
    assert proto.opset_import[0].version == (opset or fonnx.DEFAULT_OPSET)
    got = _session(tmp_path / "mlp.onnx").run(["logits"], {"pixels": x.numpy()})[0]
    assert_same(got, model(x).numpy(), False, "mlp")
    # the same model in float64 (its parameters cast), exported from a traced function
    model64 = _readme_mlp().double()
    got, want = roundtrip(model64, (x.double(),), tmp_path)
    assert_same(got[0], want[0], False, "mlp float64")


def _rmsnorm(x, w, eps=1e-6):
    return x * fusejit.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


@pytest.mark.parametrize("d", [dt.float32, dt.float64, dt.float16])
def test_norm_softmax_block(d, tmp_path):
    # (onnxruntime has no float64 Erf: gelu's tanh form in float64)
    approximate = "tanh" if d is dt.float64 else "none"

    def block(x, w, b):
        h = Fn.layer_norm(x, (16,), w, b)
        r = _rmsnorm(x, w)
        g = Fn.gelu(h, approximate=approximate)
        return Fn.softmax(h, -1), Fn.log_softmax(r, dim=-1), g, Fn.softmax(x, 0)

    x = fusejit.tensor(RNG.standard_normal((2, 6, 16)).astype(d.np))
    w = fusejit.tensor(RNG.standard_normal(16).astype(d.np))
    b = fusejit.tensor(RNG.standard_normal(16).astype(d.np))
    got, want = roundtrip(block, (x, w, b), tmp_path)
    for k, (g, w_) in enumerate(zip(got, want)):
        assert_same(g, w_, False, f"block output {k} {d.name}")


@pytest.mark.parametrize(
    ("d", "opset"),
    [(dt.float32, 17), (dt.float32, None), (dt.float16, None), (dt.int32, None),
     (dt.int8, None), (dt.bool_, 17)],
)  # fmt: skip
def test_reductions(d, opset, tmp_path):
    """Reductions (opset 17: axes as attributes but ReduceSum's; 18 on: axes as inputs)."""
    x = fusejit.tensor(sample(OPS["add"], d, (3, 4, 5)))

    def red(x):
        out = [x.sum(), x.sum(1), x.sum((0, 2), keepdim=True), x.amax(-1), x.amin((0, 1)),
               x.any(1), x.all(), x.argmax(), x.argmin(2, keepdim=True)]  # fmt: skip
        if d is not dt.bool_:
            out.append(x.prod(2))
        if d.is_floating_point:
            out += [x.mean(), x.mean(-1, keepdim=True), x.var(1), x.std((0, 2), correction=0),
                    fusejit.logsumexp(x, 1)]  # fmt: skip
        return tuple(out)

    got, want = roundtrip(red, (x,), tmp_path, opset=opset)
    # a sum's (and a mean's) rounding error is bounded by the sum of the magnitudes it adds,
    # not by its result (which cancellation makes small): their scale is that sum
    scales = [1.0] * len(want)
    if d.is_floating_point:
        absolute = red(fusejit.tensor(np.abs(x.numpy())))
        for k in (0, 1, 2, 10, 11):
            scales[k] = absolute[k].numpy().astype(np.float64)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, not d.is_floating_point or k in (3, 4, 7, 8), f"reduction {k} {d.name}",
                    scale=scales[k])  # fmt: skip


@pytest.mark.parametrize("d", [dt.float32, dt.int64, dt.bool_])
def test_movement_and_matmul(d, tmp_path):
    x = fusejit.tensor(sample(OPS["add"], d, (4, 6)))
    idx = fusejit.tensor(np.array([2, 0, 3]))

    def move(x):
        return (x.T.reshape(3, 8).T, x.view(2, 12), x.permute(1, 0)[1:5:2, ::3],
                x[None, :, 2:3].expand(2, 4, 5), x[1], x[..., -1], fusejit.cat([x, x[:1]], 0),
                fusejit.stack([x, x], 1), x.flip(0), x.tile((2, 1, 1)), fusejit.tril(x, 1),
                fusejit.triu(x), x.index_select(0, idx), x.clone(), x.contiguous(),
                fusejit.gather(x, 1, idx.reshape(3, 1).expand(3, 2)),
                fusejit.diagonal(x.reshape(2, 2, 6), 1, 0, 2), fusejit.diagonal(x, -2),
                fusejit.diag(x, 3), fusejit.diag(x[1], -1), fusejit.diag(x[:, 0]))  # fmt: skip

    got, want = roundtrip(move, (x,), tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, True, f"movement {k} {d.name}")
    if d is dt.bool_:
        return
    y = fusejit.tensor(sample(OPS["add"], d, (6, 3)))
    got, want = roundtrip(lambda a, b: (a @ b, fusejit.einsum("ij,jk->ik", a, b)), (x, y),
                          tmp_path)  # fmt: skip
    a, b = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    for g, w in zip(got, want):
        if d.kind != "f":
            assert_same(g, w, True, "matmul")
            continue
        # a sum's rounding: within ULPS ulps of the sum of |products| (both against float64)
        bound = ULPS * float(np.finfo(w.dtype).eps) * (np.abs(a) @ np.abs(b))
        assert g.dtype == w.dtype
        assert (np.abs(g - a @ b) <= bound).all() and (np.abs(w - a @ b) <= bound).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_in_training_mode_exports_a_random_mask(tmp_path, dtype):
    """``rand_like`` (dropout's mask) exports as RandomUniformLike: onnxruntime draws its own
    values, so the check is the distribution: each element either 0 or twice the input (p =
    0.5), about half of each, a fresh mask at each run."""
    x = fusejit.ones(200, 50, dtype=dtype)
    traced = fusejit.trace(lambda t: fusejit.nn.functional.dropout(t * 3, 0.5), (x,))
    path = tmp_path / "dropout.onnx"
    fonnx.export(traced, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert "RandomUniformLike" in {n.op_type for n in onnx.load(str(path)).graph.node}
    sess = _session(path)
    runs = [sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0] for _ in range(2)]
    for r in runs:
        assert r.dtype == np.dtype(dtype) and r.shape == (200, 50)
        assert set(np.unique(r).tolist()) <= {0.0, 6.0}
        assert 0.45 < (r == 0).mean() < 0.55  # (10^4 draws: 10 standard deviations apart)
    assert not np.array_equal(runs[0], runs[1])


def test_every_op_has_a_rule_or_is_listed():
    """The op table against the rules: an op without a rule must be in NOT_EXPORTABLE (and leave it
    when it gets one), so an op added to the table without an export rule fails here."""
    missing = set(OPS) - set(fonnx.RULES)
    assert missing - NOT_EXPORTABLE == set(), (
        f"ops without an ONNX rule: {missing - NOT_EXPORTABLE}"
    )
    has = NOT_EXPORTABLE - missing
    assert has == set(), f"remove from NOT_EXPORTABLE (they have rules): {has}"
    assert set(fonnx.RULES) <= set(OPS)
    assert set(REFUSED) == NOT_EXPORTABLE  # (each with the reason its export error gives)


def test_op_without_rule_is_named(tmp_path):
    traced = fusejit.trace(lambda x: fusejit.linalg.svdvals(x) + 1, (fusejit.randn(3, 3),))
    line = inspect.currentframe().f_lineno - 1
    # the op, its operands and the line that called it
    pattern = (rf"'linalg_svdvals' cannot be exported \(ONNX has no such operator.*float32\[3, 3\]"
               rf".*test_onnx_export.py:{line}: traced = ")  # fmt: skip
    with pytest.raises(fonnx.ExportError, match=pattern):
        fonnx.export(traced, tmp_path / "m.onnx")
    line = inspect.currentframe().f_lineno + 5  # (the line of z = ... below)

    @fusejit.script
    def scripted(x):
        y = x * 2
        z = fusejit.linalg.svdvals(y)
        return z.sum()

    scripted(fusejit.randn(3, 3))
    pattern = rf"'linalg_svdvals'.*test_onnx_export.py:{line}: z = fusejit.linalg.svdvals\(y\)"
    with pytest.raises(fonnx.ExportError, match=pattern):
        fonnx.export(scripted, tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="example_inputs"):
        fonnx.export(lambda x: x, tmp_path / "m.onnx")
    bits = fusejit.trace(lambda x: x & 3, (fusejit.tensor([5, 6]),))
    with pytest.raises(fonnx.ExportError, match="opset 18.*bitwise_and"):
        fonnx.export(bits, tmp_path / "m.onnx", opset=17)
    with pytest.raises(ValueError, match="opset 12"):
        fonnx.export(traced, tmp_path / "m.onnx", opset=12)


def test_scripted_optimized_and_loaded(tmp_path):
    """Objects that hold their graph export it (the latest signature), without example
    inputs; scripted control flow as ONNX If (tests/test_onnx_export_control.py)."""
    x = fusejit.randn(3, 4)

    @fusejit.script
    def scripted(x):
        return (x * 2).relu().sum(1)

    scripted(x)
    optimized = fusejit.optimize(lambda x: (x * 3).exp().mean(0))
    for _ in range(5):
        optimized(x)
    fusejit.save(fusejit.trace(lambda x: Fn.softmax(x, -1), (x,)), tmp_path / "s.fjz")
    loaded = fusejit.load(tmp_path / "s.fjz")
    for obj in (scripted, optimized, loaded):
        fonnx.export(obj, tmp_path / "m.onnx")
        sess = _session(tmp_path / "m.onnx")
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert_same(got, obj(x).numpy(), False, type(obj).__name__)

    @fusejit.script
    def branchy(x):
        if x.sum() > 0:
            return x * 2
        return x - 1

    branchy(x)
    proto = fonnx.export(branchy, tmp_path / "m.onnx")
    assert "If" in [n.op_type for n in proto.graph.node]
    sess = _session(tmp_path / "m.onnx")
    for v in (x.abs(), -x.abs()):  # both branches
        got = sess.run(None, {sess.get_inputs()[0].name: v.numpy()})[0]
        assert_same(got, branchy(v).numpy(), True, "branchy")


def test_docstring_example():
    import doctest

    res = doctest.testmod(fonnx, optionflags=doctest.ELLIPSIS)
    assert res.attempted and not res.failed


@pytest.mark.parametrize("d", [dt.float32, dt.int32, dt.bool_])
def test_scans_splits_and_rolls(d, tmp_path):
    x = fusejit.tensor(sample(OPS["add"], d, (4, 6)))
    labels = fusejit.tensor(np.array([3, 0, 2, 2]))

    def fn(x, labels):
        values, indices = fusejit.max(x, 1)
        low, where_low = fusejit.min(x, 0, keepdim=True)
        parts = fusejit.split(x, [2, 3, 1], 1)
        return (values, indices, low, where_low, *parts, fusejit.roll(x, 2, 1),
                fusejit.roll(x, (1, -1), (0, 1)), fusejit.roll(x, 5), Fn.one_hot(labels, 5),
                *fusejit.sort(x, 1), *fusejit.sort(x, 0, descending=True),
                fusejit.cumsum(x, 1))  # fmt: skip

    got, want = roundtrip(fn, (x, labels), tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        if k == len(got) - 1 and d.is_floating_point:  # a running sum: within ULPS ulps of
            bound = ULPS * float(np.finfo(np.float32).eps) * np.cumsum(np.abs(x.numpy()), 1)
            assert g.dtype == w.dtype and (np.abs(g - w) <= bound).all()  # the sum of |x|
            continue
        assert_same(g, w, True, f"output {k} {d.name}")


def _with_nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[1, 2] = np.nan
    x[3, 0] = np.nan
    x[3, 4] = np.nan
    return x


@pytest.mark.parametrize("d", [dt.float32, dt.float64, dt.float16, dt.int32, dt.int8, dt.bool_])
def test_running_scans(d, tmp_path):
    """cumprod, cummax, cummin (values and indices, NaN propagating) and logcumsumexp, from a
    lower-triangular mask and a reduction over a new axis."""
    x = sample(OPS["add"], d, (4, 6))
    if d.is_floating_point:
        x = _with_nan(np.round(x * 2) / 4)  # (ties, so that the indices of equal entries count)
    elif d is not dt.bool_:
        x = (x % 4).astype(d.np)
    x = fusejit.tensor(x)

    def fn(x):
        out = [*fusejit.cummax(x, 1), *fusejit.cummin(x, 0), *fusejit.cummax(x[0], 0)]
        if d is not dt.bool_:
            out += [fusejit.cumprod(x, 1), fusejit.cumprod(x, 0)]
        if d.is_floating_point:
            out += [fusejit.logcumsumexp(x, 1), fusejit.logcumsumexp(x, 0)]
        return tuple(out)

    got, want = roundtrip(fn, (x,), tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, k < 6 or not d.is_floating_point, f"scan {k} {d.name}")


@pytest.mark.parametrize("d", [dt.float32, dt.float64, dt.float16, dt.int64, dt.uint8])
def test_order_statistics(d, tmp_path):
    """median (nanmedian), kthvalue, mode and quantile: fusejit's order (a stable sort, NaN
    last), bitwise."""
    x = sample(OPS["add"], d, (5, 7))
    x = (np.round(x) if d.is_floating_point else x % 5).astype(d.np)  # (repeated values)
    if d.is_floating_point:
        x = _with_nan(x)
        x[0, 1] = x[0, 3] = x[0, 5] = np.nan  # (NaN the most frequent value of a row)
    x = fusejit.tensor(x)

    def fn(x):
        out = [*x.median(1), *x.median(0, keepdim=True), x.median(), *x.kthvalue(3, 1),
               *x.kthvalue(1, 0), *x.mode(1), *x.mode(0, keepdim=True)]  # fmt: skip
        if d.is_floating_point:
            out += x.nanmedian(1)
        if d.is_floating_point and d is not dt.float16:  # (quantile: float32 and float64)
            clean = fusejit.where(x.isnan(), 0.5, x)
            q = fusejit.tensor(np.array([0.0, 0.25, 0.6, 1.0], d.np))
            out += [fusejit.quantile(clean, 0.3, 1),
                    fusejit.quantile(x, 0.5, 0, keepdim=True), fusejit.quantile(clean, q),
                    fusejit.nanquantile(x, q, 1)]  # fmt: skip
            for how in ("lower", "higher", "midpoint", "nearest"):
                out.append(fusejit.quantile(clean, q, 1, interpolation=how))
        return tuple(out)

    got, want = roundtrip(fn, (x,), tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, True, f"order statistic {k} {d.name}")


@pytest.mark.parametrize("d", [dt.float32, dt.float16, dt.int32, dt.int64, dt.bool_])
def test_scatter_family(d, tmp_path):
    """scatter (set, value, every reduction, with and without the input), index_add,
    index_put (accumulating, negative indices), masked_scatter, searchsorted, histc,
    diag_embed: bitwise."""
    x = fusejit.tensor(sample(OPS["add"], d, (4, 6)))
    src = fusejit.tensor(sample(OPS["add"], d, (5, 6)))
    index = fusejit.tensor(np.array([[0, 3, 1, 1, 2, 0], [3, 3, 0, 2, 2, 1]]))
    rows, cols = fusejit.tensor(np.array([0, -1, 0])), fusejit.tensor(np.array([5, 2, 5]))
    mask = fusejit.tensor(RNG.random((4, 6)) < 0.5)

    def fn(x, src, index, rows, cols, mask):
        out = [x.scatter(0, index, src), x.scatter(1, index, 1), x.index_put((rows,), src[0]),
               x.masked_scatter(mask, src), fusejit.diag_embed(x),
               fusejit.diag_embed(x, -2, 0, 2)]  # fmt: skip
        if d is dt.bool_:
            return tuple(out)
        out += [x.scatter_add(0, index, src), x.index_add(1, cols, src[:4, :3]),
                x.index_put((rows, cols), src[0, 0], accumulate=True)]  # fmt: skip
        for how in ("sum", "prod", "mean", "amax", "amin"):
            for keep in (True, False):
                out.append(x.scatter_reduce(0, index, src, how, include_self=keep))
        seq = fusejit.sort(src, 1)[0]
        out += [fusejit.searchsorted(seq[0], x), fusejit.searchsorted(seq[:4], x, right=True),
                fusejit.searchsorted(seq[0], x, right=True, out_int32=True)]  # fmt: skip
        if d.is_floating_point:
            out += [x.histc(5, -1.0, 1.0), x.histc(7)]
        return tuple(out)

    if d is dt.float16:  # (float16 reductions of repeated indices: computed in float32 and
        # rounded once, where eager rounds each step; integers keep every step exact)
        x, src = fusejit.tensor(np.round(x.numpy())), fusejit.tensor(np.round(src.numpy()))
    got, want = roundtrip(fn, (x, src, index, rows, cols, mask), tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, True, f"output {k} {d.name}")


def test_nan_in_searchsorted_and_histc(tmp_path):
    x = fusejit.tensor(np.array([0.5, np.nan, -3.0, 2.0, 7.0, 1.0, 1.0, np.inf], np.float32))
    seq = fusejit.tensor(np.array([-1.0, 0.5, 1.0, 1.0, 4.0], np.float32))
    const = fusejit.tensor(np.full(3, 2.5, np.float32))

    def fn(x, seq, const):
        return (fusejit.searchsorted(seq, x), fusejit.searchsorted(seq, x, right=True),
                x.histc(4, 0.0, 2.0), const.histc(3))  # fmt: skip

    got, want = roundtrip(fn, (x, seq, const), tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, True, f"output {k}")


def test_external_data(tmp_path, monkeypatch):
    """Initializers in ``<path>.data`` on request, and automatically over EXTERNAL_DATA_BYTES
    (lowered here; 2 GiB by default): onnxruntime loads the model and gives the outputs of
    the model written as one file."""
    model = _readme_mlp()
    x = fusejit.randn(8, 64)

    def run(path):
        sess = _session(path)
        return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]

    one = tmp_path / "one.onnx"
    fonnx.export(model, one, x)
    assert not (tmp_path / "one.onnx.data").exists()
    want = run(one)
    assert_same(want, model(x).numpy(), False, "mlp")
    path = tmp_path / "mlp.onnx"
    fonnx.export(model, path, x, external_data=True)
    data = tmp_path / "mlp.onnx.data"
    # (tensors over 1 KiB go to the data file: here the two weight matrices)
    weights = sum(p.numpy().nbytes for p in model.parameters() if p.numpy().nbytes > 1024)
    assert data.stat().st_size >= weights > path.stat().st_size
    onnx.checker.check_model(str(path), full_check=True)
    assert_same(run(path), want, True, "external data")
    fonnx.export(model, path, x, external_data=True)  # (written again, not appended to)
    assert data.stat().st_size < 2 * weights
    monkeypatch.setattr(fonnx, "EXTERNAL_DATA_BYTES", weights // 2)
    auto = tmp_path / "auto.onnx"
    fonnx.export(model, auto, x)
    assert (tmp_path / "auto.onnx.data").stat().st_size >= weights > auto.stat().st_size
    assert_same(run(auto), want, True, "external data over the threshold")


@pytest.mark.parametrize("d", dt.ALL_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("family", ["elementwise", "reduction", "movement", "matmul"])
def test_every_dtype(family, d, tmp_path):
    """Representative ops of each family on every dtype of the table (it has no bfloat16):
    bitwise for exact ops, within ULPS ulps for float sums and products. onnxruntime runs them
    all (narrow ints and float16 go through int32 / float32 where it lacks a kernel); the
    valid models it has no kernel for are float64 functions (``ORT_NO_FLOAT64``) and float64
    ``linalg_det``, tested above."""
    shape = (3, 4)
    x = fusejit.tensor(sample(OPS["add"], d, shape))
    y = fusejit.tensor(sample(OPS["add"], d, shape))
    idx = fusejit.tensor(np.array([[2, 0, 1, 1], [0, 0, 3, 2], [1, 2, 2, 0]]))
    exact = [True]

    def elementwise(x, y, idx):
        out = [x == y, x < y, fusejit.where(x > y, x, y), fusejit.maximum(x, y), x.abs() if
               d is not dt.bool_ else x, x.to(fusejit.float32), x.to(fusejit.int64)]  # fmt: skip
        if d is not dt.bool_:
            out += [x + y, x * y, x - 3, -x if d.kind != "u" else x * 2, x * 2.5]
        return tuple(out)

    def reduction(x, y, idx):
        out = [x.amax(1), x.amin(), x.argmax(0), x.any(1), x.sum(1), fusejit.cumsum(x, 1),
               fusejit.sort(x, 1)[0], fusejit.cummax(x, 0)[1]]  # fmt: skip
        exact[0] = not d.is_floating_point  # (float sums)
        return tuple(out)

    def movement(x, y, idx):
        return (x.T, x.reshape(2, 6), x[1:, ::2], fusejit.cat([x, y], 0), fusejit.stack([x, y]),
                x.flip(1), fusejit.gather(x, 1, idx), x.expand(2, 3, 4), fusejit.tril(x),
                x.index_select(1, idx[0]), x.scatter(1, idx, y), fusejit.roll(x, 1, 1))  # fmt: skip

    def matmul(x, y, idx):
        exact[0] = not d.is_floating_point
        return (x @ y.T, fusejit.einsum("ij,kj->ik", x, y))

    fn = {"elementwise": elementwise, "reduction": reduction, "movement": movement,
          "matmul": matmul}[family]  # fmt: skip
    if family == "matmul" and d is dt.bool_:
        pytest.skip("matmul of bool tensors is not in the table")
    traced = fusejit.trace(fn, (x, y, idx))
    path = tmp_path / "m.onnx"
    fonnx.export(traced, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = _session(path)
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), (x, y, idx))}
    want = [w.numpy() for w in traced(x, y, idx)]
    for k, (g, w) in enumerate(zip(sess.run(None, feeds), want)):
        assert_same(g, w, exact[0] or w.dtype.kind != "f", f"{family} output {k} {d.name}")


def _pairs(a: np.ndarray) -> np.ndarray:
    """A complex array as the exported graph holds it: view_as_real's [..., 2] floats."""
    return np.stack([a.real, a.imag], -1) if a.dtype.kind == "c" else a


@pytest.mark.parametrize("d", [dt.float32, dt.float64])
@pytest.mark.parametrize("opset", [17, None])
def test_fft_and_complex(d, opset, tmp_path):
    """fft ops through ONNX's DFT (opset 17's axis attribute, 20's axis input), complex values
    as [..., 2] pairs (graph inputs and outputs too): within ULPS ulps of the input's 1-norm
    (a DFT's rounding)."""
    x = fusejit.tensor(RNG.standard_normal((3, 8)).astype(d.np))
    z = fusejit.tensor((RNG.standard_normal((3, 5)) + 1j * RNG.standard_normal((3, 5))).astype(
        dt.complex_of(d).np))  # fmt: skip
    F = fusejit.fft

    def fn(x, z, angle=True):
        c = F.fft(x)
        return (c, F.rfft(x, n=6), F.irfft(c, dim=0), F.fft2(x), F.rfftn(x), F.irfftn(F.rfftn(x)),
                F.hfft(z), F.ihfft(x), fusejit.real(c), fusejit.imag(z), fusejit.view_as_real(c),
                fusejit.conj(z), F.ifft(x, norm="ortho"), F.fft(x, n=11, norm="forward"),
                F.irfft(z, n=7), F.ifftn(z, norm="ortho"), F.ihfft(x, n=5, norm="forward"),
                F.fft(z, dim=0), fusejit.view_as_complex(fusejit.view_as_real(z) * 2),
                fusejit.angle(x)) + ((fusejit.angle(z),) if angle else ())  # fmt: skip

    traced = fusejit.trace(fn, (x, z))
    path = tmp_path / "m.onnx"
    fonnx.export(traced, path, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    if d is dt.float64:  # (the angle of complex float64 values needs a float64 Atan)
        traced = fusejit.trace(lambda x, z: fn(x, z, angle=False), (x, z))
        fonnx.export(traced, path, opset=opset)
    sess = _session(path)
    feeds = [x.numpy(), _pairs(z.numpy())]
    got = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), feeds)})
    norm = np.abs(x.numpy()).sum() + np.abs(z.numpy()).sum()
    eps = float(np.finfo(d.np).eps)
    for k, (g, w) in enumerate(zip(got, traced(x, z))):
        w = _pairs(w.numpy())
        assert g.dtype == w.dtype and g.shape == w.shape, (k, g.dtype, w.dtype, g.shape, w.shape)
        assert np.abs(g - w).max() <= ULPS * eps * norm, (k, np.abs(g - w).max())


def test_complex_elementwise_is_refused(tmp_path):
    z = fusejit.tensor(np.array([1 + 2j, 3 - 1j], np.complex64))
    traced = fusejit.trace(lambda z: z * 2, (z,))
    with pytest.raises(fonnx.ExportError, match="mul of complex tensors has no ONNX rule"):
        fonnx.export(traced, tmp_path / "m.onnx")


def test_float64_erfinv_and_erfc_in_the_reference_evaluator(tmp_path):
    """float64 erfinv and erfc (onnxruntime has no float64 Erf) run by onnx's reference
    evaluator with a float64 Erf: erfinv within 2 ulps for |y| < 0.9 and 16 near +-0.999
    (there erf's rounding is divided by its small slope), erfc within 8 ulps of 1."""
    import math

    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops._op import OpRunUnaryNum

    class Erf(OpRunUnaryNum):
        op_domain = ""

        def _run(self, x):
            return (np.vectorize(math.erf, otypes=[x.dtype])(x),)

    y = np.linspace(-0.999, 0.999, 4001)
    traced = fusejit.trace(lambda y: (fusejit.erfinv(y), fusejit.erfc(y * 4)), (fusejit.tensor(y),))
    proto = fonnx.export(traced, tmp_path / "m.onnx")
    with np.errstate(invalid="ignore"):
        inv, c = ReferenceEvaluator(proto, new_ops=[Erf]).run(None, {proto.graph.input[0].name: y})
    want, ulp = OPS["erfinv"].ref(y), np.spacing(np.abs(OPS["erfinv"].ref(y)))
    err = np.abs(inv - want) / ulp
    assert err[np.abs(y) < 0.9].max() <= 2 and err.max() <= 16
    assert np.abs(c - OPS["erfc"].ref(y * 4)).max() <= ULPS * np.finfo(np.float64).eps


@pytest.mark.parametrize("d", [dt.float32, dt.float64, dt.int64])
def test_long_running_scans(d, tmp_path):
    """Scans over more than MASKED_SCAN_MAX entries: log2(n) passes, exact for max / min."""
    n = 2 * fonnx.rules.MASKED_SCAN_MAX + 45
    if d.is_floating_point:
        x = RNG.uniform(0.97, 1.03, (2, n)).astype(d.np)
        x[0, 7] = x[1, 100] = x[1, 250] = np.nan
        y = RNG.uniform(-30, 30, (2, n)).astype(d.np)
        y[0, 3], y[0, 200], y[1, 5] = -np.inf, np.inf, np.nan
    else:
        x = RNG.integers(-3, 4, (2, n)).astype(d.np)
        y = RNG.integers(-100, 100, (2, n)).astype(d.np)
    x, y = fusejit.tensor(x), fusejit.tensor(y)

    def fn(x, y):
        out = (*fusejit.cummax(y, 1), *fusejit.cummin(x, 1), fusejit.cumprod(x, 1))
        return out + ((fusejit.logcumsumexp(y, 1),) if d.is_floating_point else ())

    got, want = roundtrip(fn, (x, y), tmp_path)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, k < 4 or not d.is_floating_point, f"scan {k} {d.name}")


@pytest.mark.parametrize("d", [dt.float32, dt.float64])
def test_linalg_solve_inv_slogdet_cholesky_qr(d, tmp_path):
    """Gauss-Jordan elimination with partial pivoting, Cholesky's columns and Householder's
    QR (with LAPACK's signs), unrolled: within
    ULPS ulps of n * cond(A) * max|result| of LAPACK's results (well-conditioned matrices, a
    pivot swap forced)."""
    n = 5
    a = RNG.standard_normal((3, n, n)) + 3 * np.eye(n)
    a[1] = a[1][[2, 0, 1, 4, 3]]  # (pivots off the diagonal)
    spd = a @ np.swapaxes(a, -1, -2) + np.eye(n)
    a, spd = fusejit.tensor(a.astype(d.np)), fusejit.tensor(spd.astype(d.np))
    rhs = fusejit.tensor(RNG.standard_normal((n, 2)).astype(d.np))
    vec = fusejit.tensor(RNG.standard_normal((3, n)).astype(d.np))
    L = fusejit.linalg

    def fn(a, spd, rhs, vec):
        return (L.solve(a, rhs), L.solve(a, vec), L.inv(a), *L.slogdet(a), L.cholesky(spd),
                L.cholesky(spd, upper=True), -a[0].det(), *L.qr(a), *L.qr(a[:, :, :3]),
                *L.qr(a[:, :3], mode="complete"), L.qr(a[0, :, :4], mode="r")[1])  # fmt: skip

    got, want = roundtrip(fn, (a, spd, rhs, vec), tmp_path)
    cond = max(np.linalg.cond(a.numpy().astype(np.float64)).max(),
               np.linalg.cond(spd.numpy().astype(np.float64)).max())  # fmt: skip
    eps = float(np.finfo(d.np).eps)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, k
        if k == 3:  # the signs
            np.testing.assert_array_equal(g, w)
            continue
        bound = ULPS * n * cond * eps * max(np.abs(w).max(), 1)
        assert np.abs(g - w).max() <= bound, (k, np.abs(g - w).max(), bound)
