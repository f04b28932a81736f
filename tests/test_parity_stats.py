"""PyTorch parity of the statistics: median, nanmedian, quantile, nanquantile, kthvalue, mode,
nansum, nanmean, var_mean, std_mean, aminmax, cummax, cummin, logcumsumexp, count_nonzero;
against numpy references (written out where numpy has no such function), on every device,
traced."""

from __future__ import annotations

import warnings
from collections import Counter
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
from parity_helpers import DEVICES, assert_close, assert_traced, host, on

import fusejit
from fusejit.ops.registry import OPS
from fusejit.ops.shape_rules import out_shapes
from fusejit.ops.statistics import scan

NAN = np.nan
INTS = [np.uint8, np.int8, np.int16, np.int32, np.int64]
FLOATS = [np.float16, np.float32, np.float64]


def on0(v, dtype, device: str) -> fusejit.Tensor:
    """A 0-d tensor (``on`` gives numpy's ascontiguousarray, which makes 0-d arrays 1-d)."""
    t = fusejit.from_numpy(np.array(v, dtype))
    assert t.shape == ()
    return t if device == "cpu" else t.to(device)


def _data(dtype, shape=(3, 7), seed=0, nan=False):
    """Values with repeats (ties matter to the order statistics)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, shape)
    if np.dtype(dtype).kind == "b":
        return (a % 2).astype(bool)
    a = a.astype(dtype)
    if np.dtype(dtype).kind == "f":
        a = (a + rng.random(shape).round(1)).astype(dtype)
        if nan:
            a.flat[::5] = NAN
    return a


# ---- median, nanmedian, kthvalue --------------------------------------------------------------


def _lower_median(row: np.ndarray, ignore_nan: bool):
    """(value, index) of torch's median of a 1-d row: the (n-1)//2-th of a stable sort; NaN
    (the first) when the row holds one, unless ignored."""
    nan = np.isnan(row) if row.dtype.kind == "f" else np.zeros(row.shape, bool)
    if nan.any() and not ignore_nan:
        i = int(np.argmax(nan))
        return row[i], i
    order = sorted(range(len(row)), key=lambda i: (bool(nan[i]), 0 if nan[i] else row[i], i))
    m = len(row) - int(nan.sum())
    i = order[max(m - 1, 0) // 2]
    return row[i], i


def _ref_along(fn, a: np.ndarray, dim: int, keepdim: bool):
    moved = np.moveaxis(a, dim, -1)
    vals = np.empty(moved.shape[:-1], a.dtype)
    idx = np.empty(moved.shape[:-1], np.int64)
    for pos in np.ndindex(moved.shape[:-1]):
        vals[pos], idx[pos] = fn(moved[pos])
    if keepdim:
        vals, idx = np.expand_dims(vals, dim), np.expand_dims(idx, dim)
    return vals, idx


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["median", "nanmedian"])
def test_median_over_dtypes_dims_and_nan(device, name):
    ignore = name == "nanmedian"
    fn = getattr(fusejit, name)
    for dtype in [*INTS, *FLOATS]:
        a = _data(dtype, (4, 6), nan=True)
        for dim, keepdim in ((1, False), (0, True), (-1, True), (-2, False)):
            v, i = fn(on(a, device), dim, keepdim)
            wv, wi = _ref_along(lambda r: _lower_median(r, ignore), a, dim % 2, keepdim)
            assert_close(v, wv, exact=True, what=f"{name} {dtype} {dim}")
            assert_close(i, wi, what=f"{name} {dtype} {dim}")
        # the whole tensor: a 0-d value
        flat = a.reshape(-1)
        want = _lower_median(flat, ignore)[0]
        assert_close(fn(on(a, device)), np.asarray(want, a.dtype), exact=True)
    x = on(np.array([3.0, NAN, 1.0, NAN, 2.0]), device)
    assert np.isnan(fusejit.median(x).item()) and fusejit.median(x, 0).indices.item() == 1
    assert fusejit.nanmedian(x).item() == 2.0
    allnan = fusejit.nanmedian(on(np.full((2, 3), NAN, np.float32), device), 1)
    assert np.isnan(host(allnan.values)).all() and host(allnan.indices).tolist() == [0, 0]


@pytest.mark.parametrize("device", DEVICES)
def test_median_even_counts_ties_noncontiguous_0d_empty_and_errors(device):
    a = np.array([[4.0, 1.0, 3.0, 2.0], [5.0, 5.0, 5.0, 1.0]], np.float32)
    v, i = fusejit.median(on(a, device), 1)  # the lower middle value; ties: a stable order
    assert host(v).tolist() == [2.0, 5.0] and host(i).tolist() == [3, 0]
    big = np.arange(40, dtype=np.float64).reshape(5, 8)[:, ::-1] % 7
    x = on(big, device)[:, ::2]  # a non-contiguous view
    wv, wi = _ref_along(lambda r: _lower_median(r, False), big[:, ::2], 1, False)
    assert_close(fusejit.median(x, 1).values, wv, exact=True)
    assert_close(fusejit.median(x, 1).indices, wi)
    assert_close(fusejit.median(x.t(), 0).values, wv, exact=True)
    s = on0(2.5, np.float32, device)
    assert fusejit.median(s, 0).values.item() == 2.5 and fusejit.median(s, -1).indices.item() == 0
    assert fusejit.median(s).shape == ()
    assert np.isnan(fusejit.median(on(np.zeros(0, np.float32), device)).item())
    with pytest.raises(fusejit.ShapeError, match="empty"):
        fusejit.median(on(np.zeros((2, 0)), device), 1)
    with pytest.raises(fusejit.DTypeError, match="median"):
        fusejit.median(on(np.array([True, False]), device))
    with pytest.raises(fusejit.DimError):
        fusejit.median(on(a, device), 2)


@pytest.mark.parametrize("device", DEVICES)
def test_kthvalue(device):
    for dtype in [np.int8, np.uint8, np.int64, *FLOATS]:
        a = _data(dtype, (3, 5), nan=True)
        for k in (1, 3, 5):
            v, i = fusejit.kthvalue(on(a, device), k, 1)
            want = np.sort(a, axis=1)[:, k - 1]  # (numpy sorts NaN last, as torch counts it)
            assert_close(v, want, exact=True, what=f"kthvalue {dtype} {k}")
            got = np.take_along_axis(a, host(i)[:, None], 1)[:, 0]
            np.testing.assert_array_equal(got, want)
    a = _data(np.float64, (4, 3))
    v, i = on(a, device).kthvalue(2, 0, keepdim=True)
    assert_close(v, np.sort(a, 0)[1:2], exact=True)
    assert host(i).shape == (1, 3)
    assert fusejit.kthvalue(on0(7, np.float32, device), 1).values.item() == 7
    with pytest.raises(fusejit.ShapeError, match="k=4 is out of range"):
        fusejit.kthvalue(on(a, device), 4, 1)
    with pytest.raises(fusejit.ShapeError, match="k=0"):
        fusejit.kthvalue(on(a, device), 0)
    with pytest.raises(fusejit.DTypeError):
        fusejit.kthvalue(on(a, device), 1.5)


# ---- mode -------------------------------------------------------------------------------------


def _mode_row(row: np.ndarray):
    """torch's mode: the smallest of the most frequent values, the index of its last
    occurrence (NaNs as one value)."""
    keys = ["nan" if isinstance(v, float) and np.isnan(v) else v for v in row.tolist()]
    counts = Counter(keys)
    top = max(counts.values())
    best = min((k for k, c in counts.items() if c == top),
               key=lambda k: (k == "nan", 0 if k == "nan" else k))  # fmt: skip
    i = max(j for j, k in enumerate(keys) if k == best)
    return row[i], i


@pytest.mark.parametrize("device", DEVICES)
def test_mode(device):
    for dtype in [np.bool_, *INTS, *FLOATS]:
        a = _data(dtype, (4, 9), seed=3)
        if np.dtype(dtype).kind == "f":
            a = np.floor(a)  # (repeats)
            a[0, :3] = NAN
        for dim, keepdim in ((1, False), (0, True), (-1, True)):
            v, i = fusejit.mode(on(a, device), dim, keepdim)
            wv, wi = _ref_along(_mode_row, a, dim % 2, keepdim)
            assert_close(v, wv, exact=True, what=f"mode {dtype} {dim}")
            assert_close(i, wi, what=f"mode {dtype} {dim}")
    x = on(np.array([[2, 1, 2, 1, 3]]), device)[:, ::1].t()
    assert fusejit.mode(x, 0).values.tolist() == [1] and fusejit.mode(x, 0).indices.tolist() == [3]
    assert fusejit.mode(on0(4, np.int32, device)).values.item() == 4
    with pytest.raises(fusejit.ShapeError, match="empty"):
        fusejit.mode(on(np.zeros((3, 0)), device))


# ---- quantile ---------------------------------------------------------------------------------


def _np_quantile(a, q, dim, keepdim, method, ignore_nan):
    """numpy's quantile in float64, NaN rows as torch (quantile: NaN; nanquantile: the others)."""
    f = np.nanquantile if ignore_nan else np.quantile
    with _quiet():
        return f(a.astype(np.float64), q, axis=dim, keepdims=keepdim, method=method)


