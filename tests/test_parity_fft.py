"""``fusejit.fft`` and the complex dtypes against numpy float64 references, as PyTorch 2.x.

Each transform is compared with numpy.fft computed in complex128 on the float64 values of the
input, within a normwise tolerance of the result's precision; result dtypes are PyTorch's
(complex64 from float32, ints and bool; complex128 from float64). Traced calls give eager's
result bitwise (the transforms are graph nodes run by the same library calls); complex values
never enter a fused kernel.
"""

from __future__ import annotations

import doctest
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parity_helpers import DEVICES, assert_traced, host, on

import fusejit as F
from fusejit.base import dtypes as fdt
from fusejit.ops.registry import OPS
from fusejit.ops.shape_rules import ShapeRuleError, out_shapes

RNG = np.random.default_rng(18)
NORMS = (None, "backward", "forward", "ortho")


def _rand(*shape, dtype=None, cplx: bool = False) -> np.ndarray:
    """Normal values of ``dtype`` (float64), complex ones (of ``dtype``'s precision) with
    ``cplx``."""
    a = RNG.standard_normal(shape)
    if cplx:
        a = a + 1j * RNG.standard_normal(shape)
        dtype = None if dtype is None else np.result_type(dtype, np.complex64)
    return a.astype(dtype or a.dtype)


def _close(got, want, dtype, what: str = "", ulps: float = 64) -> None:
    """``got`` has fusejit dtype ``dtype``, ``want``'s shape, and ``want``'s values within
    ``ulps`` units of ``dtype``'s precision, normwise (an FFT's error is relative to the
    largest value, not to each one)."""
    g, w = host(got), np.asarray(want)
    assert got.dtype is dtype, f"{what}: dtype {got.dtype} != {dtype}"
    assert g.dtype == dtype.np and g.shape == w.shape, f"{what}: {g.dtype}{g.shape} vs {w.shape}"
    if not w.size:
        return
    g = g.astype(w.dtype)
    finite = np.isfinite(w)
    np.testing.assert_array_equal(g[~finite], w[~finite], err_msg=f"{what}: non-finite")
    g, w = g[finite], w[finite]
    eps = np.finfo(fdt.real_of(dtype).np).eps
    scale = max(1.0, float(np.abs(w).max(initial=0)))
    err = float(np.abs(g - w).max(initial=0))
    assert err <= ulps * eps * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


def _ref_input(a: np.ndarray) -> np.ndarray:
    """The float64 / complex128 values numpy's reference transforms."""
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


# ---- the one-dim transforms -------------------------------------------------------------------
ONE_DIM = {  # name: (numpy reference, result kind)
    "fft": (np.fft.fft, "c"),
    "ifft": (np.fft.ifft, "c"),
    "rfft": (np.fft.rfft, "c"),
    "irfft": (np.fft.irfft, "r"),
    "hfft": (np.fft.hfft, "r"),
    "ihfft": (np.fft.ihfft, "c"),
}
REAL_INPUT = ("rfft", "ihfft")


def _out_dtype(in_dtype: fdt.DType, kind: str) -> fdt.DType:
    c = fdt.complex_of(in_dtype)
    return c if kind == "c" else fdt.real_of(c)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(ONE_DIM))
def test_one_dim_transforms(name, device):
    ref, kind = ONE_DIM[name]
    fn = getattr(F.fft, name)
    cplx = name not in REAL_INPUT
    for dtype in (np.float32, np.float64) + ((np.complex64, np.complex128) if cplx else ()):
        a = _rand(3, 10, dtype=dtype, cplx=np.dtype(dtype).kind == "c")
        want_dt = _out_dtype(fdt.as_dtype(np.dtype(dtype)), kind)
        for norm in NORMS:
            for n in (None, 7, 10, 16):  # crop, as is, pad
                got = fn(on(a, device), n=n, norm=norm)
                want = ref(_ref_input(a), n=n, norm=norm)
                _close(got, want, want_dt, f"{name} {dtype.__name__} n={n} norm={norm}")
        for dim in (0, -2, 1):
            got = fn(on(a, device), dim=dim)
            _close(got, ref(_ref_input(a), axis=dim), want_dt, f"{name} dim={dim}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(ONE_DIM))
def test_one_dim_transforms_of_ints_bool_and_views(name, device):
    """ints and bool are read as float32 (complex64 or float32 results, as PyTorch); a
    non-contiguous input (a transpose, a strided slice) gives the same values."""
    ref, kind = ONE_DIM[name]
    fn = getattr(F.fft, name)
    ints = RNG.integers(-5, 6, (4, 6))
    for a in (ints, ints.astype(np.int8), ints.astype(np.uint8), ints > 0):
        got = fn(on(a, device))
        _close(got, ref(a.astype(np.float64)), _out_dtype(fdt.float32, kind), f"{a.dtype}")
    b = _rand(6, 8, cplx=name not in REAL_INPUT)
    t = on(b, device)
    _close(fn(t.T, dim=0), ref(_ref_input(b).T, axis=0), _out_dtype(t.dtype, kind), "transpose")
    _close(fn(t[:, ::2]), ref(_ref_input(b)[:, ::2]), _out_dtype(t.dtype, kind), "strided")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(ONE_DIM))
