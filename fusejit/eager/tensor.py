"""The eager ``Tensor``: a dtype, a device and an array of that device's backend.

Views (slicing, ``view``, ``transpose``, ...) share storage with their base, as in PyTorch.
The methods and operators of the ops, and ``to``, are attached at import time of
``fusejit.eager`` (``fusejit/eager/methods.py``): the modules defining them import this one.
"""

from __future__ import annotations

import numbers

import numpy as np

from fusejit.backends.host_pool import POOL as _HOST_POOL
from fusejit.base import dtypes as dt
from fusejit.base.device import CPU, Device, as_device
from fusejit.base.errors import (
    AutogradError,
    DeviceError,
    DTypeError,
    FusejitError,
    ShapeError,
    fmt_shape,
)
from fusejit.base.shapes import describe, norm_dim
from fusejit.eager import recording as _recording
from fusejit.eager.recording import read_value_hook

_POOL_IDS = _HOST_POOL.ids

__all__ = ["Tensor", "tensor", "from_numpy", "from_dlpack"]


class GradInfo:
    """What autograd knows of a tensor: whether it requires grad, its accumulated ``grad``, and
    (``fusejit/eager/autograd.py``) the node that made it (``node``, the result ``index`` of
    that node; None on a leaf), a leaf's gradient accumulator ``acc``, whether a non-leaf
    keeps its gradient (``retains``), and what a view written in place is a view of
    (``view``, and ``synced``: when it was last checked against it)."""

    __slots__ = ("requires_grad", "grad", "node", "index", "acc", "retains", "view", "synced")

    def __init__(self, requires_grad: bool = False, node=None, index: int = 0) -> None:
        self.requires_grad = requires_grad
        self.grad = None
        self.node = node
        self.index = index
        self.acc = None
        self.retains = False
        self.view = None  # (base, view op, attrs, result index) once written in place
        self.synced = -1  # (the in-place write epoch its view history was last checked at)


def _grad_info(t) -> GradInfo:
    info = getattr(t, "_ag", None)
    if info is None:
        info = t._ag = GradInfo()
    return info