@contextmanager
def _quiet():
    """numpy's RuntimeWarnings (all-NaN slices) off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["quantile", "nanquantile"])
@pytest.mark.parametrize("method", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile_against_numpy(device, name, method):
    fn = getattr(fusejit, name)
    ignore = name == "nanquantile"
    for dtype in (np.float32, np.float64):
        a = _data(dtype, (3, 5, 4), seed=1, nan=True)
        a[1, :, 2] = NAN  # a row of NaN along dim 1
        for q in (0.0, 0.3, 0.5, 0.75, 1.0):
            for dim, keepdim in ((None, False), (None, True), (1, False), (-1, True), (0, False)):
                got = fn(on(a, device), q, dim, keepdim, interpolation=method)
                want = _np_quantile(a, q, dim, keepdim, method, ignore)
                assert_close(got, want.astype(dtype), ulps=8, scale=8,
                             what=f"{name} {dtype} q={q} dim={dim} {method}")  # fmt: skip
        qs = np.array([0.1, 0.5, 0.9], dtype)
        got = fn(on(a, device), on(qs, device), 1, interpolation=method)
        want = _np_quantile(a, qs, 1, False, method, ignore)
        assert_close(got, want.astype(dtype), ulps=8, scale=8)
        got = fn(on(a, device), on0(0.25, dtype, device), -1, True)
        want = _np_quantile(a, 0.25, -1, True, "linear", ignore)
        assert_close(got, want.astype(dtype), ulps=8, scale=8)


@pytest.mark.parametrize("device", DEVICES)
def test_quantile_details_and_errors(device):
    # torch's lerp: from the upper value back for weights >= 0.5 (exact at the ends)
    x = on(np.array([1.0, 1e8 + 1, 3.0], np.float32), device)
    assert fusejit.quantile(x, 1.0).item() == np.float32(1e8 + 1)
    # nearest rounds half to even, as torch.round
    x4 = on(np.array([0.0, 10.0, 20.0, 30.0, 40.0]), device)
    assert fusejit.quantile(x4, 0.125, interpolation="nearest").item() == 0.0
    assert fusejit.quantile(x4, 0.375, interpolation="nearest").item() == 20.0
    # infinities: torch's lerp between two of them is NaN, also for midpoint (a weight of 0.5)
    inf = on(np.array([-1.0, np.inf, np.inf], np.float32), device)
    assert fusejit.quantile(inf, 0.2).item() == np.inf  # (-1 + 0.4 * inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (and no numpy warning)
        assert np.isnan(fusejit.quantile(inf, 0.75).item())
        assert np.isnan(fusejit.quantile(inf, 1.0, interpolation="midpoint").item())
    assert fusejit.quantile(inf, 1.0, interpolation="lower").item() == np.inf
    # non-contiguous, 0-d
    a = _data(np.float64, (6, 8))
    got = fusejit.quantile(on(a, device)[:, ::2], 0.4, 0)
    assert_close(got, np.quantile(a[:, ::2], 0.4, axis=0), ulps=8, scale=8)
    assert fusejit.quantile(on0(3.0, np.float64, device), 0.5).item() == 3.0
    assert fusejit.quantile(on0(3.0, np.float64, device), 0.5, 0, True).shape == ()
    f = on(a, device)
    with pytest.raises(fusejit.DTypeError, match="float32 or float64"):
        fusejit.quantile(on(np.arange(4), device), 0.5)
    with pytest.raises(fusejit.DTypeError, match="float32 or float64"):
        fusejit.quantile(on(np.ones(4, np.float16), device), 0.5)
    with pytest.raises(fusejit.DTypeError, match="dtype"):
        fusejit.quantile(f, on(np.array([0.5], np.float32), device))
    with pytest.raises(ValueError, match=r"range \[0, 1\]"):
        fusejit.quantile(f, 1.5)
    with pytest.raises(ValueError, match=r"range \[0, 1\]"):
        fusejit.quantile(f, on(np.array([0.5, -0.1]), device))
    with pytest.raises(fusejit.ShapeError, match="scalar or a 1-D"):
        fusejit.quantile(f, on(np.full((2, 2), 0.5), device))
    with pytest.raises(fusejit.ShapeError, match="non-empty"):
        fusejit.quantile(on(np.zeros((0, 3)), device), 0.5, 1)
    with pytest.raises(ValueError, match="interpolation"):
        fusejit.quantile(f, 0.5, interpolation="cubic")
    with pytest.raises(fusejit.DimError):
        fusejit.quantile(f, 0.5, 2)


# ---- nansum, nanmean, var_mean, std_mean, aminmax, count_nonzero ---------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_nansum_nanmean(device):
    for dtype in [np.bool_, *INTS, *FLOATS]:
        a = _data(dtype, (4, 6), nan=True)
        for dim, keepdim in ((None, False), (1, False), ((0, 1), True), (-2, True)):
            got = fusejit.nansum(on(a, device), dim, keepdim)
            ref = np.nansum(a.astype(np.float64), axis=dim, keepdims=keepdim)
            out = np.int64 if a.dtype.kind in "biu" else a.dtype
            assert_close(got, ref.astype(out), ulps=4, what=f"nansum {dtype} {dim}")
            if a.dtype.kind == "f":
                got = on(a, device).nanmean(dim, keepdim)
                with _quiet():
                    ref = np.nanmean(a.astype(np.float64), axis=dim, keepdims=keepdim)
                assert_close(got, ref.astype(a.dtype), ulps=4, what=f"nanmean {dtype} {dim}")
    # float16 accumulates in float32: 4096 ones and a NaN
    h = np.ones(4097, np.float16)
    h[7] = NAN
    assert fusejit.nansum(on(h, device)).item() == 4096
    assert fusejit.nanmean(on(h, device)).item() == 1
    assert fusejit.nansum(on(np.array([1, 2], np.int8), device), dtype=fusejit.float64).item() == 3
    with _quiet():  # (0 / 0: numpy's warning on the CPU, as other eager ops)
        assert np.isnan(fusejit.nanmean(on(np.full(3, NAN), device)).item())
    assert fusejit.nansum(on(np.zeros(0, np.float32), device)).item() == 0
    with pytest.raises(fusejit.DTypeError, match="nanmean"):
        fusejit.nanmean(on(np.arange(3), device))


@pytest.mark.parametrize("device", DEVICES)
def test_var_mean_std_mean(device):
    a = _data(np.float64, (4, 5))
    for dim, kw in ((None, {}), (1, {"correction": 0}), ((0,), {"keepdim": True}),
                    (-1, {"unbiased": False})):  # fmt: skip
        ddof = kw.get("correction", 0 if kw.get("unbiased") is False else 1)
        keep = kw.get("keepdim", False)
        v, m = fusejit.var_mean(on(a, device), dim, **kw)
        assert_close(v, np.var(a, axis=dim, ddof=ddof, keepdims=keep))
        assert_close(m, np.mean(a, axis=dim, keepdims=keep))
        s, m = fusejit.std_mean(on(a, device), dim, **kw)
        assert_close(s, np.std(a, axis=dim, ddof=ddof, keepdims=keep))
    v, m = fusejit.var_mean(on(a.astype(np.float16), device), 1)
    assert v.dtype is fusejit.float16 and m.dtype is fusejit.float16


@pytest.mark.parametrize("device", DEVICES)
def test_aminmax(device):
    for dtype in [np.bool_, *INTS, *FLOATS]:
        a = _data(dtype, (3, 4), nan=True)
        r = fusejit.aminmax(on(a, device))
        assert_close(r.min, np.asarray(np.min(a)), exact=True)
        assert_close(r.max, np.asarray(np.max(a)), exact=True)
        mn, mx = on(a, device).aminmax(dim=-1, keepdim=True)
        assert_close(mn, np.min(a, -1, keepdims=True), exact=True)
        assert_close(mx, np.max(a, -1, keepdims=True), exact=True)
    assert fusejit.aminmax(on0(5, np.int16, device), dim=0).max.item() == 5
    with pytest.raises(fusejit.ShapeError):
        fusejit.aminmax(on(np.zeros((2, 0)), device), dim=1)


@pytest.mark.parametrize("device", DEVICES)
def test_count_nonzero(device):
    for dtype in [np.bool_, *INTS, *FLOATS]:
        a = _data(dtype, (3, 4), nan=True)
        if a.dtype.kind == "f":
            a[0, 0] = -0.0
        for dim in (None, 0, -1, (0, 1)):
            got = fusejit.count_nonzero(on(a, device), dim)
            assert_close(got, np.asarray(np.count_nonzero(a, axis=dim), np.int64))
    assert on(np.zeros((2, 0)), device).count_nonzero(1).tolist() == [0, 0]


# ---- cummax, cummin, logcumsumexp -------------------------------------------------------------


def _cumext_row(row: np.ndarray, largest: bool):
    """torch's loop: take x when it is NaN, or when the running value is not NaN and
    x >= (<=) it."""
    vals, idx = np.empty_like(row), np.empty(len(row), np.int64)
    out, oi = row[0], 0
    for j, x in enumerate(row):
        nan_x = row.dtype.kind == "f" and np.isnan(x)
        nan_out = row.dtype.kind == "f" and np.isnan(out)
        if nan_x or (not nan_out and (x >= out if largest else x <= out)):
            out, oi = x, j
        vals[j], idx[j] = out, oi
    return vals, idx


def _ref_scan(a, dim, largest):
    moved = np.moveaxis(a, dim, -1)
    v, i = np.empty_like(moved), np.empty(moved.shape, np.int64)
    for pos in np.ndindex(moved.shape[:-1]):
        v[pos], i[pos] = _cumext_row(moved[pos], largest)
    return np.moveaxis(v, -1, dim), np.moveaxis(i, -1, dim)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["cummax", "cummin"])
def test_cummax_cummin(device, name):
    fn = getattr(fusejit, name)
    for dtype in [np.bool_, *INTS, *FLOATS]:
        a = _data(dtype, (3, 8), nan=True)
        if a.dtype.kind == "f":
            a[2, :4] = [0.0, -0.0, 0.0, -0.0]
        for dim in (0, 1, -1):
            v, i = fn(on(a, device), dim)
            wv, wi = _ref_scan(a, dim % 2, name == "cummax")
            assert_close(v, wv, exact=True, what=f"{name} {dtype} {dim}")
            assert_close(i, wi, what=f"{name} {dtype} {dim}")
            assert np.array_equal(np.signbit(host(v)), np.signbit(wv))
    a = _data(np.float32, (4, 6))
    v, i = fn(on(a, device).t(), 1)  # non-contiguous
    wv, wi = _ref_scan(a.T, 1, name == "cummax")
    assert_close(v, wv, exact=True)
    assert_close(i, wi)
    s = fn(on0(2.0, np.float32, device), 0)
    assert s.values.item() == 2.0 and s.indices.item() == 0 and s.indices.shape == ()
    assert fn(on(np.zeros((0, 3)), device), 0).values.shape == (0, 3)
    with pytest.raises(fusejit.DimError):
        fn(on(a, device), 2)


@pytest.mark.parametrize("device", DEVICES)
def test_logcumsumexp(device):
    for dtype in FLOATS:
        a = (_data(np.float64, (3, 6), nan=False) * 30 - 60).astype(dtype)
        a[0, 1] = -np.inf
        a[1, :2] = -np.inf
        a[2, 3] = np.inf
        for dim in (1, 0, -1):
            got = fusejit.logcumsumexp(on(a, device), dim)
            with np.errstate(divide="ignore"):
                ref = np.log(np.cumsum(np.exp(a.astype(np.float64)), axis=dim))
            assert_close(got, ref.astype(dtype), ulps=8, what=f"logcumsumexp {dtype} {dim}")
    # no overflow, and no underflow of the early terms
    x = on(np.array([1000.0, 1000.0, -1000.0]), device)
    assert_close(fusejit.logcumsumexp(x, 0), np.array([1000.0, 1000 + np.log(2), 1000 + np.log(2)]))
    x = on(np.array([-1000.0, 0.0], np.float32), device)
    assert_close(fusejit.logcumsumexp(x, 0), np.array([-1000.0, 0.0], np.float32))
    got = fusejit.logcumsumexp(on(np.array([1.0, NAN, 2.0]), device), 0)
    assert host(got)[0] == 1.0 and np.isnan(host(got)[1:]).all()
    assert fusejit.logcumsumexp(on0(2.0, np.float64, device), 0).item() == 2.0
    with pytest.raises(fusejit.DTypeError, match="logcumsumexp"):
        fusejit.logcumsumexp(on(np.arange(3), device), 0)


def test_the_scan_cupy_runs_gives_the_running_values():
    """``scan`` (what cummax, cummin, mode and logcumsumexp run where the array library has no
    ufunc.accumulate: cupy) computed here with numpy, against numpy's accumulate."""
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 3, 7, 8, 33):
        a = rng.standard_normal((3, n)) * 10
        a[a > 12] = NAN
        for fn in (np.maximum, np.minimum):
            np.testing.assert_array_equal(scan(np, a, fn, 1), fn.accumulate(a, axis=1))
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(scan(np, a, np.logaddexp, 1),
                                       np.logaddexp.accumulate(a, axis=1), rtol=1e-13)  # fmt: skip
    # each op through the scan path: a backend with numpy's arrays that is not "cpu"
    other = SimpleNamespace(xp=np, name="other")
    cpu = fusejit.device("cpu").backend
    a = _data(np.float64, (4, 9), nan=True)
    a[3] = np.floor(a[3])
    for name, attrs in (("cummax", {"dim": 1}), ("cummin", {"dim": 0}), ("mode", {"dim": 1}),
                        ("median", {"dim": 1, "ignore_nan": True}),
                        ("kthvalue", {"k": 2, "dim": 1})):  # fmt: skip
        for g, w in zip(OPS[name].impl(other, a, **attrs), OPS[name].impl(cpu, a, **attrs)):
            np.testing.assert_array_equal(g, w)
    g = OPS["logcumsumexp"].impl(other, a, dim=1)
    np.testing.assert_allclose(g, OPS["logcumsumexp"].impl(cpu, a, dim=1), rtol=1e-13)


