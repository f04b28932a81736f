"""fusejit.script constructs PyTorch users write in TorchScript: ``assert``, ``math.*``, ``*``
unpacking in calls, lists of tensors grown in loops, item assignment in loops, ``len`` /
``enumerate`` / ``zip`` and f-strings. Each runs as plain Python (eager, on fusejit tensors)
and scripted, and the outputs are compared (bitwise where the ops are exact); the graph
prints, the scripted object saves and loads, and the forms still refused raise a
``ScriptError`` naming the construct and its line.

(PYTEST_DONT_REWRITE: the functions compared hold ``assert`` statements, whose messages
pytest's assertion rewriting would change in plain Python only.)"""

from __future__ import annotations

import math
from math import sqrt

import numpy as np
import pytest
from readme_models import scripted_lstm

import fusejit
from fusejit.ir.verify import verify
from fusejit.jit.interpret import interpret

RNG = np.random.default_rng(21)


def T(*shape):
    return fusejit.from_numpy(RNG.standard_normal(shape).astype(np.float32))


def same(a, b, exact=True):
    """Scripted ``a`` equals plain-Python ``b``: bitwise when ``exact``, else to 1e-6."""
    if isinstance(b, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            same(x, y, exact)
    elif isinstance(b, fusejit.Tensor):
        assert isinstance(a, fusejit.Tensor) and a.dtype is b.dtype and a.shape == b.shape
        if exact:
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        else:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    else:
        assert type(a) is type(b) and a == b, (a, b)


def check(sf, *args, exact=True):
    """Scripted vs plain Python on ``args``; the graph verifies and prints."""
    out = sf(*args)
    same(out, sf.fn(*args), exact)
    verify(sf.graph)
    assert str(sf.graph)
    compile(sf.code, "<code>", "exec")
    return out


def round_trip(sf, tmp_path, *args, exact=True):
    """Save the scripted object (called on ``args`` before), load it, compare its result."""
    path = tmp_path / f"{sf.__name__}.fjz"
    fusejit.save(sf, path)
    loaded = fusejit.load(path)
    same(loaded(*args), sf(*args), exact)
    assert str(loaded.graph)
    return loaded


def raises_same(sf, *args):
    """Plain Python and the scripted function both raise AssertionError with one message."""
    with pytest.raises(AssertionError) as plain:
        sf.fn(*args)
    with pytest.raises(AssertionError) as scripted:
        sf(*args)
    assert str(scripted.value) == str(plain.value)
    return str(scripted.value)


def script_error(fn, *args, match: str, line: int):
    """``fn`` scripted (and called) raises a ScriptError matching ``match`` that points at
    line ``line`` of its body (1 = the line after ``def``)."""
    with pytest.raises(fusejit.ScriptError, match=match) as e:
        fusejit.script(fn)(*args)
    assert e.value.lineno == fn.__code__.co_firstlineno + line, str(e.value)
    return e.value


# ---- assert ------------------------------------------------------------------------------------
@fusejit.script
def checked(x, n: int):
    assert x.shape[0] == 4, "need 4 rows"
    assert x.ndim == 2
    assert (x > 0).all(), f"x must be positive: min {x.min().item():.3f}, n={n!r}"
    assert n >= 0, f"n={n:>4} is negative"
    return x * 2 + n


def test_assert_passing_and_failing_like_python(tmp_path):
    x = T(4, 3).abs() + 0.5
    check(checked, x, 3)
    check(checked, x, 0)
    msg = raises_same(checked, x - 10, 3)
    assert msg.startswith("x must be positive: min -") and msg.endswith("n=3")
    assert raises_same(checked, x, -2) == "n=  -2 is negative"
    assert raises_same(checked, T(3, 3), 1) == "need 4 rows"  # a shape known when compiling
    assert "assert[" in str(checked.graph)
    loaded = round_trip(checked, tmp_path, x, 5)
    with pytest.raises(AssertionError, match="x must be positive"):
        loaded(x - 10, 5)


@fusejit.script
def assert_in_loop(x, limit: float):
    total = x[0] * 0
    for t in range(x.shape[0]):
        total = total + x[t]
        assert total.sum() < limit, f"step {t}: over {limit}"
    return total


def test_assert_inside_a_loop_node_raises_at_the_failing_iteration():
    x = T(6, 3).abs()
    check(assert_in_loop, x, 1e9)
    s = float(x.sum(1)[0].item()) + 0.5 * float(x.sum(1)[1].item())
    assert raises_same(assert_in_loop, x, s).startswith("step 1: over ")
    body = [n for n in assert_in_loop.graph.nodes if n.op == "loop"][0].blocks[0]
    assert any(n.op == "assert" for n in body.nodes)


@fusejit.script
def assert_in_branch(x):
    if x.sum() > 0:
        y = x * 2
    else:
        assert False, "negative sum"  # noqa: B011 (the construct under test)
    return y + 1


@fusejit.script
def assert_always(x):
    print("before")
    assert x.shape[0] == 3, "three"
    return x.sum()


def test_assert_that_always_fails_ends_its_block(capsys):
    x = T(5).abs()
    check(assert_in_branch, x)
    assert raises_same(assert_in_branch, -x) == "negative sum"
    check(assert_always, T(3))
    with pytest.raises(AssertionError, match="three"):
        assert_always(T(4))  # "before" is printed first, as in Python
    assert capsys.readouterr().out.count("before") == 2 + 1


@fusejit.script
def needs_three(x):
    assert x.shape[0] == 3, f"needs 3 rows, got {x.shape[0]}"
    return x * 2


@fusejit.script
def calls_needs_three(x):
    y = needs_three(x) + 1  # inlined: for 4 rows the callee always fails
    return y.sum()


def test_an_inlined_callee_that_always_fails_its_assert():
    check(calls_needs_three, T(3, 2))
    assert raises_same(calls_needs_three, T(4, 2)) == "needs 3 rows, got 4"


def test_assert_is_checked_under_python_O(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "mod.py").write_text(
        "import fusejit\n\n\n@fusejit.script\ndef f(x):\n"
        "    assert (x > 0).all(), 'positive'\n    return x\n"
    )
    code = "import fusejit, mod\ntry:\n    mod.f(-fusejit.ones(2))\nexcept AssertionError as e:\n"
    code += "    print('raised', e)\n"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run([sys.executable, "-O", "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "raised positive"


def test_assert_runs_in_the_reference_interpreter():
    f = fusejit.script(checked.fn)
    f(T(4, 3).abs() + 1, 1)
    g = f.specializations()[-1].raw_graph
    x = fusejit.from_numpy(-np.ones((4, 3), np.float32))
    with pytest.raises(AssertionError, match="x must be positive"):
        interpret(g, x, fusejit.tensor(1), *g.captured)


# ---- f-strings in print ------------------------------------------------------------------------
@fusejit.script
def report(x, step: int, lr: float):
    loss = (x * x).mean()
    print(f"step {step:03d} lr={lr:.2e} loss={loss.item():.4f}", "ok", sep=" | ")
    print(f"{step!r:>6}|{lr}|{x.shape}|{'const'}")
    print(f"tensor {loss}", end="!\n")
    return loss


def test_fstrings_in_print_match_python(capsys):
    x = T(3, 2)
    for step, lr in ((7, 0.001), (12, 3.5)):
        report(x, step, lr)
        scripted = capsys.readouterr().out
        report.fn(x, step, lr)
        assert scripted == capsys.readouterr().out
    assert "fmts=" in str(report.graph)


# ---- math --------------------------------------------------------------------------------------
@fusejit.script
def attention_scale(q, k, temp: float, n: int):
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d)  # a shape value: folded
    w = (q @ k.mT) * scale / temp
    a = math.log(temp) + math.exp(-temp) + math.log(temp, 2) + sqrt(n) + math.log1p(temp)
    b = math.floor(temp * 3) + math.ceil(temp) + math.floor(n) + math.trunc(-temp)
    c = math.pi * math.e - math.tau + (1.0 if math.isinf(math.inf) else 0.0)
    e = math.atan2(temp, n) + math.pow(temp, 2.0) + math.degrees(temp) + math.hypot(temp, n)
    f = math.cos(temp) * math.tanh(temp) + math.fabs(-temp)
    ok = math.isfinite(temp) and not math.isnan(temp)
    return w, a, b, c, e, f, ok


def test_math_functions_and_constants_on_scalars(tmp_path):
    q, k = T(2, 4, 8), T(2, 4, 8)
    for temp, n in ((0.7, 3), (2.25, 10), (1e-3, 1)):
        out = attention_scale(q, k, temp, n)
        plain = attention_scale.fn(q, k, temp, n)
        same(out[0], plain[0], exact=False)
        for a, b in zip(out[1:], plain[1:]):
            assert type(a) is type(b)
            assert a == pytest.approx(b, rel=1e-12)
    round_trip(attention_scale, tmp_path, q, k, 0.5, 4, exact=False)


def _math_domain(x, v: float):
    return x * math.sqrt(v)


def _math_domain_constant(x):
    return x * math.sqrt(-1.0)


def test_math_domain_error_is_nan_at_run_time_and_an_error_when_compiling():
    f = fusejit.script(_math_domain)
    assert bool(f(T(2), -1.0).isnan().all())  # (Python: ValueError; see CONTRIBUTING)
    same(f(fusejit.ones(2), 4.0), fusejit.ones(2) * 2.0)
    script_error(_math_domain_constant, T(2), match="ValueError: math domain error", line=1)


def _math_of_tensor(x):
    return math.sqrt(x)


def _math_runtime_gcd(x, n: int):
    return x * math.gcd(n, 4)


def test_math_errors():
    e = script_error(_math_of_tensor, T(3), match=r"math.sqrt\(\) of a tensor", line=1)
    assert "x.sqrt()" in e.hint
    script_error(_math_runtime_gcd, T(3), 2, match=r"math.gcd\(\) of a run-time", line=1)


# ---- * unpacking -------------------------------------------------------------------------------
@fusejit.script
def heads(x, n_head: int):
    B, S, C = x.shape
    shape = (B, S)
    q = x.view(*shape, 4, C // 4)
    r = x.reshape(*x.shape[:-1], 2, -1)
    p = q.permute(*range(4))
    sizes = (*shape, 1)
    both = fusejit.cat([*[q.sum(-1)], r.sum(-1).repeat(1, 1, 2)], 0)
    return q * n_head, r, p, sizes, both


def test_star_unpacking_in_calls_and_displays(tmp_path):
    x = T(2, 3, 8)
    check(heads, x, 2)
    round_trip(heads, tmp_path, x, 3)


def _star_tensor(x):
    return x.view(*x)


def _star_target(x):
    a, *b = x.shape
    return x


def test_star_unpacking_errors():
    script_error(_star_tensor, T(3), match=r"`\*` unpacking of a Tensor", line=1)
    with pytest.raises(fusejit.ScriptError, match=r"`\*` in an assignment target") as e:
        fusejit.script(_star_target)
    assert e.value.lineno == _star_target.__code__.co_firstlineno + 1


# ---- lists that grow in loops ------------------------------------------------------------------
LSTM = scripted_lstm()


def test_lstm_with_append_and_stack(tmp_path):
    fusejit.manual_seed(0)
    m = LSTM(8, 16)
    x, h, c = T(7, 3, 8), T(3, 16), T(3, 16)
    out = m(x, h, c)
    same(out, LSTM.forward.fn(m, x, h, c), exact=False)
    assert out[0].shape == (7, 3, 16)
    g = m.forward.graph
    verify(g)
    (loop,) = [n for n in g.nodes if n.op == "loop"]
    assert any(n.op == "update" for n in loop.blocks[0].nodes)  # one row per step
    assert "update[dim=0]" in str(g)
    same(m(x, h, c), out)  # the buffer written in place is a fresh copy each call
    round_trip(m.forward, tmp_path, x, h, c)


@fusejit.script
def grown(x):
    outs = []
    squares = []
    for t in range(x.shape[0]):
        outs.append(x[t] * 2)
        squares.append(x[t] * x[t])
    a = fusejit.cat(outs, 1)
    b = fusejit.stack(squares, -1)
    c = fusejit.stack(outs, dim=1)
    d = fusejit.cat(squares)
    total = x[0] * 0
    for o in outs:
        total = total + o
    for k, (o, s) in enumerate(zip(outs, squares)):
        total = total + o * s + k
    e = fusejit.stack([*outs, *squares])
    return a, b, c, d, e, len(outs), outs[0], outs[-1], total, squares, (*zip(outs, squares),)


def test_grown_lists_stack_cat_len_index_iterate_and_return(tmp_path):
    x = T(4, 2, 3)
    check(grown, x)
    round_trip(grown, tmp_path, x)


@fusejit.script
def grown_runtime_index(x, k: int):
    outs = []
    for row in x:
        outs.append(row.exp())
    return outs[k], fusejit.stack(outs, 0).sum(0)


def test_grown_list_over_tensor_rows_and_runtime_index():
    x = T(5, 3)
    for k in (0, 3, -1):
        check(grown_runtime_index, x, k, exact=False)


@fusejit.script
def grown_nested(x):
    rows = []
    for i in range(x.shape[0]):
        row = []
        for j in range(x.shape[1]):
            v = x[i][j] * (i + j)
            if v.sum() > 0:  # a data-dependent branch before the append
                v = -v
            row.append(v)
        rows.append(fusejit.stack(row))
    return fusejit.stack(rows), len(rows)


def test_grown_lists_in_nested_loops():
    x = T(3, 4, 2)
    out = check(grown_nested, x)
    assert out[0].shape == (3, 4, 2) and out[1] == 3
    (outer,) = [n for n in grown_nested.graph.nodes if n.op == "loop"]
    assert any(n.op == "loop" for n in outer.blocks[0].nodes)


def _grow_in_while(x):
    outs = []
    i = 0
    while i < 3:
        outs.append(x)
        i += 1
    return fusejit.stack(outs)


def _grow_runtime_range(x, n: int):
    outs = []
    for _ in range(n):
        outs.append(x)
    return fusejit.stack(outs)


def _grow_in_branch(x):
    outs = []
    for t in range(x.shape[0]):
        if x[t].sum() > 0:
            outs.append(x[t])
    return fusejit.stack(outs)


def _grow_with_break(x):
    outs = []
    for t in range(x.shape[0]):
        outs.append(x[t])
        if x[t].sum() > 0:
            break
    return fusejit.stack(outs)


def _grow_twice(x):
    outs = []
    for t in range(x.shape[0]):
        outs.append(x[t])
        outs.append(x[t])
    return fusejit.stack(outs)


def _grow_nonempty(x):
    outs = [x[0]]
    for t in range(x.shape[0]):
        outs.append(x[t])
    return fusejit.stack(outs)


def _grow_read_inside(x):
    outs = []
    for t in range(x.shape[0]):
        outs.append(x[t])
        y = outs[-1]
    return fusejit.stack(outs), y


def _grow_len_inside(x):
    outs = []
    for t in range(x.shape[0]):
        outs.append(x[t] * len(outs))
    return fusejit.stack(outs)


def _grow_aliased(x):
    outs = []
    same_list = outs
    for t in range(x.shape[0]):
        outs.append(x[t])
    return fusejit.stack(same_list)


def _grow_two_types(x):
    outs = []
    for t in range(x.shape[0]):
        outs.append(x[t])
    outs.append(x)
    return outs


@pytest.mark.parametrize(
    "fn, args, match, line",
    [
        (_grow_in_while, (), "known only at run time", 4),
        (_grow_runtime_range, (3,), "known only at run time", 3),
        (_grow_in_branch, (), "cannot change inside it", 4),
        (_grow_with_break, (), "no `break` or `return`", 2),
        (_grow_twice, (), "one append per iteration", 4),
        (_grow_nonempty, (), "must be empty before it", 3),
        (_grow_read_inside, (), "can only be appended to", 4),
        (_grow_len_inside, (), "can only be appended to", 3),
        (_grow_aliased, (), "held by one local variable", 4),
    ],
)
def test_grown_list_errors(fn, args, match, line):
    e = script_error(fn, T(3, 2), *args, match=match, line=line)
    assert "ys[t] = h" in e.hint or "append" in str(e)


def test_grown_list_used_as_a_plain_list_after_the_loop():
    x = T(3, 2)
    f = fusejit.script(_grow_two_types)
    same(f(x), f.fn(x))  # appending after the loop: a plain list of its rows


# ---- item assignment in loops ------------------------------------------------------------------
@fusejit.script
def rnn_outputs(x, h):
    S, B, H = x.shape
    ys = fusejit.zeros(S, B, H, device=x.device)
    zs = fusejit.zeros(B, S, H, device=x.device)
    for t in range(S):
        h = (x[t] + h) * 0.5
        ys[t] = h
        zs[:, t] = h * 2
    ys[0] = 1.5
    ys[-1] = zs[:, 0]
    counts = fusejit.zeros(4, dtype=fusejit.int64)
    i = 0
    while i < 4:
        counts[i] = i * i
        i += 1
    return ys, zs, counts, h


def test_item_assignment_with_loop_index(tmp_path):
    x, h = T(5, 2, 3), T(2, 3)
    out = check(rnn_outputs, x, h)  # exact: the ops are + * and copies
    same(rnn_outputs(x, h), out)  # the captured zeros are never written
    text = str(rnn_outputs.graph)
    assert "update[dim=0]" in text and "update[dim=1]" in text
    g = rnn_outputs.specializations()[-1].raw_graph
    same(list(interpret(g, x, h, *g.captured)), list(out))
    round_trip(rnn_outputs, tmp_path, x, h)


@fusejit.script
def shifted(x):
    ys = x.clone()
    for t in range(1, x.shape[0]):
        ys[t] = ys[t - 1] + x[t]  # reads the buffer: copied, not written in place
    return ys


def test_item_assignment_reading_the_buffer_is_a_cumulative_sum():
    x = T(6, 2)
    out = check(shifted, x)
    np.testing.assert_allclose(out.numpy(), np.cumsum(x.numpy(), 0), rtol=1e-6)


def _assign_into_argument(x):
    x[0] = 1.0
    return x


def _assign_into_argument_on_one_branch(x):
    if x.sum() > 0:
        y = x * 2
    else:
        y = x
    y[0] = 1.0
    return y


def _assign_with_a_view_alive(x):
    y = x.clone()
    v = y[1:]
    y[0] = 1.0
    return y, v


def _assign_two_indices(x):
    y = x.clone()
    y[0, 1] = 2.0
    return y


def _assign_bad_shape(x):
    y = x.clone()
    y[0] = x
    return y


@pytest.mark.parametrize(
    "fn, match, line",
    [
        (_assign_into_argument, "an argument, a module attribute or a global", 1),
        (_assign_into_argument_on_one_branch, "may be a view of. an argument", 5),
        (_assign_with_a_view_alive, "`v` may be a view of it", 3),
        (_assign_two_indices, "one int index", 2),
        (_assign_bad_shape, r"value of shape \[3, 2\] into a row of shape \[2\]", 2),
    ],
)
def test_item_assignment_errors(fn, match, line):
    script_error(fn, T(3, 2), match=match, line=line)


# ---- len, enumerate, zip -----------------------------------------------------------------------
@fusejit.script
def iterate(x, n: int):
    acc = x[0] * 0
    for i, row in enumerate(x):  # a loop node: the index and the row
        acc = acc + row * i
    for i, (a, b) in enumerate(zip(x, range(2, 10)), 1):
        acc = acc + a * b + i
    xs = [x[0], x[1]]
    for a, b in zip(xs, range(5)):  # with a list: unrolled
        acc = acc + a * b
    for k, a in enumerate(xs, start=3):
        acc = acc + a * k
    for j, r in zip(range(n), x):  # a run-time bound: the shorter decides
        acc = acc + r * j
    sizes = len(xs), len(x), len(x.shape), len(range(7)), len(list(zip(xs, range(3))))
    return acc, sizes, list(enumerate(range(2)))


def test_len_enumerate_zip(tmp_path):
    x = T(4, 3)
    for n in (0, 2, 6):
        check(iterate, x, n)
    round_trip(iterate, tmp_path, x, 3)


def _zip_runtime_range_with_list(x, n: int):
    for a, b in zip([x, x], range(n)):
        x = x + a * b
    return x


def test_zip_errors():
    script_error(_zip_runtime_range_with_list, T(3), 2, match="run-time bound", line=1)


# ---- the same on the GPU -----------------------------------------------------------------------
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="no usable GPU (CUDA tests only)")
def test_constructs_on_cuda(capsys):
    x, h = T(5, 2, 3), T(2, 3)
    xc, hc = x.to("cuda"), h.to("cuda")
    got, want = rnn_outputs(xc, hc), rnn_outputs(x, h)  # update nodes, in place
    assert [t.device.type for t in got] == ["cuda", "cuda", "cpu", "cuda"]  # (counts: cpu)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.cpu().numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    fusejit.manual_seed(0)
    m = LSTM(3, 4)
    mc = LSTM(3, 4)
    mc.load_state_dict(m.state_dict())
    mc = mc.to("cuda")
    h0, c0 = T(2, 4), T(2, 4)
    for a, b in zip(mc(xc, h0.to("cuda"), c0.to("cuda")), m(x, h0, c0)):
        np.testing.assert_allclose(a.cpu().numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    y = T(4, 3).abs() + 0.5
    same(checked(y.to("cuda"), 2).cpu(), checked(y, 2))
    with pytest.raises(AssertionError, match="x must be positive"):
        checked((y - 10).to("cuda"), 2)
    report(y.to("cuda"), 3, 0.5)
    report(y, 3, 0.5)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[3] and out[0].startswith("step 003")
