"""numpy interop as PyTorch's numpy bridge (arrays as operands, ``np.asarray`` of a tensor, numpy
functions on tensors), and the conveniences: ``as_tensor``, ``is_tensor``, ``numel``,
``masked_fill_``, ``new_tensor``, thread counts, ``fusejit.cuda``, constants, ``finfo`` /
``iinfo``, ``element_size``, ``nbytes``, ``data_ptr``, ``is_cuda``."""

from __future__ import annotations

import math
import operator
import warnings

import numpy as np
import pytest
from parity_helpers import DEVICES, assert_close, host, on

import fusejit
from fusejit import DeviceError, DTypeError, ShapeError

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
OPERATORS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
             operator.mod, operator.pow, operator.eq, operator.ne, operator.lt, operator.le,
             operator.gt, operator.ge]  # fmt: skip
BITWISE = [operator.and_, operator.or_, operator.xor]


def _ref(f, a, b):
    """What fusejit gives with both operands tensors (the array is a tensor, as in PyTorch)."""
    return f(fusejit.from_numpy(np.asarray(a).copy()), fusejit.from_numpy(np.asarray(b).copy()))


@pytest.mark.parametrize("f", OPERATORS + BITWISE, ids=lambda f: f.__name__)
def test_array_operand_both_orders(f):
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 4, (2, 3)).astype(np.float32)
    a = rng.uniform(1, 4, (3,))  # float64: as a float64 tensor (PyTorch's promotion)
    if f in BITWISE:
        x, a = x.astype(np.int32), a.astype(np.int16)
    t = on(x)
    for got, want in ((f(t, a), _ref(f, x, a)), (f(a, t), _ref(f, a, x))):
        assert isinstance(got, fusejit.Tensor)
        assert_close(got, host(want), exact=True, what=f.__name__)


@pytest.mark.parametrize("dtype", DTYPES)
def test_array_dtypes_promote_as_tensors(dtype):
    a = np.ones((2, 2), dtype)
    for other in ("uint8", "int64", "float16", "float32"):
        t = fusejit.ones(2, dtype=getattr(fusejit, other))
        want = fusejit.promote_types(fusejit.as_tensor(a).dtype, t.dtype)
        assert fusejit.maximum(t, a).dtype is want
        assert (a == t).dtype is fusejit.bool
    # an ndarray 0-d is a 0-d tensor (its dtype then follows the 0-d rule of tensors)
    zero_d = fusejit.ones(3, dtype=fusejit.float32) * np.array(2.0, dtype)
    assert zero_d.dtype is (fusejit.ones(3) * fusejit.tensor(np.array(2.0, dtype))).dtype


def test_array_operand_table_functions_broadcast_noncontiguous_special_values():
    x = on(np.array([[1.0, -0.0, np.nan], [np.inf, 2.0, -3.0]], np.float32))
    a = np.array([[0.5], [np.nan]])[:, ::1]
    got = fusejit.maximum(x, a)
    assert_close(got, np.maximum(x.numpy().astype(np.float64), a), exact=True)
    a2 = np.arange(12.0).reshape(3, 4).T[:3]  # a non-contiguous array
    y = on(np.ones((3, 3), np.float64))
    assert_close(y + a2, 1 + a2, exact=True)
    assert_close(fusejit.where(y > 0, a2, 0.0), a2, exact=True)
    assert_close(fusejit.ones(0) + np.ones(0), np.zeros(0), exact=True)
    assert_close(fusejit.ones(2, 3) @ np.ones((3, 2)), np.full((2, 2), 3.0), exact=True)
    assert_close(np.ones(3) @ fusejit.ones(3, dtype=fusejit.float64), np.array(3.0), exact=True)
    assert_close(fusejit.tensor(2.0) - np.array(5.0), np.array(-3.0), exact=True)
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        fusejit.ones(3) + np.ones(4)
    with pytest.raises(DTypeError, match="numpy array of dtype uint16 has no fusejit dtype"):
        fusejit.ones(3) + np.ones(3, np.uint16)
    with pytest.raises(TypeError, match="expected tensors, got list"):
        fusejit.matmul(fusejit.ones(2), [1.0, 2.0])
    # an in-place op on the tensor; on the array, numpy defers to the tensor (its
    # __array_priority__, as PyTorch's): ``arr += t`` rebinds arr to the tensor ``arr + t``
    t = fusejit.zeros(3)
    t += np.arange(3.0)
    assert t.tolist() == [0.0, 1.0, 2.0] and t.dtype is fusejit.float32
    arr = np.zeros(3)
    arr += fusejit.ones(3)
    assert isinstance(arr, fusejit.Tensor) and arr.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("device", DEVICES)