# ---- traced; shape rules ------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_statistics_trace(device):
    F = fusejit
    a = on(_data(np.float32, (4, 6), nan=True), device)
    q = on(np.array([0.2, 0.8], np.float32), device)
    for fn in (
        lambda x: F.median(x, 1),
        lambda x: F.median(x),
        lambda x: x.nanmedian(0, keepdim=True),
        lambda x: x.kthvalue(2, 1),
        lambda x: x.mode(0),
        lambda x: F.quantile(x, 0.3, 1, interpolation="midpoint"),
        lambda x: x.nanquantile(0.5),
        lambda x: F.cummax(x, 1),
        lambda x: F.cummin(x * 2, 0),
        lambda x: F.logcumsumexp(x, 1),
        lambda x: F.nansum(x, 1),
        lambda x: F.nanmean(x, 0),
        lambda x: F.var_mean(x, 1),
        lambda x: F.std_mean(x),
        lambda x: F.aminmax(x, dim=1),
        lambda x: F.count_nonzero(x, 0),
    ):
        assert_traced(fn, a, exact=False)
    assert_traced(lambda x, q: F.quantile(x, q, 1), a, q, exact=False)
    t = assert_traced(lambda x: F.nansum(x * 2 + 1, 1), a, exact=False)
    if device == "cpu":
        assert t.kernel_count() == 1  # the where, the arithmetic and the sum: one row kernel
        t = assert_traced(lambda x: F.count_nonzero(x - 1, 1), a)
        assert t.kernel_count() == 1


