"""ONNX import of the shape, movement, indexing, creation and logic ops: one-node models run by
``fusejit.onnx.load`` (traced: the inputs given as initializers known when the model is loaded,
the others at run time) against onnx's reference evaluator on the same model and inputs,
exactly (these ops move, select, compare or count values), over the ops' attribute forms,
opsets and dtypes. The forms that cannot be traced (a ``Compress`` or ``NonZero`` of values
known only at run time) call the rule eagerly. onnx's own node tests of these ops run in
``tests/test_onnx_import_node.py``."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="fusejit.onnx import tests need the onnx package")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import fusejit  # noqa: E402
from fusejit.onnx.importer import IMPORT_RULES, ImportError_, NodeContext  # noqa: E402

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min

_rng = np.random.default_rng(0)


def _data(shape, dtype=np.float32):
    if dtype == np.bool_:
        return _rng.random(shape) > 0.5
    if np.issubdtype(dtype, np.integer):
        return _rng.integers(0, 10 if dtype == np.uint8 else 20, shape).astype(dtype)
    return _rng.standard_normal(shape).astype(dtype)


def _i(*v):
    return np.array(v, dtype=np.int64)


def _decode(attr):
    v = helper.get_attribute_value(attr)
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode() for s in v]
    return v


def _model(op, inputs, attrs, static, n_outputs, opset, outputs=None):
    """A one-node model: the ``static`` inputs as initializers (known when it is loaded), the
    others as graph inputs, the outputs typed as the arrays ``outputs`` (untyped: None); and
    its feeds."""
    names = [f"x{i}" if a is not None else "" for i, a in enumerate(inputs)]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    runtime = [(n, a) for i, (n, a) in enumerate(zip(names, inputs)) if a is not None]
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for i, (n, a) in enumerate(zip(names, inputs))
            if a is not None and i not in static
        ],
        [
            helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
            if outputs is None
            else helper.make_tensor_value_info(
                o, helper.np_dtype_to_tensor_dtype(np.asarray(r).dtype), np.shape(r)
            )
            for o, r in zip(outs, outputs or outs)
        ],
        [
            numpy_helper.from_array(np.asarray(inputs[i]), names[i])
            for i in static
            if i < len(inputs)
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: a for i, (n, a) in enumerate(runtime) if int(n[1:]) not in static}
    return model, feeds, node


def run_rule(op, inputs, attrs=None, static=(), n_outputs=1, opset=21, ref=None):
    """The node's outputs (numpy) run by ``fusejit.onnx.load`` on a one-node model, and the
    reference evaluator's on the same model (unless ``ref`` gives them)."""
    model, feeds, _ = _model(op, inputs, attrs or {}, static, n_outputs, opset)
    if ref is None:
        ref = ReferenceEvaluator(model).run(None, feeds)
    model, feeds, _ = _model(op, inputs, attrs or {}, static, n_outputs, opset, ref)
    got = fusejit.onnx.load(model)(*[fusejit.tensor(a) for a in feeds.values()])
    got = got if isinstance(got, tuple) else (got,)
    return [g.numpy() for g in got], ref


def run_rule_directly(op, inputs, attrs=None, static=(), n_outputs=1, opset=21):
    """The rule's outputs called on fusejit tensors, eagerly (no loader, no trace), and the
    reference evaluator's."""
    model, feeds, node = _model(op, inputs, attrs or {}, (), n_outputs, opset)
    statics = [
        NodeContext.ABSENT if a is None else (np.asarray(a) if i in static else None)
        for i, a in enumerate(inputs)
    ]
    ctx = NodeContext(op, {a.name: _decode(a) for a in node.attribute}, opset, statics, n_outputs)
    got = IMPORT_RULES[op](ctx, *[None if a is None else fusejit.tensor(a) for a in inputs])
    got = got if isinstance(got, tuple) else (got,)
    return [g.numpy() for g in got], ReferenceEvaluator(model).run(None, feeds)


