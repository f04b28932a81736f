"""PyTorch functions beyond the core ops: those written with the op table's ops (``t``,
``movedim``, ``narrow``, ``unbind``, ``masked_fill``, ``lerp``, ``addcmul``, ``addcdiv``, ``outer``,
``dot``, ``mv``, ``bmm``, ...) and the table's copying and indexing ops (``flip``, ``roll``,
``repeat``, ``tril``, ``cumsum``, ``index_select``, ``gather``, ...): against numpy, their
errors, and how they trace, fuse, save and load."""

from __future__ import annotations

import numpy as np
import pytest
from jit_helpers import module_cache_fixture

import fusejit
from fusejit import DimError, DTypeError, ShapeError

_cache = module_cache_fixture()
RNG = np.random.default_rng(11)


def arr(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def same(got, want):
    got = got.numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


# ---- views -------------------------------------------------------------------------------------
def test_t_swapaxes_movedim_as_numpy():
    a = arr(2, 3, 4)
    x = fusejit.from_numpy(a)
    same(fusejit.from_numpy(a[0]).t(), a[0].T)
    same(fusejit.from_numpy(a[0, 0]).t(), a[0, 0])  # 1-D and 0-D: as they are
    same(fusejit.tensor(2.5).t(), np.asarray(np.float32(2.5)))
    same(x.swapaxes(0, 2), np.swapaxes(a, 0, 2))
    same(fusejit.swapdims(x, -1, 1), np.swapaxes(a, -1, 1))
    for src, dst in ((0, -1), (-1, 0), ((0, 1), (2, 0)), ([2, 0], [0, 1]), ((), ())):
        same(x.movedim(src, dst), np.moveaxis(a, src, dst))
        same(fusejit.moveaxis(x, src, dst), np.moveaxis(a, src, dst))
    with pytest.raises(DimError, match=r"t: expects a tensor of at most 2 dims, got shape"):
        x.t()
    with pytest.raises(DimError, match="different lengths"):
        x.movedim((0, 1), 2)
    with pytest.raises(DimError, match="names a dim more than once"):
        x.movedim((0, 0), (1, 2))
    with pytest.raises(DimError, match="dim 3 is out of range"):
        x.movedim(3, 0)


def test_narrow_and_unbind_as_numpy():
    a = arr(4, 5)
    x = fusejit.from_numpy(a)
    same(x.narrow(1, 1, 3), a[:, 1:4])
    same(x.narrow(0, -2, 2), a[-2:])
    same(fusejit.narrow(x, 1, 5, 0), a[:, 5:5])
    got = x.narrow(1, 1, 3)
    assert np.shares_memory(got.numpy(), a)  # a view, as torch.narrow
    for dim in (0, 1, -1):
        parts = x.unbind(dim)
        want = [np.take(a, i, axis=dim) for i in range(a.shape[dim])]
        assert len(parts) == len(want)
        for p, w in zip(parts, want, strict=True):
            same(p, w)
    assert fusejit.zeros(0, 3).unbind(0) == ()
    with pytest.raises(ShapeError, match=r"narrow: start 3 and length 3 exceed dim 0 of size 4"):
        x.narrow(0, 3, 3)
    with pytest.raises(DimError, match="narrow: start -5 is out of range for dim 0 of size 4"):
        x.narrow(0, -5, 1)
    with pytest.raises(DimError, match="0-d"):
        fusejit.tensor(1.0).unbind()


# ---- elementwise compositions ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_, np.float16])
def test_masked_fill_as_torch(dtype):
    a = (arr(3, 4) * 4).astype(dtype)
    m = arr(1, 4) > 0  # broadcasts over the rows
    x, mask = fusejit.from_numpy(a), fusejit.from_numpy(m)
    value = True if dtype is np.bool_ else 2.75
    # torch converts the value to the tensor's dtype (2.75 -> 2 for int32)
    same(x.masked_fill(mask, value), np.where(m, np.asarray(value).astype(dtype), a))
    same(fusejit.masked_fill(x, mask, fusejit.tensor(1.0, dtype=fusejit.float64)),
         np.where(m, np.asarray(1.0).astype(dtype), a))  # fmt: skip


def test_masked_fill_errors_name_the_problem():
    x = fusejit.zeros(3, 4)
    with pytest.raises(DTypeError, match="mask must be a bool tensor, got float32"):
        x.masked_fill(fusejit.ones(3, 4), 1.0)
    with pytest.raises(ShapeError, match=r"mask of shape \[2, 4\] does not broadcast to .*4\]"):
        x.masked_fill(fusejit.ones(2, 4) > 0, 1.0)
    with pytest.raises(ShapeError, match="Python scalar or a 0-d tensor"):
        x.masked_fill(fusejit.ones(3, 4) > 0, fusejit.ones(4))
    with pytest.raises(ShapeError, match="does not broadcast"):  # a mask may not grow x
        fusejit.zeros(4).masked_fill(fusejit.ones(3, 4) > 0, 1.0)


def _lerp64(s, e, w):
    s, e, w = (np.asarray(v, np.float64) for v in (s, e, w))
    return np.where(np.abs(w) < 0.5, s + w * (e - s), e - (e - s) * (1 - w))


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.5, 1.0, -0.7, 2.0, "tensor"])
def test_lerp_as_torch(weight):
    s, e = arr(50) * 100, arr(50)
    w = arr(50) * 2 if weight == "tensor" else weight
    ts, te = fusejit.from_numpy(s), fusejit.from_numpy(e)
    tw = fusejit.from_numpy(w) if weight == "tensor" else weight
    got = fusejit.lerp(ts, te, tw).numpy()
    assert got.dtype == np.float32
    # each branch is three float32 roundings of its float64 value
    np.testing.assert_allclose(got, _lerp64(s, e, w), rtol=4e-7 * 4, atol=4e-7 * 4 * 200)
    if weight == 1.0:
        same(ts.lerp(te, 1.0), e)  # the weight 1 gives end exactly
    if weight == 0.0:
        same(ts.lerp(te, 0.0), s)