def test_one_dim_transforms_traced(name, device):
    fn = getattr(F.fft, name)
    a = on(_rand(4, 9, dtype=np.float32), device)
    traced = assert_traced(lambda x: fn(x * 2, n=12, dim=-1, norm="ortho"), a)
    assert f"fft_{name}" in str(F.explain(traced))
    assert_traced(lambda x: fn(x, dim=0), a)


@pytest.mark.parametrize("device", DEVICES)
def test_special_values(device):
    """nan and inf spread as numpy's (and PyTorch's) do; -0.0 and empty batches."""
    a = np.array([[1.0, np.nan, 2.0, 3.0], [np.inf, 0.0, -0.0, 1.0], [-0.0, 0.0, 0.0, -0.0]])
    got = host(F.fft.fft(on(a, device)))
    want = np.fft.fft(a)
    assert np.isnan(got[0]).all() and np.isnan(want[0]).all()  # a nan reaches every output
    # an inf does too, as inf or nan (inf * 0 in a product with a twiddle factor: where
    # depends on the library's algorithm)
    assert not np.isfinite(got[1]).any() and not np.isfinite(want[1]).any()
    np.testing.assert_allclose(got[2], want[2])
    for name in ONE_DIM:  # a batch of no signals: an empty result of the transform's shape
        x = np.zeros((0, 6), np.float32)
        got = getattr(F.fft, name)(on(x, device))
        want = ONE_DIM[name][0](x.astype(np.float64))
        assert got.shape == want.shape and got.numel() == 0
    # an empty signal padded to n: zeros (as numpy)
    got = F.fft.fft(on(np.zeros((3, 0), np.float32), device), n=4)
    _close(got, np.fft.fft(np.zeros((3, 0)), n=4), F.complex64, "padded empty signal")
    got = F.fft.rfftn(on(np.zeros((0, 3, 4)), device), s=(3, 6))
    assert got.shape == (0, 3, 4) and got.dtype is F.complex128


# ---- the n-dim transforms ---------------------------------------------------------------------
N_DIM = {
    "fftn": (np.fft.fftn, "c"),
    "ifftn": (np.fft.ifftn, "c"),
    "rfftn": (np.fft.rfftn, "c"),
    "irfftn": (np.fft.irfftn, "r"),
}
TWO_DIM = {"fft2": "fftn", "ifft2": "ifftn", "rfft2": "rfftn", "irfft2": "irfftn"}


def _np_nd(ref, a, s, dim, c2r: bool):
    """numpy's reference with PyTorch's resolution of ``s`` and ``dim`` (-1 in ``s``: the
    input's size, for the last dim of a transform to real values 2 * (m - 1))."""
    if dim is None:
        dim = tuple(range(a.ndim)) if s is None else tuple(range(a.ndim - len(s), a.ndim))
    dim = (dim,) if isinstance(dim, int) else tuple(dim)
    if s is not None:
        s = tuple(
            n if n != -1 else (2 * (a.shape[d] - 1) if c2r and k == len(s) - 1 else a.shape[d])
            for k, (n, d) in enumerate(zip(s, dim))
        )
    return ref(a, s=s, axes=dim)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(N_DIM))
