"""fusejit.nn: modules against numpy references, initialization, state, modes, containers."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import fusejit
from fusejit import nn
from fusejit.nn import functional as F
from fusejit.nn import modules as nn_modules

erf = np.vectorize(math.erf)


def A(t) -> np.ndarray:
    return np.asarray(t.numpy())


class MLP(nn.Module):
    """A small MLP block: Linear -> ReLU -> Linear."""

    def __init__(self, d_in=8, d_hidden=16, d_out=4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class FeedForward(nn.Module):
    """Transformer feed-forward block: x + W2 gelu(W1 layer_norm(x))."""

    def __init__(self, dim=8, hidden=32, p=0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.down = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        return x + self.drop(self.down(self.act(self.up(self.norm(x)))))


def np_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


@pytest.fixture(autouse=True)
def _seed():
    fusejit.manual_seed(1234)


# ---- layers against numpy -------------------------------------------------------------------
def test_linear_matches_numpy():
    lin = nn.Linear(5, 3)
    x = fusejit.randn(4, 5)
    y = lin(x)
    assert y.shape == (4, 3) and y.dtype is fusejit.float32
    ref = A(x) @ A(lin.weight).T + A(lin.bias)
    np.testing.assert_allclose(A(y), ref, rtol=1e-5, atol=1e-6)
    # batched input and no bias
    lin2 = nn.Linear(5, 2, bias=False, dtype=fusejit.float64)
    assert lin2.bias is None and lin2.weight.dtype is fusejit.float64
    xb = fusejit.randn(2, 3, 5, dtype=fusejit.float64)
    np.testing.assert_allclose(A(lin2(xb)), A(xb) @ A(lin2.weight).T, rtol=1e-12)
    assert [n for n, _ in lin2.named_parameters()] == ["weight"]


def test_linear_records_one_node_and_traces_its_composition():
    x = fusejit.randn(4, 5)
    lin = nn.Linear(5, 3)
    y = lin(x)
    assert y.grad_fn.name() == "LinearBackward0"  # (one node: three gradients from one rule)
    y.sum().backward()
    np.testing.assert_allclose(A(lin.weight.grad), np.ones((3, 4)) @ A(x), rtol=1e-6)
    np.testing.assert_allclose(A(lin.bias.grad), [4.0, 4.0, 4.0])
    # a trace records matmul and add (fused as the product's epilogue), not the eager op
    t = fusejit.trace(lambda x: F.linear(x, lin.weight.detach(), lin.bias.detach()), (x,))
    assert "linear" not in [n.op for n in t.raw_graph.nodes]
    np.testing.assert_allclose(A(t(x)), A(x) @ A(lin.weight).T + A(lin.bias), rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    # mixed dtypes and a bias of another shape take the composition (its promotion and
    # broadcasting)
    w16 = fusejit.tensor(A(lin.weight).astype(np.float16))
    assert F.linear(x, w16).dtype is fusejit.float32
    wide = F.linear(x, lin.weight, fusejit.ones(2, 1, 3))
    assert wide.shape == (2, 4, 3)


def test_linear_init_statistics():
    fan_in = 256
    lin = nn.Linear(fan_in, 512)
    bound = 1 / math.sqrt(fan_in)
    w, b = A(lin.weight), A(lin.bias)
    assert w.shape == (512, 256) and b.shape == (512,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-a, a): mean 0, std a / sqrt(3)
    assert abs(w.mean()) < 0.05 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(w).max() > 0.99 * bound
    # a different draw each time, the same one after reseeding
    fusejit.manual_seed(7)
    a = A(nn.Linear(4, 4).weight)
    fusejit.manual_seed(7)
    assert np.array_equal(a, A(nn.Linear(4, 4).weight))
    assert not np.array_equal(a, A(nn.Linear(4, 4).weight))


def test_layer_norm_matches_numpy():
    ln = nn.LayerNorm(6)
    assert np.array_equal(A(ln.weight), np.ones(6)) and np.array_equal(A(ln.bias), np.zeros(6))
    with fusejit.no_grad():  # (parameters require grad: written in place under no_grad)
        ln.weight.copy_(fusejit.randn(6))
        ln.bias.copy_(fusejit.randn(6))
    x = fusejit.randn(3, 4, 6)
    ref = np_layer_norm(A(x).astype(np.float64), A(ln.weight), A(ln.bias))
    np.testing.assert_allclose(A(ln(x)), ref, rtol=1e-4, atol=1e-5)
    plain = nn.LayerNorm((4, 6), elementwise_affine=False)
    assert list(plain.parameters()) == []
    xf = A(x).reshape(3, -1).astype(np.float64)
    ref2 = (xf - xf.mean(1, keepdims=True)) / np.sqrt(xf.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(A(plain(x)).reshape(3, -1), ref2, rtol=1e-4, atol=1e-5)


def test_embedding_gathers_rows():
    emb = nn.Embedding(10, 4)
    idx = fusejit.tensor([[1, 2, 2], [9, 0, 5]])
    out = emb(idx)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(A(out), A(emb.weight)[A(idx)])
    assert not isinstance(out, nn.Parameter)
    np.testing.assert_array_equal(A(emb([3])), A(emb.weight)[[3]])
    with pytest.raises(TypeError, match="integers"):
        emb(fusejit.tensor([1.0]))
    padded = nn.Embedding(5, 3, padding_idx=-1)
    assert padded.padding_idx == 4 and np.all(A(padded.weight)[4] == 0)


def test_embedding_init_is_standard_normal():
    w = A(nn.Embedding(400, 100).weight)
    assert w.dtype == np.float32
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02


def test_activations_and_softmax_match_numpy():
    x = fusejit.randn(4, 7)
    xn = A(x).astype(np.float64)
    sig = 1 / (1 + np.exp(-xn))
    cases = [
        (nn.ReLU(), np.maximum(xn, 0)),
        (nn.GELU(), np_gelu(xn)),
        (nn.GELU("tanh"), 0.5 * xn * (1 + np.tanh(0.7978845608 * (xn + 0.044715 * xn**3)))),
        (nn.SiLU(), xn * sig),
        (nn.Tanh(), np.tanh(xn)),
        (nn.Sigmoid(), sig),
        (nn.Softmax(dim=-1), np.exp(xn) / np.exp(xn).sum(-1, keepdims=True)),
        (nn.Softmax(dim=0), np.exp(xn) / np.exp(xn).sum(0, keepdims=True)),
        (nn.Identity(), xn),
    ]
    for mod, ref in cases:
        y = mod(x)
        assert y.dtype is fusejit.float32, mod
        np.testing.assert_allclose(A(y), ref, rtol=1e-5, atol=1e-6, err_msg=repr(mod))
    with pytest.raises(ValueError):
        nn.GELU("fast")


# ---- dropout and modes ----------------------------------------------------------------------
def test_dropout_train_and_eval():
    d = nn.Dropout(0.25)
    x = fusejit.ones(200, 100)
    assert d.training
    y = A(d(x))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    # reproducible under the seed, different between calls
    fusejit.manual_seed(3)
    a = A(d(x))
    fusejit.manual_seed(3)
    assert np.array_equal(a, A(d(x))) and not np.array_equal(a, A(d(x)))
    d.eval()
    assert not d.training and d(x) is x
    assert np.all(A(nn.Dropout(1.0)(x)) == 0) and nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_train_eval_recurse():
    m = FeedForward(p=0.5)
    assert all(s.training for s in m.modules())
    assert m.eval() is m
    assert not any(s.training for s in m.modules())
    m.train()
    assert all(s.training for s in m.modules())
    x = fusejit.randn(3, 8)
    m.eval()
    assert np.array_equal(A(m(x)), A(m(x)))  # no dropout in eval mode


# ---- registration, traversal, containers ----------------------------------------------------
def test_registration_and_traversal():
    m = MLP()
    assert isinstance(m.fc1.weight, nn.Parameter) and isinstance(m.fc1.weight, fusejit.Tensor)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert len(list(m.parameters())) == 4
    assert [type(c).__name__ for c in m.children()] == ["Linear", "ReLU", "Linear"]
    assert len(list(m.modules())) == 4
    m.register_buffer("steps", fusejit.zeros(1))
    m.register_buffer("scratch", fusejit.zeros(2), persistent=False)
    assert [n for n, _ in m.named_buffers()] == ["steps", "scratch"]
    assert list(m.state_dict()) == ["steps", *names]  # own tensors, then children (as torch)
    with pytest.raises(TypeError, match="Parameter"):
        m.fc1.weight = fusejit.zeros(16, 8)
    m.fc2 = nn.Linear(16, 2)
    assert m(fusejit.randn(5, 8)).shape == (5, 2)
    # tied parameters are listed once
    m.fc3 = nn.Linear(16, 2)
    m.fc3.weight = m.fc2.weight
    assert len(list(m.parameters())) == 5
    del m.fc3
    assert "fc3" not in dict(m.named_children())

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(fusejit.zeros(1))

    with pytest.raises(AttributeError, match="super"):
        Early()


def test_sequential_and_module_list():
    seq = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    x = fusejit.randn(3, 4)
    np.testing.assert_allclose(A(seq(x)), A(seq[2](seq[1](seq[0](x)))), rtol=1e-6)
    with pytest.raises(IndexError):
        seq[3]
    ml = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    ml.append(nn.Tanh())
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "ReLU", "Tanh"]
    assert list(dict(ml.named_children())) == ["0", "1", "2", "3"]
    del ml[0]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias"]
    r = repr(seq)
    assert r.startswith("Sequential(\n  (0): Linear(in_features=4, out_features=8, bias=True)")
    assert "(1): GELU(approximate='none')" in r
    assert repr(nn.LayerNorm(3)) == "LayerNorm((3,), eps=1e-05, elementwise_affine=True)"


# ---- state ----------------------------------------------------------------------------------
def test_state_dict_round_trip():
    a, b = FeedForward(), FeedForward()
    x = fusejit.randn(4, 8)
    assert not np.allclose(A(a(x)), A(b(x)))
    params_before = list(b.parameters())
    sd = a.state_dict()
    assert list(sd) == ["norm.weight", "norm.bias", "up.weight", "up.bias", "down.weight",
                        "down.bias"]  # fmt: skip
    assert all(type(v) is fusejit.Tensor for v in sd.values())
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(A(a(x)), A(b(x)))
    # copied in place: the same parameter objects, not aliases of a's storage
    assert all(p is q for p, q in zip(params_before, b.parameters(), strict=True))
    with fusejit.no_grad():
        a.up.weight.add_(1.0)
    assert not np.array_equal(A(a.up.weight), A(b.up.weight))
    # state_dict tensors share storage with the module
    sd["up.bias"].fill_(0.0)
    assert np.all(A(a.up.bias) == 0)
    # numpy arrays load too
    b.load_state_dict({k: A(v) * 2 for k, v in a.state_dict().items()})
    np.testing.assert_allclose(A(b.down.bias), 2 * A(a.down.bias))


def test_load_state_dict_errors():
    m = MLP()
    sd = m.state_dict()
    before = A(m.fc1.weight).copy()
    missing = {k: v for k, v in sd.items() if k != "fc2.bias"}
    with pytest.raises(nn.LoadStateDictError, match="missing key.*'fc2.bias'") as e:
        m.load_state_dict(missing)
    assert e.value.missing_keys == ["fc2.bias"]
    extra = {**sd, "fc9.weight": fusejit.zeros(1)}
    with pytest.raises(nn.LoadStateDictError, match="unexpected key.*'fc9.weight'"):
        m.load_state_dict(extra)
    r = m.load_state_dict({**missing, "fc9.weight": fusejit.zeros(1)}, strict=False)
    assert r.missing_keys == ["fc2.bias"] and r.unexpected_keys == ["fc9.weight"]
    bad = {k: (fusejit.zeros(3, 3) if k == "fc1.weight" else fusejit.zeros_like(v) + 5)
           for k, v in sd.items()}  # fmt: skip
    with pytest.raises(nn.LoadStateDictError, match=r"size mismatch for 'fc1.weight'.*\[3, 3\]"):
        m.load_state_dict(bad, strict=False)
    # nothing was copied by the failed loads
    np.testing.assert_array_equal(A(m.fc1.weight), before)
    assert not np.all(A(m.fc2.bias) == 5)


def test_to_converts_in_place():
    m = FeedForward()
    x = fusejit.randn(2, 8)
    ref = A(m(x)).astype(np.float64)
    w = m.up.weight
    assert m.to(dtype=fusejit.float64) is m
    assert m.up.weight is w and w.dtype is fusejit.float64
    assert all(p.dtype is fusejit.float64 for p in m.parameters())
    y = m(x.double())
    assert y.dtype is fusejit.float64
    np.testing.assert_allclose(A(y), ref, rtol=1e-5, atol=1e-5)
    m.to("cpu")
    m.float()
    assert all(p.dtype is fusejit.float32 for p in m.parameters())
    with pytest.raises(TypeError, match="floating-point"):
        m.to(fusejit.int32)


# ---- blocks ---------------------------------------------------------------------------------
def _mlp_reference(m: MLP, x: np.ndarray) -> np.ndarray:
    h = np.maximum(x @ A(m.fc1.weight).T + A(m.fc1.bias), 0)
    return h @ A(m.fc2.weight).T + A(m.fc2.bias)


def _ffn_reference(m: FeedForward, x: np.ndarray) -> np.ndarray:
    h = np_layer_norm(x, A(m.norm.weight), A(m.norm.bias))
    h = np_gelu(h @ A(m.up.weight).T + A(m.up.bias))
    return x + h @ A(m.down.weight).T + A(m.down.bias)


def test_mlp_and_feed_forward_blocks_eager_cpu():
    m = MLP()
    x = fusejit.randn(6, 8)
    np.testing.assert_allclose(A(m(x)), _mlp_reference(m, A(x)), rtol=1e-4, atol=1e-5)
    f = FeedForward().eval()
    x3 = fusejit.randn(2, 5, 8)
    y = f(x3)
    assert y.shape == (2, 5, 8) and y.dtype is fusejit.float32
    np.testing.assert_allclose(A(y), _ffn_reference(f, A(x3).astype(np.float64)), rtol=1e-4,
                               atol=1e-5)  # fmt: skip


@pytest.mark.cuda
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="needs an NVIDIA GPU with cupy")
def test_blocks_on_cuda():
    f = FeedForward().eval()
    x = fusejit.randn(2, 5, 8)
    ref = A(f(x))
    f.to("cuda:0")
    assert all(p.device.type == "cuda" for p in f.parameters())
    y = f(x.to("cuda:0"))
    assert y.device.type == "cuda"
    np.testing.assert_allclose(A(y.cpu()), ref, rtol=1e-4, atol=1e-5)
    d = nn.Dropout(0.5)
    assert d(fusejit.ones(10, device="cuda:0")).device.type == "cuda"


def test_docstring_examples():
    res = doctest.testmod(nn_modules, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 5 and res.failed == 0
