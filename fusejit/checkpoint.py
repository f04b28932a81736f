"""Checkpoints in the safetensors format: ``save_state_dict`` / ``load_state_dict``.

A model's ``state_dict()`` (or any dict of tensors) is written as a safetensors file that
PyTorch, ``safetensors.numpy`` and the rest of the ecosystem read: one entry per key, each
tensor its own contiguous copy (views, shared storage and non-contiguous tensors included; GPU
tensors are copied to the host), and a small JSON header entry ``"fusejit"`` (the fusejit
version, the kind of checkpoint, the key order). An optimizer (or its ``state_dict()``) is
written the same way: its state tensors as entries ``state.<index>.<name>``, its parameter
groups and other values as JSON in the header. Nothing is pickled.

The ``safetensors`` package is imported only when a checkpoint is written or read.

>>> import fusejit, os, tempfile
>>> from fusejit import nn
>>> model = nn.Linear(3, 2)
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> fusejit.save_state_dict(model, path)
>>> fresh = nn.Linear(3, 2)
>>> fresh.load_state_dict(fusejit.load_state_dict(path))
IncompatibleKeys(missing_keys=[], unexpected_keys=[])
>>> fusejit.equal(fresh.weight, model.weight)
True
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import OrderedDict

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import as_device
from fusejit.base.errors import DTypeError, FusejitError
from fusejit.eager.tensor import Tensor, from_numpy
from fusejit.nn.modules import Module
from fusejit.optim.optimizer import Optimizer

__all__ = ["save_state_dict", "load_state_dict", "CheckpointError"]

_FORMAT = "fusejit.state_dict"
_SAVABLE = {
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "complex64",
}


class CheckpointError(FusejitError, ValueError):
    """A checkpoint file cannot be written or read: corrupt, truncated, not safetensors, or
    holding what fusejit cannot represent. The message names the file."""


def _safetensors(what: str):
    try:
        import safetensors  # noqa: F401
        import safetensors.numpy as st_numpy
    except ImportError:
        raise ImportError(
            f"{what} needs the 'safetensors' package (pip install 'safetensors>=0.4'), "
            "which is not installed"
        ) from None
    return st_numpy


def _version() -> str:
    root = sys.modules.get("fusejit")
    return getattr(root, "__version__", "unknown")


def _host_array(key: str, t: Tensor) -> np.ndarray:
    if t.dtype.name not in _SAVABLE:
        raise DTypeError(
            f"save_state_dict: {key!r} has dtype {t.dtype.name}, which safetensors cannot store "
            "(it stores complex64, not complex128); save fusejit.view_as_real(t) instead"
        )
    a = t.detach().numpy() if hasattr(t, "detach") else t.numpy()
    # its own contiguous copy: views and tensors sharing storage are written independently
    return np.array(a, order="C", copy=True)


def _encode(value, where: str):
    """A JSON-able form of a hyper-parameter / state value (tuples tagged, to come back as
    tuples)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v, where) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(
        f"save_state_dict: cannot store {where} of type {type(value).__name__} (only tensors, "
        "numbers, strings, None and lists, tuples and dicts of them)"
    )


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _is_optimizer_state(obj) -> bool:
    return isinstance(obj, dict) and set(obj) == {"state", "param_groups"}


