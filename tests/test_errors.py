"""Errors at the public API: each is a ``fusejit.FusejitError`` subclass of the matching builtin
exception, its message names the op and the offending shapes, dtypes or dims, and it is raised
by fusejit itself, never a numpy or numba exception passed through."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fusejit as F

T = F.tensor


def raises(kind, fn, *needles):
    """Call ``fn``; it must raise a FusejitError that is a ``kind``, whose message contains every
    needle, raised from fusejit code without a chained numpy or numba exception."""
    with pytest.raises(kind) as info:
        fn()
    e = info.value
    assert isinstance(e, F.FusejitError), f"{type(e).__name__} is not a FusejitError: {e}"
    msg = str(e)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__), e
    tb = info.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename
    assert "fusejit" in where or os.sep + "backends" + os.sep in where, where
    for lib in ("numpy", "numba"):
        assert os.sep + lib + os.sep not in where, where
    return e


# ---- shapes -----------------------------------------------------------------------------------
SHAPE_CASES = {
    "add": (lambda: F.zeros(2, 3) + F.zeros(4), "add", "[2, 3]", "[4]"),
    "lt": (lambda: F.zeros(2, 3) < F.zeros(2), "lt", "[2, 3]", "[2]"),
    "maximum": (lambda: F.maximum(F.zeros(5), F.zeros(3)), "maximum", "[5]", "[3]"),
    "where": (lambda: F.where(T([True, False]), F.zeros(2, 3), F.zeros(4)), "where", "[4]"),
    "add_": (lambda: F.zeros(3).add_(F.zeros(2, 3)), "add_", "[2, 3]", "[3]"),
    "mul_ bcast": (lambda: F.zeros(3).mul_(F.zeros(4)), "mul", "[3]", "[4]"),
    "matmul": (lambda: F.zeros(2, 3) @ F.zeros(4, 2), "matmul", "[2, 3]", "[4, 2]"),
    "matmul batch": (lambda: F.zeros(2, 2, 3) @ F.zeros(3, 3, 2), "matmul", "[2, 2, 3]",
                     "[3, 3, 2]"),
    "matmul vec": (lambda: F.zeros(3) @ F.zeros(4), "matmul", "[3]", "[4]"),
    "matmul 0-d": (lambda: F.zeros(3) @ T(1.0), "matmul", "0-d"),
    "linear": (lambda: F.linear(F.zeros(2, 3), F.zeros(4, 5)), "linear", "[2, 3]", "[4, 5]"),
    "reshape": (lambda: F.zeros(2, 3).reshape(4, 2), "reshape", "[4, 2]", "[2, 3]"),
    "reshape -1 -1": (lambda: F.zeros(2, 3).reshape(-1, -1), "reshape", "[-1, -1]"),
    "reshape -1": (lambda: F.zeros(2, 3).reshape(4, -1), "reshape", "[4, -1]", "[2, 3]"),
    "view": (lambda: F.zeros(2, 3).view(5), "view", "[5]", "[2, 3]"),
    "view strides": (lambda: F.zeros(2, 3).T.view(6), "view", "[6]", "[3, 2]"),
    "expand": (lambda: F.zeros(2, 3).expand(4, 3), "expand", "[2, 3]", "[4, 3]"),
    "expand fewer": (lambda: F.zeros(2, 3).expand(3), "expand", "[3]", "[2, 3]"),
    "broadcast_to": (lambda: F.broadcast_to(F.zeros(3), (2, 4)), "expand", "[3]", "[2, 4]"),
    "broadcast_shapes": (lambda: F.broadcast_shapes((2, 3), (4,)), "broadcast_shapes",
                         "[2, 3]", "[4]"),
    "cat": (lambda: F.cat([F.zeros(2, 3), F.zeros(3, 2)]), "cat", "[2, 3]", "[3, 2]"),
    "cat ndim": (lambda: F.cat([F.zeros(2, 3), F.zeros(3)]), "cat", "[2, 3]", "[3]"),
    "stack": (lambda: F.stack([F.zeros(2), F.zeros(3)]), "stack", "[2]", "[3]"),
    "split": (lambda: F.zeros(5).split([2, 2]), "split", "[2, 2]", "5"),
    "layer_norm": (lambda: F.layer_norm(F.zeros(2, 3), (2,)), "layer_norm", "[2]", "[2, 3]"),
    "layer_norm weight": (lambda: F.layer_norm(F.zeros(2, 3), 3, F.ones(4)), "layer_norm",
                          "[4]", "[3]"),
    "copy_": (lambda: F.zeros(2, 3).copy_(F.zeros(4)), "copy_", "[4]", "[2, 3]"),
    "setitem": (lambda: F.zeros(3).__setitem__(slice(None), F.ones(2)), "setitem", "(2,)",
                "(3,)"),
    "write expanded": (lambda: F.zeros(3).expand(2, 3).add_(1.0), "add_", "[2, 3]", "clone"),
    "fill expanded": (lambda: F.zeros(1).expand(4).fill_(1.0), "fill_", "[4]"),
    "amax empty": (lambda: F.zeros(0).amax(), "amax", "[0]"),
    "argmax empty": (lambda: F.zeros(2, 0).argmax(1), "argmax", "[2, 0]"),
    "max dim empty": (lambda: F.zeros(0, 2).max(0), "max", "[0, 2]"),
    "ragged": (lambda: T([[1, 2], [3]]), "tensor"),
}  # fmt: skip


@pytest.mark.parametrize("case", SHAPE_CASES, ids=str)
def test_shape_errors(case):
    fn, *needles = SHAPE_CASES[case]
    e = raises(F.ShapeError, fn, *needles)
    assert isinstance(e, ValueError)


# ---- dtypes -----------------------------------------------------------------------------------
DTYPE_CASES = {
    "bitwise_and float": (lambda: F.bitwise_and(F.zeros(2), F.zeros(2)), "bitwise_and",
                          "float32"),
    "& float": (lambda: F.zeros(2) & F.zeros(2), "bitwise_and", "float32"),
    "~ float": (lambda: ~F.zeros(2, dtype=F.float64), "bitwise_not", "float64"),
    "neg bool": (lambda: -T([True]), "neg", "bool"),
    "sub bool": (lambda: T([True]) - T([False]), "sub", "bool"),
    "abs bool": (lambda: abs(T([True])), "abs", "bool"),
    "relu bool": (lambda: F.relu(T([True])), "relu", "bool"),
    "matmul bool": (lambda: T([[True]]) @ T([[True]]), "matmul", "bool"),
    "mean bool": (lambda: T([True]).mean(), "mean", "bool"),
    "softmax bool": (lambda: F.softmax(T([True]), 0), "softmax", "bool"),
    "logsumexp bool": (lambda: F.logsumexp(T([True]), 0), "logsumexp", "bool"),
    "add_ float into int": (lambda: T([1, 2], dtype=F.int32).add_(0.5), "add_", "float32",
                            "int32"),
    "div_ int": (lambda: T([1, 2]).div_(2), "div_", "float32", "int64"),
    "setitem int overflow": (lambda: T([1, 2], dtype=F.int8).__setitem__(0, 300), "setitem",
                             "int8"),
    "fill_ nan into int": (lambda: T([1, 2], dtype=F.uint8).fill_(float("nan")), "fill_",
                           "uint8"),
    "int pow negative": (lambda: T([2, 3]) ** T([1, -1]), "pow", "int64"),
    "scalar overflow": (lambda: T([1], dtype=F.int8) + 1000, "add", "int8"),
    "unsupported dtype": (lambda: T([1], dtype="complex32"), "complex32"),
    "complex exp": (lambda: T([1j]).exp(), "exp", "complex64"),
    "from_numpy uint16": (lambda: F.from_numpy(np.zeros(2, np.uint16)), "uint16"),
    "rand int": (lambda: F.rand(2, dtype=F.int32), "rand", "int32"),
    "tensor of strings": (lambda: T(["a", "b"]), "tensor"),
}  # fmt: skip


@pytest.mark.parametrize("case", DTYPE_CASES, ids=str)
def test_dtype_errors(case):
    fn, *needles = DTYPE_CASES[case]
    e = raises(F.DTypeError, fn, *needles)
    assert isinstance(e, TypeError)


def test_dtype_error_names_what_the_op_accepts():
    e = raises(F.DTypeError, lambda: F.bitwise_or(F.zeros(1), F.zeros(1)), "bitwise_or")
    assert "bool or integer" in str(e)
    e = raises(F.DTypeError, lambda: F.abs(T([True])), "abs")
    assert "floating-point or integer" in str(e)


# ---- dims -------------------------------------------------------------------------------------
DIM_CASES = {
    "sum": (lambda: F.zeros(2, 3).sum(5), "sum", "5"),
    "sum tuple": (lambda: F.zeros(2, 3).sum((0, -3)), "sum", "-3"),
    "sum repeated": (lambda: F.zeros(2, 3).sum((0, -2)), "sum", "more than once"),
    "mean": (lambda: F.zeros(2).mean(1), "mean", "1"),
    "argmax": (lambda: F.zeros(2, 3).argmax(2), "argmax", "2"),
    "max": (lambda: F.zeros(2, 3).max(-3), "max", "-3"),
    "softmax": (lambda: F.softmax(F.zeros(2, 3), 2), "softmax", "2"),
    "log_softmax": (lambda: F.log_softmax(F.zeros(2, 3), -3), "log_softmax", "-3"),
    "transpose": (lambda: F.zeros(2, 3).transpose(0, 2), "transpose", "2"),
    "permute": (lambda: F.zeros(2, 3).permute(0, 0), "permute", "[0, 0]"),
    "permute count": (lambda: F.zeros(2, 3).permute(0), "permute", "[0]"),
    "unsqueeze": (lambda: F.zeros(2, 3).unsqueeze(4), "unsqueeze", "4"),
    "squeeze": (lambda: F.zeros(2, 1).squeeze(2), "squeeze", "2"),
    "flatten": (lambda: F.zeros(2, 3, 4).flatten(2, 1), "flatten", "2", "1"),
    "cat": (lambda: F.cat([F.zeros(2), F.zeros(2)], 1), "cat", "1"),
    "stack": (lambda: F.stack([F.zeros(2), F.zeros(2)], 3), "stack", "3"),
    "split": (lambda: F.zeros(4).split(2, 1), "split", "1"),
    "chunk": (lambda: F.zeros(4).chunk(2, -2), "chunk", "-2"),
    "size": (lambda: F.zeros(2, 3).size(2), "size", "2"),
    "getitem": (lambda: F.zeros(2, 3)[5], "getitem", "5"),
    "getitem dim 1": (lambda: F.zeros(2, 3)[:, -4], "getitem", "-4"),
    "too many indices": (lambda: F.zeros(2, 3)[0, 0, 0], "getitem", "2 dims"),
    "bool index": (lambda: F.zeros(2, 3)[T([True, False, True])], "getitem"),
}  # fmt: skip


@pytest.mark.parametrize("case", DIM_CASES, ids=str)
def test_dim_errors(case):
    """Out-of-range dims: a DimError, which is an IndexError (as in PyTorch) and a ValueError."""
    fn, *needles = DIM_CASES[case]
    e = raises(F.DimError, fn, *needles)
    assert isinstance(e, IndexError) and isinstance(e, ValueError)


def test_dim_must_be_an_int():
    with pytest.raises(TypeError, match="sum"):
        F.zeros(2).sum(0.5)
    with pytest.raises(TypeError, match="softmax"):
        F.softmax(F.zeros(2), "0")


# ---- devices ----------------------------------------------------------------------------------
@pytest.mark.skipif(F.is_cuda_available(), reason="a CUDA GPU is usable here")
@pytest.mark.parametrize("make", [
    lambda: F.tensor([1.0], device="cuda"),
    lambda: F.zeros(2, device="cuda"),
    lambda: F.ones(2, device=F.Device("cuda:0")),
    lambda: F.arange(3, device="cuda"),
    lambda: F.ones(2).to("cuda"),
    lambda: F.ones(2).cuda(),
])  # fmt: skip
def test_cuda_without_a_usable_gpu_is_a_device_error(make):
    """No GPU (or no cupy, or no driver): a DeviceError saying what is missing, never an
    ImportError or a cupy exception."""
    with pytest.raises(F.DeviceError) as info:
        make()
    assert isinstance(info.value, F.FusejitError) and isinstance(info.value, RuntimeError)
    assert "cuda" in str(info.value).lower()


def test_unknown_device():
    for spec in ("tpu", "cuda:x", "cpu:1"):
        e = raises(F.DeviceError, lambda s=spec: F.Device(s), spec)
        assert "cuda" in str(e)


def _on_cuda(t):
    """``t`` on cuda:0: the real thing when a GPU is usable, else a tensor that only claims to be
    there (device checks happen before any backend is used)."""
    if F.is_cuda_available():
        return t.to("cuda:0")
    return F.Tensor._wrap(t.numpy(), t.dtype, F.Device("cuda:0"))


MIXED = {
    "add": lambda c: c + _on_cuda(F.ones(3)),
    "mul": lambda c: _on_cuda(F.ones(3)) * c,
    "where": lambda c: F.where(c > 0, c, _on_cuda(F.ones(3))),
    "matmul": lambda c: c.reshape(1, 3) @ _on_cuda(F.ones(3, 1)),
    "cat": lambda c: F.cat([c, _on_cuda(F.ones(3))]),
    "stack": lambda c: F.stack([c, _on_cuda(F.ones(3))]),
    "layer_norm": lambda c: F.layer_norm(c, 3, _on_cuda(F.ones(3))),
    "setitem": lambda c: c.__setitem__(0, _on_cuda(F.tensor(2.0))),
    "getitem": lambda c: c[_on_cuda(T([0, 1]))],
}


@pytest.mark.parametrize("case", MIXED, ids=str)
def test_mixed_devices(case):
    c = F.ones(3)
    assert c.device == F.Device("cpu") and _on_cuda(c).device == F.Device("cuda:0")
    e = raises(F.DeviceError, lambda: MIXED[case](c), case)
    assert "cpu" in str(e) and "cuda:0" in str(e)


# ---- the hierarchy ----------------------------------------------------------------------------
def test_error_classes():
    assert issubclass(F.ShapeError, ValueError) and issubclass(F.DTypeError, TypeError)
    assert issubclass(F.DeviceError, RuntimeError) and issubclass(F.CompileError, RuntimeError)
    assert issubclass(F.DimError, IndexError) and issubclass(F.DimError, ValueError)
    for cls in (F.ShapeError, F.DTypeError, F.DeviceError, F.DimError, F.CompileError,
                F.TraceError):  # fmt: skip
        assert issubclass(cls, F.FusejitError)