def test_array_with_a_gpu_tensor_names_the_devices(device):
    t = fusejit.ones(3, device=device)
    if device == "cpu":
        assert (t + np.ones(3)).device == fusejit.device("cpu")
        return
    a = np.ones(3)
    for f in (lambda: t + a, lambda: a * t, lambda: fusejit.maximum(t, a), lambda: t @ a):
        with pytest.raises(DeviceError, match="numpy array \\(on the cpu\\).*tensor on cuda:0"):
            f()


@pytest.mark.parametrize("device", DEVICES)
def test_np_asarray_shares_memory_and_refuses_gpu_tensors(device):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = on(a, device)
    if device != "cpu":
        with pytest.raises(TypeError, match="call .cpu\\(\\) first"):
            np.asarray(t)
        assert np.array_equal(np.asarray(t.cpu()), a)
        return
    b = np.asarray(t)
    assert np.shares_memory(b, t.numpy())
    t.add_(1)
    assert b[0, 0] == 1
    assert np.asarray(t[:, ::2]).shape == (2, 2)  # a view's memory
    assert not np.shares_memory(np.array(t), b)  # np.array copies
    assert not np.shares_memory(np.asarray(t, copy=True), b)
    assert np.shares_memory(np.asarray(t, copy=False), b)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_numpy_functions_on_tensors_return_arrays():
    t = fusejit.tensor([0.0, 1.0])
    for got in (np.exp(t), np.add(t, 1), np.concatenate([t, t]), np.linalg.norm(t)):
        assert not isinstance(got, fusejit.Tensor)
    np.testing.assert_array_equal(np.exp(t), np.exp(np.array([0.0, 1.0], np.float32)))


def test_array_operand_under_trace_is_read_live():
    a = np.array([1.0, 2.0, 3.0], np.float32)

    def f(x):
        return (x + a) * 2

    x = fusejit.ones(3)
    traced = fusejit.trace(f, (x,))
    assert traced.kernel_count() == 1  # fused with the tensor ops around it
    assert traced(x).tolist() == [4.0, 6.0, 8.0]
    a[0] = 10.0  # the graph reads the array's memory at each call, as eager would
    assert traced(x).tolist() == f(x).tolist() == [22.0, 6.0, 8.0]
    # an array computed from an input's values warns, as any value read does
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fusejit.trace(lambda x: x + np.asarray(x), (x,), check_trace=False)
    assert any(issubclass(i.category, fusejit.TracerWarning) for i in w)


# ---- conveniences ------------------------------------------------------------------------------
def test_as_tensor_shares_memory_where_torch_does():
    a = np.zeros((2, 3), np.float64)
    t = fusejit.as_tensor(a)
    a[0, 0] = 5
    assert t.dtype is fusejit.float64 and t[0, 0].item() == 5.0
    assert fusejit.as_tensor(a[:, ::2]).shape == (2, 2)
    assert fusejit.as_tensor(t) is t
    assert fusejit.as_tensor(t, dtype=fusejit.float64) is t
    c = fusejit.as_tensor(a, dtype=fusejit.float32)  # a cast: a copy
    a[0, 0] = 6
    assert c[0, 0].item() == 5.0 and c.dtype is fusejit.float32
    assert fusejit.as_tensor([1, 2]).dtype is fusejit.int64
    assert fusejit.as_tensor(3.5).ndim == 0
    assert fusejit.as_tensor(np.float16(1.5)).dtype is fusejit.float16


@pytest.mark.parametrize("device", DEVICES)
def test_as_tensor_to_a_device(device):
    a = np.arange(3.0)
    t = fusejit.as_tensor(a, device=device)
    assert t.device == fusejit.device(device) and host(t).tolist() == [0.0, 1.0, 2.0]
    assert fusejit.as_tensor(t, device=device) is t


def test_is_tensor_is_floating_point_numel():
    assert fusejit.is_tensor(fusejit.ones(1)) and not fusejit.is_tensor(np.ones(1))
    for d in DTYPES:
        t = fusejit.zeros(2, 3, dtype=getattr(fusejit, d if d != "bool" else "bool_"))
        assert fusejit.is_floating_point(t) == t.is_floating_point() == d.startswith("float")
        assert fusejit.numel(t) == 6
        assert t.element_size() == np.dtype(d).itemsize == t.itemsize
        assert t.nbytes == 6 * np.dtype(d).itemsize
    assert fusejit.numel(fusejit.tensor(1.0)) == 1 and fusejit.zeros(0, 4).nbytes == 0
    with pytest.raises(TypeError, match="is_floating_point: expected a tensor"):
        fusejit.is_floating_point(1.0)
    with pytest.raises(TypeError, match="numel: expected a tensor"):
        fusejit.numel([1, 2])


