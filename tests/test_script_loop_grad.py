"""Gradients through scripted control flow: ``for`` / ``while`` loops (``loop`` nodes, ``break``),
``if`` nodes, ``x[t]`` and ``ys[t] = h`` / ``append`` inside loops, and the README's scripted
LSTM training.

A scripted function with control flow runs its graph with each straight-line run of ops
compiled as a joint forward/backward graph (``fusejit/jit/control_grad.py``). Its gradients are
compared with eager autograd's gradients of the same Python function: bit for bit where every
op (forward and derivative rule) is exact, else (fused ``sigmoid`` / ``tanh`` differ from
numpy's by a few ulps, which the chain rule carries through the time steps) within ``rtol`` of
each element plus of the gradient's largest magnitude: 1e-12 for float64, 1e-5 for float32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from jit_helpers import as_np, assert_bitwise, module_cache_fixture
from parity_helpers import DEVICES
from readme_models import LSTM

import fusejit as F
from fusejit import nn

_cache = module_cache_fixture()


@pytest.fixture(autouse=True)
def _no_tracer_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", F.TracerWarning)
        yield


def rand(*shape, dtype=np.float64, seed=0, grad=True, lo=-1.0, hi=1.0):
    a = np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)
    t = F.tensor(a)
    return t.requires_grad_() if grad else t


def clone_leaves(ts):
    return tuple(
        F.tensor(t.numpy().copy()).requires_grad_(t.requires_grad) if isinstance(t, F.Tensor)
        else t
        for t in ts
    )  # fmt: skip


def grads_of(fn, inputs, seed=1, create_graph=False):
    """(outputs, gradients of the inputs requiring grad) of ``fn(*inputs)`` for random
    gradients of its outputs."""
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    rng = np.random.default_rng(seed)
    diff = [o for o in outs if isinstance(o, F.Tensor) and o.requires_grad]
    gos = [F.tensor(rng.uniform(-1, 1, o.shape).astype(o.dtype.np)) for o in diff]
    targets = [t for t in inputs if isinstance(t, F.Tensor) and t.requires_grad]
    gs = F.autograd.grad(diff, targets, gos, allow_unused=True, create_graph=create_graph)
    return outs, gs


def close(actual, expected, rtol, what=""):
    """|actual - expected| <= rtol * (|expected| + max |expected|)."""
    a, b = as_np(actual).astype(np.float64), as_np(expected).astype(np.float64)
    assert a.shape == b.shape, what
    tol = rtol * (np.abs(b) + np.abs(b).max(initial=0.0))
    bad = np.abs(a - b) > tol
    assert not bad.any(), f"{what}: max error {np.abs(a - b).max()} (rtol {rtol})"


def check_same(fn, args, exact: bool, rtol: float = 1e-12, create_graph: bool = False):
    """The scripted ``fn`` gives eager's outputs and gradients (bitwise when ``exact``)."""
    sf = F.script(fn)
    oj, gj = grads_of(sf, clone_leaves(args), create_graph=create_graph)
    oe, ge = grads_of(fn, clone_leaves(args), create_graph=create_graph)
    assert len(gj) == len(ge)
    for a, b in zip([*oj, *gj], [*oe, *ge], strict=True):
        if b is None:
            assert a is None
        elif exact:
            assert_bitwise(a, b)
        else:
            close(a, b, rtol)
    return sf


# ---- loops --------------------------------------------------------------------------------------
def test_for_loop_exact_ops_bitwise():
    def f(x, w, b, n: int):
        for _ in range(n):
            x = x * w + b
        return x

    args = (rand(4, 5, seed=1), rand(4, 5, seed=2, lo=0.5, hi=1.1), rand(4, 5, seed=3), 6)
    sf = check_same(f, args, exact=True)
    # a broadcast bias: its gradient is summed over rows, in another order than numpy's sum
    check_same(f, (*args[:2], rand(5, seed=3), 6), exact=False, rtol=1e-14)
    out = sf(*clone_leaves(args))
    assert out.requires_grad
    # the loop runs as a loop node: one compiled backward per iteration
    assert any(n.op == "loop" for n in sf.graph.nodes)