class Tensor:
    """An n-dimensional array on a device.

    >>> import fusejit
    >>> t = fusejit.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> (t * 2 + 1).sum().item()
    24.0
    """

    # ``_ag``: what autograd knows of the tensor (``GradInfo``), None (or unset) on the tensors
    # that never took part in it (most), so that making a tensor stays a few stores; read it
    # with ``getattr(t, "_ag", None)``
    __slots__ = ("_data", "_dtype", "_device", "_ag", "__weakref__")
    __array_priority__ = 1000  # so numpy defers ``ndarray + Tensor`` to Tensor.__radd__

    @classmethod
    def _wrap(cls, data, dtype: dt.DType, device: Device) -> Tensor:
        t = object.__new__(cls)
        t._data = data
        t._dtype = dtype
        t._device = device
        t._ag = None
        return t

    def __del__(self) -> None:
        # a large CPU array from the host pool goes back to it when nothing else uses it
        # (backends/host_pool.py); the argument is passed without binding a local, which the
        # pool's reference count check relies on
        try:
            if id(self._data.base) in _POOL_IDS:
                _HOST_POOL.release(self._data)
        except (AttributeError, TypeError):  # a half-built tensor, or interpreter shutdown
            pass

    # ---- metadata ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        tracer = _recording.TRACER
        if tracer is not None and hasattr(tracer, "shape_of"):
            return tracer.shape_of(self)  # sizes of dynamic dims as SymInt (base/symbolic.py)
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> dt.DType:
        return self._dtype

    @property
    def device(self) -> Device:
        return self._device

    @property
    def is_cuda(self) -> bool:
        return self._device.type == "cuda"

    def size(self, dim: int | None = None):
        tracer = _recording.TRACER
        if tracer is not None and hasattr(tracer, "shape_of"):
            shape = tracer.shape_of(self, 3)
        else:
            shape = self._data.shape
        return shape if dim is None else shape[norm_dim("size", dim, self.ndim)]

    def numel(self) -> int:
        tracer = _recording.TRACER
        if tracer is not None and hasattr(tracer, "shape_of"):
            n = 1
            for s in tracer.shape_of(self, 3):  # (dynamic dims: an expression over the sizes)
                n = s * n
            return n
        return int(self._data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        tracer = _recording.TRACER
        if tracer is not None and hasattr(tracer, "shape_of"):
            return tracer.shape_of(self, 3)[0]
        return self._data.shape[0]

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def stride(self, dim: int | None = None):
        st = tuple(s // self._dtype.itemsize for s in self._data.strides)
        return st if dim is None else st[dim]

    def data_ptr(self) -> int:
        if self._device.type == "cpu":
            return self._data.__array_interface__["data"][0]
        return self._data.data.ptr

    # ---- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a numpy array (shares memory on the CPU, copies from a GPU)."""
        read_value_hook(self, "numpy")
        return self._device.backend.to_numpy(self._data)

    def tolist(self):
        read_value_hook(self, "tolist")
        return self._device.backend.to_numpy(self._data).tolist()

    def item(self):
        read_value_hook(self, "item")
        if self.numel() != 1:
            raise ValueError(
                f"item: a tensor with {self.numel()} elements cannot be converted to a scalar"
            )
        return self._device.backend.to_numpy(self._data).reshape(()).item()

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(
                f"bool: the truth value of a tensor of shape {fmt_shape(self.shape)} "
                "is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        read_value_hook(self, "__iter__")
        return (self[i] for i in range(self.shape[0]))

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)``: the CPU tensor's memory (numpy 2's ``copy``: True copies, False
        refuses a copy, None copies only for another ``dtype``); a GPU tensor is a TypeError,
        as in PyTorch (``.cpu()`` copies it to the host)."""
        if self._device.type != "cpu":
            raise TypeError(
                f"cannot convert a tensor on {self._device} to a numpy array; call .cpu() "
                "first to copy it to host memory"
            )
        read_value_hook(self, "__array__")
        arr = self._data
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            if copy is False:
                raise ValueError(
                    f"__array__: a {self._dtype.name} tensor cannot be viewed as {np.dtype(dtype)} "
                    "without a copy (copy=False)"
                )
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """The DLPack capsule of the tensor's memory (numpy's or cupy's export does the work):
        ``copy=True`` exports a copy, ``copy=False`` refuses one; ``dl_device=(1, 0)`` exports
        a GPU tensor's copy in host memory; ``stream`` is the consumer's CUDA stream."""
        data = self._data
        kwargs = {}
        if max_version is not None:
            kwargs["max_version"] = max_version
        if dl_device is not None and tuple(dl_device) != tuple(self.__dlpack_device__()):
            if int(dl_device[0]) != 1:
                raise BufferError(f"__dlpack__: cannot export a tensor on {self._device} to "
                                  f"DLPack device {tuple(dl_device)}")  # fmt: skip
            if copy is False:
                raise BufferError(f"__dlpack__: exporting a tensor on {self._device} to the "
                                  "host copies it (copy=False)")  # fmt: skip
            data, copy = self._device.backend.to_numpy(data), None
        elif stream is not None and self._device.type != "cpu":
            kwargs["stream"] = stream
        if copy is not None:
            kwargs["copy"] = copy
        return data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    @property
    def __cuda_array_interface__(self):
        if self._device.type != "cuda":
            raise AttributeError("__cuda_array_interface__ exists only on CUDA tensors")
        return self._data.__cuda_array_interface__

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Tensor:
        if device is None:
            device = "cuda"
        return self.to(as_device(device) if not isinstance(device, int) else f"cuda:{device}")

    def float(self) -> Tensor:
        return self.to(dtype=dt.float32)

    def double(self) -> Tensor:
        return self.to(dtype=dt.float64)

    def half(self) -> Tensor:
        return self.to(dtype=dt.float16)

    def int(self) -> Tensor:
        return self.to(dtype=dt.int32)

    def long(self) -> Tensor:
        return self.to(dtype=dt.int64)

    def bool(self) -> Tensor:
        return self.to(dtype=dt.bool_)

    def type(self, dtype=None):
        if dtype is None:
            return self._dtype.name
        return self.to(dtype=dtype)

    # ---- autograd ---------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """Whether ops on this tensor record their backward (only floating-point tensors)."""
        info = getattr(self, "_ag", None)
        return info is not None and info.requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if value and not self._dtype.is_floating_point:
            raise DTypeError(
                f"requires_grad: only floating-point tensors can require gradients, got a "
                f"{self._dtype.name} tensor of shape {fmt_shape(self.shape)}"
            )
        info = getattr(self, "_ag", None)
        if info is not None and info.node is not None and not value:
            raise AutogradError(
                f"requires_grad: only a leaf tensor's flag can be changed; this tensor of shape "
                f"{fmt_shape(self.shape)} is the result of {info.node.name()} (use detach())"
            )
        _grad_info(self).requires_grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place; returns ``self``."""
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated into this tensor by ``backward`` (None before)."""
        if _recording.TRACER is not None:
            _note_grad(self)
        info = getattr(self, "_ag", None)
        return None if info is None else info.grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if _recording.TRACER is not None:
            _note_grad(self)
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad: expected a tensor or None, got {type(value).__name__}")
            if value.shape != self.shape or value._dtype is not self._dtype:
                raise ShapeError(
                    f"grad: a gradient of shape {fmt_shape(value.shape)} and dtype "
                    f"{value._dtype.name} for a tensor of shape {fmt_shape(self.shape)} and "
                    f"dtype {self._dtype.name}"
                )
            if value._device != self._device:
                raise DeviceError(
                    f"grad: a gradient on {value._device} for a tensor on {self._device}"
                )
        _grad_info(self).grad = value

    # ---- printing ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        arr = self._device.backend.to_numpy(self._data)
        body = np.array2string(
            arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, precision=4
        )
        extras = []
        default = {dt.float32, dt.int64, dt.bool_, dt.complex64}
        # as torch: no dtype for the default float, and an empty tensor shows int64 and bool
        if self._dtype not in default or (arr.size == 0 and self._dtype is not dt.float32):
            extras.append(f"dtype={self._dtype!r}")
        if self._device is not CPU:
            extras.append(f"device='{self._device}'")
        if arr.size == 0:
            body = "[]"
            if self.ndim != 1:
                extras.insert(0, f"size={fmt_shape(self.shape)}")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    __str__ = __repr__


def _infer_dtype(data) -> dt.DType:
    """The dtype torch would give ``tensor(data)``: bool, int64, the default float or the
    default complex (complex64)."""
    arr = np.asarray(data)
    typed = isinstance(data, (np.ndarray, np.generic))  # numpy data keeps its dtype
    if arr.dtype.kind == "b":
        return dt.bool_
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.dtype != np.uint8:
            return dt.int64
        return dt.as_dtype(arr.dtype) if typed else dt.int64
    if arr.dtype.kind == "f":
        if typed and arr.dtype in (np.float16, np.float32, np.float64):
            return dt.as_dtype(arr.dtype)
        return dt.default_float
    if arr.dtype.kind == "c":  # complex64 unless numpy data says complex128, as torch
        if typed and arr.dtype == np.complex128:
            return dt.complex128
        return dt.default_complex
    raise DTypeError(f"tensor: cannot make a tensor from data of numpy dtype {arr.dtype}")


def _requires_grad_of(t: Tensor, requires_grad: bool) -> Tensor:
    return t.requires_grad_() if requires_grad else t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Make a tensor from a Python number, nested list, numpy array or tensor (copies).

    >>> import fusejit
    >>> fusejit.tensor([1, 2, 3]).dtype
    fusejit.int64
    """
    dev = as_device(device)
    if isinstance(data, Tensor):
        data = data.detach()  # (a copy without history, as PyTorch's)
        out = data.to(device=dev, dtype=dtype)
        return _requires_grad_of(out.clone() if out is data else out, requires_grad)
    if hasattr(data, "__cuda_array_interface__") and not isinstance(data, np.ndarray):
        src = from_dlpack(data)
        return _requires_grad_of(
            tensor(src, dtype=dtype, device=device if device is not None else src.device),
            requires_grad,
        )
    try:
        d = dt.as_dtype(dtype) if dtype is not None else _infer_dtype(data)
        arr = np.array(data, dtype=d.np, copy=True)
    except (FusejitError, ValueError, TypeError) as e:
        error = e
    else:
        return _requires_grad_of(Tensor._wrap(dev.backend.from_numpy(arr), d, dev), requires_grad)
    _check_data(data, "data")  # what numpy refused, in the user's terms
    if isinstance(error, FusejitError):
        raise error
    kind = ShapeError if isinstance(error, ValueError) else DTypeError
    raise kind(f"tensor: cannot convert data to a tensor: {error}")


def _check_data(data, path: str) -> tuple:
    """The shape of ``tensor(data)``; a leaf that is not a number (DTypeError) or nested lists
    of different shapes (ShapeError) raise, naming where they are (``data[1][0]``)."""
    if isinstance(data, (list, tuple)):
        shapes = [_check_data(v, f"{path}[{i}]") for i, v in enumerate(data)]
        for i, sh in enumerate(shapes[1:], 1):
            if sh != shapes[0]:
                raise ShapeError(
                    f"tensor: ragged nested lists: {path}[0] has shape {fmt_shape(shapes[0])} "
                    f"but {path}[{i}] has shape {fmt_shape(sh)}"
                )
        return (len(data), *(shapes[0] if shapes else ()))
    if isinstance(data, (np.ndarray, Tensor)):
        return tuple(data.shape)
    if isinstance(data, (numbers.Number, np.bool_)):
        return ()
    raise DTypeError(
        f"tensor: {path} is {describe(data)}; expected a number, a (nested) list of numbers, "
        "a numpy array or a tensor"
    )


def from_numpy(arr: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with numpy array ``arr``.

    >>> import numpy as np, fusejit
    >>> a = np.zeros(3, np.float32); t = fusejit.from_numpy(a); t.add_(1); a
    array([1., 1., 1.], dtype=float32)
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(arr).__name__}")
    return Tensor._wrap(arr, dt.as_dtype(arr.dtype), CPU)


def from_dlpack(obj) -> Tensor:
    """A tensor sharing memory with any DLPack-capable array (numpy, cupy, torch, ...)."""
    if isinstance(obj, Tensor):
        return obj
    dev_type, dev_id = obj.__dlpack_device__()
    if dev_type == 1:  # kDLCPU
        arr = np.from_dlpack(obj)
        return Tensor._wrap(arr, dt.as_dtype(arr.dtype), CPU)
    if dev_type == 2:  # kDLCUDA
        dev = Device(f"cuda:{dev_id}")
        arr = dev.backend.from_dlpack(obj)
        return Tensor._wrap(arr, dt.as_dtype(arr.dtype), dev)
    raise DeviceError(f"from_dlpack: unsupported DLPack device type {dev_type}")


def _note_grad(t: Tensor) -> None:
    """A trace (of a whole training step) keeps what ``.grad`` each tensor had when the
    function first read or set it: the compiled step checks it."""
    note = getattr(_recording.TRACER, "note_grad", None)
    if note is not None:
        note(t)