def test_lerp_errors():
    with pytest.raises(DTypeError, match="start must be a floating-point tensor, got int64"):
        fusejit.lerp(fusejit.arange(3), fusejit.ones(3), 0.5)
    with pytest.raises(DTypeError, match="one dtype, got float32 and float64"):
        fusejit.lerp(fusejit.ones(3), fusejit.ones(3, dtype=fusejit.float64), 0.5)


def test_addcmul_addcdiv_clamp_min_max_type_as():
    x, a, b = arr(3, 4), arr(3, 4), arr(4) + 3
    tx, ta, tb = (fusejit.from_numpy(v) for v in (x, a, b))
    f32 = np.float32
    same(tx.addcmul(ta, tb, value=0.5), x + f32(0.5) * a * b)
    same(fusejit.addcmul(tx, ta, tb), x + a * b)
    same(tx.addcdiv(ta, tb, value=-2), x + f32(-2) * a / b)
    same(tx.clamp_min(0.25), np.maximum(x, f32(0.25)))
    same(fusejit.clamp_max(tx, tb), np.minimum(x, b))
    same(tx.type_as(fusejit.zeros(1, dtype=fusejit.float16)), x.astype(np.float16))
    assert tx.is_floating_point() and not fusejit.arange(2).is_floating_point()
    ints = fusejit.arange(4, dtype=fusejit.int16)
    same(ints.new_zeros(2, 3), np.zeros((2, 3), np.int16))
    same(ints.new_ones((2,)), np.ones(2, np.int16))
    same(ints.new_full((2, 2), 7), np.full((2, 2), 7, np.int16))
    same(ints.new_zeros(3, dtype=fusejit.float64), np.zeros(3))
    assert ints.new_empty(4, 1).shape == (4, 1) and ints.new_empty(1).dtype is fusejit.int16
    ints = fusejit.arange(4)
    with pytest.raises(DTypeError, match="addcdiv: integer division is not supported"):
        tx.addcdiv(ints, ints)


