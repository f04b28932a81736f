"""Indexing in graphs (issue #21): tensor-indexed getitem, setitem and Embedding traced into
one graph, equal to eager, with gradients through the recorded composition."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit
from fusejit.base.errors import DimError, TraceError
from fusejit.eager import indexing

X = np.random.default_rng(0).standard_normal((5, 6, 7)).astype(np.float32)

GETITEMS = {
    "x[i]": lambda x, i, j: x[i],
    "x[:, i]": lambda x, i, j: x[:, i],
    "x[..., j]": lambda x, i, j: x[..., j],
    "x[1, :, i]": lambda x, i, j: x[1, :, i],  # apart: the indexed dims first, as numpy
    "x[j, 0]": lambda x, i, j: x[j, 0],
    "x[i, i]": lambda x, i, j: x[i, i],
    "x[j, :, j]": lambda x, i, j: x[j, :, j],
    "x[None, 1:4, i]": lambda x, i, j: x[None, 1:4, i],
    "x[[0, 3]]": lambda x, i, j: x[[0, 3]],
}


@pytest.mark.parametrize("name", list(GETITEMS))
def test_tensor_indexed_getitem_traces_equal_to_eager(name):
    f = GETITEMS[name]
    x = fusejit.tensor(X)
    i = fusejit.tensor([0, 4, -1, 2])
    j = fusejit.tensor([[1, 2], [3, -4]])
    traced = fusejit.trace(f, (x, i, j))
    # other values of the indices and of x: the graph reads them
    x2, i2 = fusejit.tensor(X * 3 + 1), fusejit.tensor([3, -2, 1, 1])
    want = X * 3 + 1
    got = traced(x2, i2, j).numpy()
    ref = f(x2, i2, j).numpy()
    np.testing.assert_array_equal(got, ref)
    # and eager itself is numpy's indexing
    key = {"x[i]": (i2.numpy(),), "x[:, i]": (slice(None), i2.numpy())}.get(name)
    if key is not None:
        np.testing.assert_array_equal(got, want[key])


def test_traced_index_out_of_range_is_a_dim_error():
    traced = fusejit.trace(lambda x, i: x[i, i], (fusejit.tensor(X), fusejit.tensor([0, 1])))
    with pytest.raises(DimError):
        traced(fusejit.tensor(X), fusejit.tensor([0, 5]))  # 5: out of dim 0 (size 5) only


def _masked(x, y):
    sel = x[x > 0]
    return sel * 2 + sel.sum(), y[y[:, 0] > 0]


def test_bool_mask_getitem_traces_with_a_size_bound_at_run_time():
    traced = fusejit.trace(_masked, (fusejit.tensor(X[0]), fusejit.tensor(X[1])))
    sizes = [n.outputs[0].type.shape for n in traced.graph.nodes if n.op == "mask_positions"]
    assert [str(s[0]) for s in sizes] == ["u0", "u1"]
    rng = np.random.default_rng(1)
    for _ in range(4):  # other values: other numbers of true entries, one graph
        a, b = (rng.standard_normal((6, 7)).astype(np.float32) for _ in range(2))
        got = traced(fusejit.tensor(a), fusejit.tensor(b))
        sel = a[a > 0]
        np.testing.assert_allclose(got[0].numpy(), sel * 2 + sel.sum(dtype=np.float32), rtol=1e-5)
        np.testing.assert_array_equal(got[1].numpy(), b[b[:, 0] > 0])


def test_bool_mask_limits_in_a_trace():
    x = fusejit.tensor(X)
    with pytest.raises(TraceError, match="among other indices"):
        fusejit.trace(lambda x: x[x[:, 0, 0] > 0, 1], (x,))
    with pytest.raises(TraceError, match="compares a size"):
        fusejit.trace(lambda x: x[x > 0] * (2 if x[x > 0].shape[0] > 3 else 3), (x,))
    traced = fusejit.trace(lambda x: x[x > 0] + 1, (x,))
    with pytest.raises(fusejit.jit.runtime.GuardError, match="true entries"):
        traced(-fusejit.abs(x))  # no true entry: a result that would broadcast


def test_traced_getitem_composition_has_gradients():
    x = fusejit.tensor(X[:3, :4, :2].astype(np.float64), requires_grad=True)
    i = fusejit.tensor([2, 0, -1, 2])

    def f(x):
        return indexing._traced_advanced_getitem(x, (slice(None), i))

    assert fusejit.autograd.gradcheck(f, (x,))
    f(x).sum().backward()
    want = np.zeros_like(X[:3, :4, :2], dtype=np.float64)
    np.add.at(want, (slice(None), i.numpy()), 1.0)
    np.testing.assert_array_equal(x.grad.numpy(), want)


def _set_scalar(x, i):
    y = x * 2
    y[i] = 0.0
    return y + 1


def _set_rows_in_a_loop(x, i):
    ys = fusejit.zeros(4, 7)
    for t in range(4):
        ys[t] = x[t, 0] * t
    return ys


def _set_columns(x, i):
    y = x.clone()
    y[:, 1] = x[:, 0]
    y[i, 2] = fusejit.tensor(7.0)
    return y


@pytest.mark.parametrize("f", [_set_scalar, _set_rows_in_a_loop, _set_columns])
def test_setitem_traces_as_a_new_value(f):
    x, i = fusejit.tensor(X), fusejit.tensor([0, 3])
    traced = fusejit.trace(f, (x, i))
    x2, i2 = fusejit.tensor(X - 2), fusejit.tensor([1, 4])
    np.testing.assert_array_equal(traced(x2, i2).numpy(), f(x2, i2).numpy())
    assert any(n.op == "index_put" for n in traced.raw_graph.nodes)


def test_setitem_into_an_input_or_a_viewed_tensor_is_refused():
    x = fusejit.tensor(X)

    def into_input(x):
        x[0] = 1.0
        return x * 1

    def into_viewed(x):
        y = x * 1
        v = y[0]
        y[0] = 5.0
        return v + 0

    with pytest.raises(TraceError, match="input"):
        fusejit.trace(into_input, (x,))
    with pytest.raises(TraceError, match="view"):
        fusejit.trace(into_viewed, (x,))


def test_embedding_is_one_graph_under_optimize():
    fusejit.manual_seed(0)
    emb = fusejit.nn.Embedding(10, 4)
    opt = fusejit.optimize(emb, warmup=0)
    idx = fusejit.tensor([[1, 2, 9], [0, 0, 3]])
    with fusejit.no_grad():
        got = opt(idx)
    np.testing.assert_array_equal(got.numpy(), emb.weight.numpy()[idx.numpy()])
    ex = opt._fusejit_executor
    assert ex._n_traces == 1 and ex._specs[0].status == "compiled"
    assert any(n.op == "index_select" for n in ex._specs[0].traced.graph.nodes)


@pytest.mark.cuda
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="needs an NVIDIA GPU with cupy")
def test_traced_indexing_on_cuda():
    x = fusejit.tensor(X, device="cuda:0")
    i = fusejit.tensor([0, 4, -1, 2], device="cuda:0")
    j = fusejit.tensor([[1, 2], [3, -4]], device="cuda:0")
    for f in list(GETITEMS.values())[:-1]:
        traced = fusejit.trace(f, (x, i, j))
        np.testing.assert_array_equal(traced(x, i, j).cpu().numpy(), f(x, i, j).cpu().numpy())
    traced = fusejit.trace(_masked, (x[0], x[1]))
    for a, b in zip(traced(x[2], x[3]), _masked(x[2], x[3])):
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-5)
    for f in (_set_scalar, _set_columns):
        traced = fusejit.trace(f, (x, i[:2]))
        np.testing.assert_array_equal(traced(x, i[:2]).cpu().numpy(), f(x, i[:2]).cpu().numpy())
