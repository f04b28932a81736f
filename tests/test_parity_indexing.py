"""PyTorch parity of the indexing and scatter ops (``fusejit/ops/indexing.py``,
``fusejit/eager/indexing.py``) against numpy references written as plain loops: scatter and its
reductions, index_add / index_copy / index_fill / index_put, masked_select / masked_scatter,
nonzero / argwhere, take / take_along_dim, one_hot, searchsorted / bucketize, unique,
bincount, histc."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parity_helpers import DEVICES, assert_close, assert_traced, host, on

import fusejit
from fusejit.base.errors import DimError, DTypeError, ShapeError, TraceError
from fusejit.ops.indexing import segment_at
from fusejit.ops.registry import OPS
from fusejit.ops.shape_rules import ShapeRuleError, out_shapes

ALL = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
NUMS = ALL[1:]
RNG = np.random.default_rng(18)


def _vals(shape, dtype, lo=1, hi=4, rng=RNG):
    """Values of ``dtype`` in [lo, hi) (small: products stay in range)."""
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(lo, hi, shape).astype(dtype)


def on0(v, device: str) -> fusejit.Tensor:
    """A 0-d tensor holding numpy scalar ``v`` on ``device``."""
    return on(v, device).reshape(())


def _exact(device: str) -> bool:
    # CUDA sums of float32 / float64 use atomic adds, in no fixed order
    return device == "cpu"


# --- scatter and scatter_reduce: a reference that walks the index in order


def ref_scatter(x, dim, index, src, reduce="set", include_self=True):
    with np.errstate(all="ignore"):  # (integers wrap, as the op's)
        return _ref_scatter(x, dim, index, src, reduce, include_self)


def _ref_scatter(x, dim, index, src, reduce, include_self):
    out = x.copy()
    ndim = x.ndim
    dim %= max(ndim, 1)
    seen = np.zeros(x.shape, bool)
    count = np.zeros(x.shape, np.int64)
    for pos in itertools.product(*map(range, index.shape)):
        tgt = list(pos)
        tgt[dim] = index[pos]
        tgt = tuple(tgt)
        v = src[pos] if isinstance(src, np.ndarray) else out.dtype.type(src)
        if reduce == "set":
            out[tgt] = v
            continue
        if not include_self and not seen[tgt]:
            out[tgt] = v
        elif reduce in ("sum", "mean"):
            out[tgt] = out[tgt] + v
        elif reduce == "prod":
            out[tgt] = out[tgt] * v
        elif reduce == "amax":
            out[tgt] = v if (np.isnan(v) or v > out[tgt]) and not np.isnan(out[tgt]) else out[tgt]
        elif reduce == "amin":
            out[tgt] = v if (np.isnan(v) or v < out[tgt]) and not np.isnan(out[tgt]) else out[tgt]
        seen[tgt] = True
        count[tgt] += 1
    if reduce == "mean":
        n = count + (1 if include_self else 0)
        n[n == 0] = 1
        if x.dtype.kind == "f":
            out = (out / n.astype(x.dtype)).astype(x.dtype)
        else:
            out = (out // n).astype(x.dtype)
    return out


def _distinct_index(shape, n, dim, rng=RNG):
    """An index of ``shape`` whose values along ``dim`` are distinct (within [0, n))."""
    idx = np.empty(shape, np.int64)
    moved = np.moveaxis(idx, dim, -1)
    for pos in np.ndindex(moved.shape[:-1]):
        moved[pos] = rng.permutation(n)[: moved.shape[-1]]
    return idx


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL)
def test_scatter_writes_src_and_value(device, dtype):
    x, src = _vals((4, 5), dtype), _vals((3, 6), dtype)
    for dim in (0, 1, -1):
        n = x.shape[dim]
        index = _distinct_index((3, 4) if dim == 0 else (4, 3), n, dim)
        s = src if dim == 0 else _vals((4, 6), dtype)
        got = fusejit.scatter(on(x, device), dim, on(index, device), on(s, device))
        assert_close(got, ref_scatter(x, dim, index, s), what=f"dim {dim}")
    index = _distinct_index((3, 3), 4, 0)
    got = on(x, device).scatter(0, on(index, device), 1)  # (value: a Python number)
    assert_close(got, ref_scatter(x, 0, index, 1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", NUMS)
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
def test_scatter_reduce_with_repeated_indices(device, dtype, reduce):
    x, src = _vals((3, 4), dtype), _vals((6, 4), dtype)
    index = RNG.integers(0, 3, (5, 4))  # (repeats: several entries per target)
    index[:, 0] = 1  # (a column whose entries all go to one place)
    for include_self in (True, False):
        got = on(x, device).scatter_reduce(
            0, on(index, device), on(src, device), reduce, include_self=include_self
        )
        want = ref_scatter(x, 0, index, src, reduce, include_self)
        assert_close(got, want, exact=_exact(device), what=f"include_self={include_self}")


@pytest.mark.parametrize("device", DEVICES)
def test_scatter_add_and_legacy_reduce(device):
    x, src = RNG.standard_normal((3, 5)), RNG.standard_normal((4, 5))
    index = RNG.integers(0, 3, (4, 5))
    got = fusejit.scatter_add(on(x, device), 0, on(index, device), on(src, device))
    assert_close(got, ref_scatter(x, 0, index, src, "sum"), exact=_exact(device))
    got = on(x, device).scatter(0, on(index, device), on(src, device), reduce="add")
    assert_close(got, ref_scatter(x, 0, index, src, "sum"), exact=_exact(device))
    got = on(x, device).scatter(0, on(index, device), on(src, device), reduce="multiply")
    assert_close(got, ref_scatter(x, 0, index, src, "prod"))
    got = on(x, device).scatter(0, on(index, device), 2.0, reduce="multiply")
    assert_close(got, ref_scatter(x, 0, index, 2.0, "prod"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # (inf * 0, numpy's warning)
def test_scatter_special_values_views_and_shapes(device):
    # NaN propagates through amax / amin; inf and -0.0 are kept
    x = np.array([0.0, -0.0, 1.0, np.inf], np.float32)
    src = np.array([np.nan, -1.0, -np.inf, 2.0, -0.0], np.float32)
    index = np.array([0, 1, 2, 2, 3])
    for reduce in ("amax", "amin", "sum", "prod"):
        got = on(x, device).scatter_reduce(0, on(index, device), on(src, device), reduce)
        assert_close(got, ref_scatter(x, 0, index, src, reduce), exact=True, what=reduce)
    # a transposed (non-contiguous) input, index and src
    xt, st = RNG.standard_normal((5, 3)), RNG.standard_normal((6, 4))
    it = RNG.integers(0, 5, (4, 3))
    got = on(xt, device).t().scatter_add(1, on(it, device).t(), on(st, device).t())
    assert_close(got, ref_scatter(xt.T, 1, it.T, st.T, "sum"), exact=_exact(device))
    # 0-d input, empty index
    got = on0(np.float64(2.0), device).scatter_add(
        0, on0(np.int64(0), device), on0(np.float64(3.0), device)
    )
    assert_close(got, np.float64(5.0))
    e = np.zeros((0, 4), np.int64)
    got = on(xt, device).scatter_add(0, on(e, device), on(st, device))
    assert_close(got, xt)


@pytest.mark.parametrize("device", DEVICES)
def test_scatter_traced_and_in_place(device):
    x, src = (
        RNG.standard_normal((3, 4)).astype(np.float32),
        RNG.standard_normal((5, 4)).astype(np.float32),
    )
    index = on(RNG.integers(0, 3, (5, 4)), device)
    for reduce in ("sum", "mean", "amax"):
        assert_traced(lambda x, i, s, r=reduce: (x * 2).scatter_reduce(0, i, s, r) + 1,
                      on(x, device), index, on(src, device), exact=_exact(device))  # fmt: skip
    assert_traced(lambda x, i: x.scatter(1, i, -1.5), on(x, device), index[:3])
    t = on(x, device)
    assert t.scatter_add_(0, index, on(src, device)) is t
    assert_close(t, ref_scatter(x, 0, host(index), src, "sum"), exact=_exact(device))
    with pytest.raises(TraceError, match="in-place"):
        fusejit.trace(
            lambda x, i, s: x.clone().scatter_(0, i, s), (on(x, device), index, on(src, device))
        )


def test_scatter_errors():
    x, i, s = fusejit.zeros(3, 4), fusejit.tensor([[0, 1, 2, 0]]), fusejit.ones(2, 4)
    with pytest.raises(DTypeError, match="scatter: index must be an int64"):
        x.scatter(0, i.to(fusejit.int32), s)
    with pytest.raises(DTypeError, match="src of dtype float64"):
        x.scatter(0, i, s.to(fusejit.float64))
    with pytest.raises(DimError, match="scatter_add: index values 0..3 out of range"):
        x.scatter_add(0, fusejit.tensor([[0, 3, 0, 0]]), s)
    with pytest.raises(IndexError):  # (DimError is PyTorch's IndexError)
        x.scatter(0, fusejit.tensor([[-1, 0, 0, 0]]), s)
    with pytest.raises(ShapeError, match="does not fit"):
        x.scatter(0, fusejit.tensor([[0, 1, 2, 0, 1]]), s)
    with pytest.raises(ShapeError, match="does not fit"):
        x.scatter(0, fusejit.tensor([0, 1]), s)
    with pytest.raises(DimError):
        x.scatter(2, i, s)
    with pytest.raises(ValueError, match="reduce"):
        x.scatter(0, i, s, reduce="max")
    with pytest.raises(ValueError, match="reduce"):
        x.scatter_reduce(0, i, s, "add")
    with pytest.raises(DTypeError, match="bool"):
        fusejit.zeros(3, 4, dtype=fusejit.bool).scatter_reduce(0, i, s > 0, "sum")
    with pytest.raises(DTypeError, match="does not fit dtype int8"):
        fusejit.zeros(3, 4, dtype=fusejit.int8).scatter(0, i, 300)
    # out of range in a traced graph: the op's own check, never a result
    f = fusejit.trace(lambda x, i, s: x.scatter_add(0, i, s), (x, i, s))
    with pytest.raises(DimError, match="scatter: index values"):
        f(x, fusejit.tensor([[0, 5, 0, 0]]), s)


def test_segment_at_equals_ufunc_at():
    # the CUDA path of the scatter reductions, on numpy: the same as numpy's ufunc.at
    lin = RNG.integers(0, 7, 200)
    lin[:50] = 3
    for ufunc in (np.add, np.multiply, np.maximum, np.minimum):
        vals = RNG.standard_normal(200).astype(np.float32)
        vals[7] = np.nan
        want, got = np.ones(7, np.float32), np.ones(7, np.float32)
        with np.errstate(invalid="ignore"):
            ufunc.at(want, lin, vals)
        segment_at(np, ufunc, got, lin, vals)
        np.testing.assert_array_equal(got, want)
    rows, want = np.zeros((4, 3), np.int64), np.zeros((4, 3), np.int64)
    v = RNG.integers(-5, 5, (9, 3))
    np.add.at(want, lin[:9] % 4, v)
    segment_at(np, np.add, rows, lin[:9] % 4, v)
    np.testing.assert_array_equal(rows, want)


# --- index_add, index_copy, index_fill


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", NUMS)
def test_index_add_copy_fill(device, dtype):
    x = _vals((4, 3, 2), dtype)
    for dim in (0, 1, -1):
        n = x.shape[dim]
        idx = RNG.integers(0, n, 5)
        shape = list(x.shape)
        shape[dim] = 5
        src = _vals(tuple(shape), dtype)
        want = x.copy()
        for k, i in enumerate(idx):
            sl = [slice(None)] * 3
            sl[dim], sk = i, [slice(None)] * 3
            sk[dim] = k
            want[tuple(sl)] = want[tuple(sl)] + src[tuple(sk)] * 2
        got = on(x, device).index_add(dim, on(idx, device), on(src, device), alpha=2)
        assert_close(got, want, exact=_exact(device), what=f"index_add dim {dim}")
        got = fusejit.index_add(
            on(x, device), dim, on(idx.astype(np.int32), device), on(src, device)
        )
        assert_close(got, ref_index_add(x, dim, idx, src), exact=_exact(device))
        distinct = RNG.permutation(n)[: min(n, 2)]
        sc = np.take(src, range(len(distinct)), axis=dim)
        want = x.copy()
        np.moveaxis(want, dim, 0)[distinct] = np.moveaxis(sc, dim, 0)
        got = on(x, device).index_copy(dim, on(distinct, device), on(sc, device))
        assert_close(got, want, what=f"index_copy dim {dim}")
        want = x.copy()
        fill_at = np.array([0, -1])
        np.moveaxis(want, dim, 0)[fill_at] = 1
        got = on(x, device).index_fill(dim, on(fill_at, device), 1)
        assert_close(got, want, what=f"index_fill dim {dim}")


def ref_index_add(x, dim, idx, src):
    want = np.moveaxis(x.copy(), dim, 0)
    s = np.moveaxis(src, dim, 0)
    for k, i in enumerate(idx):
        want[i] = want[i] + s[k]
    return np.moveaxis(want, 0, dim)


@pytest.mark.parametrize("device", DEVICES)
def test_index_ops_views_scalars_traced(device):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    src = RNG.standard_normal((5, 3)).astype(np.float32)  # transposed below: (3, 5)
    idx = np.array([3, 0, 3, 1, 3])
    got = on(x, device).index_add(1, on(idx, device), on(src, device).t())
    assert_close(got, ref_index_add(x, 1, idx, src.T), exact=_exact(device))
    got = on0(np.float32(1.0), device).index_fill(0, on(np.array([0]), device), -0.0)
    assert_close(got, np.float32(-0.0), exact=True)
    assert np.signbit(host(got))
    got = on(x, device).index_fill(0, on(np.array([1]), device), fusejit.tensor(np.nan))
    want = x.copy()
    want[1] = np.nan
    assert_close(got, want, exact=True)
    i = on(idx, device)
    assert_traced(lambda x, s: x.index_add(1, i, s, alpha=0.5), on(x, device),
                  on(src, device).t(), exact=_exact(device))  # fmt: skip
    assert_traced(
        lambda x, j: x.index_fill(1, j, 7.0) + 1, on(x, device), on(np.array([-1, 0]), device)
    )
    assert_traced(lambda x, s: x.index_copy(0, on(np.array([2, 0]), device), s), on(x, device),
                  on(x[:2] * 3, device))  # fmt: skip
    t = on(x, device)
    assert t.index_fill_(0, on(np.array([0]), device), 0.0) is t
    assert host(t)[0].tolist() == [0.0] * 4


def test_index_ops_errors():
    x = fusejit.zeros(3, 4)
    with pytest.raises(DimError, match="index_add: index values 0..3 out of range"):
        x.index_add(0, fusejit.tensor([0, 3]), fusejit.ones(2, 4))
    with pytest.raises(DimError, match="index_copy: index values -1..0"):
        x.index_copy(0, fusejit.tensor([-1, 0]), fusejit.ones(2, 4))
    with pytest.raises(DimError, match="index_fill: index values -4..0"):
        x.index_fill(0, fusejit.tensor([-4, 0]), 1.0)
    with pytest.raises(ShapeError, match="index_add: source of shape"):
        x.index_add(0, fusejit.tensor([0, 1]), fusejit.ones(3, 4))
    with pytest.raises(ShapeError, match="must be 1-D"):
        x.index_add(0, fusejit.tensor([[0, 1]]), fusejit.ones(2, 4))
    with pytest.raises(DTypeError, match="source of dtype float64"):
        x.index_add(0, fusejit.tensor([0, 1]), fusejit.ones(2, 4, dtype=fusejit.float64))
    with pytest.raises(DTypeError, match="index must be an int32 or int64"):
        x.index_add(0, fusejit.tensor([0.0]), fusejit.ones(1, 4))
    with pytest.raises(DTypeError, match="index_copy: index must be an int64"):
        x.index_copy(0, fusejit.tensor([0], dtype=fusejit.int32), fusejit.ones(1, 4))
    with pytest.raises(DTypeError, match="index_fill: index must be an int64"):
        x.index_fill(0, fusejit.tensor([0], dtype=fusejit.int32), 1.0)
    with pytest.raises(DTypeError, match="alpha must be an int"):
        fusejit.zeros(3, dtype=fusejit.int32).index_add(
            0, fusejit.tensor([0]), fusejit.ones(1, dtype=fusejit.int32), alpha=0.5
        )


# --- index_put


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL)
def test_index_put(device, dtype):
    x = _vals((4, 3, 2), dtype)
    i0, i1 = np.array([[0, -1], [2, 0]]), np.array([1, 1])  # (broadcast; a repeated place)
    v = _vals((2, 2, 2), dtype)
    want = x.copy()
    for a in range(2):
        for b in range(2):
            want[i0[a, b], i1[b]] = v[a, b]
    want_acc = x.copy()
    if dtype != "bool":
        for a in range(2):
            for b in range(2):
                want_acc[i0[a, b], i1[b]] += v[a, b]
    args = ((on(i0, device), on(i1, device)), on(v, device))
    # (the repeated place gets the same write twice in `want`: [0, 1] gets v[0, 0] then v[1, 1])
    got = on(x, device).index_put(*args)
    keep = np.ones(x.shape, bool)
    keep[0, 1] = False
    assert_close(host(got)[keep], want[keep])
    if dtype != "bool":
        got = on(x, device).index_put(*args, accumulate=True)
        assert_close(got, want_acc, exact=_exact(device))
    # one index, values broadcast along the remaining dims
    got = fusejit.index_put(on(x, device), (on(np.array([3, 1]), device),), on(v[0, 0], device))
    want = x.copy()
    want[[3, 1]] = v[0, 0]
    assert_close(got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_index_put_masks_traced_errors(device):
    x = RNG.standard_normal((3, 4))
    m = x > 0
    got = on(x, device).index_put((on(m, device),), on(np.float64(0.0), device))
    want = x.copy()
    want[m] = 0
    assert_close(got, want, exact=True)
    got = on(x, device).index_put((on(m[:, 0], device), on(np.array([1]), device)),
                                  on(np.float64(-1.0), device))  # fmt: skip
    want = x.copy()
    want[m[:, 0], [1]] = -1
    assert_close(got, want, exact=True)
    i = on(np.array([0, 2, 0]), device)
    assert_traced(lambda x, v: x.index_put((i,), v, accumulate=True) * 2, on(x, device),
                  on(np.ones(4), device), exact=_exact(device))  # fmt: skip
    with pytest.raises(TraceError, match="bool mask"):
        fusejit.trace(
            lambda x: x.index_put((x > 0,), on(np.float64(0.0), device)), (on(x, device),)
        )
    with pytest.raises(DimError, match="index_put: index values 3..3"):
        on(x, device).index_put((on(np.array([3]), device),), on(np.float64(0.0), device))
    with pytest.raises(DTypeError, match="values of dtype float32"):
        on(x, device).index_put((i,), on(np.float32(0.0), device))
    with pytest.raises(ShapeError, match="do not broadcast"):
        on(x, device).index_put((i,), on(np.ones(3), device))
    with pytest.raises(DimError, match="3 indices for a tensor of 2 dims"):
        on(x, device).index_put((i, i, i), on(np.float64(0.0), device))
    t = on(x, device)
    assert t.index_put_((i,), on(np.float64(5.0), device)) is t
    assert host(t)[0].tolist() == [5.0] * 4


# --- masked_select, masked_scatter, nonzero, argwhere


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL)
def test_masked_select_and_scatter(device, dtype):
    x = _vals((3, 4), dtype, 0, 5)
    for mshape in ((3, 4), (4,), (3, 1), (2, 3, 4)):
        m = RNG.integers(0, 2, mshape).astype(bool)
        xb, mb = np.broadcast_arrays(x, m)
        got = fusejit.masked_select(on(x, device), on(m, device))
        assert_close(got, np.array([v for v, k in zip(xb.ravel(), mb.ravel()) if k], x.dtype))
        src = _vals((30,), dtype, 0, 5)
        want, k = xb.copy(), 0
        for pos in np.ndindex(want.shape):
            if mb[pos]:
                want[pos], k = src[k], k + 1
        got = on(x, device).masked_scatter(on(m, device), on(src, device))
        assert_close(got, want, what=f"mask {mshape}")


@pytest.mark.parametrize("device", DEVICES)
def test_masked_ops_special_traced_errors(device):
    x = np.array([[np.nan, -0.0, np.inf], [1.0, -np.inf, 0.0]], np.float32)
    m = np.isnan(x) | np.signbit(x)
    got = on(x, device).t().masked_select(on(m, device).t())
    assert_close(got, x.T[m.T], exact=True)
    got = on(np.zeros((0, 3), np.float32), device).masked_select(on(m[0], device))
    assert_close(got, np.zeros(0, np.float32))
    src = on(np.arange(6, dtype=np.float32), device)
    assert_traced(lambda x, m: x.masked_scatter(m, src) + 1, on(x, device), on(m, device))
    with pytest.raises(TraceError, match="masked_select"):
        fusejit.trace(lambda x, m: x.masked_select(m), (on(x, device), on(m, device)))
    with pytest.raises(ShapeError, match="selects 3 elements, the source has only 2"):
        on(x, device).masked_scatter(on(m, device), on(np.ones(2, np.float32), device))
    with pytest.raises(DTypeError, match="mask must be a bool"):
        on(x, device).masked_select(on(x, device))
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        on(x, device).masked_select(on(np.ones(2, bool), device))
    t = on(x, device)
    assert t.masked_scatter_(on(m, device), src) is t


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["bool", "uint8", "int32", "float16", "float64"])
def test_nonzero_argwhere(device, dtype):
    x = _vals((3, 4, 2), dtype, -1, 2)
    if dtype.startswith("float"):
        x[0, 0, 0], x[1, 1, 1], x[2, 0, 1] = np.nan, -0.0, np.inf
    want = np.array([p for p in np.ndindex(x.shape) if x[p] != 0], np.int64).reshape(-1, 3)
    assert_close(fusejit.nonzero(on(x, device)), want)
    assert_close(on(x, device).argwhere(), want)
    cols = on(x, device).nonzero(as_tuple=True)
    assert len(cols) == 3
    for c, w in zip(cols, want.T, strict=True):
        assert_close(c, w)
    assert_close(on(x, device).transpose(0, 2).nonzero(), np.argwhere(x.transpose(2, 1, 0)))


@pytest.mark.parametrize("device", DEVICES)
def test_nonzero_0d_empty_traced(device):
    assert_close(on0(np.float32(5), device).nonzero(), np.zeros((1, 0), np.int64))
    assert_close(on0(np.float32(0), device).nonzero(), np.zeros((0, 0), np.int64))
    (c,) = on0(np.int64(3), device).nonzero(as_tuple=True)
    assert_close(c, np.array([0]))
    assert_close(on(np.zeros((0, 2)), device).nonzero(), np.zeros((0, 2), np.int64))
    for f in (fusejit.nonzero, fusejit.argwhere):
        with pytest.raises(TraceError, match="depends on the tensor's values"):
            fusejit.trace(f, (on(np.ones(3), device),))


# --- take, take_along_dim


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL)
def test_take_and_take_along_dim(device, dtype):
    x = _vals((3, 4), dtype, 0, 9)
    idx = np.array([[0, -1, 5], [11, -12, 3]])
    assert_close(on(x, device).take(on(idx, device)), x.ravel()[idx % 12])
    assert_close(on(x, device).t().take(on(idx, device)), x.T.ravel()[idx % 12])
    ia = RNG.integers(0, 4, (3, 6))
    got = fusejit.take_along_dim(on(x, device), on(ia, device), 1)
    assert_close(got, np.array([[x[r, ia[r, c]] for c in range(6)] for r in range(3)], x.dtype))
    ib = RNG.integers(0, 3, (2, 1))  # (broadcast over the columns)
    got = on(x, device).take_along_dim(on(ib, device), dim=-2)
    assert_close(got, np.array([[x[ib[r, 0], c] for c in range(4)] for r in range(2)], x.dtype))
    flat = RNG.integers(0, 12, (5,))
    assert_close(on(x, device).take_along_dim(on(flat, device)), x.ravel()[flat])


@pytest.mark.parametrize("device", DEVICES)
def test_take_traced_and_errors(device):
    x = on(RNG.standard_normal((3, 4)), device)
    i = on(np.array([[0, -1], [7, -12]]), device)
    assert_traced(lambda x, i: x.take(i) * 2, x, i)
    assert_traced(
        lambda x, i: fusejit.take_along_dim(x, i, 0), x, on(np.array([[2, 0, 1, 0]]), device)
    )
    with pytest.raises(DimError, match="take: index values -13..0"):
        x.take(on(np.array([-13, 0]), device))
    with pytest.raises(DimError, match="take: index values 0..12"):
        x.take(on(np.array([0, 12]), device))
    with pytest.raises(DTypeError, match="take: index must be an int64"):
        x.take(on(np.array([0], np.int32), device))
    with pytest.raises(ShapeError, match="same|equal"):
        x.take_along_dim(on(np.array([0]), device), 0)
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        x.take_along_dim(on(np.zeros((2, 3), np.int64), device), 0)
    with pytest.raises(IndexError):
        x.take_along_dim(on(np.array([[3]]), device), 0)
    f = fusejit.trace(lambda x, i: x.take(i), (x, i))
    with pytest.raises(DimError, match="out of range"):
        f(x, on(np.array([[0, 99], [0, 0]]), device))


# --- one_hot


@pytest.mark.parametrize("device", DEVICES)
def test_one_hot(device):
    v = RNG.integers(0, 5, (2, 3))
    got = fusejit.one_hot(on(v, device), 6)
    assert_close(got, np.eye(6, dtype=np.int64)[v])
    assert_close(fusejit.one_hot(on(v, device)), np.eye(v.max() + 1, dtype=np.int64)[v])
    assert_close(fusejit.one_hot(on(v, device).t(), 5), np.eye(5, dtype=np.int64)[v.T])
    assert_close(fusejit.one_hot(on0(np.int64(2), device), 3), np.array([0, 0, 1]))
    assert_close(fusejit.one_hot(on(np.zeros(0, np.int64), device), 0), np.zeros((0, 0), np.int64))
    assert_traced(lambda v: fusejit.one_hot(v, 7) * 2, on(v, device))
    with pytest.raises(TraceError, match="one_hot without num_classes"):
        fusejit.trace(lambda v: fusejit.one_hot(v), (on(v, device),))
    with pytest.raises(DimError, match="class values -1..0"):
        fusejit.one_hot(on(np.array([0, -1]), device), 3)
    with pytest.raises(DimError, match="class values 0..3 out of range for num_classes=3"):
        fusejit.one_hot(on(np.array([0, 3]), device), 3)
    with pytest.raises(DTypeError, match="int64"):
        fusejit.one_hot(on(np.array([0, 1], np.int32), device), 3)
    with pytest.raises(ShapeError, match="empty"):
        fusejit.one_hot(on(np.zeros(0, np.int64), device))


# --- searchsorted, bucketize


def ref_search(seq, v, right):
    """The index of ``v`` in sorted 1-D ``seq`` by a linear scan."""
    return sum(1 for s in seq if (s <= v if right else s < v))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", NUMS)
def test_searchsorted(device, dtype):
    seq = np.sort(_vals((3, 6), dtype, 0, 20), axis=-1)
    vals = _vals((3, 5), dtype, -1, 22)
    vals[:, 0] = seq[:, 2]  # (a value equal to an entry)
    for right in (False, True):
        want = np.array([[ref_search(seq[r], v, right) for v in vals[r]] for r in range(3)])
        assert_close(fusejit.searchsorted(on(seq, device), on(vals, device), right=right), want)
        got = fusejit.searchsorted(on(seq, device), on(vals, device),
                                   side="right" if right else "left", out_int32=True)  # fmt: skip
        assert_close(got, want.astype(np.int32))
        got = fusejit.searchsorted(on(seq[0], device), on(vals, device).t(), right=right)
        assert_close(got, np.array([[ref_search(seq[0], v, right) for v in c] for c in vals.T]))
        got = fusejit.bucketize(on(vals, device), on(seq[1], device), right=right)
        assert_close(got, np.array([[ref_search(seq[1], v, right) for v in r] for r in vals]))


@pytest.mark.parametrize("device", DEVICES)
def test_searchsorted_sorter_scalars_special_traced_errors(device):
    raw = np.array([[5.0, 1.0, 3.0], [2.0, 0.0, -1.0]])
    sorter = np.argsort(raw, axis=-1)
    v = np.array([[3.0, 6.0], [-5.0, 0.0]])
    got = fusejit.searchsorted(on(raw, device), on(v, device), sorter=on(sorter, device))
    assert_close(got, np.array([[1, 3], [0, 1]]))
    seq = np.array([-np.inf, -1.0, 0.0, 2.5, np.inf], np.float32)
    assert_close(fusejit.searchsorted(on(seq, device), 2.5), np.int64(3))
    assert_close(fusejit.searchsorted(on(seq, device), 2.5, right=True), np.int64(4))
    assert_close(fusejit.bucketize(-0.0, on(seq, device)), np.int64(2))
    got = fusejit.searchsorted(on(seq, device), on(np.array([np.inf, -np.inf, np.nan]), device))
    assert_close(got, np.array([4, 0, 5]))  # (NaN after everything, as PyTorch)
    got = fusejit.searchsorted(on(seq, device), on(np.array([np.nan]), device), right=True)
    assert_close(got, np.array([5]))
    # int sequence, float values: both are compared as the promoted dtype
    got = fusejit.searchsorted(on(np.array([1, 2, 3]), device), on(np.array([1.5, 3.0]), device))
    assert_close(got, np.array([1, 2]))
    assert_close(fusejit.searchsorted(on(np.zeros(0), device), on(np.ones(2), device)),
                 np.zeros(2, np.int64))  # fmt: skip
    s = on(np.sort(RNG.standard_normal((2, 8))), device)
    assert_traced(lambda s, v: fusejit.searchsorted(s, v, right=True) + 1, s,
                  on(RNG.standard_normal((2, 3)), device))  # fmt: skip
    assert_traced(lambda v: fusejit.bucketize(v, s[0]), on(RNG.standard_normal(7), device))
    with pytest.raises(ShapeError, match="leading dims"):
        fusejit.searchsorted(s, on(np.ones((3, 2)), device))
    with pytest.raises(ValueError, match="contradict"):
        fusejit.searchsorted(s, on(np.ones((2, 2)), device), right=True, side="left")
    with pytest.raises(DTypeError, match="bool"):
        fusejit.searchsorted(on(np.array([False, True]), device), on(np.array([True]), device))
    with pytest.raises(ShapeError, match="boundaries must be 1-D"):
        fusejit.bucketize(on(np.ones(2), device), s)
    with pytest.raises(DimError, match="searchsorted: index values"):
        fusejit.searchsorted(on(raw, device), on(v, device), sorter=on(sorter + 1, device))


# --- unique, bincount, histc


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL)
def test_unique(device, dtype):
    x = _vals((4, 5), dtype, -2, 3)
    vals = sorted(set(x.ravel().tolist()))
    got, inv, cnt = fusejit.unique(on(x, device), return_inverse=True, return_counts=True)
    assert_close(got, np.array(vals, x.dtype))
    assert_close(inv, np.array([[vals.index(v) for v in r] for r in x.tolist()], np.int64))
    assert_close(cnt, np.array([x.ravel().tolist().count(v) for v in vals], np.int64))
    assert_close(on(x, device).t().unique(), np.array(vals, x.dtype))
    x[2] = x[0]  # (a repeated row)
    rows = sorted(set(map(tuple, x.tolist())))
    got, inv = on(x, device).unique(dim=0, return_inverse=True)
    assert_close(got, np.array(rows, x.dtype).reshape(-1, 5))
    assert_close(inv, np.array([rows.index(tuple(r)) for r in x.tolist()], np.int64))


@pytest.mark.parametrize("device", DEVICES)
def test_unique_special_and_traced(device):
    x = np.array([np.nan, 1.0, -0.0, 0.0, np.nan, np.inf, 1.0], np.float32)
    got, cnt = on(x, device).unique(return_counts=True)
    assert_close(got, np.array([0.0, 1.0, np.inf, np.nan, np.nan], np.float32), exact=True)
    assert_close(cnt, np.array([2, 2, 1, 1, 1]))
    assert_close(on(np.zeros(0), device).unique(), np.zeros(0))
    assert_close(on0(np.int64(3), device).unique(), np.array([3]))
    with pytest.raises(TraceError, match="unique"):
        fusejit.trace(lambda x: x.unique(), (on(x, device),))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64"])
def test_bincount(device, dtype):
    x = RNG.integers(0, 6, 20).astype(dtype)
    want = np.array([x.tolist().count(v) for v in range(int(x.max()) + 1)], np.int64)
    assert_close(on(x, device).bincount(), want)
    assert_close(fusejit.bincount(on(x, device), minlength=9), np.pad(want, (0, 9 - len(want))))
    for wd, od in (("float32", "float32"), ("float64", "float64"), ("float16", "float64"),
                   ("int32", "float64")):  # fmt: skip
        w = RNG.integers(-3, 4, 20).astype(wd)
        want = np.zeros(int(x.max()) + 1, od)
        for v, ww in zip(x, w, strict=True):
            want[v] += ww
        assert_close(on(x, device).bincount(on(w, device)), want, what=wd)
    assert_close(on(x, device)[::2].bincount(), np.bincount(x[::2]).astype(np.int64))


@pytest.mark.parametrize("device", DEVICES)
def test_bincount_empty_errors_traced(device):
    assert_close(on(np.zeros(0, np.int64), device).bincount(), np.zeros(0, np.int64))
    assert_close(on(np.zeros(0, np.int64), device).bincount(minlength=3), np.zeros(3, np.int64))
    with pytest.raises(DimError, match="non-negative"):
        on(np.array([1, -1]), device).bincount()
    with pytest.raises(DTypeError, match="integer"):
        on(np.array([1.0]), device).bincount()
    with pytest.raises(DTypeError, match="integer"):
        on(np.array([True]), device).bincount()
    with pytest.raises(ShapeError, match="1-D"):
        on(np.ones((2, 2), np.int64), device).bincount()
    with pytest.raises(ShapeError, match="weights of shape"):
        on(np.ones(2, np.int64), device).bincount(on(np.ones(3), device))
    with pytest.raises(TraceError, match="bincount"):
        fusejit.trace(lambda x: x.bincount(minlength=10), (on(np.ones(2, np.int64), device),))


def ref_histc(x, bins, lo, hi):
    x = x.astype(np.float64).ravel()
    out = np.zeros(bins)
    for v in x:
        if lo <= v <= hi:
            out[min(int((v - lo) * bins / (hi - lo)), bins - 1)] += 1
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_histc(device, dtype):
    # values at bin centres, the range's ends and outside it
    x = (RNG.integers(0, 8, (4, 6)) + 0.5).astype(dtype)
    x[0, :4] = [0.0, 8.0, -1.0, 9.0]
    x[1, 0] = np.nan
    got = on(x, device).histc(bins=8, min=0, max=8)
    assert_close(got, ref_histc(np.nan_to_num(x, nan=-5), 8, 0, 8).astype(dtype))
    got = fusejit.histc(on(x[2:], device).t(), bins=3)  # (the data's own range)
    lo, hi = float(x[2:].min()), float(x[2:].max())
    assert_close(got, ref_histc(x[2:], 3, lo, hi).astype(dtype))
    assert_close(fusejit.histc(on(np.full(3, 2.0, dtype), device), bins=4),
                 ref_histc(np.full(3, 2.0), 4, 1.0, 3.0).astype(dtype))  # fmt: skip
    assert_close(fusejit.histc(on(np.zeros(0, dtype), device), bins=2), np.zeros(2, dtype))


@pytest.mark.parametrize("device", DEVICES)
def test_histc_traced_errors(device):
    x = on(RNG.standard_normal(50).astype(np.float32), device)
    assert_traced(lambda x: fusejit.histc(x * 2, 10, -3, 3), x)
    assert_traced(lambda x: fusejit.histc(x, 5), x)
    with pytest.raises(DTypeError, match="floating-point"):
        fusejit.histc(on(np.ones(3, np.int64), device))
    with pytest.raises(ShapeError, match="bins must be > 0"):
        fusejit.histc(x, 0)
    with pytest.raises(ShapeError, match="max must be larger than min"):
        fusejit.histc(x, 4, 2.0, 1.0)
    with pytest.raises(ShapeError, match="not finite"):
        fusejit.histc(on(np.array([1.0, np.inf]), device))


# --- the table entries: shape rules, devices, methods


def test_shape_rules_give_the_implementations_shapes():
    from fusejit.base.device import CPU

    z = np.zeros
    cases = [
        ("scatter", [z((3, 4)), z((2, 4), np.int64), z((2, 5))],
         {"dim": 0, "reduce": "sum", "include_self": True, "value": None}),
        ("scatter", [z((3, 4)), z((3, 2), np.int64)],
         {"dim": -1, "reduce": "set", "include_self": True, "value": 1.0}),
        ("index_put", [z((3, 4, 5)), z((5,)), z((2, 1), np.int64), z((3,), np.int64)],
         {"accumulate": True}),
        ("masked_scatter", [z((3, 1)), z((4,), bool), z((12,))], {}),
        ("one_hot", [z((2, 3), np.int64)], {"num_classes": 4}),
        ("searchsorted", [z((2, 5)), z((2, 3))], {"right": False, "out_int32": False}),
        ("searchsorted", [z((5,)), z((2, 3)), z((5,), np.int64)],
         {"right": True, "out_int32": True}),
        ("histc", [z((7,))], {"bins": 3, "lo": 0.0, "hi": 1.0}),
    ]  # fmt: skip
    for name, arrays, attrs in cases:
        got = OPS[name].impl(CPU.backend, *arrays, **attrs)
        assert out_shapes(OPS[name], [a.shape for a in arrays], attrs) == [got.shape], name
    bad = [
        ("scatter", [(3, 4), (2, 4), (2, 4)],
         {"dim": 0, "reduce": "max", "include_self": True, "value": None}),
        ("scatter", [(3, 4), (2, 4)], {"dim": 0, "reduce": "set", "include_self": True,
                                       "value": None}),
        ("scatter", [(3, 4), (2, 5), (2, 5)],
         {"dim": 0, "reduce": "sum", "include_self": True, "value": None}),
        ("index_put", [(3, 4), (5,), (2,)], {"accumulate": False}),
        ("one_hot", [(2,)], {"num_classes": -1}),
        ("histc", [(2,)], {"bins": 0, "lo": 0.0, "hi": 1.0}),
        ("searchsorted", [(2, 5), (3, 1)], {"right": False, "out_int32": False}),
    ]  # fmt: skip
    for name, shapes, attrs in bad:
        with pytest.raises(ShapeRuleError):
            out_shapes(OPS[name], shapes, attrs)


def test_methods_and_a_src_that_is_not_a_tensor():
    x = fusejit.zeros(3)
    assert x.scatter_reduce_ and x.index_put_ and x.masked_scatter_ and x.take_along_dim
    for fn in (fusejit.scatter_add, lambda x, d, i, s: x.index_add(d, i, s)):
        with pytest.raises(TypeError, match="expected a tensor for s"):
            fn(x, 0, fusejit.tensor([0]), object())


def test_the_gpu_path_of_the_scatter_ops_on_numpy():
    # the branches a GPU takes (segment_at for the reductions cupyx has no kernel for), run
    # with numpy arrays: the same results as the CPU's
    from types import SimpleNamespace

    from fusejit.base.device import CPU

    sim = SimpleNamespace(xp=np, name="cuda", fill=lambda a, v: a.fill(v))
    scatter, index_put = OPS["scatter"].impl, OPS["index_put"].impl
    index = RNG.integers(0, 3, (6, 4))
    index[:, 1] = 2
    for dtype in ("int64", "int8", "uint8", "float16"):
        x, src = _vals((3, 4), dtype), _vals((6, 4), dtype)
        for reduce in ("sum", "prod", "mean", "amax", "amin"):
            for include_self in (True, False):
                attrs = {"dim": 0, "reduce": reduce, "include_self": include_self, "value": None}
                want = scatter(CPU.backend, x, index, src, **attrs)
                np.testing.assert_array_equal(scatter(sim, x, index, src, **attrs), want)
    x = np.zeros((4, 3), np.int64)
    i0, v = np.array([[0, -1, 0], [3, 0, 0]]), RNG.integers(-5, 5, (2, 3, 3))
    want = index_put(CPU.backend, x, v, i0, accumulate=True)
    np.testing.assert_array_equal(index_put(sim, x, v, i0, accumulate=True), want)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    data=st.data(),
    reduce=st.sampled_from(["set", "sum", "prod", "mean", "amax", "amin"]),
    include_self=st.booleans(),
    dtype=st.sampled_from(["int32", "float64"]),
)
def test_scatter_reduce_any_shape(shape, data, reduce, include_self, dtype):
    # index shapes no larger than the input (outside dim) and the source, any dim
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    d = dim % len(shape)
    ishape = [data.draw(st.integers(0, n if k != d else 5)) for k, n in enumerate(shape)]
    sshape = [i + data.draw(st.integers(0, 1)) for i in ishape]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, src = _vals(tuple(shape), dtype, -3, 4, rng), _vals(tuple(sshape), dtype, -3, 4, rng)
    if reduce == "set":  # (distinct targets: which write lands where one repeats is unspecified)
        if ishape[d] > shape[d]:
            return
        index = _distinct_index(tuple(ishape), shape[d], d, rng) if all(ishape) else np.zeros(
            ishape, np.int64)  # fmt: skip
        got = fusejit.scatter(on(x), dim, on(index), on(src))
    else:
        index = rng.integers(0, shape[d], ishape)
        got = fusejit.scatter_reduce(on(x), dim, on(index), on(src), reduce,
                                     include_self=include_self)  # fmt: skip
    assert_close(got, ref_scatter(x, dim, index, src, reduce, include_self))