@pytest.mark.parametrize(
    "op,shapes,attrs",
    [
        ("median", [(3, 4)], {"dim": 1, "keepdim": False, "ignore_nan": True}),
        ("kthvalue", [(3, 4)], {"k": 2, "dim": 0, "keepdim": True}),
        ("mode", [(3, 4, 2)], {"dim": -1, "keepdim": False}),
        ("cummax", [(3, 4)], {"dim": 1}),
        ("cummin", [(3,)], {"dim": 0}),
        ("logcumsumexp", [(2, 3)], {"dim": 0}),
        ("quantile", [(3, 4)], {"q": 0.5, "dim": None, "keepdim": False}),
        ("quantile", [(3, 4)], {"q": 0.5, "dim": None, "keepdim": True}),
        ("quantile", [(3, 4), (5,)], {"dim": 1, "keepdim": True}),
        ("quantile", [(3, 4, 2), ()], {"dim": 1, "keepdim": False}),
    ],
)
def test_shape_rules_give_the_implementations_shapes(op, shapes, attrs):
    cpu = fusejit.device("cpu").backend
    arrays = [np.full(s, 0.5) for s in shapes]
    res = OPS[op].impl(cpu, *arrays, **attrs)
    got = [np.shape(r) for r in res] if isinstance(res, tuple) else [np.shape(res)]
    assert out_shapes(OPS[op], shapes, attrs) == got


