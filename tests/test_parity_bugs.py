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


# ---- 1: addcmul / addcdiv compute in the common dtype of their tensors ----------------------
@pytest.mark.parametrize("device", DEVICES)
def test_addcmul_addcdiv_compute_in_the_common_dtype(device):
    z64 = on(np.zeros(1), device)
    i16 = on(np.array([300], np.int16), device)
    assert_close(F.addcmul(z64, i16, i16), np.array([90000.0]))  # torch: 90000.
    assert_close(F.addcmul(z64, i16, i16, value=2), np.array([180000.0]))
    h = on(np.array([300.0], np.float16), device)
    assert_close(F.addcdiv(z64, h, h, value=0.5), np.array([0.5]))
    assert_close(F.addcmul(z64, h, h), np.array([90000.0]))  # (not float16's inf)
    z32, seven = on(np.zeros(1, np.float32), device), on(np.array([7.0], np.float32), device)
    assert_close(F.addcdiv(z32, i16, seven), np.array([300 / 7], np.float32))
    with pytest.raises(DTypeError, match="addcdiv: integer division"):
        F.addcdiv(z64, i16, i16)
    # broadcast, non-contiguous, traced and fused
    a = np.arange(12, dtype=np.int16).reshape(3, 4) * 100
    b = np.arange(4, dtype=np.int16) + 300
    x = np.linspace(-1, 1, 6).reshape(3, 2)
    fn = lambda x, s, t: F.addcmul(x, s[:, ::2], t[::2], value=3)  # noqa: E731
    want = x + 3 * (a[:, ::2].astype(np.float64) * b[::2].astype(np.float64))
    assert_close(fn(on(x, device), on(a, device), on(b, device)), want)
    assert_traced(fn, on(x, device), on(a, device), on(b, device))
    c = np.arange(6, dtype=np.int16).reshape(2, 3) - 3
    fn = lambda x, s, t: F.addcmul(x, s[:, ::2], t.t(), value=3)  # noqa: E731
    want = x + 3 * (a[:, ::2].astype(np.float64) * c.T.astype(np.float64))
    assert_close(fn(on(x, device), on(a, device), on(c, device)), want)
    traced = assert_traced(fn, on(x, device), on(a, device), on(c, device))
    assert traced.kernel_count() == 1


@pytest.mark.parametrize("device", DEVICES)
def test_addcmul_of_ints_with_a_float_value(device):
    # torch: addcmul of int32 tensors with value=0.5 is int32 [0] (value converted to int32)
    one = on(np.array([1], np.int32), device)
    assert_close(F.addcmul(on(np.array([0], np.int32), device), one, one, value=0.5),
                 np.array([0], np.int32))  # fmt: skip
    assert_close(F.addcmul(one, one, one * 3, value=2.9), np.array([7], np.int32))
    with pytest.raises(DTypeError, match="addcmul.*300.*int8"):
        i8 = on(np.array([1], np.int8), device)
        F.addcmul(i8, i8, i8, value=300)


# ---- 2, 3: masked_fill and where convert (and check) the value in the tensor's dtype --------
@pytest.mark.parametrize("device", DEVICES)
def test_masked_fill_leaves_the_other_elements_alone(device):
    mask = on(np.array([False, True]), device)
    x = on(np.array([2**40 + 1, 5]), device)
    assert_close(x.masked_fill(mask, 1.5), np.array([2**40 + 1, 1]))  # torch
    i32 = on(np.array([2**24 + 1, 7], np.int32), device)
    assert_close(i32.masked_fill(mask, -2.5), np.array([2**24 + 1, -2], np.int32))
    v = F.tensor(3.7).to(device)
    assert_close(i32.masked_fill(mask, v), np.array([2**24 + 1, 3], np.int32))
    b = on(np.array([True, False]), device)
    assert_close(b.masked_fill(mask, 2), np.array([True, True]))
    h = on(np.array([1.0, 2.0], np.float16), device)
    assert_close(h.masked_fill(mask, -0.0), np.array([1.0, -0.0], np.float16), exact=True)
    # traced: the value is a constant of x's dtype, one kernel with what follows
    m2 = on(np.array([[True, False, True], [False, False, True]]), device)
    a = on(np.arange(6, dtype=np.int64).reshape(2, 3) + 2**40, device)
    fn = lambda x, m: x.masked_fill(m, 1.5) * 2  # noqa: E731
    want = np.where(host(m2), 1, host(a)) * 2
    assert_close(fn(a, m2), want)
    assert assert_traced(fn, a, m2).kernel_count() == 1


