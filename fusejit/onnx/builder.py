"""The state of one export: ONNX nodes and initializers as they are emitted, with the dtype of
every ONNX value, so that rules insert exactly the casts fusejit's promotion implies.

The ``onnx`` package is imported by the caller (``export``) and handed in, so that importing
``fusejit.onnx`` needs no ``onnx``.
"""

from __future__ import annotations

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import FusejitError


class ExportError(FusejitError, RuntimeError):
    """A graph that cannot be written as ONNX: an op with no export rule, an index or
    attribute the rule does not handle; the message names the op and the node."""


class Builder:
    def __init__(self, onnx, opset: int) -> None:
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.nbytes = 0  # the initializers' data
        self.dtypes: dict[str, dt.DType] = {}  # ONNX value name -> its fusejit dtype
        self._n = 0
        self._consts: dict = {}

    def fresh(self, hint: str = "t") -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def onnx_type(self, d: dt.DType) -> int:
        """The ONNX element type of dtype ``d`` (of a complex dtype: its real one, complex
        values being pairs: ``shape``)."""
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dt.real_of(d).np))

    @staticmethod
    def shape(d: dt.DType, shape) -> list:
        """The ONNX shape of a tensor of dtype ``d``: a complex one is a real tensor with a last
        dim of 2 (real and imaginary parts, as ``view_as_real``)."""
        return list(shape) + [2] if d.kind == "c" else list(shape)

    def node(self, op_type: str, inputs, out_dtype: dt.DType, n_out: int = 1, **attrs):
        """Emit one ONNX node; its outputs (all of ``out_dtype``): one name, or a list when
        ``n_out`` > 1."""
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, **attrs))
        for o in outs:
            self.dtypes[o] = out_dtype
        return outs[0] if n_out == 1 else outs

    def initializer(self, name: str, array: np.ndarray, d: dt.DType) -> str:
        arr = np.array(array, dtype=d.np, order="C")  # (0-d stays 0-d: a scalar)
        if d.kind == "c":
            arr = np.ascontiguousarray(np.stack([arr.real, arr.imag], -1))
        self.nbytes += arr.nbytes
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        self.dtypes[name] = d
        return name

    def const(self, value, d: dt.DType) -> str:
        """A constant of dtype ``d`` (a scalar or an array), one initializer per distinct value."""
        arr = np.asarray(value, dtype=d.np)
        key = (d.name, arr.shape, arr.tobytes())
        name = self._consts.get(key)
        if name is None:
            name = self._consts[key] = self.initializer(self.fresh("const"), arr, d)
        return name

    def ints(self, values) -> str:
        """A 1-d int64 constant (shapes, axes, starts, ...)."""
        return self.const(np.asarray(list(values), dtype=np.int64), dt.int64)

    def cast(self, name: str, d: dt.DType) -> str:
        if self.dtypes[name] is d:
            return name
        return self.node("Cast", [name], d, to=self.onnx_type(d))