def test_traced_statistics_save_and_load(tmp_path):
    """The graphs hold the new ops' attributes (floats, strings, None dims): an archive loads,
    type-checks and runs them."""
    F = fusejit
    a = on(_data(np.float64, (4, 6), nan=True))
    q = on(np.array([0.25, 0.5]))

    def fn(x, q):
        return (F.nanquantile(x, q, 1, interpolation="nearest"), F.quantile(x, 0.5),
                F.median(x, 0), x.kthvalue(3, 1, True), x.mode(), F.cummin(x, 0),
                F.logcumsumexp(x, 1), x.diagonal(1, 1, 0), x.diag_embed(-1))  # fmt: skip

    t = F.trace(fn, (a, q))
    F.save(t, tmp_path / "s.fjz")
    loaded = F.load(tmp_path / "s.fjz")
    b, q2 = on(_data(np.float64, (4, 6), seed=9, nan=True)), on(np.array([0.1, 0.9]))
    got, want = loaded(b, q2), fn(b, q2)
    flat = lambda r: [u for v in r for u in (v if isinstance(v, tuple) else (v,))]  # noqa: E731
    for g, w in zip(flat(got), flat(want), strict=True):
        assert_close(g, host(w), exact=True)


def test_bool_and_refused_dtypes():
    other = SimpleNamespace(xp=np, name="other")  # (cupy's code path, on numpy arrays)
    b = _data(np.bool_, (3, 7))
    for backend in (other, fusejit.device("cpu").backend):
        v, i = OPS["mode"].impl(backend, b, dim=1)
        wv, wi = _ref_along(_mode_row, b, 1, False)
        np.testing.assert_array_equal(v, wv)
        np.testing.assert_array_equal(i, wi)
        v, i = OPS["cummax"].impl(backend, b, dim=1)
        np.testing.assert_array_equal(v, np.maximum.accumulate(b, 1))
    x = on(b)
    for fn in (fusejit.median, fusejit.nanmedian, lambda t: t.kthvalue(1),
               lambda t: t.quantile(0.5), fusejit.nanmean,
               lambda t: fusejit.logcumsumexp(t, 0)):  # fmt: skip
        with pytest.raises(fusejit.DTypeError):
            fn(x)