@pytest.mark.parametrize("device", DEVICES)
def test_masked_fill_and_where_refuse_ints_the_dtype_cannot_hold(device):
    x = on(np.array([1, 2], np.int8), device)
    c = on(np.array([True, False]), device)
    with pytest.raises(DTypeError, match="masked_fill.*300.*int8"):  # torch: an error, not 44
        x.masked_fill(c, 300)
    with pytest.raises(DTypeError, match="where.*255.*int8"):  # not -1
        F.where(c, x, 255)
    with pytest.raises(DTypeError, match="where.*-1.*uint8"):
        F.where(c, -1, on(np.array([1, 2], np.uint8), device))
    with pytest.raises(DTypeError, match="masked_fill.*nan.*int8"):
        x.masked_fill(c, float("nan"))
    assert_close(F.where(c, x, 127), np.array([1, 127], np.int8))
    assert_close(x.masked_fill(c, -128), np.array([-128, 2], np.int8))
    assert_close(F.where(c, x, 2.5), np.array([1, 2.5], np.float32))  # (a float: float32)


# ---- 4: float16 norm and lerp in float32; float32 var, std, prod, cumprod in float64 --------
@pytest.mark.parametrize("device", DEVICES)
def test_float16_norm_and_lerp_compute_in_float32(device):
    h = on(np.array([300.0, 4.0], np.float16), device)
    assert_close(h.norm(), np.float16(300.0).reshape(()))  # torch: 300 (not inf)
    assert_close(F.norm(h, 3), np.float16(np.cbrt(300.0**3 + 64)).reshape(()), ulps=1)
    m = on(np.array([[300.0, -400.0], [1000.0, 0.0]], np.float16), device)
    assert_close(m.norm(dim=1), np.array([500.0, 1000.0], np.float16))
    a = on(np.array([65000.0, -65000.0, 60000.0], np.float16), device)
    b = on(np.array([-65000.0, 65000.0, 65504.0], np.float16), device)
    want = (np.float32(0.5) * (host(a).astype(np.float32) + host(b))).astype(np.float16)
    assert_close(F.lerp(a, b, 0.5), want)  # torch: [0, 0, 62752] (not inf)
    assert_close(F.lerp(a, b, on(np.full(3, 0.75, np.float16), device)),
                 np.array([-32496, 32496, 64128], np.float16))  # fmt: skip
    fn = lambda x, y: F.lerp(x, y, 0.5) + x.norm()  # noqa: E731
    h1, h2 = on(np.array([1.0, 2.0], np.float16), device), on(np.array([3, 5], np.float16), device)
    assert_traced(fn, h1, h2)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("device", DEVICES)
def test_float32_var_std_prod_cumprod_do_not_overflow_inside(device):
    x = np.array([[1.5e19, -1.5e19, 0.0], [1e20, -1e20, 0.0]], np.float32)
    t = on(x, device)
    x64 = x.astype(np.float64)
    assert_close(t.var(1), np.var(x64, 1, ddof=1).astype(np.float32))  # [2.25e38, inf]
    assert_close(t.std(1), np.std(x64, 1, ddof=1).astype(np.float32))  # torch: [1.5e19, 1e20]
    assert_close(t.std(), np.float32(np.std(x64, ddof=1)).reshape(()))
    p = on(np.array([1e20, 1e20, 1e-20, 1e-20], np.float32), device)
    assert_close(p.prod(), np.float32(1.0).reshape(()))
    assert_close(p.cumprod(0), np.array([1e20, np.inf, 1e20, 1.0], np.float32))
    # traced: the row kernel of var accumulates in float64 as eager does
    assert_traced(lambda v: v.std(-1) * 2, t, exact=False)
    assert_traced(lambda v: v.var(-1, keepdim=True) + v, t, exact=False)


# ---- 5, 6: layer_norm of a constant row; the trace check where eager is exact ---------------
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_layer_norm_of_a_constant_row_is_zero(device, dtype):
    x = np.full((3, 10), 1000 / 3, dtype)
    x[1] = np.arange(10)
    t = on(x, device)
    got = F.layer_norm(t, (10,))
    assert float(got[0].abs().max().item()) == 0.0  # torch: 0 (was 0.00965)
    assert (host(got)[[0, 2]] == 0).all()
    want = (x[1] - x[1].astype(np.float64).mean()) / np.sqrt(x[1].astype(np.float64).var() + 1e-5)
    assert_close(got[1], want.astype(dtype), ulps=8)
    # eps=0: a constant row is 0 / 0, nan as in torch (was +-weight)
    w = on(np.linspace(1, 2, 10).astype(dtype), device)
    bad = host(F.layer_norm(t, (10,), w, eps=0.0))
    assert np.isnan(bad[[0, 2]]).all() and np.isfinite(bad[1]).all()
    # fused: the row kernels on both targets take a constant row's value as its mean too
    for eps in (1e-5, 0.0):
        fn = lambda v, w, e=eps: F.layer_norm(v, (10,), w, eps=e) * 2  # noqa: E731
        assert_traced(fn, t, w, exact=False, ulps=8)
        wide = on(np.full((4, 1000), -1000 / 7, dtype), device)
        out = fusejit_trace_once(lambda v, e=eps: F.layer_norm(v, (1000,), eps=e), wide)
        assert (host(out) == 0).all() if eps else np.isnan(host(out)).all()


