"""PyTorch parity: the wrong results and missing errors of issue #18 part 1 (each reproducer with
PyTorch 2.x's result written in), and the smaller differences of part 2 decided as PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit as F
from fusejit.base.errors import DimError, DTypeError
from tests.parity_helpers import DEVICES, assert_close, assert_traced, host, on


# ---- 7: setitem and fill_ convert the value as PyTorch (and copy_) do ----------------------
@pytest.mark.parametrize("device", DEVICES)
def test_setitem_and_fill_convert_the_value(device):
    x = F.zeros(3, dtype=F.int64).to(device)
    x[0] = 2.5  # torch: tensor([2, 0, 0])
    assert_close(x, np.array([2, 0, 0], np.int64))
    x[1] = -2.7  # truncated toward zero
    assert_close(x, np.array([2, -2, 0], np.int64))
    m = F.zeros(3, dtype=F.bool).to(device)
    m[0] = 1  # torch: tensor([True, False, False])
    m[2] = 0.5
    assert_close(m, np.array([True, False, True]))
    y = F.zeros(3, dtype=F.int32).to(device)
    assert_close(y.fill_(1.5), np.full(3, 1, np.int32))  # torch: [1, 1, 1] int32
    assert_close(y.fill_(True), np.full(3, 1, np.int32))
    assert_close(y.fill_(F.tensor(-3.9)), np.full(3, -3, np.int32))
    z = F.zeros(2, 4, dtype=F.float32).to(device)
    z[:, ::2] = on(np.array([1, 2], np.int64), device)  # a tensor of another dtype: cast
    assert_close(z, np.array([[1, 0, 2, 0], [1, 0, 2, 0]], np.float32))
    f16 = F.zeros(2, dtype=F.float16).to(device)
    f16.fill_(-0.0)
    assert np.signbit(host(f16)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_setitem_and_fill_refuse_values_the_dtype_cannot_hold(device):
    i8 = F.zeros(3, dtype=F.int8).to(device)
    with pytest.raises(DTypeError, match="setitem.*300.*int8"):
        i8[0] = 300
    with pytest.raises(DTypeError, match="fill_.*-129.*int8"):
        i8.fill_(-129)
    with pytest.raises(DTypeError, match="fill_.*nan.*int8"):
        i8.fill_(float("nan"))
    with pytest.raises(DTypeError, match="setitem.*inf.*uint8"):
        F.zeros(2, dtype=F.uint8).to(device)[0] = float("inf")
    with pytest.raises(TypeError, match="setitem"):
        i8[0] = "1"
    assert_close(i8, np.zeros(3, np.int8))


# ---- 8 to 11: dims of 0-d tensors, empty chunks, negative steps ----------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_movedim_of_a_0d_tensor(device):
    x = F.tensor(1.0).to(device)
    assert_close(x.movedim(0, 0), np.float32(1.0))  # torch: tensor(1.)
    assert_close(F.movedim(x, -1, 0), np.float32(1.0))
    assert_close(x.movedim((0,), (-1,)), np.float32(1.0))
    with pytest.raises(DimError, match="movedim"):
        x.movedim(1, 0)
    assert_traced(lambda t: t.movedim(0, 0) * 2, x)


@pytest.mark.parametrize("device", DEVICES)
def test_max_min_of_a_0d_tensor_check_the_dim(device):
    x = F.tensor(5).to(device)
    for dim in (1, -2, 2):
        with pytest.raises(IndexError, match="out of range"):  # torch: IndexError
            x.max(dim)
        with pytest.raises(DimError, match="min: dim"):
            F.min(x, dim)
    for dim in (0, -1):
        v, i = x.max(dim)
        assert_close(v, np.int64(5))
        assert_close(i, np.int64(0))
        v, i = x.min(dim, keepdim=True)
        assert_close(v, np.int64(5))


@pytest.mark.parametrize("device", DEVICES)
def test_chunk_of_an_empty_dim(device):
    parts = F.zeros(0, 2).to(device).chunk(4, 0)
    assert len(parts) == 4  # torch: 4 empty chunks
    assert all(p.shape == (0, 2) for p in parts)
    assert len(F.zeros(2, 0).to(device).chunk(3, 1)) == 3
    assert [p.shape for p in F.zeros(5, 2).to(device).chunk(2)] == [(3, 2), (2, 2)]
    a = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    fn = lambda t: t.chunk(2, 0)[1] + 1  # noqa: E731
    assert_traced(fn, on(a, device))


@pytest.mark.parametrize("device", DEVICES)
def test_setitem_with_a_negative_step_is_refused(device):
    x = F.zeros(3).to(device)
    with pytest.raises(ValueError, match="step must be positive"):  # torch: ValueError
        x[::-1] = 1
    with pytest.raises(ValueError, match="step must be positive"):
        x[::-1] = F.tensor([1.0, 2.0, 3.0]).to(device)
    y = F.zeros(2, 3).to(device)
    with pytest.raises(ValueError, match="step must be positive"):
        y[:, 2:0:-1] = 1
    with pytest.raises(ValueError):
        x[::-1]  # getitem refuses it too
    assert_close(x, np.zeros(3, np.float32))
    x[::2] = 1
    assert_close(x, np.array([1, 0, 1], np.float32))


# ---- 12: float ops, maximum, minimum, clamp, pow, sign, square, atan2 on bool ---------------
BOOLS = np.array([True, False, True, False])
FLOAT_UNARY = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt",
               "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
               "tanh", "erf", "sigmoid", "gelu", "silu", "softplus"]  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (log(0), 1 / 0)
@pytest.mark.parametrize("device", DEVICES)
def test_float_ops_on_bool_give_float32(device):
    b = on(BOOLS, device)
    assert_close(F.exp(on(np.array([True]), device)), np.array([np.e], np.float32))  # torch
    for name in FLOAT_UNARY:
        got = getattr(F, name)(b)
        want = getattr(F, name)(on(BOOLS.astype(np.float32), device))
        assert_close(got, host(want), exact=True, what=name)
    assert_close(F.atan2(b, on(BOOLS[::-1].copy(), device)),
                 np.arctan2(BOOLS.astype(np.float64), BOOLS[::-1].astype(np.float64))
                 .astype(np.float32))  # fmt: skip
    # traced, and fused into one kernel with the ops around it
    fn = lambda t: F.exp(t) * 2 + F.sigmoid(t) - F.atan2(t, t)  # noqa: E731
    traced = assert_traced(fn, b, exact=False)
    assert traced.kernel_count() == 1


@pytest.mark.parametrize("device", DEVICES)
def test_maximum_minimum_sign_of_bool_are_bool(device):
    a, b = on(BOOLS, device), on(np.array([True, True, False, False]), device)
    assert_close(F.maximum(a, b), np.array([True, True, True, False]))  # torch: bool
    assert_close(F.minimum(a, b), np.array([True, False, False, False]))
    assert_close(F.sign(a), BOOLS)  # torch: sign of a bool is itself
    assert_close(F.clamp(a, min=b), np.array([True, True, True, False]))
    assert_close(F.clamp(a, max=False), np.zeros(4, bool))
    assert_close(F.clamp(a, 0, 1), BOOLS.astype(np.int64))  # (an int bound: int64)
    assert_close(a.max(b), np.array([True, True, True, False]))
    # non-contiguous and broadcast
    m = on(np.array([[True, False], [False, False]]), device)
    assert_close(F.maximum(m.t(), on(np.array([False, True]), device)),
                 np.array([[True, True], [False, True]]))  # fmt: skip
    fn = lambda x, y: F.sign(F.maximum(x, y)) & F.minimum(x, ~y) | F.clamp(x, min=y)  # noqa: E731
    traced = assert_traced(fn, a, b)
    assert traced.kernel_count() == 1


@pytest.mark.parametrize("device", DEVICES)
def test_square_and_pow_of_bool_are_int64(device):
    a, b = on(BOOLS, device), on(np.array([True, True, False, False]), device)
    assert_close(F.square(a), BOOLS.astype(np.int64))  # torch: int64 (pow(x, 2))
    assert_close(a**b, np.array([1, 0, 1, 1], np.int64))  # torch: int64, 0 ** 0 == 1
    assert_close(F.pow(a, 2), BOOLS.astype(np.int64))
    assert_close(F.pow(a, 0.5), BOOLS.astype(np.float32))
    assert_close(F.pow(a, on(np.array([2], np.int8), device)), BOOLS.astype(np.int8))
    fn = lambda x, y: F.square(x) + x**y * 3  # noqa: E731
    traced = assert_traced(fn, a, b)
    assert traced.kernel_count() == 1


def test_ops_that_torch_refuses_on_bool_still_refuse():
    b = F.tensor([True])
    for fn in (lambda: -b, lambda: F.abs(b), lambda: F.relu(b), lambda: b - b):
        with pytest.raises(DTypeError, match="bool"):
            fn()