def _flatten(obj) -> tuple[dict, dict]:
    """The tensors to write (name -> numpy array) and the header's metadata."""
    if isinstance(obj, (Module, Optimizer)):
        obj = obj.state_dict()
    if _is_optimizer_state(obj):
        arrays, values = {}, {}
        for index, entries in obj["state"].items():
            values[str(index)] = {}
            for name, v in entries.items():
                key = f"state.{index}.{name}"
                if isinstance(v, Tensor):
                    arrays[key] = _host_array(key, v)
                    values[str(index)][name] = {"__tensor__": key}
                else:
                    values[str(index)][name] = _encode(v, key)
        groups = [_encode(g, f"param_groups[{i}]") for i, g in enumerate(obj["param_groups"])]
        head = {"format": _FORMAT, "version": _version(), "kind": "optimizer"}
        meta = {
            "fusejit": json.dumps(head),
            "param_groups": json.dumps(groups),
            "state": json.dumps(values),
        }
        return arrays, meta
    if not isinstance(obj, dict):
        raise TypeError(
            f"save_state_dict: expected a Module, an Optimizer or a dict of tensors (a "
            f"state_dict), got {type(obj).__name__}"
        )
    arrays = {}
    for key, v in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"save_state_dict: keys must be strings, got {key!r}")
        if not isinstance(v, Tensor):
            raise TypeError(
                f"save_state_dict: {key!r} is a {type(v).__name__}, not a tensor (a safetensors "
                "file holds tensors only; keep other values in a separate JSON file)"
            )
        arrays[key] = _host_array(key, v)
    head = {"format": _FORMAT, "version": _version(), "kind": "state_dict", "keys": list(obj)}
    return arrays, {"fusejit": json.dumps(head)}


def save_state_dict(obj, path, metadata: dict[str, str] | None = None) -> None:
    """Write ``obj``: a ``Module`` (its ``state_dict()``), a dict of tensors, an ``Optimizer``
    or an optimizer's ``state_dict()``, to ``path`` in the safetensors format (written to a
    temporary file and renamed, so a crash leaves no half-written checkpoint). ``metadata``:
    more string entries for the file's header.
    """
    st_numpy = _safetensors("save_state_dict")
    arrays, meta = _flatten(obj)
    if metadata:
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad or "fusejit" in metadata:
            raise ValueError(
                "save_state_dict: metadata must map strings to strings and not use the key "
                "'fusejit'"
            )
        meta = {**metadata, **meta}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fusejit-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        st_numpy.save_file(arrays, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str):
    """(metadata, {name: numpy array}) of a safetensors file, errors naming the file."""
    _safetensors("load_state_dict")
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_state_dict: no such checkpoint file: {path!r}")
    arrays = {}
    try:
        with safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
            for key in f.keys():
                arrays[key] = np.array(f.get_tensor(key), copy=True)
    except Exception as e:  # safetensors' own error type, or a dtype numpy lacks
        raise CheckpointError(
            f"load_state_dict: {path!r} is not a readable safetensors checkpoint "
            f"(corrupt, truncated or of another format): {e}"
        ) from None
    return meta, arrays


def _tensor(path: str, key: str, a: np.ndarray, device) -> Tensor:
    try:
        dt.as_dtype(a.dtype)
    except Exception:
        raise CheckpointError(
            f"load_state_dict: {path!r}: {key!r} has dtype {a.dtype}, which fusejit has no "
            "tensors of"
        ) from None
    t = from_numpy(a)
    return t if device is None or as_device(device).type == "cpu" else t.to(device)


def load_state_dict(path, device=None):
    """Read a checkpoint written by ``save_state_dict`` (or any safetensors file of tensors,
    e.g. one written by PyTorch): an ``OrderedDict`` of tensors for ``Module.load_state_dict``
    (in the order they were saved), or, for an optimizer's checkpoint, the
    ``{"state": ..., "param_groups": ...}`` dict for ``Optimizer.load_state_dict``. Tensors are
    placed on ``device`` (the CPU by default).
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    try:
        head = json.loads(meta["fusejit"]) if "fusejit" in meta else {}
        if head.get("kind") == "optimizer":
            groups = _decode(json.loads(meta["param_groups"]))
            values = json.loads(meta["state"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"load_state_dict: {path!r}: its fusejit header is damaged: {e}"
        ) from None
    if head.get("kind") == "optimizer":
        state = {}
        for index, entries in values.items():
            state[int(index)] = {
                name: _tensor(path, v["__tensor__"], arrays[v["__tensor__"]], device)
                if isinstance(v, dict) and set(v) == {"__tensor__"}
                else _decode(v)
                for name, v in entries.items()
            }
        return {"state": state, "param_groups": groups}
    keys = head.get("keys")
    if not isinstance(keys, list) or sorted(keys) != sorted(arrays):
        keys = list(arrays)
    return OrderedDict((k, _tensor(path, k, arrays[k], device)) for k in keys)