def fusejit_trace_once(fn, x):
    return F.trace(fn, (x,))(x)


@pytest.mark.parametrize("device", DEVICES)
def test_trace_of_a_layer_norm_of_constant_rows(device):
    x = on(np.full((4, 1000), 1000 / 3), device)
    traced = F.trace(lambda x: F.layer_norm(x, (1000,)), (x,))  # was a false TraceError
    assert (host(traced(x)) == 0).all()


def test_trace_check_tolerance_does_not_collapse_where_eager_is_exact():
    from fusejit.jit import check

    x = F.full((4, 1000), 1000 / 3, dtype=F.float64)
    fn = lambda x: F.layer_norm(x, (1000,))  # noqa: E731
    traced = F.trace(fn, (x,))
    eager = fn(x)
    assert float(eager.abs().max().item()) == 0.0
    # a kernel whose mean is an ulp of 333.3 off gives 1.8e-11 here (the message): a
    # rounding difference against the inputs' magnitude, not a wrong kernel
    off = F.full((4, 1000), 1.8e-11, dtype=F.float64)
    assert check.check_outputs(traced.raw_graph, [x], [off], [eager], 0) is None
    # a result off by the output's own magnitude still fails
    wrong = F.full((4, 1000), 1e-3, dtype=F.float64)
    problem = check.check_outputs(traced.raw_graph, [x], [wrong], [eager], 0)
    assert problem is not None and "values differ" in problem


# ---- part 2, smaller: remainder's zero sign, einsum's sum dtype, roll with a repeated dim ----
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_a_zero_float_remainder_has_the_dividends_sign(device, dtype):
    a = np.array([4.0, -4.0, 3.0, -3.0, 0.0, -0.0, 5.5, 1.0], dtype)
    x = on(a, device)
    # torch: fmod's zero (the dividend's sign); numpy gives the divisor's
    want = np.array([0.0, -0.0, -1.0, -1.0, 0.0, -0.0, -0.5, -1.0], dtype)
    assert_close(x % -2.0, want, exact=True)
    assert_close(F.remainder(x, on(np.full(8, -2.0, dtype), device)), want, exact=True)
    assert_close(F.tensor([4.0]).to(device) % -2.0, np.array([0.0], np.float32), exact=True)
    assert not np.signbit(host(F.tensor([4.0]).to(device) % -2.0)).any()  # torch: 0.0
    want2 = np.array([0.0, -0.0, 1.0, 1.0, 0.0, -0.0, 1.5, 1.0], dtype)
    assert_close(x % 2.0, want2, exact=True)
    assert_close(2.0 % on(np.array([1.0, -1.0, 2.0], dtype), device),
                 np.array([0.0, 0.0, 0.0], dtype), exact=True)  # fmt: skip
    # fused (the CPU and CUDA kernels), non-contiguous
    m = on(np.stack([a, a]), device)
    for fn in (lambda t: (t % -2.0) * 1, lambda t: (t[:, 1::2] % 2.0) * 1):
        traced = assert_traced(fn, m)
        assert traced.kernel_count() == 1
    assert np.signbit(host(traced(m))).tolist() == [[True, False, True, False]] * 2


@pytest.mark.parametrize("device", DEVICES)
def test_einsum_summing_one_int_operand_gives_int64(device):
    a = np.full((2, 2), 100, np.int8)
    assert_close(F.einsum("ij->", on(a, device)), np.int64(400).reshape(()))  # torch: int64
    assert_close(F.einsum("ij->i", on(a, device)), np.array([200, 200], np.int64))
    assert_close(F.einsum("ii", on(a, device)), np.int64(200).reshape(()))
    assert_close(F.einsum("ij->ji", on(a, device)), a.T)  # (no sum: the dtype stays)
    u = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert_close(F.einsum("ij->j", on(u, device).t().t()), u.sum(0).astype(np.int64))
    f = np.ones((2, 3), np.float16)
    assert_close(F.einsum("ij->", on(f, device)), np.float16(6).reshape(()))
    assert_traced(lambda t: F.einsum("ij->j", t) + 1, on(a, device))


@pytest.mark.parametrize("device", DEVICES)
def test_roll_with_a_repeated_dim_rolls_once_per_entry(device):
    a = np.arange(12).reshape(3, 4)
    x = on(a, device)
    assert_close(F.roll(on(np.arange(4), device), (1, 1), (0, 0)), np.array([2, 3, 0, 1]))
    assert_close(x.roll((1, 2, -1), (0, 1, -2)), np.roll(a, (1, 2, -1), (0, 1, 0)))
    assert_close(x.roll((3, 1), (1, 1)), np.roll(a, 4, 1))
    with pytest.raises(DimError, match="roll"):
        x.roll((1, 1), (0, 2))
    with pytest.raises(DimError, match="differ in length"):
        x.roll((1, 1), 0)
    assert_traced(lambda t: t.roll((1, 1), (1, 1)) * 2, x)