def test_n_dim_transforms(name, device):
    ref, kind = N_DIM[name]
    fn = getattr(F.fft, name)
    cplx = name != "rfftn"
    for dtype in (np.float32, np.float64) + ((np.complex64,) if cplx else ()):
        a = _rand(3, 6, 5, dtype=dtype, cplx=np.dtype(dtype).kind == "c")
        want_dt = _out_dtype(fdt.as_dtype(np.dtype(dtype)), kind)
        for s, dim in [(None, None), ((4, 8), None), (None, (0, 2)), (None, (2, 0)),
                       ((4, -1), (1, 2)), ((7,), -1), (None, 1), ((3, 6, 9), None)]:  # fmt: skip
            for norm in NORMS:
                got = fn(on(a, device), s=s, dim=dim, norm=norm)
                want = _np_nd(lambda x, s, axes, norm=norm: ref(x, s=s, axes=axes, norm=norm),
                              _ref_input(a), s, dim, kind == "r")  # fmt: skip
                _close(got, want, want_dt, f"{name} {dtype.__name__} s={s} dim={dim} {norm}")
    b = _rand(5, 6, cplx=cplx)
    got = fn(on(b, device).T)  # non-contiguous
    _close(got, ref(_ref_input(b).T), _out_dtype(F.float64, kind), "transpose")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(TWO_DIM))
def test_two_dim_transforms(name, device):
    """``fft2`` and the others: the n-dim transforms over the last two dims by default."""
    ref, kind = N_DIM[TWO_DIM[name]]
    fn = getattr(F.fft, name)
    a = _rand(2, 4, 6, dtype=np.float32, cplx=name != "rfft2")
    want_dt = _out_dtype(F.float32, kind)
    _close(fn(on(a, device)), ref(_ref_input(a), axes=(-2, -1)), want_dt, name)
    for norm in NORMS:
        got = fn(on(a, device), s=(5, 8), dim=(0, 2), norm=norm)
        _close(got, ref(_ref_input(a), s=(5, 8), axes=(0, 2), norm=norm), want_dt, name)
    # dim=None: every dim (the n-dim transform), as PyTorch's
    _close(fn(on(a, device), dim=None), ref(_ref_input(a)), want_dt, f"{name} dim=None")
    traced = assert_traced(lambda x: fn(x, s=(4, 4)), on(a, device))
    assert traced(on(a, device)).shape == fn(on(a, device), s=(4, 4)).shape


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(N_DIM))
def test_n_dim_transforms_traced(name, device):
    fn = getattr(F.fft, name)
    a = on(_rand(3, 4, 6, dtype=np.float64), device)
    assert_traced(lambda x: fn(x + 1, s=(5, 6), dim=(0, 2), norm="forward"), a)
    assert_traced(lambda x: fn(x), a)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_transforms_of_random_shapes(data):
    """Any rank, sizes, dims, lengths and norm: the transforms agree with numpy's, and their
    shapes with the op table's shape rules."""
    shape = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3), label="shape")
    name = data.draw(st.sampled_from(list(ONE_DIM) + list(N_DIM)), label="name")
    norm = data.draw(st.sampled_from(NORMS), label="norm")
    cplx = name not in REAL_INPUT + ("rfftn",) and data.draw(st.booleans(), label="complex")
    a = _rand(*shape, cplx=cplx)
    if name in ONE_DIM:
        ref, kind = ONE_DIM[name]
        dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
        n = data.draw(st.none() | st.integers(2, 9), label="n")
        if n is None and kind == "r" and shape[dim] == 1:
            n = 4  # (the default output length would be 0)
        got = getattr(F.fft, name)(on(a), n=n, dim=dim, norm=norm)
        want = ref(a, n=n, axis=dim, norm=norm)
        attrs = {"n": n, "dim": dim % len(shape), "norm": norm or "backward"}
    else:
        ref, kind = N_DIM[name]
        dims = data.draw(st.permutations(range(len(shape))), label="dims")
        dims = tuple(dims[: data.draw(st.integers(1, len(shape)), label="k")])
        s = tuple(data.draw(st.integers(2, 7), label="s") for _ in dims)
        got = getattr(F.fft, name)(on(a), s=s, dim=dims, norm=norm)
        want = ref(a, s=s, axes=dims, norm=norm)
        attrs = {"s": s, "dim": dims, "norm": norm or "backward"}
    _close(got, want, _out_dtype(F.float64, kind), f"{name} {shape} {attrs}")
    assert out_shapes(OPS[f"fft_{name}"], [tuple(shape)], attrs) == [got.shape]


