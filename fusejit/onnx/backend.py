"""``fusejit.onnx.backend``: fusejit as an ONNX backend (``onnx.backend.base.Backend``), the
interface through which onnx's own node tests (``onnx.backend.test``) run a runtime.

>>> import numpy as np
>>> from onnx import helper, TensorProto
>>> from fusejit.onnx.backend import FusejitBackend
>>> node = helper.make_node("Abs", ["x"], ["y"])
>>> g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
...     [2])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
>>> FusejitBackend.run_model(helper.make_model(g), [np.array([-1.0, 2.0], np.float32)])[0]
array([1., 2.], dtype=float32)
"""

from __future__ import annotations

import numpy as np
import onnx  # (this module is imported only by who runs fusejit as an ONNX backend)
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from fusejit.onnx.importer.loader import OnnxModule, load

__all__ = ["FusejitBackend", "FusejitRep", "prepare", "run_model", "run_node", "supports_device"]


class FusejitRep(BackendRep):
    """A prepared model: ``run(inputs)`` gives its outputs as numpy arrays, in order."""

    def __init__(self, module: OnnxModule) -> None:
        self.module = module

    def run(self, inputs, **kwargs) -> tuple:
        if isinstance(inputs, dict):
            outs = self.module(**inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            outs = self.module(*inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        return tuple(np.asarray(o.cpu().numpy()) for o in outs)


class FusejitBackend(Backend):
    """ONNX backend running models through ``fusejit.onnx.load`` (``device``: "CPU" or
    "CUDA")."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> FusejitRep:
        super().prepare(model, device, **kwargs)
        return FusejitRep(load(model, _device(device), **kwargs))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        d = Device(device)
        if d.type == DeviceType.CPU:
            return True
        if d.type == DeviceType.CUDA:
            import fusejit  # (the package's namespace: this module sits below it)

            return fusejit.is_cuda_available()
        return False


def _device(device: str) -> str:
    d = Device(device)
    return "cuda" if d.type == DeviceType.CUDA else "cpu"


prepare = FusejitBackend.prepare
run_model = FusejitBackend.run_model
run_node = FusejitBackend.run_node
supports_device = FusejitBackend.supports_device
