"""Training from scratch on real data, written exactly as a PyTorch user writes it (issue #19):
an MLP and a small CNN on ``sklearn.datasets.load_digits`` to at least 97% test accuracy, a
2-layer character GPT on a slice of the Python standard library's own source, the trained MLP
saved with ``save_state_dict`` and reloaded in a new process, and the MLP trained on the GPU
(``-k cuda``; ``bench/gpu_check.sh``).

No timing asserts: ``bench/bench_training.py`` measures the wall times. The whole file takes
about 15 s on the 2-core CPU machine. numpy's BLAS is limited to one thread while these tests
run (when threadpoolctl is installed): the matmuls here are tiny, and on a loaded 2-core machine
BLAS threads waiting for a core made them 10x slower (``bench/RESULTS.md``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fusejit
import fusejit.nn as nn
import fusejit.nn.functional as F
from fusejit import optim
from tests.parity_helpers import CUDA_OK, _why_no_gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 0.97
GPT_LOSS_BELOW = 2.3  # nats per character; from ln(vocab) = 4.45, unigram entropy 3.01


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def load_split(conv: bool = False):
    """The digits (pixels scaled to [0, 1]) in a fixed, seeded split: 1400 to train, 397 to
    test."""
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    x = (d.data / 16.0).astype(np.float32)
    if conv:
        x = x.reshape(-1, 1, 8, 8)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1400], perm[1400:]
    return x[tr], d.target[tr], x[te], d.target[te]


def make_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))  # 8x8 -> 4x4
        x = self.pool(F.relu(self.bn2(self.conv2(x))))  # 4x4 -> 2x2
        return self.fc(x.flatten(1))


def accuracy(model, x, y) -> float:
    model.eval()
    with fusejit.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train(model, xtr, ytr, epochs: int, lr: float = 1e-2, batch: int = 64) -> list[float]:
    """The loop a PyTorch user writes; the mean training loss of each epoch."""
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    n = xtr.shape[0]
    losses = []
    for _ in range(epochs):
        model.train()
        perm = fusejit.randperm(n).to(xtr.device)
        total = 0.0
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        losses.append(total / n)
    return losses


@pytest.fixture(scope="module")
def trained_mlp():
    xtr, ytr, xte, yte = load_split()
    fusejit.manual_seed(0)
    model = make_mlp()
    losses = train(model, fusejit.tensor(xtr), fusejit.tensor(ytr), epochs=15)
    return model, losses, accuracy(model, fusejit.tensor(xte), fusejit.tensor(yte))


def test_mlp_digits(trained_mlp):
    model, losses, acc = trained_mlp
    assert losses[-1] < 0.1 and losses[0] > 5 * losses[-1]
    assert acc >= TARGET, f"MLP test accuracy {acc:.4f} < {TARGET}"
    assert all(p.grad is not None for p in model.parameters())


def test_cnn_digits():
    xtr, ytr, xte, yte = load_split(conv=True)
    fusejit.manual_seed(0)
    model = SmallCNN()
    losses = train(model, fusejit.tensor(xtr), fusejit.tensor(ytr), epochs=8)
    assert losses[-1] < losses[0] / 5
    acc = accuracy(model, fusejit.tensor(xte), fusejit.tensor(yte))
    assert acc >= TARGET, f"CNN test accuracy {acc:.4f} < {TARGET}"
    # BatchNorm kept running statistics: eval mode uses them, not the batch's
    assert model.bn1.num_batches_tracked.item() == 8 * math.ceil(1400 / 64)
    assert not np.allclose(model.bn1.running_var.numpy(), 1.0)


# -- a 2-layer character GPT ----------------------------------------------------------------


def stdlib_text(n: int = 16000) -> str:
    """A fixed slice of a standard-library module's source: text every Python install has."""
    path = os.path.join(os.path.dirname(os.__file__), "textwrap.py")
    with open(path, encoding="utf-8") as f:
        return f.read()[:n]


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab: int, context: int, dim: int = 64, heads: int = 4, layers: int = 2):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(fusejit.arange(idx.shape[1]))
        return self.head(self.ln(self.blocks(x)))