def check(
    op, inputs, attrs=None, static=(), n_outputs=1, opset=21, ref=None, rtol=0.0, direct=False
):
    """The node's outputs (run by ``fusejit.onnx.load``, or the rule called eagerly when
    ``direct``) equal the reference evaluator's (or ``ref``, for forms the evaluator does not
    run): dtype, shape and values (exactly, or within ``rtol`` for sums in another order)."""
    if direct:
        got, expect = run_rule_directly(op, inputs, attrs, static, n_outputs, opset)
    else:
        got, expect = run_rule(op, inputs, attrs, static, n_outputs, opset, ref)
    assert len(got) == len(expect)
    for g, r in zip(got, expect):
        r = np.asarray(r)
        assert g.dtype == r.dtype, (op, g.dtype, r.dtype)
        assert g.shape == r.shape, (op, g.shape, r.shape)
        if rtol and g.dtype.kind == "f":
            np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol)
        else:
            np.testing.assert_array_equal(g, r)


DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_]
NUM_DTYPES = [np.float32, np.float64, np.int64, np.int32]
FLOATS = [np.float32, np.float64]

# (op, inputs, attrs, static inputs, n_outputs, opset)
MOVEMENT = [
    ("Reshape", lambda d: [_data((2, 3, 4), d), _i(4, -1)], {}, (1,), 1, 21),
    ("Reshape", lambda d: [_data((2, 3, 4), d), _i(0, 0, -1, 2)], {}, (1,), 1, 21),
    ("Reshape", lambda d: [_data((0, 3), d), _i(3, 0)], {"allowzero": 1}, (1,), 1, 21),
    ("Reshape", lambda d: [_data((2, 3), d), _i(-1)], {}, (1,), 1, 13),
    # no-ops (the rule returns its input: no graph node)
    ("Reshape", lambda d: [_data((2, 3), d), _i(2, -1)], {}, (1,), 1, 21),
    ("Transpose", lambda d: [_data((2, 3, 4), d)], {"perm": [0, 1, 2]}, (), 1, 21),
    ("Expand", lambda d: [_data((3, 2), d), _i(1)], {}, (1,), 1, 21),
    ("Tile", lambda d: [_data((2, 3), d), _i(1, 1)], {}, (1,), 1, 21),
    ("Squeeze", lambda d: [_data((2, 3), d)], {}, (), 1, 21),
    ("Flatten", lambda d: [_data((2, 3), d)], {}, (), 1, 21),
    ("Flatten", lambda d: [_data((2, 3, 4), d)], {}, (), 1, 21),
    ("Flatten", lambda d: [_data((2, 3, 4), d)], {"axis": 0}, (), 1, 21),
    ("Flatten", lambda d: [_data((2, 3, 4), d)], {"axis": -1}, (), 1, 21),
    ("Flatten", lambda d: [_data((2, 3, 4), d)], {"axis": 3}, (), 1, 21),
    ("Transpose", lambda d: [_data((2, 3, 4), d)], {}, (), 1, 21),
    ("Transpose", lambda d: [_data((2, 3, 4), d)], {"perm": [1, 2, 0]}, (), 1, 21),
    ("Squeeze", lambda d: [_data((1, 3, 1, 2), d)], {}, (), 1, 21),
    ("Squeeze", lambda d: [_data((1, 3, 1, 2), d), _i(-2)], {}, (1,), 1, 21),
    ("Squeeze", lambda d: [_data((1, 3, 1, 2), d)], {"axes": [0, 2]}, (), 1, 11),
    ("Unsqueeze", lambda d: [_data((3, 2), d), _i(0, -1)], {}, (1,), 1, 21),
    ("Unsqueeze", lambda d: [_data((3, 2), d), _i(1, 3)], {}, (1,), 1, 13),
    ("Unsqueeze", lambda d: [_data((3, 2), d)], {"axes": [0, 3]}, (), 1, 11),
    (
        "Concat",
        lambda d: [_data((2, 3), d), _data((2, 1), d), _data((2, 0), d)],
        {"axis": -1},
        (),
        1,
        21,
    ),  # noqa: E501
    ("Concat", lambda d: [_data((2, 3), d), _data((1, 3), d)], {"axis": 0}, (), 1, 21),
    ("Split", lambda d: [_data((6, 2), d)], {}, (), 3, 21),
    ("Split", lambda d: [_data((2, 7), d), _i(2, 5)], {"axis": 1}, (1,), 2, 21),
    ("Split", lambda d: [_data((2, 7), d)], {"axis": -1, "num_outputs": 3}, (), 3, 18),
    ("Split", lambda d: [_data((2, 7), d)], {"axis": 1, "split": [3, 4]}, (), 2, 11),
    ("Expand", lambda d: [_data((3, 1), d), _i(2, 1, 4)], {}, (1,), 1, 21),
    ("Expand", lambda d: [_data((2, 3), d), _i(3, 1, 1)], {}, (1,), 1, 21),
    ("Tile", lambda d: [_data((2, 3), d), _i(2, 3)], {}, (1,), 1, 21),
    ("Tile", lambda d: [_data((2, 3), d), _i(1, 0)], {}, (1,), 1, 21),
    ("Identity", lambda d: [_data((2, 3), d)], {}, (), 1, 21),
    ("Trilu", lambda d: [_data((2, 3, 4), d)], {}, (), 1, 21),
    ("Trilu", lambda d: [_data((3, 4), d), _i(-1)], {"upper": 0}, (1,), 1, 21),
    ("Trilu", lambda d: [_data((3, 4), d), np.array(2, np.int64)], {"upper": 1}, (1,), 1, 21),
    ("Trilu", lambda d: [_data((2, 3, 4), d), np.array(-1, np.int64)], {"upper": 1}, (), 1, 21),
    ("Trilu", lambda d: [_data((4, 3), d), np.array(1, np.int64)], {"upper": 0}, (), 1, 21),
    ("Shape", lambda d: [_data((2, 3, 4), d)], {}, (), 1, 21),
    ("Shape", lambda d: [_data((2, 3, 4), d)], {"start": 1}, (), 1, 21),
    ("Shape", lambda d: [_data((2, 3, 4), d)], {"start": -2, "end": -1}, (), 1, 21),
    ("Shape", lambda d: [_data((2, 3, 4), d)], {"start": -9, "end": 9}, (), 1, 21),
    ("Size", lambda d: [_data((2, 3, 4), d)], {}, (), 1, 21),
    ("Size", lambda d: [_data((), d)], {}, (), 1, 21),
    ("EyeLike", lambda d: [_data((3, 4), d)], {}, (), 1, 21),
    ("EyeLike", lambda d: [_data((4, 3), d)], {"k": -1}, (), 1, 21),
    ("EyeLike", lambda d: [_data((3, 4), d)], {"k": 2, "dtype": TensorProto.DOUBLE}, (), 1, 21),
]