def test_docstring_examples():
    import doctest

    from fusejit.eager import statistics

    res = doctest.testmod(statistics)
    assert res.attempted > 0 and res.failed == 0


def test_a_traced_named_tuple_result_stays_named_and_saves(tmp_path):
    # (it came back as a list, and an archive holding one did not load: "bad spec tag 'MaxMin'")
    x = fusejit.ones(3, 2)
    for fn in (lambda x: x.max(0), lambda x: x.sort(0), lambda x: x.median(0)):
        t = fusejit.trace(fn, (x,))
        want = fn(x)
        assert type(t(x)) is type(want)
        fusejit.save(t, tmp_path / "m.fjz")
        r = fusejit.load(tmp_path / "m.fjz")(x)
        assert type(r) is type(want) and [u.tolist() for u in r] == [u.tolist() for u in want]


@pytest.mark.parametrize("device", DEVICES)
def test_noncontiguous_inputs_give_the_contiguous_results(device):
    F = fusejit
    a = _data(np.float32, (6, 10), seed=4, nan=True)
    view = on(a, device)[::2, 1::3]  # strided in both dims
    copy = on(np.ascontiguousarray(a[::2, 1::3]), device)
    assert not view._data.flags.c_contiguous
    for fn in (
        lambda x: F.median(x, 0), lambda x: F.nanmedian(x, 1), lambda x: x.kthvalue(2, 0),
        lambda x: x.mode(1), lambda x: x.quantile(0.4, 0), lambda x: x.nanquantile(0.7),
        lambda x: x.cummax(1), lambda x: x.cummin(0), lambda x: x.logcumsumexp(0),
        lambda x: x.nansum(1), lambda x: x.nanmean(0), lambda x: F.var_mean(x, 1),
        lambda x: x.aminmax(dim=0), lambda x: x.count_nonzero(1),
    ):  # fmt: skip
        got, want = fn(view), fn(copy)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        for g, w in zip(got, want, strict=True):
            assert_close(g, host(w), exact=True)