def test_loop_with_matmul_and_captured_weight():
    w = rand(5, 5, seed=4)

    def f(x):
        h = x
        for _ in range(4):
            h = (h @ w).tanh() + h
        return h.sum(0)

    x = rand(3, 5, seed=5)
    sf = F.script(f)
    (oj,), (gj,) = grads_of(sf, (x,))
    gwj = F.autograd.grad(sf(x).sum(), [w])[0]
    (oe,), (ge,) = grads_of(f, (x,))
    gwe = F.autograd.grad(f(x).sum(), [w])[0]
    close(oj, oe, 1e-14)
    close(gj, ge, 1e-12)
    close(gwj, gwe, 1e-12)
    # into .grad of the captured tensor (a global), accumulated as eager does
    w.grad = None
    sf(x).sum().backward()
    close(w.grad, gwe, 1e-12)


def test_loop_carried_int_and_zero_trips():
    def f(x, n: int):
        k = 0
        for i in range(n):
            x = x * 1.5 + i
            k = k + 1
        return x * k

    check_same(f, (rand(6, seed=1), 5), exact=True)
    check_same(f, (rand(6, seed=1), 0), exact=True)


def test_while_loop_data_dependent():
    def f(x, limit: float):
        while (x * x).sum() < limit:
            x = x * 1.25 + 0.5
        return x

    x = rand(4, seed=2, lo=0.1, hi=0.3)
    sf = check_same(f, (x, 20.0), exact=True)
    # another trip count for other data: same specialization, same gradients as eager
    check_same(f, (rand(4, seed=3, lo=0.5, hi=0.9), 20.0), exact=True)
    assert len(sf.specializations()) == 1


def test_break():
    def f(x, n: int):
        for _ in range(n):
            x = x * 2.0 - 0.25
            if x.sum() > 10:
                break
        return x

    check_same(f, (rand(3, seed=6, lo=0.2, hi=0.5), 10), exact=True)


def test_nested_loops():
    def f(x, w):
        for _ in range(3):
            for _ in range(2):
                x = x * w
            x = x + 1.0
        return x

    check_same(f, (rand(2, 3, seed=7), rand(2, 3, seed=8)), exact=True)


# ---- if ------------------------------------------------------------------------------------------
def test_if_takes_the_gradient_of_the_branch_taken():
    def f(x, y):
        if x.sum() > 0:
            z = x * y
        else:
            z = x - y * y
        return z * 3.0

    for seed, lo in ((1, 0.1), (2, -0.9)):
        check_same(f, (rand(5, seed=seed, lo=lo, hi=lo + 0.5), rand(5, seed=9)), exact=True)


def test_if_inside_loop():
    def f(x, w):
        for _ in range(4):
            if (x * w).sum() > 0:
                x = x * w - 0.5
            else:
                x = x + w
        return x

    check_same(f, (rand(6, seed=3), rand(6, seed=4)), exact=True)


# ---- indexing inside loops -----------------------------------------------------------------------
def test_select_and_appended_outputs():
    def f(x, h, w):
        outs = []
        for t in range(x.shape[0]):
            h = (x[t] + h * w).tanh()
            outs.append(h)
        return F.stack(outs), h

    args = (rand(5, 3, 4, seed=1), rand(3, 4, seed=2), rand(3, 4, seed=3))
    check_same(f, args, exact=False, rtol=1e-12)


def test_rows_written_by_index_and_overwritten():
    def f(x, y0):
        ys = y0 * 1.0
        for t in range(x.shape[0]):
            ys[t % 2] = x[t] * (t + 1.0)  # rows 0 and 1 written again: the last write counts
        return ys

    check_same(f, (rand(4, 3, seed=1), rand(3, 3, seed=2)), exact=True)


def test_buffer_read_inside_loop():
    def f(x):
        acc = x * 0.0
        for t in range(x.shape[0]):
            acc[t] = x[t] * 2.0 + acc.sum(0)  # the buffer is read too: written as a copy
        return acc

    check_same(f, (rand(3, 4, seed=5),), exact=True)


# ---- gradcheck, create_graph, modes --------------------------------------------------------------
def test_gradcheck_through_loop():
    def f(x, h, w):
        for t in range(x.shape[0]):
            h = (x[t] @ w + h).sigmoid() * h
        return h

    sf = F.script(f)
    args = (rand(4, 2, 3, seed=1), rand(2, 3, seed=2), rand(3, 3, seed=3))
    assert F.autograd.gradcheck(sf, args)