# ---- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_round_trips(device):
    for n in (7, 8):  # odd lengths need n (irfft's default is 2 * (m - 1))
        for dtype, d in ((np.float32, F.float32), (np.float64, F.float64)):
            a = _rand(3, n, dtype=dtype)
            x = on(a, device)
            for norm in NORMS:
                _close(F.fft.irfft(F.fft.rfft(x, norm=norm), n=n, norm=norm), a, d, "irfft")
                _close(F.fft.ifft(F.fft.fft(x, norm=norm), norm=norm), a.astype(np.complex128),
                       fdt.complex_of(d), "ifft")  # fmt: skip
                _close(F.fft.hfft(F.fft.ihfft(x, norm=norm), n=n, norm=norm), a, d, "hfft")
            b = _rand(2, 5, n, dtype=dtype)
            y = on(b, device)
            _close(F.fft.irfftn(F.fft.rfftn(y), s=b.shape), b, d, "irfftn")
            _close(F.fft.irfft2(F.fft.rfft2(y), s=b.shape[-2:]), b, d, "irfft2")
            _close(F.fft.ifftn(F.fft.fftn(y)).real, b, d, "ifftn")
    if F.fft.irfft(F.fft.rfft(on(_rand(8), device))).shape != (8,):
        raise AssertionError("irfft's default length is 2 * (m - 1)")


# ---- frequencies and shifts -------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_fftfreq_and_rfftfreq(device):
    for n in (0, 1, 4, 7, 10):
        for d in (1.0, 0.1, 3):
            want = np.fft.fftfreq(n, d) if n else np.zeros(0)  # (numpy divides by 0 there)
            got = F.fft.fftfreq(n, d, device=device)
            _close(got, want.astype(np.float32), F.float32, f"fftfreq {n} {d}", ulps=1)
            want = np.fft.rfftfreq(n, d) if n else np.zeros(0)  # (PyTorch: empty)
            got = F.fft.rfftfreq(n, d, dtype=F.float64, device=device)
            _close(got, want, F.float64, f"rfftfreq {n} {d}", ulps=1)
            assert got.device == F.device(device)
    assert F.fft.fftfreq(5, dtype=F.float64).dtype is F.float64
    with pytest.raises(F.DTypeError, match="fftfreq: expected a floating-point dtype"):
        F.fft.fftfreq(4, dtype=F.int64)
    with pytest.raises(F.ShapeError, match="non-negative"):
        F.fft.rfftfreq(-1)
    with pytest.raises(F.DTypeError, match="n must be an int"):
        F.fft.fftfreq(4.0)


@pytest.mark.parametrize("device", DEVICES)
def test_fftshift_and_ifftshift(device):
    for shape in ((5,), (4,), (3, 4), (2, 5, 3)):
        a = np.arange(np.prod(shape)).reshape(shape)
        for dim in [None, 0, -1, (0, -1)][: 2 + (len(shape) > 1) * 2]:
            got = F.fft.fftshift(on(a, device), dim=dim)
            np.testing.assert_array_equal(host(got), np.fft.fftshift(a, axes=dim))
            got = F.fft.ifftshift(on(a, device), dim=dim)
            np.testing.assert_array_equal(host(got), np.fft.ifftshift(a, axes=dim))
            back = F.fft.ifftshift(F.fft.fftshift(on(a, device), dim), dim)
            np.testing.assert_array_equal(host(back), a)
    z = _rand(3, 4, cplx=True)
    np.testing.assert_array_equal(host(F.fft.fftshift(on(z, device))), np.fft.fftshift(z))
    np.testing.assert_array_equal(host(F.fft.fftshift(on(z, device).T)), np.fft.fftshift(z.T))
    assert F.fft.fftshift(on(np.float32(2.0), device)).item() == 2.0  # 0-d: itself
    assert_traced(lambda x: F.fft.fftshift(F.fft.fft2(x)).abs(), on(_rand(4, 5), device))
    assert_traced(lambda x: F.fft.ifftshift(x, dim=1), on(z, device))