# ---- products ----------------------------------------------------------------------------------
def test_outer_dot_mv_bmm_as_numpy():
    v, w = arr(5), arr(7)
    m, b1, b2 = arr(7, 5), arr(3, 4, 5), arr(3, 5, 2)
    T = fusejit.from_numpy
    same(fusejit.outer(T(v), T(w)), np.multiply.outer(v, w))
    same(T(v).outer(T(np.arange(3))), np.multiply.outer(v, np.arange(3)).astype(np.float32))
    np.testing.assert_allclose(fusejit.dot(T(v), T(v)).numpy(), np.dot(v, v), rtol=1e-6)
    assert fusejit.dot(T(v), T(v)).shape == ()
    np.testing.assert_allclose(T(m).mv(T(v)).numpy(), m @ v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(T(b1).bmm(T(b2)).numpy(), b1 @ b2, rtol=1e-5, atol=1e-6)


def test_product_errors_name_the_shapes():
    T = fusejit.from_numpy
    with pytest.raises(ShapeError, match=r"outer: x must be 1-D, got shape \[2, 2\]"):
        fusejit.outer(T(arr(2, 2)), T(arr(2)))
    with pytest.raises(DTypeError, match="dot: expected one dtype, got float32 and int64"):
        fusejit.dot(T(arr(3)), fusejit.arange(3))
    with pytest.raises(ShapeError, match="matmul: shapes"):
        fusejit.dot(T(arr(3)), T(arr(4)))
    with pytest.raises(ShapeError, match=r"mv: vec must be 1-D, got shape \[5, 1\]"):
        fusejit.mv(T(arr(7, 5)), T(arr(5, 1)))
    with pytest.raises(ShapeError, match=r"bmm: batch sizes differ"):
        fusejit.bmm(T(arr(3, 4, 5)), T(arr(2, 5, 2)))
    with pytest.raises(TypeError, match="bmm: y must be a tensor, got list"):
        fusejit.bmm(T(arr(3, 4, 5)), [1])


# ---- copying, scanning and indexing ops of the table -------------------------------------------
def test_flip_roll_repeat_tile_tril_triu_as_numpy():
    a = arr(3, 4, 5)
    x = fusejit.from_numpy(a)
    same(x.flip(0), a[::-1])
    same(x.flip(0, 2), a[::-1, :, ::-1])
    same(fusejit.flip(x, (-1,)), a[..., ::-1])
    assert x.flip(1).numpy().flags.c_contiguous  # a copy, as torch.flip
    same(x.roll(7), np.roll(a, 7))
    same(x.roll(-2, 1), np.roll(a, -2, axis=1))
    same(fusejit.roll(x, (1, 3), (0, 2)), np.roll(a, (1, 3), axis=(0, 2)))
    same(x.repeat(2, 1, 3), np.tile(a, (2, 1, 3)))
    same(x.repeat(2, 1, 1, 1), np.tile(a, (2, 1, 1, 1)))  # a new leading dim
    same(x.tile(2), np.tile(a, 2))
    same(fusejit.tile(x, (2, 1)), np.tile(a, (1, 2, 1)))
    for k in (-1, 0, 2):
        same(x.tril(k), np.tril(a, k))
        same(fusejit.triu(x, k), np.triu(a, k))
    with pytest.raises(DimError, match=r"flip: dims \[0, 0\] name a dim more than once"):
        x.flip(0, 0)
    with pytest.raises(DimError, match=r"roll: shifts \[1\] and dims \[0, 1\] differ"):
        x.roll(1, (0, 1))
    with pytest.raises(DimError, match="repeat: 2 sizes"):
        x.repeat(2, 2)
    with pytest.raises(DimError, match="tril: expects a tensor of at least 2 dims"):
        fusejit.ones(3).tril()


@pytest.mark.parametrize(
    "dtype, want",
    [(np.float32, np.float32), (np.float64, np.float64), (np.int32, np.int64),
     (np.uint8, np.int64), (np.bool_, np.int64), (np.float16, np.float16)],
)  # fmt: skip
def test_cumsum_cumprod_dtypes_as_torch(dtype, want):
    a = (arr(4, 6) * 2).astype(dtype)
    x = fusejit.from_numpy(a)
    for name, ref in (("cumsum", np.cumsum), ("cumprod", np.cumprod)):
        for dim in (0, 1, -1):
            got = getattr(x, name)(dim)
            # the reference: accumulated in float64 (float16 in float32), rounded once
            acc = np.float32 if dtype is np.float16 else np.float64
            r = ref(a.astype(acc if a.dtype.kind == "f" else np.int64), axis=dim).astype(want)
            assert got.dtype.np == want
            if a.dtype.kind == "f" and dtype is not np.float16:
                np.testing.assert_allclose(got.numpy(), r, rtol=8 * np.finfo(dtype).eps)
            else:
                same(got, r)
    same(fusejit.cumsum(x, 1, dtype=fusejit.float64), np.cumsum(a, 1, dtype=np.float64))
    same(fusejit.tensor(2.5).cumsum(0), np.asarray(np.float32(2.5)))  # 0-d: the value


def test_index_select_and_gather_as_torch():
    a = arr(4, 5)
    x = fusejit.from_numpy(a)
    idx = fusejit.tensor([3, 0, 3], dtype=fusejit.int32)
    same(x.index_select(0, idx), a[[3, 0, 3]])
    same(fusejit.index_select(x, -1, fusejit.tensor([4, 1])), a[:, [4, 1]])
    same(x.index_select(1, fusejit.tensor(2)), a[:, [2]])  # a 0-d index: one entry
    gi = np.array([[0, 3], [2, 1], [4, 4]])  # smaller than x in dim 0: reads rows 0..2
    same(x.gather(1, fusejit.from_numpy(gi)), np.take_along_axis(a[:3, :], gi, axis=1))
    gi0 = np.array([[3, 0, 1, 2, 0]])
    same(fusejit.gather(x, 0, fusejit.from_numpy(gi0)), np.take_along_axis(a, gi0, axis=0))
    with pytest.raises(DimError, match=r"index_select: index values -1..3 out of range"):
        x.index_select(0, fusejit.tensor([3, -1]))
    with pytest.raises(DimError, match=r"gather: index values 0..5 out of range for a dim of"):
        x.gather(1, fusejit.tensor([[0, 5]]))
    with pytest.raises(DTypeError, match="index must be an int32 or int64 tensor, got float32"):
        x.index_select(0, fusejit.tensor([1.0]))
    with pytest.raises(ShapeError, match=r"gather: index of shape \[5, 1\] does not fit"):
        x.gather(1, fusejit.tensor([[0]] * 5))
    with pytest.raises(ShapeError, match="index_select: index must be 1-D"):
        x.index_select(0, fusejit.tensor([[0]]))


def _table_ops(x, idx):
    y = (x.flip(1).roll(1, 0) * 2).tril(-1) + x.cumsum(1)
    z = fusejit.einsum("ij,kj->ik", x.sort(1, descending=True).values, x.triu().cumprod(0))
    return y.index_select(0, idx).gather(1, idx.reshape(-1, 1)).repeat(1, 2), z + x.topk(
        2
    ).values.sum()


def test_table_ops_trace_save_and_load(tmp_path):
    x, idx = fusejit.from_numpy(arr(4, 4)), fusejit.tensor([2, 0, 3])
    t = fusejit.trace(_table_ops, (x, idx))
    path = tmp_path / "ops.fjz"
    fusejit.save(t, path)
    loaded = fusejit.load(path)
    for args in ((x, idx), (fusejit.from_numpy(arr(4, 4)), fusejit.tensor([1, 1, 0]))):
        want = _table_ops(*args)
        for f in (t, loaded):
            for got, w in zip(f(*args), want, strict=True):
                np.testing.assert_allclose(got.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)


# ---- sorting and einsum ------------------------------------------------------------------------
def _sort_ref(a, axis, descending):
    """PyTorch's stable order: NaN largest; equal entries keep their order."""
    keyed = np.where(np.isnan(a), np.inf, a)
    rank_nan = np.isnan(a)
    n = a.shape[axis]
    pos = np.arange(n).reshape([-1 if d == axis % a.ndim else 1 for d in range(a.ndim)])
    pos = np.broadcast_to(pos, a.shape)
    if descending:
        order = np.lexsort((pos, ~rank_nan, -keyed), axis=axis)
    else:
        order = np.lexsort((pos, rank_nan, keyed), axis=axis)
    return np.take_along_axis(a, order, axis=axis), order


@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort_topk_as_torch(descending):
    a = np.round(arr(5, 9) * 2)  # many ties
    a[1, 3] = a[3, 0] = np.nan
    a[2, 2] = np.inf
    x = fusejit.from_numpy(a)
    for dim in (0, 1, -1):
        vals, idx = x.sort(dim, descending=descending)
        want_v, want_i = _sort_ref(a, dim, descending)
        same(vals, want_v)
        same(idx, want_i.astype(np.int64))
        same(fusejit.argsort(x, dim, descending=descending), want_i.astype(np.int64))
        k = 3
        top = x.topk(k, dim, largest=descending)
        part = [slice(None)] * 2
        part[dim] = slice(0, k)
        same(top.values, want_v[tuple(part)])
        same(top.indices, want_i[tuple(part)].astype(np.int64))
    ints = fusejit.tensor([[3, 1, 2], [1, 1, 0]], dtype=fusejit.int32)
    assert ints.sort().values.tolist() == [[1, 2, 3], [0, 1, 1]]
    assert ints.sort().values.dtype is fusejit.int32
    with pytest.raises(ShapeError, match=r"topk: k=10 is out of range for dim -1 of size 9"):
        x.topk(10)


def test_einsum_as_numpy():
    a, b, c = arr(2, 3, 4), arr(4, 5), arr(5)
    T = fusejit.from_numpy
    cases = [("bij,jk->bik", (a, b)), ("...j,jk", (a, b)), ("ij->ji", (b,)), ("ii", (arr(3, 3),)),
             ("bij,jk,k->bi", (a, b, c)), ("i,i->", (c, c)), ("bij->b", (a,))]  # fmt: skip
    for eq, ops in cases:
        got = fusejit.einsum(eq, *[T(o) for o in ops]).numpy()
        want = np.einsum(eq, *[o.astype(np.float64) for o in ops])
        assert got.dtype == np.float32 and got.shape == want.shape, eq
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=eq)
    got = fusejit.einsum("ij,j->i", [T(b), fusejit.arange(5)])  # a list; int64 promotes
    np.testing.assert_allclose(got.numpy(), b @ np.arange(5), rtol=1e-5, atol=1e-5)