def test_create_graph_through_loop():
    def f(x, n: int):
        for _ in range(n):
            x = x * x.sin()
        return x.sum()

    x = rand(5, seed=4)
    sf = F.script(f)
    (g1,) = F.autograd.grad(sf(x, 3), [x], create_graph=True)
    (h1,) = F.autograd.grad(g1.sum(), [x])
    (g2,) = F.autograd.grad(f(x, 3), [x], create_graph=True)
    (h2,) = F.autograd.grad(g2.sum(), [x])
    close(g1, g2, 1e-12)
    close(h1, h2, 1e-12)


def test_no_grad_and_inputs_not_requiring_grad():
    def f(x, n: int):
        for _ in range(n):
            x = x * 2.0
        return x

    sf = F.script(f)
    x = rand(3, seed=1)
    with F.no_grad():
        assert not sf(x, 2).requires_grad
    assert not sf(rand(3, grad=False), 2).requires_grad
    y = sf(x, 2)
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 4.0))


def test_detach_stops_gradients():
    """``detach()`` is a node of the graph that passes no gradient: the compiled backward
    (through a loop too) stops where eager's does, with no warning."""

    def f(x):
        return (x * x.detach()).sum()

    def g(x, n: int):
        for _ in range(n):
            x = x * x.detach() + 1.0
        return x.sum()

    for fn, extra in ((f, ()), (g, (3,))):
        sf = F.script(fn)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (nothing runs eagerly)
            _, gj = grads_of(sf, (rand(4, seed=1), *extra))
        _, ge = grads_of(fn, (rand(4, seed=1), *extra))
        assert_bitwise(gj[0], ge[0])
        with F.no_grad():  # no gradients needed: the compiled graph (its sum in another order)
            close(sf(rand(4, seed=1), *extra), fn(rand(4, seed=1), *extra), 1e-14)


# ---- the README's scripted LSTM ------------------------------------------------------------------


def _lstm_pair(n_in, n_hid, dtype, device="cpu"):
    F.manual_seed(0)
    eager = LSTM(n_in, n_hid).to(dtype=dtype).to(device)
    plain = LSTM(n_in, n_hid).to(dtype=dtype).to(device)
    plain.load_state_dict(eager.state_dict())
    return eager, F.script(plain)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,rtol", [(F.float64, 1e-12), (F.float32, 1e-5)])
def test_lstm_gradients_equal_eager(dtype, rtol, device):
    eager, scripted = _lstm_pair(6, 5, dtype, device)
    np_dt = dtype.np
    x = rand(7, 3, 6, dtype=np_dt, seed=1, grad=False)
    h0 = rand(3, 5, dtype=np_dt, seed=2, grad=False)
    c0 = rand(3, 5, dtype=np_dt, seed=3, grad=False).to(device)
    got, want = [], []
    for m, into in ((scripted, got), (eager, want)):
        xs, hs = (t.to(device).requires_grad_() for t in clone_leaves((x, h0)))
        ys, h, c = m(xs, hs, c0)
        loss = (ys * ys).mean() + (h * c).sum()
        loss.backward()
        into.extend([loss, xs.grad, hs.grad, *(p.grad for p in m.parameters())])
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.device.type == device
        close(a.cpu(), b.cpu(), rtol, f"value {k}")


def test_lstm_gradcheck():
    _, scripted = _lstm_pair(3, 2, F.float64)
    x = rand(4, 2, 3, seed=1)
    h0 = rand(2, 2, seed=2)
    c0 = rand(2, 2, seed=3)

    def f(x, h, c):
        ys, h, c = scripted(x, h, c)
        return ys, c

    assert F.autograd.gradcheck(f, (x, h0, c0))