# ---- errors -----------------------------------------------------------------------------------
ALL_NAMES = list(ONE_DIM) + list(N_DIM) + list(TWO_DIM)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_float16_is_refused(name):
    """PyTorch transforms float16 only on CUDA and only for powers of two: refused on every
    device (documented in CONTRIBUTING)."""
    with pytest.raises(F.DTypeError, match=f"{name}: float16 transforms are not supported"):
        getattr(F.fft, name)(F.ones(4, 4, dtype=F.float16))


@pytest.mark.parametrize("name", ["rfft", "ihfft", "rfftn", "rfft2"])
def test_real_transforms_refuse_complex_input(name):
    with pytest.raises(F.DTypeError, match=f"{name}: expected a real input tensor, got dtype "
                       "complex64"):  # fmt: skip
        getattr(F.fft, name)(F.ones(4, 4).to(F.complex64))


def test_argument_errors():
    x = F.ones(3, 4)
    with pytest.raises(F.DimError, match="fft: expected a tensor of at least one dim"):
        F.fft.fft(F.tensor(1.0))
    with pytest.raises(F.DimError, match="fft: dim 2 is out of range"):
        F.fft.fft(x, dim=2)
    with pytest.raises(F.ShapeError, match=r"fft: invalid number of data points \(0\)"):
        F.fft.fft(x, n=0)
    with pytest.raises(F.ShapeError, match=r"invalid number of data points \(0\)"):
        F.fft.fft(F.ones(3, 0))
    with pytest.raises(F.ShapeError, match=r"irfft: invalid number of data points \(0\)"):
        F.fft.irfft(F.ones(3, 1))  # the default output length 2 * (1 - 1)
    with pytest.raises(ValueError, match="fft: norm must be None, 'backward'"):
        F.fft.fft(x, norm="bad")
    with pytest.raises(F.DTypeError, match="fft: n must be an int, got float 4.0"):
        F.fft.fft(x, n=4.0)
    with pytest.raises(F.ShapeError, match=r"fftn: s \[4\] and dim \[0, 1\] differ in length"):
        F.fft.fftn(x, s=(4,), dim=(0, 1))
    with pytest.raises(F.DimError, match="fftn: dims .* name a dim more than once"):
        F.fft.fftn(x, dim=(0, 0))
    with pytest.raises(F.DimError, match="fft2: dim -2 is out of range"):
        F.fft.fft2(F.ones(4))
    with pytest.raises(F.DimError, match="fftn: s .* has more sizes"):
        F.fft.fftn(F.ones(4), s=(2, 2))
    with pytest.raises(TypeError, match="fft: expected a tensor, got list"):
        F.fft.fft([1.0, 2.0])
    with pytest.raises(F.DTypeError, match="fftn: s must be a sequence of ints"):
        F.fft.fftn(x, s=2.5)


# ---- the op table: shape rules, archives ------------------------------------------------------
SHAPE_CASES = [
    *[(f"fft_{n}", (4, 6), {"n": k, "dim": d, "norm": "backward"})
      for n in ONE_DIM for k in (None, 3, 9) for d in (0, 1)],
    *[(f"fft_{n}", (3, 4, 6), {"s": s, "dim": d, "norm": "ortho"})
      for n in N_DIM for s, d in (((3, 6), (1, 2)), ((8,), (0,)), ((5, 4, 2), (2, 0, 1)))],
]  # fmt: skip


