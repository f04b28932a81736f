"""The ONNX import rules of shape, movement, indexing, creation and logic ops on a device: each
rule run on the device's tensors (eagerly and traced, the constants it makes placed on the
node's device) gives what it gives on CPU tensors eagerly. Needs no ``onnx`` package (the
rules' semantics against onnx's reference evaluator: ``tests/test_onnx_import_shape.py``)."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit
from fusejit.onnx.importer import IMPORT_RULES, NodeContext

_rng = np.random.default_rng(1)
X = _rng.standard_normal((2, 8, 3, 4)).astype(np.float32)
N = _rng.integers(-20, 20, (3, 6)).astype(np.int64)


def _i(*v):
    return np.array(v, dtype=np.int64)


# (op, inputs, attrs, static inputs, n_outputs, float results compared within rtol)
CASES = [
    ("Slice", [X, _i(-1, 1), _i(-1000, 100), _i(1, 3), _i(-2, 3)], {}, (1, 2, 3, 4), 1, 0),
    ("Pad", [X, _i(0, 1, 2, 0, 0, 2, 1, 3)], {"mode": "reflect"}, (1,), 1, 0),
    ("Pad", [X, _i(0, 0, -1, 2, 0, 0, 2, -1), np.float32(1.5)], {}, (1, 2), 1, 0),
    ("Pad", [N, _i(2, 3, 1, 7)], {"mode": "wrap"}, (1,), 1, 0),
    ("Gather", [X, _i(1, -1, 0)], {"axis": 2}, (), 1, 0),
    ("GatherElements", [N, _rng.integers(-3, 3, (3, 6))], {"axis": 0}, (), 1, 0),
    ("GatherND", [X, np.array([[[1, 2], [-1, 0]]] * 2)], {"batch_dims": 1}, (), 1, 0),
    (
        "ScatterElements",
        [N, _i(0, 2, -1).reshape(1, 3), _i(7, 8, 9).reshape(1, 3)],
        {"axis": 1, "reduction": "add"},
        (),
        1,
        0,
    ),  # fmt: skip
    ("ScatterND", [N, _i(1, -1, 1).reshape(3, 1), N], {"reduction": "max"}, (), 1, 0),
    ("TopK", [N, _i(4)], {"largest": 0}, (1,), 2, 0),
    ("ArgMax", [N], {"axis": 1, "select_last_index": 1}, (), 1, 0),
    ("CumSum", [X, np.array(1)], {"exclusive": 1, "reverse": 1}, (1,), 1, 1e-6),
    ("OneHot", [N % 5, np.array(5), np.array([0.5, 2.0], np.float32)], {"axis": 1}, (1,), 1, 0),
    ("ReverseSequence", [X[0], _i(3, 1, 0)], {"batch_axis": 1, "time_axis": 0}, (), 1, 0),
    (
        "BitShift",
        [N.astype(np.int32), np.abs(N).astype(np.int32) % 40],
        {"direction": "RIGHT"},
        (),
        1,
        0,
    ),  # fmt: skip
    ("DepthToSpace", [X], {"blocksize": 2, "mode": "CRD"}, (), 1, 0),
    ("Expand", [X[:, :1], _i(3, 1, 1, 1, 1)], {}, (1,), 1, 0),
    ("Einsum", [X, X], {"equation": "bcij,bckj->bcik"}, (), 1, 1e-5),
    ("Where", [N > 0, N, -N], {}, (), 1, 0),
    ("IsInf", [np.array([np.inf, -np.inf, 1.0])], {"detect_positive": 0}, (), 1, 0),
    ("Cast", [X], {"to": 6}, (), 1, 0),
]


def _run(case, device, traced):
    op, inputs, attrs, static, n_out, _ = case
    statics = [np.asarray(a) if i in static else None for i, a in enumerate(inputs)]
    ctx = NodeContext(op, attrs, 21, statics, n_out, device=device)
    tensors = tuple(fusejit.tensor(np.asarray(a), device=device) for a in inputs)

    def f(*ts):
        return IMPORT_RULES[op](ctx, *ts)

    got = fusejit.trace(f, tensors)(*tensors) if traced else f(*tensors)
    return [g.cpu().numpy() for g in (got if isinstance(got, tuple) else (got,))]


def _device(name):
    if name == "cuda" and not fusejit.is_cuda_available():
        pytest.skip("needs an NVIDIA GPU with cupy")
    return "cuda:0" if name == "cuda" else "cpu"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("case", range(len(CASES)), ids=lambda i: f"{CASES[i][0]}{i}")
def test_rule_on_device_traced(case, device):
    device = _device(device)
    expect = _run(CASES[case], "cpu", traced=False)
    rtol = CASES[case][5]
    for traced in (False, True):
        for g, e in zip(_run(CASES[case], device, traced), expect):
            assert g.dtype == e.dtype and g.shape == e.shape
            if rtol:
                np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)
            else:
                np.testing.assert_array_equal(g, e)


def test_constants_are_made_on_the_nodes_device():
    ctx = NodeContext("ConstantOfShape", {}, 21, [_i(2, 3)], 1, device="cpu")
    t = IMPORT_RULES["ConstantOfShape"](ctx, fusejit.tensor(_i(2, 3)))
    assert t.device == fusejit.device("cpu") and t.tolist() == [[0.0] * 3] * 2