def test_einsum_errors_name_the_term():
    x, y = fusejit.ones(2, 3), fusejit.ones(4, 5)
    with pytest.raises(ShapeError, match=r"2 operand terms in 'ij,jk' for 1 tensors"):
        fusejit.einsum("ij,jk", x)
    with pytest.raises(ShapeError, match=r"term 'ijk' names 3 dims for operand 0 of shape"):
        fusejit.einsum("ijk,jk", x, y)
    with pytest.raises(ShapeError, match="dim 'j' has size 3 in one operand and 4 in another"):
        fusejit.einsum("ij,jk->ik", x, y)
    with pytest.raises(ShapeError, match="output 'iz' names z, which no operand has"):
        fusejit.einsum("ij->iz", x)
    with pytest.raises(ShapeError, match="characters other than letters"):
        fusejit.einsum("i1,j", x, y)
    with pytest.raises(DTypeError, match="einsum: expected floating-point or integer inputs"):
        fusejit.einsum("ij->i", x > 0)


# ---- norms, closeness, diagonals ---------------------------------------------------------------
@pytest.mark.parametrize("p", [2, "fro", 1, np.inf, -np.inf, 0, 3, 0.5, -1])
def test_norm_as_numpy(p):
    a = arr(6, 7)
    a[2, 3] = 0.0
    x = fusejit.from_numpy(a)
    ordp = 2 if p == "fro" else p
    a64 = a.astype(np.float64)
    with np.errstate(divide="ignore"):
        for dim, keep in ((None, False), (1, False), (0, True), ((0, 1), False)):
            got = x.norm(p, dim=dim, keepdim=keep)
            if dim is None or isinstance(dim, tuple):
                want = np.linalg.norm(a64.ravel(), ord=ordp)
                want = np.reshape(want, ())
            else:
                want = np.linalg.norm(a64, ord=ordp, axis=dim, keepdims=keep)
            assert got.dtype is fusejit.float32 and got.shape == np.shape(want)
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-6, atol=1e-30)
    with pytest.raises(DTypeError, match="norm: expected a floating-point tensor, got int64"):
        fusejit.arange(3).norm()
    with pytest.raises(ValueError, match="norm: p must be a number or 'fro', got 'nuc'"):
        x.norm("nuc")