def test_char_gpt_loss_drops():
    text = stdlib_text()
    chars = sorted(set(text))
    data = np.array([chars.index(c) for c in text], dtype=np.int64)
    vocab, context, batch, steps = len(chars), 32, 16, 200
    rng = np.random.default_rng(0)

    def get_batch(starts):
        x = np.stack([data[s : s + context] for s in starts])
        y = np.stack([data[s + 1 : s + context + 1] for s in starts])
        return fusejit.tensor(x), fusejit.tensor(y)

    held = get_batch(rng.integers(0, len(data) - context - 1, 64))

    def eval_loss(model):
        model.eval()
        with fusejit.no_grad():
            return F.cross_entropy(model(held[0]).view(-1, vocab), held[1].view(-1)).item()

    fusejit.manual_seed(0)
    model = CharGPT(vocab, context)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    start = eval_loss(model)
    assert abs(start - math.log(vocab)) < 0.5, (start, math.log(vocab))
    norms = []
    for _ in range(steps):
        model.train()
        x, y = get_batch(rng.integers(0, len(data) - context - 1, batch))
        loss = F.cross_entropy(model(x).view(-1, vocab), y.view(-1))
        opt.zero_grad()
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0).item())
        opt.step()
        sched.step()
    end = eval_loss(model)
    assert end < GPT_LOSS_BELOW, f"char GPT loss {end:.3f} (from {start:.3f})"
    assert opt.param_groups[0]["lr"] < 1e-6  # the cosine schedule ran to its end
    assert max(norms) > 1.0  # clipping had something to clip


# -- checkpoints ----------------------------------------------------------------------------

_RELOAD = """
import json, sys
import numpy as np
import fusejit, fusejit.nn as nn
from tests.test_training import accuracy, load_split, make_mlp
model = make_mlp()
model.load_state_dict(fusejit.load_state_dict(sys.argv[1]))
_, _, xte, yte = load_split()
print(json.dumps({"accuracy": accuracy(model, fusejit.tensor(xte), fusejit.tensor(yte))}))
"""