def test_lstm_trains():
    """A small sequence task: predict the running mean of the input's first feature."""
    F.manual_seed(1)
    eager, scripted = _lstm_pair(4, 8, F.float32)
    head_e, head_s = nn.Linear(8, 1), nn.Linear(8, 1)
    head_s.load_state_dict(head_e.state_dict())
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((10, 16, 4)).astype(np.float32)
    target = np.cumsum(xs[..., :1], 0) / np.arange(1, 11, dtype=np.float32)[:, None, None]
    x, y = F.tensor(xs), F.tensor(target)
    h0, c0 = F.zeros(16, 8), F.zeros(16, 8)

    def train(model, head, steps=30):
        opt = F.optim.Adam([*model.parameters(), *head.parameters()], lr=0.02)
        losses = []
        for _ in range(steps):
            ys, _, _ = model(x, h0, c0)
            loss = ((head(ys) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    ls = train(scripted, head_s)
    le = train(eager, head_e)
    assert ls[-1] < 0.5 * ls[0], ls
    # same weights, same steps: the scripted model follows eager's training
    close(np.array(ls), np.array(le), 1e-3)
    for a, b in zip(scripted.parameters(), eager.parameters(), strict=True):
        close(a, b, 1e-3)


def test_readme_scripted_lstm_trains(capsys, tmp_path):
    """The README's scripted LSTM and its training lines, run with smaller sizes (from a file:
    scripting reads the source)."""
    import os
    import runpy

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("A scripted LSTM over a sequence loop", 1)[1]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:3]]
    assert "class LSTM" in blocks[0] and "loss.backward()" in blocks[1]
    code = "\n".join(blocks)
    for big, small in (("512", "12"), ("100", "6"), ("64", "5")):
        code = code.replace(big, small)
    path = tmp_path / "readme_lstm.py"
    path.write_text(code, encoding="utf-8")
    runpy.run_path(str(path), run_name="readme")
    printed = capsys.readouterr().out
    losses = [float(line.rsplit(" ", 1)[1]) for line in printed.splitlines()
              if line.startswith("step ")]  # fmt: skip
    assert len(losses) == 5 and losses[-1] < losses[0], printed


# ---- random loop programs ------------------------------------------------------------------------
_UNARY = ("{}.sin()", "{}.tanh()", "{}.sigmoid()", "({} * 0.5)", "(-{})", "{}.cos()")
_BINARY = ("({} + {})", "({} - {})", "({} * {})")


def _random_expr(rng, names, depth):
    if depth == 0:
        return str(rng.choice(names))
    if rng.random() < 0.4:
        return str(rng.choice(_UNARY)).format(_random_expr(rng, names, depth - 1))
    a, b = (_random_expr(rng, names, depth - 1) for _ in range(2))
    return str(rng.choice(_BINARY)).format(a, b)


def _random_program(seed: int) -> str:
    """A function of (x, y, w) with a loop carrying x and y (an ``if`` or a ``break`` in
    some), its body random elementwise expressions; a matmul with w in some."""
    rng = np.random.default_rng(seed)
    names = ["x", "y", "w"]
    n = int(rng.integers(1, 5))
    lines = ["def f(x, y, w):", "    a = x * 0.0", f"    for t in range({n}):"]
    lines.append(f"        a = {_random_expr(rng, names, 2)}")
    if rng.random() < 0.5:
        lines.append("        a = a @ w")
    kind = rng.integers(3)
    if kind == 0:
        lines += ["        if a.sum() > 0:",
                  f"            x = {_random_expr(rng, [*names, 'a'], 2)}",
                  "        else:",
                  f"            x = {_random_expr(rng, [*names, 'a'], 2)}"]  # fmt: skip
    else:
        lines.append(f"        x = {_random_expr(rng, [*names, 'a'], 2)}")
    lines.append(f"        y = ({_random_expr(rng, [*names, 'a'], 2)}) * 0.5")
    if kind == 1:
        lines += ["        if (x * x).sum() > 12:", "            break"]
    lines.append("    return x, (y * a).sum()")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(8))
def test_random_loop_programs(seed, tmp_path):
    import importlib.util

    src = _random_program(seed)
    path = tmp_path / f"prog_{seed}.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"prog_{seed}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = (rand(3, 3, seed=seed), rand(3, 3, seed=seed + 100), rand(3, 3, seed=seed + 200))
    sf = F.script(mod.f)
    oj, gj = grads_of(sf, clone_leaves(args))
    oe, ge = grads_of(mod.f, clone_leaves(args))
    for a, b in zip([*oj, *gj], [*oe, *ge], strict=True):
        close(a, b, 1e-12, src)


def test_lstm_training_step_peak_memory_not_above_eager():
    """Residuals are saved per iteration, as eager autograd saves each op's operands: the peak
    memory of a training step (``tracemalloc``: numpy's buffers and Python objects) is at most
    eager's."""
    import tracemalloc

    eager, scripted = _lstm_pair(64, 64, F.float32)
    x = rand(12, 32, 64, dtype=np.float32, seed=1, grad=False)
    target = rand(12, 32, 64, dtype=np.float32, seed=2, grad=False)
    h0 = F.zeros(32, 64)

    def step(m):
        ys, _, _ = m(x, h0, h0)
        ((ys - target) ** 2).mean().backward()

    peaks = []
    for m in (scripted, eager):
        step(m)  # (compiles)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            step(m)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
    assert peaks[0] <= peaks[1], peaks