def test_isclose_allclose_equal_nan_to_num():
    inf, nan = np.inf, np.nan
    a = np.array([1.0, 1.0, 1e10, inf, -inf, inf, nan, 0.0, 1e-9], np.float32)
    b = np.array([1.0, 1.0 + 1e-6, 1.0001e10, inf, -inf, -inf, nan, 1e-9, 0.0], np.float32)
    ta, tb = fusejit.from_numpy(a), fusejit.from_numpy(b)
    for equal_nan in (False, True):
        same(fusejit.isclose(ta, tb, equal_nan=equal_nan), np.isclose(a, b, equal_nan=equal_nan))
    same(ta.isclose(tb, rtol=0, atol=0), np.isclose(a, b, rtol=0, atol=0))
    ints = fusejit.tensor([1, 2, 3])
    same(fusejit.isclose(ints, fusejit.tensor([1, 2, 4])), np.array([True, True, False]))
    assert fusejit.allclose(ta[:2], tb[:2]) and not fusejit.allclose(ta, tb)
    assert fusejit.allclose(ta[6:7], tb[6:7], equal_nan=True)
    assert fusejit.equal(ints, fusejit.tensor([1, 2, 3])) and not fusejit.equal(ints, ints[:2])
    big = np.finfo(np.float32)
    same(fusejit.nan_to_num(ta), np.nan_to_num(a))
    same(ta.nan_to_num(nan=-1.0, posinf=9.0), np.nan_to_num(a, nan=-1.0, posinf=9.0))
    assert float(fusejit.nan_to_num(ta)[3]) == big.max
    same(ints.nan_to_num(), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="rtol and atol must be non-negative"):
        fusejit.isclose(ta, tb, rtol=-1)


