"""``fusejit.array_api``: the standard's promotion (against a table written out here), DLPack,
the inspection API, tracing and fusing through the namespace, detection by array-api-compat,
and the CUDA paths (skipped without a GPU; ``bench/gpu_check.sh`` runs them)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusejit
import fusejit.array_api as xp

CUDA = pytest.mark.skipif(not fusejit.is_cuda_available(), reason="no usable GPU")

# The standard's promotion table for the dtypes fusejit has (2024.12, "Type Promotion Rules")
TABLE = {
    ("int8", "int16"): "int16", ("int8", "int32"): "int32", ("int8", "int64"): "int64",
    ("int16", "int32"): "int32", ("int16", "int64"): "int64", ("int32", "int64"): "int64",
    ("uint8", "int8"): "int16", ("uint8", "int16"): "int16", ("uint8", "int32"): "int32",
    ("uint8", "int64"): "int64", ("float32", "float64"): "float64",
    ("complex64", "complex128"): "complex128", ("float32", "complex64"): "complex64",
    ("float32", "complex128"): "complex128", ("float64", "complex64"): "complex128",
    ("float64", "complex128"): "complex128",
}  # fmt: skip


@pytest.mark.parametrize(("a", "b"), sorted(TABLE))
def test_promotion_follows_the_standard_table(a, b):
    want = getattr(xp, TABLE[(a, b)])
    da, db = getattr(xp, a), getattr(xp, b)
    assert xp.result_type(da, db) is want and xp.result_type(db, da) is want
    # 0-d arrays promote as any array (PyTorch's operators keep the array's dtype instead)
    x = xp.ones((3,), dtype=da)
    y = xp.asarray(1, dtype=db)
    r = xp.add(x, y)
    assert r.dtype is want
    np.testing.assert_array_equal(r.numpy(), np.full(3, 2, dtype=want.np))


def test_zero_dim_promotion_differs_from_the_torch_like_operators():
    x = xp.asarray([1, 2], dtype=xp.int16)
    y = xp.asarray(70000, dtype=xp.int64)
    assert xp.add(x, y).tolist() == [70001, 70002] and xp.add(x, y).dtype is xp.int64
    assert (x + fusejit.tensor(5)).dtype is fusejit.int16  # the torch-like API: PyTorch's


def test_mixed_kinds_and_mismatched_scalars_are_type_errors():
    with pytest.raises(TypeError, match="do not promote"):
        xp.add(xp.asarray([1]), xp.asarray([1.0]))
    with pytest.raises(TypeError, match="Python float"):
        xp.multiply(xp.asarray([1]), 2.5)
    with pytest.raises(TypeError, match="Python int"):
        xp.add(xp.asarray([True]), 1)
    # a Python scalar takes the array's dtype
    r = xp.multiply(xp.asarray([1.5], dtype=xp.float32), 2)
    assert r.dtype is xp.float32 and r.tolist() == [3.0]
    assert xp.result_type(xp.asarray([1.0], dtype=xp.float32), 1j) is xp.complex64


def test_can_cast_isdtype_finfo_iinfo():
    assert xp.can_cast(xp.uint8, xp.int16) and not xp.can_cast(xp.int16, xp.uint8)
    assert not xp.can_cast(xp.int64, xp.float64)
    assert xp.isdtype(xp.complex64, "complex floating")
    assert xp.isdtype(xp.uint8, ("signed integer", "unsigned integer"))
    assert not xp.isdtype(xp.bool, "numeric")
    f = xp.finfo(xp.complex64)
    assert f.dtype is xp.float32 and f.eps == np.finfo(np.float32).eps
    i = xp.iinfo(xp.asarray([1], dtype=xp.int8))
    assert (i.min, i.max, i.bits, i.dtype) == (-128, 127, 8, xp.int8)


def test_default_dtypes_are_float64_and_int64():
    assert xp.asarray([1.0, 2]).dtype is xp.float64
    assert xp.asarray([[1, 2]]).dtype is xp.int64
    assert xp.asarray(1j).dtype is xp.complex128
    assert xp.zeros(2).dtype is xp.float64 and xp.arange(3).dtype is xp.int64
    assert xp.arange(0.0, 1.0, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert xp.arange(3, 0).shape == (0,)  # an empty range, not an error
    assert xp.full((2,), True).dtype is xp.bool


def test_asarray_copy_and_astype_copy():
    a = np.arange(4.0)
    shared = xp.asarray(a)
    a[0] = 9.0
    assert shared.tolist()[0] == 9.0  # copy=None shares a buffer it can
    copied = xp.asarray(a, copy=True)
    a[1] = 7.0
    assert copied.tolist()[1] == 1.0
    with pytest.raises(ValueError, match="copy=False"):
        xp.asarray([1, 2], copy=False)
    with pytest.raises(ValueError, match="copy=False"):
        xp.asarray(shared, dtype=xp.float32, copy=False)
    x = xp.asarray([1.0, 2.0])
    assert xp.astype(x, xp.float64, copy=False) is x
    y = xp.astype(x, xp.float64)
    assert y is not x and y.tolist() == x.tolist()
    assert xp.reshape(x, (2, 1), copy=False).shape == (2, 1)
    with pytest.raises(ValueError, match="copy"):
        xp.reshape(xp.permute_dims(xp.zeros((2, 3)), (1, 0)), (6,), copy=False)


def test_special_values_of_floor_divide_and_remainder():
    inf = math.inf
    a = xp.asarray([inf, -inf, 1.0, -1.0, 1.0])
    b = xp.asarray([2.0, 2.0, -inf, inf, inf])
    got = xp.floor_divide(a, b).tolist()
    assert got == [inf, -inf, 0.0, 0.0, 0.0]
    assert [math.copysign(1, v) for v in got[2:]] == [-1, -1, 1]  # -0, -0, +0
    r = xp.remainder(xp.asarray([-0.0, 0.0, 4.0]), xp.asarray([2.0, -2.0, -2.0])).tolist()
    assert [math.copysign(1, v) for v in r] == [1, -1, -1]


def test_shifts_signbit_nextafter_against_numpy():
    rng = np.random.default_rng(0)
    for d in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        bits = np.dtype(d).itemsize * 8
        a = rng.integers(np.iinfo(d).min, np.iinfo(d).max, 64, dtype=d, endpoint=True)
        s = rng.integers(0, bits + 3, 64).astype(d)
        x, y = xp.asarray(a), xp.asarray(s)
        with np.errstate(all="ignore"):
            want_l = np.where(s >= bits, 0, np.left_shift(a, np.minimum(s, bits - 1)))
            want_r = np.where(s >= bits, np.where(a < 0, -1, 0), np.right_shift(a, np.minimum(
                s, bits - 1)))  # fmt: skip
        np.testing.assert_array_equal(xp.bitwise_left_shift(x, y).numpy(), want_l.astype(d))
        np.testing.assert_array_equal(xp.bitwise_right_shift(x, y).numpy(), want_r.astype(d))
        np.testing.assert_array_equal((x << y).numpy(), want_l.astype(d))
    v = np.array([-0.0, 0.0, -1.0, np.nan, -np.nan, np.inf])
    np.testing.assert_array_equal(xp.signbit(xp.asarray(v)).numpy(), np.signbit(v))
    w = np.array([1.0, -0.0, 2.0, np.inf])
    np.testing.assert_array_equal(
        xp.nextafter(xp.asarray(w), xp.asarray([2.0, 1.0, 2.0, 0.0])).numpy(),
        np.nextafter(w, [2.0, 1.0, 2.0, 0.0]),
    )


def test_complex_functions_against_numpy():
    rng = np.random.default_rng(1)
    z = (rng.standard_normal(50) + 1j * rng.standard_normal(50)).astype(np.complex128)
    x = xp.asarray(z)
    names = ("exp log sqrt sin cos tan sinh cosh tanh expm1 log1p log2 log10 asin acos atan "
             "asinh acosh atanh").split()  # fmt: skip
    for name in names:
        ref = {"asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "asinh": np.arcsinh,
               "acosh": np.arccosh, "atanh": np.arctanh}.get(name) or getattr(np, name)  # fmt: skip
        np.testing.assert_allclose(getattr(xp, name)(x).numpy(), ref(z), rtol=1e-9, atol=1e-12,
                                   err_msg=name)  # fmt: skip
    np.testing.assert_allclose(xp.sum(x).item(), z.sum(), rtol=1e-12)
    np.testing.assert_allclose(xp.pow(x, 2.0).numpy(), z**2, rtol=1e-9)


def test_complex_linear_algebra_runs_eagerly_on_the_device_module():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 3)) + 1j * rng.standard_normal((2, 3, 3))
    x = xp.asarray(a)
    np.testing.assert_allclose(xp.linalg.det(x).numpy(), np.linalg.det(a), rtol=1e-12)
    np.testing.assert_allclose(xp.linalg.inv(x).numpy(), np.linalg.inv(a), rtol=1e-10)
    np.testing.assert_allclose(xp.linalg.svdvals(x).numpy(), np.linalg.svdvals(a), rtol=1e-12)
    np.testing.assert_allclose(xp.linalg.vector_norm(x).item(), np.linalg.norm(a.ravel()))
    np.testing.assert_allclose(xp.prod(x, axis=1).numpy(), a.prod(axis=1), rtol=1e-12)
    assert xp.linalg.matrix_rank(x).tolist() == [3, 3]
    with pytest.raises(fusejit.TraceError, match="eagerly only"):
        fusejit.trace(lambda t: xp.linalg.det(t), (x,))


def test_reductions_follow_the_standard():
    x = xp.asarray([[1, 2], [3, 4]], dtype=xp.int8)
    assert xp.sum(x).dtype is xp.int64 and int(xp.sum(x)) == 10
    assert xp.sum(x, axis=(0, 1), keepdims=True).shape == (1, 1)
    assert xp.prod(x, axis=(0, 1)).tolist() == 24
    f = xp.asarray([[1.0, 2.0], [3.0, 5.0]], dtype=xp.float32)
    assert xp.sum(f).dtype is xp.float32
    np.testing.assert_allclose(xp.var(f, axis=0, correction=1).numpy(), [2.0, 4.5])
    assert xp.max(f, axis=1).tolist() == [2.0, 5.0]
    assert xp.argmax(f, keepdims=True).shape == (1, 1)
    assert xp.cumulative_sum(xp.asarray([1, 2, 3]), include_initial=True).tolist() == [0, 1, 3, 6]
    assert xp.vecdot(xp.asarray([1, 2], dtype=xp.uint8), xp.asarray([3, 4], dtype=xp.uint8)).dtype \
        is xp.uint8  # fmt: skip
    vals = xp.unique_all(xp.asarray([3, 1, 3, 2]))
    assert vals.values.tolist() == [1, 2, 3] and vals.indices.tolist() == [1, 3, 0]
    assert vals.inverse_indices.tolist() == [2, 0, 2, 1] and vals.counts.tolist() == [1, 1, 2]


def test_dlpack_round_trips_and_copy():
    t = xp.asarray([1.0, 2.0, 3.0])
    a = np.from_dlpack(t)
    a[0] = 5.0
    assert t.tolist()[0] == 5.0  # shared memory
    assert t.__dlpack_device__()[0] == 1  # kDLCPU
    b = np.from_dlpack(t, copy=True)
    b[1] = 9.0
    assert t.tolist()[1] == 2.0
    u = xp.from_dlpack(np.arange(3, dtype=np.int32))
    assert u.dtype is xp.int32 and u.tolist() == [0, 1, 2]
    v = xp.from_dlpack(t, copy=True)
    assert v is not t and v.tolist() == t.tolist()
    assert xp.from_dlpack(t, device="cpu") is t
    cap = t.__dlpack__(max_version=(1, 0), dl_device=(1, 0))
    assert type(cap).__name__ == "PyCapsule"


def test_namespace_info():
    info = xp.__array_namespace_info__()
    assert info.default_device() == "cpu" and fusejit.device("cpu") in info.devices()
    want = {"real floating": xp.float64, "complex floating": xp.complex128,
            "integral": xp.int64, "indexing": xp.int64}  # fmt: skip
    assert info.default_dtypes() == want
    assert set(info.dtypes(kind="real floating").values()) == {xp.float32, xp.float64}
    assert info.dtypes(kind=("bool", "unsigned integer")) == {"bool": xp.bool, "uint8": xp.uint8}
    caps = info.capabilities()
    assert caps["boolean indexing"] and caps["data-dependent shapes"]
    with pytest.raises(ValueError, match="kind"):
        info.dtypes(kind="floating")


def test_array_namespace_versions():
    x = fusejit.ones(2)
    assert x.__array_namespace__() is xp and xp.__array_api_version__ == "2024.12"
    old = x.__array_namespace__(api_version="2023.12")
    assert old.__array_api_version__ == "2023.12" and old.add is xp.add
    assert not hasattr(old, "nextafter")
    with pytest.raises(ValueError, match="2021.12"):
        x.__array_namespace__(api_version="2021.12")
    assert x.to_device("cpu") is x
    assert fusejit.ones(2, 3).mT.shape == (3, 2)


def test_array_api_compat_finds_the_namespace():
    compat = pytest.importorskip("array_api_compat")
    x = xp.asarray([1.0, 2.0])
    assert compat.array_namespace(x) is xp
    assert compat.array_namespace(x, xp.asarray([1])) is xp
    assert compat.is_array_api_obj(x)
    assert compat.size(xp.zeros((2, 3))) == 6
    assert compat.device(x) == x.device


def _standard_code(x, y):
    # written against the standard only
    ns = x.__array_namespace__()
    return ns.tanh(ns.multiply(ns.add(x, y), 0.5)) * ns.exp(ns.negative(x)) + ns.square(y)


def test_code_written_against_the_standard_traces_to_one_kernel():
    x = xp.asarray(np.linspace(-1, 1, 64, dtype=np.float32))
    y = xp.asarray(np.linspace(2, 3, 64, dtype=np.float32))
    traced = fusejit.trace(_standard_code, (x, y))
    assert traced.kernel_count() == 1
    got = traced(x, y)
    assert isinstance(got, fusejit.Tensor) and got.dtype is xp.float32
    xd, yd = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    want = np.tanh((xd + yd) * 0.5) * np.exp(-xd) + yd**2
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    # and optimize takes them too
    opt = fusejit.optimize(_standard_code)
    np.testing.assert_allclose(opt(x, y).numpy(), want, rtol=1e-5)


def test_a_promoting_standard_function_still_fuses():
    def f(x, y):
        ns = x.__array_namespace__()
        return ns.sum(ns.multiply(x, y) + 1.0, axis=-1)  # float32 with float64: a cast

    x = xp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    y = xp.asarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    traced = fusejit.trace(f, (x, y))
    got = traced(x, y)
    assert got.dtype is xp.float64
    np.testing.assert_allclose(got.numpy(), (x.numpy() * y.numpy() + 1).sum(-1))


@CUDA
@pytest.mark.cuda
def test_cuda_arrays_stay_on_cuda():
    dev = "cuda:0"
    x = xp.asarray([1.0, 2.0, 3.0], device=dev)
    assert x.device == dev
    for r in (xp.exp(x), xp.add(x, xp.asarray(1.0, device=dev)), xp.sum(x), xp.zeros_like(x),
              xp.astype(x, xp.float32), xp.sort(x), xp.linalg.vector_norm(x),
              xp.fft.fft(x), xp.where(x > 1, x, 0.0)):  # fmt: skip
        assert r.device == dev
    assert xp.__array_namespace_info__().devices()[1] == dev
    np.testing.assert_allclose(xp.exp(x).cpu().numpy(), np.exp([1.0, 2.0, 3.0]))
    import cupy

    c = cupy.from_dlpack(x)  # zero copy both ways
    c[0] = 7.0
    assert x.cpu().tolist()[0] == 7.0
    back = xp.from_dlpack(c)
    assert back.device == dev and back.cpu().tolist() == [7.0, 2.0, 3.0]
    host = xp.from_dlpack(x, device="cpu")
    assert host.device == "cpu" and host.tolist() == [7.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="copy=False"):
        xp.from_dlpack(x, device="cpu", copy=False)
    traced = fusejit.trace(_standard_code, (x, x))
    assert traced.kernel_count() == 1 and traced(x, x).device == dev


def test_readme_array_api_example(capsys):
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## Array API\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md (Array API)", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip() == "Tensor fusejit.float64 True"


def test_docstring_examples():
    import doctest
    import importlib

    for name in ("", "._creation", "._dtypes", "._elementwise", "._manipulation",
                 "._statistical", "._info", "._methods", ".linalg", ".fft"):  # fmt: skip
        mod = importlib.import_module("fusejit.array_api" + name)
        res = doctest.testmod(mod)
        assert res.failed == 0, mod.__name__