@pytest.mark.parametrize("op,shape,attrs", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_rules_give_the_implementations_shapes(op, shape, attrs):
    d = OPS[op]
    a = np.ones(shape, np.complex64 if "c" in d.allowed else np.float32)
    res = d.impl(F.device("cpu").backend, a, **attrs)
    assert out_shapes(d, [shape], attrs) == [res.shape]
    assert res.dtype == d.out_dtype(fdt.as_dtype(a.dtype), **attrs).np


def test_shape_rules_of_the_complex_ops():
    cpu = F.device("cpu").backend
    z = np.ones((3, 2), np.complex128)
    for name in ("real", "imag", "conj", "angle", "view_as_real"):
        res = OPS[name].impl(cpu, z)
        assert out_shapes(OPS[name], [z.shape], {}) == [res.shape], name
        assert res.dtype == OPS[name].out_dtype(F.complex128).np, name
    res = OPS["view_as_complex"].impl(cpu, np.ones((4, 2), np.float32))
    assert out_shapes(OPS["view_as_complex"], [(4, 2)], {}) == [res.shape] == [(4,)]
    with pytest.raises(ShapeRuleError):
        out_shapes(OPS["view_as_complex"], [(4, 3)], {})
    with pytest.raises(ShapeRuleError):
        out_shapes(OPS["fft_irfft"], [(4, 1)], {"n": None, "dim": 1, "norm": "backward"})
    with pytest.raises(ShapeRuleError):
        out_shapes(OPS["fft_fft"], [(4, 3)], {"n": 0, "dim": 1, "norm": "backward"})


def test_traced_transforms_save_and_load():
    """A traced graph of transforms and complex values (a complex constant, a captured
    complex tensor) saves, loads (type-checked against the op table) and runs."""
    w = F.tensor(_rand(5, cplx=True), dtype=F.complex64)

    def f(x):
        y = F.fft.rfft(x.exp(), norm="ortho") * (0.5 - 2j) + w
        return F.fft.irfft(y, n=8).sin(), F.fft.fftn(x, s=(3, 4)).abs()

    x = F.tensor(_rand(2, 8, dtype=np.float32))
    traced = F.trace(f, (x,))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fft.fj")
        F.save(traced, path)
        loaded = F.load(path)
    for got, traced_out, want in zip(loaded(x), traced(x), f(x), strict=True):
        np.testing.assert_array_equal(host(got), host(traced_out))
        _close(got, host(want).astype(np.float64), want.dtype, "loaded", ulps=16)


def _scripted_spectrum(x):
    z = F.fft.rfft(x, norm="ortho")
    return (z * z.conj()).real.sqrt() + F.fft.fftshift(z).imag


def test_scripted_and_optimized():
    """``fusejit.script`` and ``fusejit.optimize`` take the transforms and complex values
    (``.real`` / ``.imag`` are properties there too)."""
    x = F.tensor(_rand(3, 8, dtype=np.float32))
    want = _scripted_spectrum(x)
    np.testing.assert_array_equal(host(F.script(_scripted_spectrum)(x)), host(want))
    np.testing.assert_array_equal(host(F.optimize(_scripted_spectrum)(x)), host(want))


def test_complex_constants_in_graph_json():
    from fusejit.ir.codec import CodecError, decode_value, encode_value

    for v in (1 - 2j, complex(float("inf"), float("nan")), np.complex64(0.5j), -0j):
        back = decode_value(encode_value(v), "test")
        assert type(back) is complex and repr(back) == repr(complex(v))
    for bad in ({"complex": [1.0]}, {"complex": ["x", 1.0]}, {"complex": [1, 2]},
                {"complex": [{"complex": [1.0, 2.0]}, 0.0]}):  # fmt: skip
        with pytest.raises(CodecError, match="malformed value"):
            decode_value(bad, "test")


# ---- complex dtypes ---------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_complex_tensors(device):
    z = F.tensor([1 + 2j, -3.5j, 4], device=device)
    assert z.dtype is F.complex64 and z.is_complex() and F.is_complex(z)
    assert not F.ones(2).is_complex()
    assert z.tolist() == [1 + 2j, -3.5j, 4 + 0j] and z[1].item() == -3.5j
    assert z.numpy().dtype == np.complex64 if device == "cpu" else True
    assert F.tensor(np.array([1j])).dtype is F.complex128  # numpy data keeps its dtype
    assert F.tensor([1j], dtype=F.cdouble).dtype is F.complex128
    assert repr(F.tensor([1 + 2j])) == "tensor([1.+2.j])"
    assert repr(F.tensor([1 + 2j], dtype=F.complex128)) == (
        "tensor([1.+2.j], dtype=fusejit.complex128)"
    )
    assert z.to("cpu").tolist() == z.tolist() and z.cpu().device == F.device("cpu")
    m = on(_rand(3, 4, cplx=True), device)
    a = host(m)
    np.testing.assert_array_equal(host(m.T), a.T)
    np.testing.assert_array_equal(host(m[:, ::2]), a[:, ::2])
    np.testing.assert_array_equal(host(m.reshape(4, 3)), a.reshape(4, 3))
    np.testing.assert_array_equal(host(F.cat([m, m[:1]])), np.concatenate([a, a[:1]]))
    np.testing.assert_array_equal(host(F.stack([m, m], 1)), np.stack([a, a], 1))
    np.testing.assert_array_equal(host(m.transpose(0, 1).contiguous()), a.T)
    mixed = F.cat([m, F.ones(1, 4, dtype=F.float64, device=device)])
    assert mixed.dtype is F.complex128  # promotion: complex64 with float64
    assert m.to(F.complex128).dtype is F.complex128
    assert F.zeros(2, 2, device=device).to(F.complex64).dtype is F.complex64


@pytest.mark.parametrize("device", DEVICES)
def test_real_imag_views(device):
    """``.real``, ``.imag`` and ``view_as_real`` / ``view_as_complex`` share storage, as in
    PyTorch; ``conj`` is a copy (PyTorch's is a lazy view)."""
    z = on(np.array([1 + 2j, 3 - 1j], np.complex64), device)
    assert z.real.dtype is F.float32 and z.imag.dtype is F.float32
    z.real.add_(10)
    z.imag.mul_(2)
    assert z.tolist() == [11 + 4j, 13 - 2j]
    v = F.view_as_real(z)
    assert v.shape == (2, 2) and v.dtype is F.float32
    v.mul_(0.5)
    assert z.tolist() == [5.5 + 2j, 6.5 - 1j]
    f = on(np.array([[1.0, 2.0], [3.0, 4.0]]), device)
    c = F.view_as_complex(f)
    assert c.dtype is F.complex128 and c.tolist() == [1 + 2j, 3 + 4j]
    c.mul_(1j)
    assert f.tolist() == [[-2.0, 1.0], [-4.0, 3.0]]
    zz = on(_rand(3, 4, cplx=True), device)
    np.testing.assert_array_equal(host(F.view_as_real(zz.T)), np.stack(
        [host(zz).T.real, host(zz).T.imag], -1))  # fmt: skip
    cj = F.conj(z)
    assert cj.tolist() == [5.5 - 2j, 6.5 + 1j]
    cj.add_(1)
    assert z.tolist() == [5.5 + 2j, 6.5 - 1j]
    r = on(np.array([1.0, -2.0]), device)
    assert r.real is r and F.conj(r) is r  # a real tensor itself, as PyTorch
    with pytest.raises(F.DTypeError, match="imag: expected a complex tensor, got dtype float64"):
        r.imag  # noqa: B018
    with pytest.raises(F.DTypeError, match="view_as_real: expected a complex tensor"):
        F.view_as_real(r)
    with pytest.raises(F.DTypeError, match="view_as_complex: expected a float32 or float64"):
        F.view_as_complex(F.ones(2, 2, dtype=F.float16))
    with pytest.raises(F.ShapeError, match="view_as_complex: expected a last dim of size 2"):
        F.view_as_complex(F.ones(2, 3))
    with pytest.raises(F.ShapeError, match="view_as_complex: expected a last dim of stride 1"):
        F.view_as_complex(F.ones(2, 2).T)


@pytest.mark.parametrize("device", DEVICES)
def test_abs_angle(device):
    a = np.array([3 + 4j, -1j, -2, 0, complex(np.inf, 1), complex(np.nan, 0)], np.complex128)
    for dtype, real in ((np.complex64, F.float32), (np.complex128, F.float64)):
        z = on(a.astype(dtype), device)
        _close(z.abs(), np.abs(a), real, "abs", ulps=2)
        _close(abs(z), np.abs(a), real, "abs", ulps=2)
        _close(z.angle(), np.angle(a), real, "angle", ulps=2)
    # real input: pi where negative, else 0 (-0.0 too), nan stays nan; ints give float32
    r = np.array([-1.5, -0.0, 0.0, 2.0, np.nan, -np.inf], np.float32)
    want = np.array([np.pi, 0, 0, 0, np.nan, np.pi], np.float32)
    np.testing.assert_array_equal(host(F.angle(on(r, device))), want)
    assert F.angle(on(np.array([-3, 4]), device)).dtype is F.float32
    assert F.angle(on(np.array([-3, 4]), device)).tolist() == [np.float32(np.pi), 0.0]


@pytest.mark.parametrize("device", DEVICES)
def test_complex_arithmetic(device):
    a, b = _rand(2, 3, cplx=True), _rand(3, cplx=True)
    r = _rand(2, 1)
    for dtype in (np.complex64, np.complex128):
        want_dt = fdt.as_dtype(np.dtype(dtype))
        x, y = on(a.astype(dtype), device), on(b.astype(dtype), device)
        xa, ya = a.astype(dtype).astype(np.complex128), b.astype(dtype).astype(np.complex128)
        ops = ((lambda p, q: p + q, np.add), (lambda p, q: p - q, np.subtract),
               (lambda p, q: p * q, np.multiply), (lambda p, q: p / q, np.divide))  # fmt: skip
        for op, ref in ops:
            _close(op(x, y), ref(xa, ya), want_dt, "complex op complex (broadcast)", ulps=4)
            _close(op(x, 2.5), ref(xa, 2.5), want_dt, "complex op float", ulps=4)
            _close(op(3, x), ref(3, xa), want_dt, "int op complex", ulps=4)
            _close(op(x, 1 - 2j), ref(xa, 1 - 2j), want_dt, "complex op Python complex", ulps=4)
            rf = on(r.astype(np.float32), device)
            _close(op(x, rf), ref(xa, r.astype(np.float32)), want_dt, "with float32", ulps=4)
            rd = on(r, device)
            _close(op(x, rd), ref(xa, r), F.complex128, "with float64 widens", ulps=4)
        _close(-x, -xa, want_dt, "neg")
        assert (x == x).all().item() and not (x != x).any().item()
    # a real tensor with a Python complex: the complex dtype of its precision
    assert (on(np.ones(2, np.float32), device) * 1j).dtype is F.complex64
    assert (on(np.ones(2), device) * 1j).dtype is F.complex128
    assert (on(np.arange(2), device) + 1j).tolist() == [1j, 1 + 1j]
    # special values as numpy's: inf and nan parts, division by zero
    z = on(np.array([complex(np.inf, 0), complex(np.nan, 1)]), device)
    with np.errstate(all="ignore"):  # (inf * 0 in the product's parts)
        got = host(z * 2)
    assert np.isinf(got[0].real) and np.isnan(got[1].real)
    with np.errstate(all="ignore"):
        got = host(on(np.array([1 + 1j]), device) / 0)
    assert not np.isfinite(got).any()


def test_other_ops_refuse_complex_values():
    """Every op the complex dtypes are not for raises a DTypeError naming the op."""
    z = F.tensor([1 + 2j, 3j])
    cases = {
        "exp": lambda: z.exp(), "sum": lambda: z.sum(), "mean": lambda: z.mean(),
        "sort": lambda: F.sort(z), "lt": lambda: z < z, "matmul": lambda: z @ z,
        "cumsum": lambda: z.cumsum(0), "softmax": lambda: F.softmax(z, 0),
        "maximum": lambda: F.maximum(z, z), "floor_divide": lambda: z // z,
        "sqrt": lambda: z.sqrt(), "amax": lambda: z.amax(), "pow": lambda: z**2,
        "sign": lambda: z.sign(), "argmax": lambda: z.argmax(),
    }  # fmt: skip
    for name, call in cases.items():
        with pytest.raises(F.DTypeError, match=f"^{name}: .*complex64"):
            call()


def test_complex_values_are_never_fused():
    """Nodes with complex values run eagerly with a reason; real neighbours still fuse."""
    x = F.tensor(_rand(4, 8, dtype=np.float32))

    def f(x):
        z = F.fft.fft(x * 2 + 1)  # (mul, add: one kernel; exact, as eager's)
        return ((z * 1j + z) / (z - 2)).abs().sqrt() + 1  # (abs: complex in; sqrt, +: kernel)

    traced = assert_traced(f, x)
    assert traced.kernel_count() == 2
    text = str(F.explain(traced))
    assert "complex values are computed eagerly" in text
    g = lambda z: (z.real * 2 + z.imag).exp()  # noqa: E731 - views of a complex input
    z = F.tensor(_rand(3, 5, cplx=True), dtype=F.complex64)
    assert assert_traced(g, z, exact=False).kernel_count() == 1  # (exp: within ulps)
    h = lambda z: F.view_as_complex(F.view_as_real(z) * 2).conj().angle()  # noqa: E731
    assert_traced(h, z)


def test_docstring_examples():
    from fusejit.eager import complex_functions, fft_functions

    for mod in (complex_functions, fft_functions, F.fft, fdt):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
