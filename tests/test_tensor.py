"""The Tensor object: factories, conversions, metadata, printing and interop with numpy."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit as F

ALL = (F.bool, F.uint8, F.int8, F.int16, F.int32, F.int64, F.float16, F.float32, F.float64)


# ---- tensor() ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data,dtype",
    [
        ([1.0, 2.0], F.float32), ([1, 2], F.int64), ([True, False], F.bool), (3.5, F.float32),
        (7, F.int64), (True, F.bool), ([1, 2.5], F.float32), ([True, 2], F.int64), ([], F.float32),
        ([[1, 2], [3, 4]], F.int64), (np.array([1, 2], np.int32), F.int32),
        (np.array([1.0], np.float64), F.float64), (np.array([1.0], np.float16), F.float16),
        (np.array([1], np.uint8), F.uint8), (np.float64(1.5), F.float64), (np.int32(3), F.int32),
        (np.array([1], np.uint16), F.int64),
    ],
)  # fmt: skip
def test_tensor_infers_the_dtype_as_torch(data, dtype):
    t = F.tensor(data)
    assert t.dtype is dtype
    assert t.numpy().dtype == dtype.np
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.name)
def test_tensor_with_dtype_copies(d):
    src = np.array([0, 1, 2])
    t = F.tensor(src, dtype=d)
    assert t.dtype is d and t.device == "cpu"
    np.testing.assert_array_equal(t.numpy(), src.astype(d.np))
    src[0] = 1
    assert t.numpy()[0] == 0  # tensor() copies
    u = F.tensor(t)
    assert u is not t and not np.shares_memory(u.numpy(), t.numpy())
    assert F.tensor([F.tensor(1.0), F.tensor(2.0)]).tolist() == [1.0, 2.0]


# ---- factories --------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fill", [("zeros", 0), ("ones", 1), ("empty", None)])
def test_zeros_ones_empty(name, fill):
    fn = getattr(F, name)
    for args in [(2, 3), ((2, 3),), ([2, 3],)]:
        t = fn(*args)
        assert t.shape == (2, 3) and t.dtype is F.float32 and t.device == "cpu"
        if fill is not None:
            assert (t.numpy() == fill).all()
    assert fn().shape == () and fn(0).shape == (0,)
    for d in ALL:
        t = fn(4, dtype=d)
        assert t.dtype is d and t.numpy().dtype == d.np
    like = getattr(F, name + "_like")
    src = F.ones(2, 5, dtype=F.int16)
    t = like(src)
    assert t.shape == (2, 5) and t.dtype is F.int16 and t.device is src.device
    assert like(src, dtype=F.float64).dtype is F.float64
    assert like(src, device="cpu").device == "cpu"


def test_full():
    assert F.full((2, 2), 7).dtype is F.int64
    assert F.full((2,), 1.5).dtype is F.float32 and F.full((2,), 1.5).tolist() == [1.5, 1.5]
    assert F.full((2,), True).dtype is F.bool
    assert F.full(3, 2.0).shape == (3,)
    assert F.full((2,), 3, dtype=F.float16).dtype is F.float16
    t = F.full_like(F.zeros(2, 3, dtype=F.int8), 5)
    assert t.dtype is F.int8 and t.tolist() == [[5, 5, 5]] * 2


def test_arange():
    assert F.arange(5).tolist() == [0, 1, 2, 3, 4] and F.arange(5).dtype is F.int64
    assert F.arange(2, 8, 3).tolist() == [2, 5]
    assert F.arange(5, 0, -2).tolist() == [5, 3, 1]
    t = F.arange(0, 1, 0.25)
    assert t.dtype is F.float32 and t.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert F.arange(3.0).dtype is F.float32
    assert F.arange(4, dtype=F.float64).dtype is F.float64
    assert F.arange(np.int64(3)).dtype is F.int64  # numpy ints are ints
    assert F.arange(0).shape == (0,)
    np.testing.assert_array_equal(F.arange(-3, 10, 4).numpy(), np.arange(-3, 10, 4))


def test_linspace_and_eye():
    t = F.linspace(0, 1, 5)
    assert t.dtype is F.float32 and t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert F.linspace(-1, 1, 1).tolist() == [-1.0]
    assert F.linspace(0, 10, 5, dtype=F.float64).dtype is F.float64
    np.testing.assert_array_equal(F.eye(3).numpy(), np.eye(3, dtype=np.float32))
    e = F.eye(2, 3, dtype=F.int32)
    assert e.dtype is F.int32 and e.tolist() == [[1, 0, 0], [0, 1, 0]]


def test_random_factories_and_manual_seed():
    F.manual_seed(123)
    a, b, c = F.rand(100), F.randn(3, 4, dtype=F.float64), F.randint(0, 10, (50,))
    F.manual_seed(123)
    np.testing.assert_array_equal(F.rand(100).numpy(), a.numpy())
    np.testing.assert_array_equal(F.randn(3, 4, dtype=F.float64).numpy(), b.numpy())
    np.testing.assert_array_equal(F.randint(0, 10, (50,)).numpy(), c.numpy())
    assert a.dtype is F.float32 and b.dtype is F.float64 and c.dtype is F.int64
    assert ((a.numpy() >= 0) & (a.numpy() < 1)).all()
    assert ((c.numpy() >= 0) & (c.numpy() < 10)).all()
    assert F.rand(2, 3).shape == (2, 3) and F.randn((4,)).shape == (4,)
    r = F.randint(5, (1000,))  # randint(high, size), as torch
    assert r.shape == (1000,) and r.numpy().min() >= 0 and r.numpy().max() <= 4
    assert F.randint(-3, 3, 7, dtype=F.int8).dtype is F.int8
    assert F.rand(2, dtype=F.float16).dtype is F.float16
    F.manual_seed(1)
    x = F.rand(5)
    assert not np.array_equal(F.rand(5).numpy(), x.numpy())  # the generator advances


# ---- numpy interop ----------------------------------------------------------------------------
def test_from_numpy_shares_memory():
    a = np.zeros((2, 3), np.int16)
    t = F.from_numpy(a)
    assert t.dtype is F.int16 and t.shape == (2, 3)
    t[0, 1] = 5
    t.add_(1)
    assert a.tolist() == [[1, 6, 1], [1, 1, 1]]
    a[1, 2] = 9
    assert t[1, 2].item() == 9
    assert t.numpy() is a
    s = F.from_numpy(a[:, ::2])  # strided arrays too
    assert not s.is_contiguous() and s.tolist() == [[1, 1], [1, 9]]


def test_numpy_tolist_item():
    t = F.tensor([[1.5, 2.0], [3.0, 4.0]])
    n = t.numpy()
    assert isinstance(n, np.ndarray) and n.dtype == np.float32
    n[0, 0] = 0.0
    assert t[0, 0].item() == 0.0  # .numpy() shares memory on the CPU
    assert t.tolist() == [[0.0, 2.0], [3.0, 4.0]]
    assert F.tensor(2.5).tolist() == 2.5
    assert F.tensor([[7]]).item() == 7 and type(F.tensor([[7]]).item()) is int
    assert type(F.tensor(1.5).item()) is float and type(F.tensor(True).item()) is bool
    assert float(F.tensor([2.5])) == 2.5 and int(F.tensor(3)) == 3
    assert [10, 20, 30][F.tensor(1)] == 20
    assert bool(F.tensor([1])) and not bool(F.tensor(0.0))
    assert [x.item() for x in F.tensor([1, 2])] == [1, 2]
    assert len(F.zeros(4, 2)) == 4
    with pytest.raises(ValueError, match="item"):
        t.item()


def test_array_protocol():
    t = F.tensor([1.0, 2.0])
    a = np.asarray(t)
    assert a.dtype == np.float32 and np.shares_memory(a, t.numpy())
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    c = np.array(t, copy=True)
    assert not np.shares_memory(c, t.numpy())
    e = np.exp(t)  # numpy functions take tensors as arrays
    assert isinstance(e, np.ndarray) and e.dtype == np.float32
    np.testing.assert_array_equal(e, np.exp(np.array([1.0, 2.0], np.float32)))


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.name)
def test_dlpack_round_trip_is_zero_copy(d):
    a = np.arange(6).reshape(2, 3).astype(d.np)
    t = F.from_dlpack(a)
    assert t.dtype is d and t.shape == (2, 3) and t.device == "cpu"
    assert np.shares_memory(t.numpy(), a)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, a)
    np.testing.assert_array_equal(back, a)
    assert t.__dlpack_device__() == (1, 0)


def test_dlpack_writes_show_on_both_sides_and_strides_survive():
    a = np.zeros((3, 4), np.float32)
    t = F.from_dlpack(a)
    t[1] = 2.0
    assert a[1].tolist() == [2.0] * 4
    v = F.arange(12.0).reshape(3, 4).T  # a strided tensor
    n = np.from_dlpack(v)
    assert n.shape == (4, 3) and n.strides == (4, 16)
    n[0, 1] = -1.0
    assert v[0, 1].item() == -1.0
    assert F.from_dlpack(v) is v
    w = F.from_dlpack(np.arange(6.0).reshape(2, 3).T)
    assert w.stride() == (1, 3) and w.tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]


# ---- device and dtype conversion --------------------------------------------------------------
def test_to_and_cpu():
    t = F.tensor([1.7, -1.7])
    assert t.to("cpu") is t and t.cpu() is t and t.to(F.Device("cpu")) is t
    assert t.to(F.float32) is t
    i = t.to(F.int32)
    assert i.dtype is F.int32 and i.tolist() == [1, -1]  # truncates toward zero
    assert t.to("cpu", F.float64).dtype is F.float64
    assert t.to(device="cpu", dtype=F.float16).dtype is F.float16
    assert t.to("float64").dtype is F.float64 and t.to(np.float64).dtype is F.float64
    assert t.to(F.tensor([1], dtype=F.int8)).dtype is F.int8
    c = t.to("cpu", copy=True)
    assert c is not t and not np.shares_memory(c.numpy(), t.numpy())
    assert t.double().dtype is F.float64 and t.half().dtype is F.float16
    assert t.long().dtype is F.int64 and t.int().dtype is F.int32 and t.bool().dtype is F.bool
    assert t.float() is t and t.type() == "float32" and t.type(F.int16).dtype is F.int16


def test_device_objects():
    cpu = F.Device("cpu")
    assert F.Device(cpu) is cpu and F.device("cpu") is cpu
    t = F.zeros(2)
    assert t.device is cpu and t.device == "cpu" and str(t.device) == "cpu"
    assert repr(cpu) == "device(type='cpu')" and cpu.type == "cpu" and cpu.index is None
    assert not t.is_cuda
    assert F.Device("cuda:1") == "cuda:1" and F.Device("cuda:1").index == 1
    assert F.Device("cuda:0") != cpu
    assert isinstance(F.is_cuda_available(), bool)


# ---- metadata ---------------------------------------------------------------------------------
def test_metadata():
    t = F.zeros(2, 3, 4, dtype=F.int16)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.dim() == 3 and t.dtype is F.int16
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.numel() == 24 and F.tensor(1.0).numel() == 1 and F.zeros(3, 0).numel() == 0
    assert t.is_contiguous() and t.stride() == (12, 4, 1) and t.stride(0) == 12
    p = t.permute(2, 0, 1)
    assert not p.is_contiguous() and p.stride() == (1, 12, 4)
    c = p.contiguous()
    assert c.is_contiguous() and c.shape == (4, 2, 3) and not np.shares_memory(c.numpy(), t.numpy())
    np.testing.assert_array_equal(c.numpy(), p.numpy())
    assert t.contiguous() is t
    assert F.tensor(5).shape == () and F.tensor(5).ndim == 0
    assert t.data_ptr() == t.numpy().__array_interface__["data"][0]
    assert t.clone().data_ptr() != t.data_ptr() and t.detach().data_ptr() == t.data_ptr()


# ---- printing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "t,text",
    [
        (F.tensor([1.0, 2.0]), "tensor([1., 2.])"),
        (F.tensor([1, 2]), "tensor([1, 2])"),
        (F.tensor(3.0), "tensor(3.)"),
        (F.tensor(7), "tensor(7)"),
        (F.tensor([True, False]), "tensor([ True, False])"),
        (F.tensor([1.0, 2.0], dtype=F.float64), "tensor([1., 2.], dtype=fusejit.float64)"),
        (F.tensor([1.0], dtype=F.float16), "tensor([1.], dtype=fusejit.float16)"),
        (F.tensor([1, 0], dtype=F.int32), "tensor([1, 0], dtype=fusejit.int32)"),
        (F.tensor([1], dtype=F.uint8), "tensor([1], dtype=fusejit.uint8)"),
        (F.tensor(1.5, dtype=F.float64), "tensor(1.5, dtype=fusejit.float64)"),
        (F.tensor([[1.0, 2.0], [3.0, 4.0]]), "tensor([[1., 2.],\n        [3., 4.]])"),
        (F.tensor([float("nan"), float("inf")]), "tensor([nan, inf])"),
        (F.zeros(0), "tensor([])"),
        (F.zeros(0, dtype=F.int64), "tensor([], dtype=fusejit.int64)"),
        (F.zeros(2, 0), "tensor([], size=[2, 0])"),
    ],
)  # fmt: skip
def test_repr_is_torch_like(t, text):
    assert repr(t) == text
    assert str(t) == text


def test_repr_of_a_large_tensor_is_summarized():
    r = repr(F.arange(5000))
    assert r.startswith("tensor([") and "..." in r and len(r) < 200