def test_mlp_checkpoint_in_new_process(trained_mlp, tmp_path):
    model, _, acc = trained_mlp
    path = tmp_path / "mlp.safetensors"
    fusejit.save_state_dict(model, path)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _RELOAD, str(path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["accuracy"] == acc
    # other tools read it: safetensors' own numpy loader, the state_dict's names and values
    st = pytest.importorskip("safetensors.numpy")
    arrays = st.load_file(str(path))
    state = model.state_dict()
    assert list(arrays) == list(state) or sorted(arrays) == sorted(state)
    for k, v in state.items():
        assert arrays[k].dtype == np.float32 and arrays[k].shape == tuple(v.shape)
        np.testing.assert_array_equal(arrays[k], v.numpy())


# -- the GPU --------------------------------------------------------------------------------


def blobs(n: int = 2000, seed: int = 0):
    """Where scikit-learn is missing (the GPU machine): 10 Gaussian classes in 64 dims, as
    separable as the digits."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((10, 64)).astype(np.float32)
    y = rng.integers(0, 10, n)
    x = centers[y] + 1.5 * rng.standard_normal((n, 64)).astype(np.float32)
    return x[:1400], y[:1400], x[1400:], y[1400:]


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA_OK, reason=f"no usable GPU: {_why_no_gpu()}")
def test_mlp_training_cuda():
    try:
        xtr, ytr, xte, yte = load_split()
    except pytest.skip.Exception:
        xtr, ytr, xte, yte = blobs()
    results = {}
    for device in ("cpu", "cuda"):
        fusejit.manual_seed(0)
        model = make_mlp().to(device)
        assert all(p.device.type == device for p in model.parameters())
        losses = train(model, fusejit.tensor(xtr).to(device), fusejit.tensor(ytr).to(device),
                       epochs=10)  # fmt: skip
        acc = accuracy(model, fusejit.tensor(xte).to(device), fusejit.tensor(yte).to(device))
        results[device] = losses, acc
    assert results["cuda"][1] >= TARGET, results["cuda"][1]
    # the same initial weights and batches: the GPU follows the CPU's losses closely
    np.testing.assert_allclose(results["cuda"][0][:3], results["cpu"][0][:3], rtol=2e-3, atol=1e-3)


# -- the README's training loop --------------------------------------------------------------


def test_readme_training_loop(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## Training\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # (it writes mlp.safetensors)
    exec(compile(code, "README.md (Training)", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    acc = float(printed.split("test accuracy", 1)[1])
    assert acc >= TARGET, printed
    assert (tmp_path / "mlp.safetensors").exists()


# -- what training found slow ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "bool"])
def test_large_where_runs_as_a_kernel(dtype):
    """numpy's where branches on each element (1.1 ms for the 512 x 512 ReLU gradient of a
    training step); a large CPU ``where`` is a generated select now, with the same values."""
    from fusejit.backends import cpu

    n = cpu.WHERE_KERNEL_MIN * 2
    rng = np.random.default_rng(1)
    a = rng.standard_normal(n) * 100
    b = rng.standard_normal(n) * 100
    if dtype.startswith("float"):
        a[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, np.nan]
        b[:6] = [0.0, np.nan, -0.0, np.inf, -0.0, -np.inf]
    a, b = a.astype(dtype), b.astype(dtype)
    c = rng.random(n) < 0.5
    c[:6] = [True, True, False, True, False, False]
    x, y, m = fusejit.tensor(a), fusejit.tensor(b), fusejit.tensor(c)
    zero, one = (False, True) if dtype == "bool" else (0, 1)
    cases = [
        (fusejit.where(m, x, y), np.where(c, a, b)),
        (fusejit.where(m, x, zero), np.where(c, a, np.zeros((), dtype))),
        (fusejit.where(m, one, y), np.where(c, np.ones((), dtype), b)),
        (fusejit.where(m.view(64, -1), x.view(64, -1), y.view(64, -1)),
         np.where(c, a, b).reshape(64, -1)),
    ]  # fmt: skip
    for got, want in cases:
        assert got.dtype.name == dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)
        if dtype.startswith("float"):  # (the sign of zeros too)
            assert np.array_equal(np.signbit(got.numpy()), np.signbit(want))
    # traced, fused with a neighbour: the flat CPU kernel loads both values before selecting
    f = fusejit.trace(lambda m, a, b: fusejit.where(m, a, b) == b, (m, x, y))
    assert f.kernel_count() == 1
    np.testing.assert_array_equal(f(m, x, y).numpy(), np.where(c, a, b) == b)
    compute = {"float16": "float32"}.get(dtype, dtype)
    assert any(k[0] == "where" and k[1].name == compute for k in cpu.BACKEND._expr_kernels)
    # broadcast and non-contiguous operands keep numpy's where, with the same values
    got = fusejit.where(m.view(64, -1)[:, ::2], x.view(64, -1)[:, ::2], y[: n // 128])
    want = np.where(c.reshape(64, -1)[:, ::2], a.reshape(64, -1)[:, ::2], b[: n // 128])
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("n", [640, 1 << 14])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_where_with_a_scalar_records_its_gradient(n, dtype):
    """``where(mask, x, 0.0)`` (relu's backward, the losses) takes a short path on the CPU;
    it gives numpy's values and records for autograd as the general path does."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal(n).astype(dtype)
    c = a > 0
    x = fusejit.tensor(a, requires_grad=True)
    m = fusejit.tensor(c)
    for got, want in ((fusejit.where(m, x, 0.0), np.where(c, a, 0)),
                      (fusejit.where(m, 2, x), np.where(c, 2, a))):  # fmt: skip
        assert got.dtype.name == dtype
        np.testing.assert_array_equal(got.numpy(), want)
        assert got.requires_grad
    g = rng.standard_normal(n).astype(dtype)
    fusejit.where(m, x, 0.0).backward(fusejit.tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), np.where(c, g, 0))
    with fusejit.no_grad():
        assert not fusejit.where(m, x, 0.0).requires_grad


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_without_ignored_targets(reduction):
    """With no target equal to ``ignore_index`` the loss takes fewer ops; its values and
    gradients are the reference's (float64), and a batch with an ignored target still gives
    the weighted mean over the others."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((32, 7))
    y = rng.integers(0, 7, 32)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    per = -logp[np.arange(32), y]
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    x = fusejit.tensor(z, requires_grad=True)
    loss = F.cross_entropy(x, fusejit.tensor(y), reduction=reduction)
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-12)
    loss.sum().backward()
    p = np.exp(logp)
    p[np.arange(32), y] -= 1
    np.testing.assert_allclose(x.grad.numpy(), p / (32 if reduction == "mean" else 1), rtol=1e-10,
                               atol=1e-15)  # fmt: skip
    y2 = y.copy()
    y2[:5] = -100
    got = F.cross_entropy(fusejit.tensor(z), fusejit.tensor(y2), reduction=reduction).numpy()
    keep = y2 != -100
    want2 = {"mean": per[keep].mean(), "sum": per[keep].sum(), "none": np.where(keep, per, 0)}
    np.testing.assert_allclose(got, want2[reduction], rtol=1e-12)