SLICES = [
    (_i(1), _i(3), None, None),
    (_i(0, 1), _i(-1, 1000), None, None),
    (_i(-1), _i(-1000), _i(1), _i(-1)),
    (_i(3), _i(0), _i(0), _i(-2)),
    (_i(I64_MAX), _i(I64_MIN), _i(-1), _i(-3)),
    (_i(0, 1), _i(I64_MAX, 6), _i(-1, 0), _i(2, 3)),
    (_i(2), _i(2), _i(1), None),
    (_i(-100), _i(100), _i(1), _i(4)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", range(len(MOVEMENT)), ids=lambda i: MOVEMENT[i][0] + str(i))
def test_movement(case, dtype):
    op, make, attrs, static, n_out, opset = MOVEMENT[case]
    check(op, make(dtype), attrs, static, n_out, opset)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", range(len(SLICES)))
def test_slice(case, dtype):
    starts, ends, axes, steps = SLICES[case]
    x = _data((5, 7), dtype)
    ins = [x, starts, ends, axes, steps]
    while ins[-1] is None:
        ins.pop()
    check("Slice", ins, static=(1, 2, 3, 4))


def test_slice_opset1_attributes():
    x = _data((5, 7))
    check("Slice", [x], {"starts": [1, -3], "ends": [1000, -1], "axes": [0, 1]}, opset=9)


PAD_MODES = ["constant", "reflect", "edge", "wrap"]


@pytest.mark.parametrize("dtype", NUM_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("pads", [(1, 2, 2, 1), (0, 3, 0, 0), (-1, 1, 2, -2)])
def test_pad(pads, mode, dtype):
    x = _data((4, 5), dtype)
    ins = [x, _i(*pads)]
    if mode == "constant":
        ins.append(np.array(7, dtype=dtype))
    ref = None
    if min(pads) < 0:  # (the evaluator refuses negative pads: they crop first, as onnxruntime)
        crop = x[max(-pads[0], 0) : 4 - max(-pads[2], 0), max(-pads[1], 0) : 5 - max(-pads[3], 0)]
        grow = [(max(pads[0], 0), max(pads[2], 0)), (max(pads[1], 0), max(pads[3], 0))]
        kw = {"constant_values": 7} if mode == "constant" else {}
        ref = [np.pad(crop, grow, mode=mode, **kw)]
    check("Pad", ins, {"mode": mode}, static=(1, 2), ref=ref)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_axes_and_runtime_value(mode):
    x = _data((2, 4, 5))
    check("Pad", [x, _i(2, 1, 1, 3), None, _i(-1, 0)], {"mode": mode}, static=(1, 3))
    # a constant value known only at run time
    check("Pad", [x, _i(0, 1, 0, 1, 0, 2), np.array(2.5, np.float32)], {}, static=(1,))


def test_pad_opset2_attributes():
    x = _data((3, 4))
    check("Pad", [x], {"pads": [1, 0, 2, 1], "mode": "edge"}, opset=10)
    check("Pad", [x], {"pads": [1, 0, 2, 1], "value": 1.5}, opset=10)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather_family(dtype, idx_dtype):
    x = _data((4, 5, 3), dtype)
    idx = np.array([[0, -1], [3, 2], [-4, 1]], dtype=idx_dtype)
    check("Gather", [x, idx])
    check("Gather", [x, idx], {"axis": 1})
    check("Gather", [x, np.array(-2, idx_dtype)], {"axis": -1})
    ge = np.array([[[0, -1, 2]] * 5] * 7, dtype=idx_dtype)
    check("GatherElements", [x, ge], {"axis": 0})
    check("GatherElements", [x, np.array([[[1], [-2], [0], [2], [1]]] * 4, idx_dtype)], {"axis": 2})
    # indices smaller than the data in the other dims read the data's leading corner
    small = np.array([[[1], [-2]]], idx_dtype)
    check("GatherElements", [x, small], {"axis": 2}, ref=[x[:1, :2][np.arange(1)[:, None, None],
          np.arange(2)[None, :, None], np.array([[[1], [1]]])]])  # fmt: skip
    nd = np.array([[0, 1], [-1, 4], [2, -5]], dtype=np.int64)
    check("GatherND", [x, nd])
    check("GatherND", [x, np.array([[[1]], [[3]]], np.int64)])
    check("GatherND", [x, np.array([[0, 1, 2], [3, 4, 0]], np.int64)])


def test_gather_nd_batch_dims():
    x = _data((2, 3, 4, 5))
    check("GatherND", [x, _rng.integers(0, 3, (2, 3, 2, 1))], {"batch_dims": 2})
    check("GatherND", [x, _rng.integers(0, 3, (2, 6, 2))], {"batch_dims": 1})


@pytest.mark.parametrize("dtype", NUM_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter(reduction, dtype):
    data = _data((4, 5), dtype)
    attrs = {"reduction": reduction} if reduction != "none" else {}
    # distinct indices for "none" (ONNX leaves duplicates' order undefined)
    idx = (
        np.array([[0, -1, 2], [3, 1, 0]])
        if reduction == "none"
        else np.array([[0, 0, 2], [0, 1, -4]])
    )  # noqa: E501
    check("ScatterElements", [data, idx, _data((2, 3), dtype)], {"axis": 1, **attrs})
    check("ScatterElements", [data, idx.T.copy(), _data((3, 2), dtype)], {"axis": 0, **attrs})
    nd = np.array([[1], [3]]) if reduction == "none" else np.array([[1], [-3], [1]])
    check("ScatterND", [data, nd, _data((len(nd), 5), dtype)], attrs)
    nd2 = np.array([[[0, 1], [2, 3]]]) if reduction == "none" else np.array([[[0, 1], [0, -4]]])
    check("ScatterND", [data, nd2, _data((1, 2), dtype)], attrs)


@pytest.mark.parametrize("dtype", NUM_DTYPES, ids=lambda d: np.dtype(d).name)
def test_topk_argmax_cumsum(dtype):
    x = _data((3, 6), dtype)
    x[0, :3] = x[0, 3:]  # ties: the lower index first
    for largest in (0, 1):
        check("TopK", [x, _i(3)], {"largest": largest}, static=(1,), n_outputs=2)
        check("TopK", [x, _i(2)], {"axis": 0, "largest": largest}, static=(1,), n_outputs=2)
    check("TopK", [x], {"k": 2}, n_outputs=2, opset=9)
    for op in ("ArgMax", "ArgMin"):
        for keep in (0, 1):
            for last in (0, 1):
                attrs = {"axis": -1, "keepdims": keep, "select_last_index": last}
                check(op, [x], attrs)
        check(op, [x], {})
    for ex in (0, 1):
        for rev in (0, 1):
            check("CumSum", [x, np.array(1)], {"exclusive": ex, "reverse": rev}, static=(1,))
            check("CumSum", [x, np.array(-2, np.int32)], {"exclusive": ex, "reverse": rev}, (1,))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_where_compress_nonzero(dtype):
    x, y = _data((3, 4), dtype), _data((4,), dtype)
    check("Where", [_data((3, 1), np.bool_), x, y])
    cond = np.array([True, False, True])
    check("Compress", [x, cond], {"axis": 0}, static=(1,))
    check("Compress", [x, cond], {"axis": 0}, direct=True)  # condition known at run time: eager
    check("Compress", [x, np.array([False, True, True, False, True])], {}, static=(1,))
    check("Compress", [x, np.array([False, True])], {"axis": -1}, static=(1,))
    check("NonZero", [x], direct=True)
    check("NonZero", [x], static=(0,))


@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=lambda d: np.dtype(d).name)
def test_space_depth_and_reverse_sequence(dtype):
    x = _data((2, 8, 3, 2), dtype)
    for mode in ("DCR", "CRD"):
        check("DepthToSpace", [x], {"blocksize": 2, "mode": mode})
    check("SpaceToDepth", [_data((2, 3, 4, 6), dtype)], {"blocksize": 2})
    s = _data((4, 3, 2), dtype)
    check("ReverseSequence", [s, _i(4, 1, 3)], {"batch_axis": 1, "time_axis": 0})
    check("ReverseSequence", [s, _i(1, 2, 3, 2)], {"batch_axis": 0, "time_axis": 1})


@pytest.mark.parametrize("dtype", NUM_DTYPES, ids=lambda d: np.dtype(d).name)
def test_einsum(dtype):
    a, b = _data((2, 3, 4), dtype), _data((2, 4, 5), dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-14  # (sums in another order)
    check("Einsum", [a, b], {"equation": "bij, bjk -> bik"}, rtol=rtol)
    check("Einsum", [a], {"equation": "...ij->...ji"})
    check("Einsum", [_data((3, 3), dtype)], {"equation": "ii"}, rtol=rtol)
    check("Einsum", [a, _data((4,), dtype)], {"equation": "bij,j"}, rtol=rtol)


def test_creation():
    check("Constant", [], {"value": numpy_helper.from_array(_data((2, 3), np.float64))})
    check("Constant", [], {"value": numpy_helper.from_array(np.array(3, np.int32))})
    check("Constant", [], {"value_float": 1.5})
    check("Constant", [], {"value_floats": [1.5, -2.0]})
    check("Constant", [], {"value_int": 7})
    check("Constant", [], {"value_ints": [7, -1, 3]})
    check("ConstantOfShape", [_i(2, 3)], static=(0,))
    check("ConstantOfShape", [_i()], static=(0,))
    for arr in (np.array([4], np.int64), np.array([2.5], np.float64), np.array([1], np.int32)):
        check("ConstantOfShape", [_i(2, 0)], {"value": numpy_helper.from_array(arr)}, (0,))
        check("ConstantOfShape", [_i(3)], {"value": numpy_helper.from_array(arr)}, (0,))
    for start, limit, delta, d in [
        (0, 10, 3, np.int64),
        (10, 0, -2, np.int32),
        (1.0, 2.0, 0.3, np.float32),
        (-1.5, 1.5, 0.25, np.float64),
        (5, 1, 1, np.int64),
        (0.1, 7.3, 0.7, np.float32),
        (0.1, 7.3, 0.7, np.float16),
    ]:
        ins = [np.array(v, d) for v in (start, limit, delta)]
        check("Range", ins, static=(0, 1, 2))


@pytest.mark.parametrize("values_dtype", [np.float32, np.int64, np.int32])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis, values_dtype):
    idx = np.array([[0, 3, -1], [5, -7, 2]], dtype=np.int64)
    vals = np.array([-2, 5], dtype=values_dtype)
    check("OneHot", [idx, np.array(5, np.int64), vals], {"axis": axis}, static=(1,))
    check("OneHot", [idx.astype(np.float32), np.array(4.0, np.float32), vals], {}, static=(1,))


CAST_TO = {
    TensorProto.FLOAT: np.float32,
    TensorProto.DOUBLE: np.float64,
    TensorProto.INT64: np.int64,
    TensorProto.INT32: np.int32,
    TensorProto.INT8: np.int8,
    TensorProto.UINT8: np.uint8,
    TensorProto.BOOL: np.bool_,
    TensorProto.FLOAT16: np.float16,
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("to", list(CAST_TO), ids=lambda t: np.dtype(CAST_TO[t]).name)
def test_cast(to, dtype):
    x = _data((3, 4), dtype)
    if dtype in FLOATS:
        x = (x * 50).astype(dtype)
        target = CAST_TO[to]
        if np.issubdtype(target, np.integer):
            # (floats outside the target's range convert to undefined values in C and ONNX)
            info = np.iinfo(target)
            x = np.clip(x, info.min, info.max).astype(dtype)
    check("Cast", [x], {"to": to})
    check("CastLike", [x, np.zeros(1, CAST_TO[to])])


def test_cast_to_unsupported_type_names_it():
    with pytest.raises(ImportError_, match="bfloat16"):
        run_rule("Cast", [_data((2,))], {"to": TensorProto.BFLOAT16})


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_compare(dtype):
    a, b = _data((3, 4), dtype), _data((4,), dtype)
    a[0] = b
    for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        if dtype == np.bool_ and op != "Equal":
            continue
        check(op, [a, b])


def test_logic_and_bits():
    a, b = _data((3, 4), np.bool_), _data((4,), np.bool_)
    for op in ("And", "Or", "Xor"):
        check(op, [a, b])
    check("Not", [a])
    for d in (np.int32, np.int64, np.uint8, np.int8):
        x = _rng.integers(-100, 100, (3, 4)) if d != np.uint8 else _rng.integers(0, 255, (3, 4))
        y = _rng.integers(0, 100, (4,))
        for op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
            check(op, [x.astype(d), y.astype(d)])
        check("BitwiseNot", [x.astype(d)])
    x = np.array([1, 3, 200, 255, 16, 7], np.uint8)
    y = np.array([1, 2, 1, 0, 4, 9], np.uint8)
    for direction in ("LEFT", "RIGHT"):
        check("BitShift", [x, y], {"direction": direction})
    # signed (opset 28): arithmetic right shifts, bits past the sign dropped, shifts that are
    # negative or not under the width give 0 (-1 for a negative x shifted right)
    for d in (np.int8, np.int16, np.int32, np.int64):
        bits = 8 * np.dtype(d).itemsize
        x = np.array([1, -3, 100, -128, 77, -1, 5, -7, 2], d)
        y = np.array([1, 2, bits - 1, 3, bits, bits + 5, -1, -2, bits // 2], d)
        for direction in ("LEFT", "RIGHT"):
            check("BitShift", [x, y], {"direction": direction}, opset=28)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_isnan_isinf(dtype):
    x = np.array([1.0, np.inf, -np.inf, np.nan, 0.0, -3.0], dtype)
    check("IsNaN", [x])
    for pos in (0, 1):
        for neg in (0, 1):
            check("IsInf", [x], {"detect_positive": pos, "detect_negative": neg})


def test_errors_name_the_node():
    x = _data((2, 3))
    ctx = NodeContext("Reshape", {}, 21, [None, None], 1, name="r1")
    with pytest.raises(ImportError_, match="Reshape node 'r1'.*known when the model is loaded"):
        IMPORT_RULES["Reshape"](ctx, fusejit.tensor(x), fusejit.tensor(_i(3, 2)))
    with pytest.raises(ImportError_, match="value_string"):
        run_rule("Constant", [], {"value_string": "a"})
    v = numpy_helper.from_array(np.array([1], np.uint64))
    for op in ("Constant", "ConstantOfShape"):
        with pytest.raises(ImportError_, match="(?i)value.*uint64"):
            run_rule(op, [] if op == "Constant" else [_i(2)], {"value": v}, static=(0,))
        # the rule itself (given the value decoded) refuses it too, not converting it
        ctx = NodeContext(op, {"value": np.array([1], np.uint64)}, 21, [_i(2)], 1)
        with pytest.raises(ImportError_, match=f"ONNX {op}: a value of type uint64"):
            IMPORT_RULES[op](ctx, *([] if op == "Constant" else [fusejit.tensor(_i(2))]))


def test_rules_trace_into_one_graph():
    """Rules only call fusejit ops on tensors, so a chain of them traces (and fuses) like
    any fusejit function."""
    x = _data((2, 3, 4))

    def f(t):
        ctx = NodeContext("Slice", {}, 21, [None, _i(-1), _i(-1000), _i(2), _i(-2)], 1)
        y = IMPORT_RULES["Slice"](ctx, t, *[fusejit.tensor(_i(0))] * 4)
        ctx = NodeContext("Pad", {"mode": "reflect"}, 21, [None, _i(0, 1, 1, 0, 1, 1)], 1)
        y = IMPORT_RULES["Pad"](ctx, y, fusejit.tensor(_i(0)))
        ctx = NodeContext("CumSum", {"exclusive": 1}, 21, [None, _i(1)], 1)
        return IMPORT_RULES["CumSum"](ctx, y, fusejit.tensor(_i(1)))

    traced = fusejit.trace(f, (fusejit.tensor(x),))
    np.testing.assert_array_equal(traced(fusejit.tensor(x)).numpy(), f(fusejit.tensor(x)).numpy())
    expect = np.pad(x[:, :, ::-2], [(0, 0), (1, 1), (1, 1)], mode="reflect")
    expect = np.cumsum(expect, axis=1) - expect
    np.testing.assert_allclose(traced(fusejit.tensor(x)).numpy(), expect, rtol=1e-6, atol=1e-6)


def test_value_dependent_shapes_trace_only_with_a_static_condition():
    x = _data((4, 3))
    cond = np.array([True, False, True, True])

    def compress(t, c):
        ctx = NodeContext("Compress", {"axis": 0}, 21, [None, cond], 1)
        return IMPORT_RULES["Compress"](ctx, t, c)

    args = (fusejit.tensor(x), fusejit.tensor(cond))
    np.testing.assert_array_equal(fusejit.trace(compress, args)(*args).numpy(), x[cond])

    def nonzero(t):
        return IMPORT_RULES["NonZero"](NodeContext("NonZero", {}, 21, [None], 1), t)

    with pytest.raises(fusejit.TraceError, match="nonzero"):
        fusejit.trace(nonzero, (fusejit.tensor(x),))(fusejit.tensor(x))


def test_shape_arithmetic_of_an_exported_model_folds_into_constants():
    """The Shape -> Gather -> Unsqueeze -> Concat -> Reshape pattern of exported models, and
    ConstantOfShape / Range / Slice on the results: the values computed from shapes are known
    when the model is loaded, so the traced graph keeps only the reshape, the flip and one fused
    kernel."""
    c = numpy_helper.from_array
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["i0"], value=c(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "i0"], ["b"]),
        helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        helper.make_node("Concat", ["b1", "m1"], ["shp"], axis=0),
        helper.make_node("Reshape", ["x", "shp"], ["y"]),
        helper.make_node("Shape", ["y"], ["s2"], start=-1),
        helper.make_node("ConstantOfShape", ["s2"], ["ones"], value=c(np.array([2.0], np.float32))),
        helper.make_node("Range", ["r0", "n", "r1"], ["r"]),
        helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["y", "st", "en", "ax", "st"], ["ys"]),
        helper.make_node("Mul", ["ys", "ones"], ["z0"]),
        helper.make_node("Add", ["z0", "rf"], ["z"]),
    ]
    named = {"ax": _i(0), "m1": _i(-1), "r0": np.array(0), "n": np.array(12), "r1": np.array(1)}
    inits = [c(v, n) for n, v in {**named, "st": _i(-1), "en": _i(-100)}.items()]
    x = _data((2, 3, 4))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 12])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    onnx.checker.check_model(model, full_check=True)
    module = fusejit.onnx.load(model)
    got = module(fusejit.tensor(x)).numpy()
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, {"x": x})[0])
    ops = [n.op for n in module.graph.nodes]
    assert ops == ["reshape", "flip", "fused"], ops