@pytest.mark.parametrize("device", DEVICES)
def test_masked_fill_inplace(device):
    x = on(np.arange(6.0, dtype=np.float32).reshape(2, 3), device)
    view = x[:, ::2]
    r = view.masked_fill_(on(np.array([True, False]), device), -1.0)
    assert r is view
    assert host(x).tolist() == [[-1.0, 1.0, 2.0], [-1.0, 4.0, 5.0]]
    with pytest.raises(ShapeError):
        fusejit.zeros(3, device=device).masked_fill_(fusejit.ones(2, 3, dtype=fusejit.bool,
                                                                  device=device), 1.0)  # fmt: skip
    with pytest.raises(fusejit.TraceError):
        fusejit.trace(lambda t: (t * 1).masked_fill_(t > 0, 0.0), (fusejit.ones(3),))


@pytest.mark.parametrize("device", DEVICES)
def test_new_tensor_data_ptr_is_cuda(device):
    x = on(np.zeros(4, np.int16), device)
    n = x.new_tensor([1, 2])
    assert n.dtype is fusejit.int16 and n.device == x.device and host(n).tolist() == [1, 2]
    assert x.new_tensor([1.5], dtype=fusejit.float64).dtype is fusejit.float64
    assert x.is_cuda == (device == "cuda")
    assert x[1:].data_ptr() == x.data_ptr() + 2
    if device == "cpu":
        assert x.data_ptr() == x.numpy().ctypes.data


def test_num_threads():
    from fusejit.backends import cpu_kernels

    n = fusejit.get_num_threads()
    assert n == cpu_kernels.THREADS >= 1
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    try:
        fusejit.set_num_threads(1)
        assert fusejit.get_num_threads() == 1 == cpu_kernels.THREADS
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert all(p["num_threads"] == 1 for p in blas)
        x = fusejit.rand(2**22)
        assert fusejit.trace(lambda x: x * 2 + 1, (x,))(x).shape == x.shape  # kernels still run
    finally:
        fusejit.set_num_threads(n)
    assert fusejit.get_num_threads() == n
    with pytest.raises(ValueError, match="positive"):
        fusejit.set_num_threads(0)
    with pytest.raises(DTypeError, match="must be an int"):
        fusejit.set_num_threads(2.0)


def test_set_num_threads_without_threadpoolctl_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # (import fails)
    n = fusejit.get_num_threads()
    with pytest.raises(ImportError, match="needs threadpoolctl"):
        fusejit.set_num_threads(1)
    assert fusejit.get_num_threads() == n


def test_cuda_module():
    assert fusejit.cuda.is_available() == fusejit.is_cuda_available()
    assert fusejit.cuda.device_count() >= int(fusejit.cuda.is_available())
    if not fusejit.cuda.is_available():
        assert fusejit.cuda.device_count() == 0


def test_constants():
    assert fusejit.inf == math.inf and math.isnan(fusejit.nan)
    assert fusejit.pi == math.pi and fusejit.e == math.e


def test_finfo_iinfo():
    for d in ("float16", "float32", "float64"):
        f, n = fusejit.finfo(getattr(fusejit, d)), np.finfo(d)
        assert (f.bits, f.eps, f.max, f.min) == (n.bits, float(n.eps), float(n.max), float(n.min))
        assert f.tiny == f.smallest_normal == float(n.smallest_normal) and f.dtype == d
    assert fusejit.finfo().dtype == "float32"  # the default float
    # PyTorch's values
    assert fusejit.finfo(fusejit.float32).resolution == 1e-06
    assert fusejit.finfo(fusejit.float16).resolution == 0.001
    assert fusejit.finfo(fusejit.float64).resolution == 1e-15
    assert fusejit.finfo(fusejit.float16).tiny == 6.103515625e-05
    for d in ("uint8", "int8", "int16", "int32", "int64"):
        i, n = fusejit.iinfo(getattr(fusejit, d)), np.iinfo(d)
        assert (i.bits, i.min, i.max, i.dtype) == (n.bits, n.min, n.max, d)
    assert "max=127" in repr(fusejit.iinfo(fusejit.int8)) and "eps=" in repr(fusejit.finfo())
    with pytest.raises(DTypeError, match="finfo: expected a floating-point dtype, got int32"):
        fusejit.finfo(fusejit.int32)
    with pytest.raises(DTypeError, match="iinfo: expected an integer dtype, got float32"):
        fusejit.iinfo(fusejit.float32)
    with pytest.raises(DTypeError, match="got bool"):
        fusejit.iinfo(fusejit.bool)


def test_docstring_examples():
    import doctest

    from fusejit.base import finfo
    from fusejit.eager import interop, threads

    for mod in (interop, threads, finfo):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