def test_a_traced_statistic_runs_on_inputs_of_other_shapes():
    # (reductions are shape-generic plans: the graph's ops run on whatever shape comes)
    F = fusejit

    def fn(x):
        return F.median(x, 1), F.quantile(x, 0.3, 0, True), x.kthvalue(2, 1), x.mode(0)

    t = F.trace(fn, (on(_data(np.float32, (3, 4))),))
    y = on(_data(np.float32, (5, 7), seed=2))
    flat = lambda rs: [u for r in rs for u in (r if isinstance(r, tuple) else (r,))]  # noqa: E731
    for g, w in zip(flat(t(y)), flat(fn(y)), strict=True):
        assert_close(g, host(w), exact=True)


def test_call_problem_checks_the_new_attributes():
    from fusejit.ops.registry import call_problem

    ok = {"q": 0.5, "dim": 1, "keepdim": False, "interpolation": "linear", "ignore_nan": True}
    assert call_problem(OPS["quantile"], 1, 1, ok) is None
    assert "q is not a float" in call_problem(OPS["quantile"], 1, 1, {**ok, "q": "0.5"})
    assert "interpolation" in call_problem(OPS["quantile"], 1, 1, {**ok, "interpolation": 1})
    assert "ignore_nan" in call_problem(OPS["median"], 1, 1, {"dim": 0, "ignore_nan": 1})
    assert "k is not an int" in call_problem(OPS["kthvalue"], 1, 1, {"k": 1.0, "dim": 0})
    assert "offset" in call_problem(OPS["diagonal"], 1, 1, {"offset": "1", "dims": (0, 1)})
