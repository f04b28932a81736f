"""fusejit.onnx.export of scripted control flow (``if`` -> ONNX ``If``, ``loop`` -> ``Loop``,
``select`` / ``update`` -> ``Gather`` / ``ScatterElements``) and of dynamic axes: each model is
exported once, checked by ``onnx.checker`` (full check) and run by onnxruntime on inputs that
take other branches, trip counts or sizes than the ones it was compiled or traced for; its
outputs must equal fusejit's (bitwise where the ops are exact)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="fusejit.onnx tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="fusejit.onnx tests need onnxruntime")

from readme_models import scripted_lstm  # noqa: E402

import fusejit  # noqa: E402
import fusejit.nn as nn  # noqa: E402
import fusejit.onnx as fonnx  # noqa: E402

ort.set_default_logger_severity(3)
RNG = np.random.default_rng(7)


def _session(path):
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(sess, *arrays):
    feeds = {i.name: np.asarray(a) for i, a in zip(sess.get_inputs(), arrays)}
    return sess.run(None, feeds)


def _np(xs):
    xs = xs if isinstance(xs, (tuple, list)) else (xs,)
    return [x.numpy() if hasattr(x, "numpy") else np.asarray(x) for x in xs]


def _same(got, want, exact=True, rtol=1e-5, atol=1e-6):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        if exact:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def _op_types(graph) -> set:
    out = set()
    for n in graph.node:
        out.add(n.op_type)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out |= _op_types(a.g)
    return out


# control flow ---------------------------------------------------------------------------
LSTM = scripted_lstm()  # the README's scripted LSTM (a loop over time, a buffer written by row)


def test_scripted_lstm_time_loop(tmp_path):
    lstm = LSTM(8, 6)
    x, h0, c0 = fusejit.randn(5, 3, 8), fusejit.randn(3, 6), fusejit.randn(3, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (no gradients through control flow)
        lstm(x, h0, c0)
        proto = fonnx.export(lstm, tmp_path / "lstm.onnx", input_names=["x", "h", "c"])
        assert {"Loop", "Gather", "ScatterElements", "MatMul"} <= _op_types(proto.graph)
        sess = _session(tmp_path / "lstm.onnx")
        for _ in range(2):  # other values through the same model
            x, h0, c0 = fusejit.randn(5, 3, 8), fusejit.randn(3, 6), fusejit.randn(3, 6)
            _same(_run(sess, x.numpy(), h0.numpy(), c0.numpy()), _np(lstm(x, h0, c0)),
                  exact=False)  # fmt: skip


@fusejit.script
def clip(x, limit: float):
    norm = (x * x).sum().sqrt()
    if norm > limit:
        x = x * (limit / norm)
    return x


def test_data_dependent_if_takes_both_branches(tmp_path):
    x = fusejit.tensor(np.array([3.0, 4.0, 0.0, 0.0], np.float32))  # norm 5, exact
    clip(x, 1.0)
    proto = fonnx.export(clip, tmp_path / "clip.onnx")
    assert "If" in _op_types(proto.graph)
    sess = _session(tmp_path / "clip.onnx")
    for lim in (2.0, 10.0):  # clipped, then left alone
        got = _run(sess, x.numpy(), np.float64(lim))
        _same(got, _np(clip(x, lim)))
    assert not np.array_equal(_run(sess, x.numpy(), 2.0)[0], x.numpy())
    np.testing.assert_array_equal(_run(sess, x.numpy(), 10.0)[0], x.numpy())


@fusejit.script
def doubling(x, n: int):
    k = 0
    while x.abs().sum() < 100.0:
        x = x * 2.0
        k += 1
    for _j in range(n):
        x = x + 1.0
    return x, k


def test_while_loop_and_run_time_range(tmp_path):
    x = fusejit.tensor(np.array([0.5, -1.0, 0.25], np.float32))
    doubling(x, 3)
    proto = fonnx.export(doubling, tmp_path / "w.onnx")
    assert sum(n.op_type == "Loop" for n in proto.graph.node) == 2
    sess = _session(tmp_path / "w.onnx")
    for v, n in (([0.5, -1.0, 0.25], 0), ([0.5, -1.0, 0.25], 3), ([200.0, 1.0, 0.0], 5),
                 ([0.001, 0.0, 0.0], 1)):  # fmt: skip
        x = fusejit.tensor(np.array(v, np.float32))
        got, want = _run(sess, x.numpy(), np.int64(n)), _np(doubling(x, n))
        _same(got, want)
    assert int(_run(sess, np.array([200.0, 1.0, 0.0], np.float32), np.int64(0))[1]) == 0


@fusejit.script
def bounce(x, n: int):
    for _i in range(n):
        if x.sum() > 0.0:
            x = x - 1.5
        else:
            x = x * -2.0
            if x.max() > 4.0:
                x = x - 0.5
    return x


def test_nested_if_in_loop(tmp_path):
    x = fusejit.tensor(np.array([1.0, 0.5, -0.25], np.float32))
    bounce(x, 4)
    proto = fonnx.export(bounce, tmp_path / "b.onnx")
    assert {"Loop", "If"} <= _op_types(proto.graph)
    sess = _session(tmp_path / "b.onnx")
    for n in (0, 1, 4, 9):
        for v in ([1.0, 0.5, -0.25], [-3.0, 0.5, 1.0]):
            x = fusejit.tensor(np.array(v, np.float32))
            _same(_run(sess, x.numpy(), np.int64(n)), _np(bounce(x, n)))


@fusejit.script
def columns(x):
    ys = fusejit.zeros(x.shape[1], x.shape[0])
    for t in range(x.shape[0]):
        ys[:, t] = x[t] * 2.0  # update along dim 1
    ys[0] = 7.0  # a constant index
    total = fusejit.zeros(x.shape[0])
    for row in ys:  # a loop over a tensor's rows
        total = total + row
    return ys, total


def test_select_update_and_rows(tmp_path):
    x = fusejit.tensor(RNG.integers(-8, 8, (3, 4)).astype(np.float32))
    columns(x)
    fonnx.export(columns, tmp_path / "c.onnx")
    sess = _session(tmp_path / "c.onnx")
    for _ in range(2):
        x = fusejit.tensor(RNG.integers(-8, 8, (3, 4)).astype(np.float32))
        _same(_run(sess, x.numpy()), _np(columns(x)))


@fusejit.script
def checked(x):
    assert (x > -100.0).all(), "too small"
    if x.sum() > 0.0:
        print("positive")
    return x * 3.0


def test_print_and_assert_are_left_out_with_a_warning(tmp_path):
    x = fusejit.tensor(np.array([1.0, 2.0], np.float32))
    checked(x)
    with pytest.warns(UserWarning, match="ONNX has no (assert|print)"):
        fonnx.export(checked, tmp_path / "p.onnx")
    sess = _session(tmp_path / "p.onnx")
    _same(_run(sess, x.numpy()), [x.numpy() * 3.0])


# dynamic axes ---------------------------------------------------------------------------
def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_dynamic_batch_mlp(tmp_path):
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4), nn.Softmax(-1))
    proto = fonnx.export(mlp, tmp_path / "mlp.onnx", fusejit.randn(3, 8), input_names=["x"],
                         dynamic_axes={"x": {0: "batch"}})  # fmt: skip
    assert _dims(proto.graph.input[0]) == ["batch", 8]
    assert _dims(proto.graph.output[0]) == ["batch", 4]
    sess = _session(tmp_path / "mlp.onnx")
    for n in (1, 3, 7):
        x = fusejit.randn(n, 8)
        _same(_run(sess, x.numpy()), _np(mlp(x)), exact=False)


class NormBlock(nn.Module):
    """softmax and layer norm over the last dim, a view that merges the dynamic dims."""

    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(6)

    def forward(self, x):
        b, t, c = x.shape
        y = self.ln(x).softmax(-1) * x.var(-1, keepdim=True)
        flat = y.reshape(b * t, c)
        return y[:, 1:] - flat.mean(0), y[:, -1, :2]


def test_dynamic_softmax_layer_norm_block_list_form(tmp_path):
    block = NormBlock()
    x = fusejit.randn(2, 5, 6)
    proto = fonnx.export(block, tmp_path / "n.onnx", x, input_names=["x"],
                         dynamic_axes={"x": [0, 1], "output_0": {1: "steps"}})  # fmt: skip
    assert _dims(proto.graph.input[0]) == ["x_dim0", "x_dim1", 6]
    assert _dims(proto.graph.output[0]) == ["x_dim0", "steps", 6]
    assert _dims(proto.graph.output[1]) == ["x_dim0", 2]
    sess = _session(tmp_path / "n.onnx")
    for b, t in ((2, 5), (1, 3), (4, 9)):
        x = fusejit.randn(b, t, 6)
        _same(_run(sess, x.numpy()), _np(block(x)), exact=False)


def test_dynamic_batch_and_sequence_nanogpt(tmp_path):
    from fusejit.bench.models import NanoGPT

    gpt = NanoGPT(vocab=64, block_size=16, n_layer=2, n_head=2, n_embd=16)
    idx = fusejit.tensor(RNG.integers(0, 64, (2, 5)))
    proto = fonnx.export(gpt, tmp_path / "gpt.onnx", idx, input_names=["idx"],
                         output_names=["logits"],
                         dynamic_axes={"idx": {0: "batch", 1: "seq"}})  # fmt: skip
    assert _dims(proto.graph.output[0]) == ["batch", "seq", 64]
    sess = _session(tmp_path / "gpt.onnx")
    for b, t in ((1, 3), (2, 5), (3, 16)):
        idx = fusejit.tensor(RNG.integers(0, 64, (b, t)))
        _same(_run(sess, idx.numpy()), _np(gpt(idx)), exact=False, atol=1e-5)


def test_optimize_symbolic_dims_export_unasked(tmp_path):
    def f(x):
        return (x * 2.0).sum(-1).reshape(-1, 1) + x[:, :1]

    opt = fusejit.optimize(f, dynamic=True, warmup=0)
    for n in (3, 5):
        opt(fusejit.randn(n, 4))
    proto = fonnx.export(opt, tmp_path / "o.onnx")
    assert isinstance(_dims(proto.graph.input[0])[0], str)  # the symbol's name
    sess = _session(tmp_path / "o.onnx")
    for n in (2, 6):
        x = fusejit.tensor(RNG.integers(-4, 4, (n, 4)).astype(np.float32))
        _same(_run(sess, x.numpy()), _np(f(x)))


def test_dynamic_axes_refusals(tmp_path):
    x = fusejit.randn(3, 4)
    with pytest.raises(fonnx.ExportError, match=r"roll .*dynamic dim s0"):
        fonnx.export(lambda x: x.roll(1, 0), tmp_path / "r.onnx", x,
                     dynamic_axes={"x": {0: "n"}})  # fmt: skip
    with pytest.raises(ValueError, match="not inputs"):
        fonnx.export(lambda x: x + 1, tmp_path / "r.onnx", x, dynamic_axes={"y": [0]})
    with pytest.raises(fonnx.ExportError, match="same size"):
        fonnx.export(lambda x: x + 1, tmp_path / "r.onnx", fusejit.randn(3, 3),
                     dynamic_axes={"x": {0: "rows", 1: "cols"}})  # fmt: skip
    with pytest.raises(fonnx.ExportError, match="scripted"):
        clip(x, 1.0)
        fonnx.export(clip, tmp_path / "r.onnx", dynamic_axes={"x": [0]})


def test_control_flow_and_dynamic_axes_at_opset_17(tmp_path):
    x = fusejit.tensor(np.array([1.0, 0.5, -0.25], np.float32))
    bounce(x, 2)
    fonnx.export(bounce, tmp_path / "b17.onnx", opset=17)
    sess = _session(tmp_path / "b17.onnx")
    for n in (0, 3):
        _same(_run(sess, x.numpy(), np.int64(n)), _np(bounce(x, n)))
    block = NormBlock()
    fonnx.export(block, tmp_path / "n17.onnx", fusejit.randn(2, 5, 6), opset=17,
                 dynamic_axes={"x": {0: "b", 1: "t"}})  # fmt: skip
    sess = _session(tmp_path / "n17.onnx")
    x = fusejit.randn(3, 4, 6)
    _same(_run(sess, x.numpy()), _np(block(x)), exact=False)


def test_traced_function_traced_again_for_dynamic_axes(tmp_path):
    def f(x, y):
        return (x * 2.0).sum(-1).reshape(-1, 1) + x[:, :1] * y

    x, y = fusejit.randn(3, 4), fusejit.randn(1)
    traced = fusejit.trace(f, (x, y))
    fonnx.export(traced, tmp_path / "t.onnx", input_names=["x", "y"],
                 dynamic_axes={"x": {0: "n"}})  # no example inputs: zeros  # fmt: skip
    sess = _session(tmp_path / "t.onnx")
    for n in (1, 6):
        x = fusejit.tensor(RNG.integers(-4, 4, (n, 4)).astype(np.float32))
        _same(_run(sess, x.numpy(), y.numpy()), _np(f(x, y)), exact=False)
    fusejit.save(traced, tmp_path / "t.fjz")
    with pytest.raises(fonnx.ExportError, match="no Python function"):
        fonnx.export(fusejit.load(tmp_path / "t.fjz"), tmp_path / "l.onnx",
                     dynamic_axes={"x0": [0]})  # fmt: skip


def test_boolean_mask_sizes_known_at_run_time(tmp_path):
    def f(x, y):
        m = x > 0
        return x[m] * 2.0 + y[m], (x * y)[m].sum()

    x, y = fusejit.randn(3, 4), fusejit.randn(3, 4)
    proto = fonnx.export(fusejit.trace(f, (x, y)), tmp_path / "m.onnx", input_names=["x", "y"])
    assert "NonZero" in _op_types(proto.graph)
    assert _dims(proto.graph.output[0]) == [0]  # (unknown: the mask's count)
    sess = _session(tmp_path / "m.onnx")
    for _ in range(3):
        x, y = fusejit.randn(3, 4), fusejit.randn(3, 4)
        _same(_run(sess, x.numpy(), y.numpy()), _np(f(x, y)), exact=False)


def test_dynamic_batch_cross_entropy_and_rms_norm(tmp_path):
    import fusejit.nn.functional as F

    def fn(logits, labels, w):
        x = logits * (logits * logits).mean(-1, keepdim=True).add(1e-6).rsqrt() * w
        return F.cross_entropy(x, labels), F.one_hot(labels, 5).float().mean(0), x.roll(1, 1)

    args = (fusejit.randn(4, 5), fusejit.tensor(RNG.integers(0, 5, 4)), fusejit.randn(5))
    # the list form names both batch dims; the trace makes them one size: one name
    proto = fonnx.export(fn, tmp_path / "ce.onnx", args, input_names=["logits", "labels", "w"],
                         dynamic_axes={"logits": [0], "labels": [0]})  # fmt: skip
    assert _dims(proto.graph.input[1]) == ["logits_dim0"]
    sess = _session(tmp_path / "ce.onnx")
    for n in (1, 4, 9):
        args = (fusejit.randn(n, 5), fusejit.tensor(RNG.integers(0, 5, n)), args[2])
        _same(_run(sess, *[a.numpy() for a in args]), _np(fn(*args)), exact=False)


@fusejit.script
def svdvals_loop(x, n: int):
    for _i in range(n):
        if x.sum() > 0.0:
            x = x / fusejit.linalg.svdvals(x).sum()
    return x


def test_an_op_with_no_rule_in_a_block_is_named(tmp_path):
    x = fusejit.randn(3, 3)
    svdvals_loop(x, 2)
    with pytest.raises(
        fonnx.ExportError, match=r"^fusejit\.onnx\.export: op 'linalg_svdvals' cannot be exported"
    ) as e:
        fonnx.export(svdvals_loop, tmp_path / "e.onnx")
    assert str(e.value).count("fusejit.onnx.export") == 1