def test_diag_and_trace_as_numpy():
    m, v = arr(4, 5), arr(3)
    for k in (-2, 0, 1, 4):
        same(fusejit.from_numpy(m).diag(k), np.diag(m, k))
        same(fusejit.diag(fusejit.from_numpy(v), k), np.diag(v, k))
    np.testing.assert_allclose(fusejit.from_numpy(m).trace().numpy(), np.trace(m), rtol=1e-6)
    with pytest.raises(DimError, match=r"diag: expects a 1-D or 2-D tensor, got shape \[2, 2, 2\]"):
        fusejit.ones(2, 2, 2).diag()
    with pytest.raises(DimError, match="trace: expects a 2-D tensor"):
        fusejit.ones(3).trace()


def test_normalizing_by_the_norm_is_one_row_kernel():
    def f(x):
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    x = fusejit.from_numpy(arr(64, 100))
    t = fusejit.trace(f, x)
    assert t.kernel_count() == 1 and [n.op for n in t.graph.nodes] == ["fused"]
    a64 = x.numpy().astype(np.float64)
    want = a64 / np.linalg.norm(a64, axis=-1, keepdims=True)
    np.testing.assert_allclose(t(x).numpy(), want, rtol=2e-6, atol=1e-7)


# ---- the JIT -----------------------------------------------------------------------------------
def _update(p, g, m, keep):
    m = m.lerp(g, 0.1)  # an exponential moving average
    p = p.addcmul(m, m, value=-0.01).addcdiv(g, m.abs() + 1, value=0.5)
    return p.masked_fill(~keep, 0.0).clamp_min(-1.0), m


def test_traced_compositions_fuse_into_one_kernel_and_match_eager():
    args = (fusejit.from_numpy(arr(64, 32)), fusejit.from_numpy(arr(64, 32)),
            fusejit.from_numpy(arr(64, 32)), fusejit.from_numpy(arr(64, 32) > -1))  # fmt: skip
    t = fusejit.trace(_update, args)
    assert t.kernel_count() == 1 and [n.op for n in t.graph.nodes] == ["fused"]
    for got, want in zip(t(*args), _update(*args), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    s = fusejit.script(_update)
    for got, want in zip(s(*args), _update(*args), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


def test_traced_views_and_products():
    def f(x, v):
        a, b = x.movedim(0, -1).unbind(0)
        return fusejit.outer(a.narrow(0, 1, 3), v).t() + b.sum(), x.t().mv(v)

    x, v = fusejit.from_numpy(arr(4, 2)), fusejit.from_numpy(arr(4))
    t = fusejit.trace(f, (x, v))
    for got, want in zip(t(x, v), f(x, v), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


def test_docstring_examples():
    import doctest

    from fusejit.eager import composites, indexing, linalg, movement, reductions, sorting

    for mod in (movement, linalg, composites, sorting, indexing, reductions):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
