"""fusejit.script: each construct against plain Python (the same function run eagerly, and
numpy), compile errors with their locations, fusion inside control flow, mixing with trace."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit
from fusejit import nn
from fusejit.ir.control import count_fused
from fusejit.ir.verify import verify

RNG = np.random.default_rng(7)


def T(*shape, scale=1.0):
    return fusejit.from_numpy((RNG.standard_normal(shape) * scale).astype(np.float32))


def same(a, b, tol=1e-5):
    """Scripted result ``a`` equals plain-Python result ``b`` (structures, tensors, scalars)."""
    if isinstance(b, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y, tol)
    elif isinstance(b, fusejit.Tensor):
        assert isinstance(a, fusejit.Tensor) and a.dtype is b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tol, atol=tol)
    else:
        assert type(a) is type(b) and a == pytest.approx(b, rel=tol), (a, b)


def check(sf, *args, trials=4, make=None):
    """The scripted function equals the undecorated function on several inputs."""
    for k in range(trials):
        a = make() if (make and k) else args
        same(sf(*a), sf.fn(*a))
    verify(sf.graph)
    return sf.graph


# ---- the constructs ---------------------------------------------------------------------------
@fusejit.script
def assignments(x, y):
    a, b = x * 2, y - 1
    a += b
    c: float = 2
    c *= 1.5
    (p, q), r = (a, b), c
    return p * q + r, a > b


def test_assignments_and_arithmetic():
    check(assignments, T(3, 4), T(3, 4), make=lambda: (T(3, 4), T(3, 4)))


@fusejit.script
def branches(x, mode: int):
    if x.sum() > 0:
        y = x.tanh()
    elif x.mean() > -0.1:
        y = x * 3
    else:
        y = x.exp() - 1
    if mode == 1:
        y = y + 1
    return y


def test_if_elif_else_on_tensor_and_runtime_int():
    for mode in (0, 1):
        check(branches, T(5), mode, trials=6, make=lambda mode=mode: (T(5), mode))
    ifs = [n for n in branches.graph.nodes if n.op == "if"]
    assert len(ifs) >= 2  # both the tensor condition and the run-time int stay in the graph


def test_numpy_reference_for_branch():
    for _ in range(5):
        x = T(6)
        a = x.numpy()
        if a.sum() > 0:
            ref = np.tanh(a)
        elif a.mean() > -0.1:
            ref = a * 3
        else:
            ref = np.exp(a) - 1
        np.testing.assert_allclose(branches(x, 0).numpy(), ref, rtol=1e-5, atol=1e-6)


@fusejit.script
def range_loop(x, n: int):
    acc = x * 0
    total = 0
    for i in range(n):
        acc = acc + x * i
        total += i
    for j in range(2, 9, 3):
        acc = acc - j
    return acc, total


def test_for_range_constant_and_runtime_bounds():
    for n in (0, 1, 5, -2):  # (a negative run-time bound runs no iteration, as in Python)
        x = T(3)
        same(range_loop(x, n), range_loop.fn(x, n))
    assert sum(n.op == "loop" for n in range_loop.graph.nodes) == 2


@fusejit.script
def over_lists(xs: list, ws: tuple):
    out = []
    for x, w in zip(xs, ws):
        out.append(x * w)
    total = out[0]
    for k, v in enumerate(out):
        if k > 0:
            total = total + v
    return total, out


def test_for_over_list_and_tuple_unrolled():
    xs = [T(4) for _ in range(3)]
    ws = (T(4), T(4), T(4))
    same(over_lists(xs, ws), over_lists.fn(xs, ws))


@fusejit.script
def over_rows(x):
    best = x[0]
    for row in x:
        if row.sum() > best.sum():
            best = row
    return best


def test_for_over_tensor_rows():
    check(over_rows, T(7, 3), trials=5, make=lambda: (T(7, 3),))


@fusejit.script
def while_break_continue(x, limit: float):
    n = 0
    skipped = 0
    while x.abs().max() < limit:
        n += 1
        if n % 3 == 0:
            skipped += 1
            continue
        x = x * 1.5
        if n > 50:
            break
    return x, n, skipped


def test_while_break_continue():
    for limit in (0.1, 5.0, 100.0):
        x = T(4)
        same(while_break_continue(x, limit), while_break_continue.fn(x, limit))


@fusejit.script
def early_return(x, t: float):
    for i in range(x.shape[0]):
        if x[i].sum() > t:
            return x[i] * 10, i
    return x[0] * 0, -1


def test_early_return_inside_loop():
    for t in (-5.0, 0.5, 100.0):
        x = T(6, 3)
        same(early_return(x, t), early_return.fn(x, t))


@fusejit.script
def scalars(x, k: int, s: float, flag: bool):
    m = k * 2 + 1
    f = s / 2
    if flag and k > 1:
        f = f + 1.0
    g = float(x.sum()) + f
    return x * m + g, m, f, not flag


def test_int_float_bool_locals_and_weak_promotion():
    for k, s, flag in ((0, 1.5, True), (3, -2.0, False), (2, 0.25, True)):
        x = T(3)
        same(scalars(x, k, s, flag), scalars.fn(x, k, s, flag))
        assert scalars(x, k, s, flag)[0].dtype is fusejit.float32  # a float local stays weak


@fusejit.script
def printing(x):
    for i in range(2):
        print("step", i, x.sum() > 100)
    return x + 1


def test_print_is_kept_as_a_side_effect(capsys):
    printing(fusejit.ones(2))
    printing(fusejit.ones(2))
    out = capsys.readouterr().out
    assert out.count("step 0 tensor(False)") == 2 and out.count("step 1") == 2


@fusejit.script
def helper(x, k: float):
    if x.mean() > 0:
        return x * k
    return x - k


traced_sq = fusejit.trace(lambda a: (a * a + 1).sqrt(), (fusejit.ones(4),))


@fusejit.script
def calls(x):
    y = traced_sq(x)
    for _ in range(3):
        y = helper(y, 0.5)
    return fusejit.where(y > 1, y, -y).relu()


def test_calls_to_scripted_and_traced_functions():
    check(calls, T(4), make=lambda: (T(4),))


class Cell(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = nn.Linear(n, n)

    def forward(self, x):
        y = self.lin(x)
        if y.sum() > 0:
            y = y.relu()
        return y


@fusejit.script
class Stack(nn.Module):
    def __init__(self, n, depth):
        super().__init__()
        self.cells = nn.ModuleList([Cell(n) for _ in range(depth)])
        self.scale = 0.5

    def forward(self, x):
        for cell in self.cells:
            x = cell(x) * self.scale + x
        return x


def test_module_class_with_submodules():
    m = Stack(6, 3)
    x = T(2, 6)
    same(m(x), Stack.forward.fn(m, x))
    # the user submodule's `if` is kept (scripted recursively), not frozen
    assert sum(n.op == "if" for n in m.forward.graph.nodes) == 3


def test_traced_module_keeps_scripted_submodule_control_flow():
    sub = fusejit.script(Cell(5))
    g = fusejit.trace(lambda x: sub(x * 2) - 1, (T(3, 5),))
    assert any(n.op == "if" for n in g.graph.nodes)
    for _ in range(4):
        x = T(3, 5)
        same(g(x), Cell.forward(sub, x * 2) - 1)


# ---- fusion inside control flow -------------------------------------------------------------
@fusejit.script
def lstm(x, h, c, w_ih, w_hh):
    for t in range(x.shape[0]):
        gates = x[t] @ w_ih + h @ w_hh
        i, f, g, o = gates.chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
    return h, c


def test_loop_body_fused_and_compiled_once():
    n, hid = 4, 8
    args = (T(3, 2, n), T(2, hid), T(2, hid), T(n, 4 * hid), T(hid, 4 * hid))
    same(lstm(*args), lstm.fn(*args))
    loop = next(nd for nd in lstm.graph.nodes if nd.op == "loop")
    # the pointwise cell is one kernel; the gates' add (between the matmuls and the chunk's
    # views) is one of its own
    assert count_fused(loop.blocks[0]) == 2
    before = fusejit.cache_info()["compiled"]
    longer = (T(30, 2, n),) + args[1:]
    same(lstm(*longer), lstm.fn(*longer))  # 30 steps: a new signature, no new kernel
    assert fusejit.cache_info()["compiled"] == before


# ---- errors ---------------------------------------------------------------------------------
def _where(e: fusejit.ScriptError, line_text: str):
    assert e.value.filename == __file__
    src = open(__file__).read().splitlines()
    assert line_text in src[e.value.lineno - 1]
    assert f"{__file__}:{e.value.lineno}:{e.value.col}: error:" in str(e.value)
    assert "^" in str(e.value) and "allowed instead" in str(e.value)


def test_error_try_at_decoration():
    with pytest.raises(fusejit.ScriptError, match="`try` is not supported") as e:

        @fusejit.script
        def f(x):
            try:  # the try line
                return x
            finally:
                pass

    _where(e, "try:  # the try line")
    assert e.value.col == 13


def test_error_generator():
    with pytest.raises(fusejit.ScriptError, match="generator") as e:

        @fusejit.script
        def f(xs: list):
            return fusejit.stack(list(x * 2 for x in xs))  # gen

    _where(e, "# gen")


def plain_python(x):
    return x


def test_error_call_to_arbitrary_function():
    @fusejit.script
    def f(x):
        return plain_python(x) + 1  # arbitrary call

    with pytest.raises(fusejit.ScriptError, match="arbitrary Python functions") as e:
        f(T(2))
    _where(e, "# arbitrary call")


SEQ = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
LAYERS = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 3)])


@fusejit.script
def builtins_on_values(x, n: int):
    parts = list((x, x + 1))
    parts.append(x * 3)
    pair = tuple([parts[0], parts[2]])
    k = max(n, 2) + min(n, 1) + abs(n - 5) + len(parts) + len(x) + len(x.shape)
    for m in LAYERS:
        x = m(x)
    return SEQ(x) * k + len(LAYERS), pair[0] + pair[1]


def test_builtins_len_min_max_abs_tuple_list_and_module_containers():
    for n in (0, 4, 9):
        check(builtins_on_values, T(5, 3), n, make=lambda n=n: (T(5, 3), n))


def _max_of_tensor(x, n: int, v: float):
    return max(x.sum(), 0.5)


def _max_of_three(x, n: int, v: float):
    return x * max(n, 1, 3)


def _round_of_float(x, n: int, v: float):
    return x * round(v)


def _isinstance(x, n: int, v: float):
    return x if isinstance(x, fusejit.Tensor) else x


def _range_kept(x, n: int, v: float):
    r = range(n)  # noqa: F841
    return x


def _call_module_list(x, n: int, v: float):
    return LAYERS(x)


def _call_optimized(x, n: int, v: float):
    return OPTIMIZED(x)


@pytest.mark.parametrize(
    "fn, message",
    [
        (_max_of_tensor, r"max\(\) of a tensor is not supported"),
        (_max_of_three, "takes two scalars"),
        (_round_of_float, r"round\(\) of a run-time value"),
        (_isinstance, r"isinstance\(\) is not supported"),
        (_range_kept, "can only be iterated over by a for loop"),
        (_call_module_list, "a ModuleList is not callable"),
        (_call_optimized, "calling a fusejit.optimize function"),
    ],
)
def test_errors_of_builtins_and_callables(fn, message):
    f = fusejit.script(fn)
    with pytest.raises(fusejit.ScriptError, match=message):
        f(T(5, 3), 2, 2.5)


OPTIMIZED = fusejit.optimize(lambda x: x * 2)


def test_error_closure_over_unsupported_object():
    table = {"a": 1}

    @fusejit.script
    def f(x):
        return x * table  # closure

    with pytest.raises(fusejit.ScriptError, match="`table` refers to a dict") as e:
        f(T(2))
    _where(e, "# closure")


def test_error_type_mismatch_between_branches():
    @fusejit.script
    def f(x):
        if x.sum() > 0:  # branch
            y = x
        else:
            y = x.sum()
        return y

    with pytest.raises(fusejit.ScriptError, match=r"float32\[3\] in one branch and float32\[\]"):
        f(T(3))

    @fusejit.script
    def g(x, k: int):
        if k > 0:
            z = 1
        else:
            z = 2.5
        return x * z

    with pytest.raises(fusejit.ScriptError, match="kind int .* now assigned a float"):
        g(T(3), 1)


def test_error_loop_changes_type_and_kind_change():
    @fusejit.script
    def f(x):
        for _ in range(3):
            x = fusejit.cat([x, x])  # grows
        return x

    with pytest.raises(fusejit.ScriptError, match="changes type in the loop"):
        f(T(2))

    @fusejit.script
    def g(x):
        n = 1
        n = x  # now a tensor
        return n

    with pytest.raises(fusejit.ScriptError, match="first assigned a value of kind int") as e:
        g(T(2))
    _where(e, "# now a tensor")


def test_error_inplace_and_undefined_after_branch():
    @fusejit.script
    def f(x):
        x.add_(1)
        return x

    with pytest.raises(fusejit.ScriptError, match="in-place"):
        f(T(2))

    @fusejit.script
    def g(x):
        if x.sum() > 0:
            y = x
        return y  # maybe undefined

    with pytest.raises(fusejit.ScriptError, match="defined only in one branch"):
        g(T(2))


def test_graph_and_code_print_control_flow():
    early_return(T(6, 3), 0.5)
    text = str(early_return.graph)
    assert "loop[n_carried=" in text and "body(%i : int64[]" in text and "then(" in text
    code = early_return.code
    assert "while " in code and "if bool(" in code
    compile(code, "<code>", "exec")


def test_a_bound_method_shows_its_own_modules_graph():
    @fusejit.script
    class Scale(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            return x * self.k

    a, b = Scale(2.0), Scale(3.0)
    np.testing.assert_array_equal(a(fusejit.ones(3)).numpy(), np.full(3, 2.0, np.float32))
    b(fusejit.ones(5, 2))
    assert a.forward.graph.inputs[0].type.shape == (3,)
    assert b.forward.graph.inputs[0].type.shape == (5, 2)
    assert "def forward" in a.forward.code
    with pytest.raises(fusejit.ScriptError, match="not been called on this Scale"):
        _ = Scale(1.0).forward.graph
