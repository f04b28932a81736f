"""onnx's node tests (``onnx.backend.test.case.node``), generated in memory, run through
``fusejit.onnx.backend``; shared by ``test_onnx_import_node.py`` and
``bench/onnx_node_counts.py`` (pass counts per op family).

The op types that count (``COVERED``): those whose meaning fusejit's op table holds, i.e. the
ONNX ops the exporter's rules (``fusejit/onnx/rules.py``) emit for table ops, plus the ONNX ops
that are one table op or a short composition of them (Gemm, Conv, pools, normalizations, losses,
the activations, the shape and indexing ops). Ops with no fusejit counterpart (quantization,
RNNs, string, sequence and optional types, image decoding, windows, DFT, training ops, the
``ai.onnx.ml`` / preview domains) are outside it.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

FAMILIES = {
    "elementwise": """Add Sub Mul Div Pow Mod Neg Abs Sqrt Exp Log Sin Cos Tan Asin Acos Atan
        Sinh Cosh Asinh Acosh Atanh Erf Sign Floor Ceil Round Reciprocal Min Max Sum Mean Clip
        Relu LeakyRelu Elu Selu Celu Gelu Sigmoid HardSigmoid HardSwish Softplus Softsign Tanh
        Mish ThresholdedRelu PRelu Shrink Swish IsNaN IsInf""",
    "reduction": """ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2
        ReduceLogSum ReduceLogSumExp ReduceSumSquare ArgMax ArgMin CumSum TopK""",
    "nn": """Softmax LogSoftmax Hardmax MatMul Gemm Einsum LayerNormalization RMSNormalization
        BatchNormalization InstanceNormalization GroupNormalization Conv ConvTranspose MaxPool
        AveragePool LpPool GlobalAveragePool GlobalMaxPool Dropout LpNormalization
        NegativeLogLikelihoodLoss SoftmaxCrossEntropyLoss""",
    "shape/movement": """Reshape Flatten Transpose Squeeze Unsqueeze Concat Split Slice Expand
        Tile Pad Shape Size DepthToSpace SpaceToDepth Trilu Identity ReverseSequence""",
    "indexing": """Gather GatherElements GatherND ScatterElements ScatterND Compress NonZero
        OneHot Where""",
    "logic": """Equal Less Greater LessOrEqual GreaterOrEqual And Or Xor Not BitwiseAnd
        BitwiseOr BitwiseXor BitwiseNot BitShift""",
    "creation": """Constant ConstantOfShape Range EyeLike Cast CastLike""",
    "control flow": """If Loop""",
}
FAMILY = {op: fam for fam, ops in FAMILIES.items() for op in ops.split()}
COVERED = frozenset(FAMILY)


@functools.lru_cache(maxsize=1)
def cases() -> dict:
    """name -> onnx TestCase, the node tests of the default domain."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        found = collect_testcases()
    return {
        c.name: c for c in found if all(n.domain in ("", "ai.onnx") for n in c.model.graph.node)
    }


def op_types(case) -> set:
    """The op types of a case's model, its subgraphs' (If / Loop bodies) included."""
    import onnx

    found, graphs = set(), [case.model.graph]
    while graphs:
        g = graphs.pop()
        for n in g.node:
            found.add(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    graphs.append(a.g)
                graphs.extend(a.graphs)
    return found


def selected(case) -> bool:
    """Whether a case counts: all its ops (subgraphs' included) lie in ``COVERED``."""
    return op_types(case) <= COVERED


def op_of(case) -> str | None:
    """The op a case tests: its one op type besides Constant (None for the expanded
    function bodies and other several-op graphs)."""
    if "_expanded" in case.name:
        return None
    types = {n.op_type for n in case.model.graph.node} - {"Constant"}
    if len(types) == 1:
        return types.pop()
    return (
        {n.op_type for n in case.model.graph.node}.pop()
        if len(case.model.graph.node) == 1
        else None
    )


# ONNX element types fusejit has tensors of
_FUSEJIT_ELEM = frozenset((1, 2, 3, 5, 6, 7, 9, 10, 11, 14, 15))


def missing_dtype(case) -> str | None:
    """The name of an element type the case's model uses that fusejit has no dtype for
    (bfloat16, uint16/32/64, float8, int4, ...), or None."""
    import onnx

    g = case.model.graph
    types = [v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]]
    types += [t.data_type for t in g.initializer]
    for node in g.node:
        for a in node.attribute:
            if node.op_type in ("Cast", "EyeLike", "RandomNormal") and a.name in ("to", "dtype"):
                types.append(a.i)
            elif a.type == onnx.AttributeProto.TENSOR:
                types.append(a.t.data_type)
    for t in types:
        if t and t not in _FUSEJIT_ELEM:
            return onnx.TensorProto.DataType.Name(t)
    return None


def _array(a):
    """A data set's value as numpy (some cases give TensorProtos)."""
    import onnx

    return onnx.numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else a


def run_case(case, jit: bool = True) -> None:
    """Run one case through the backend (traced, or eagerly with ``jit=False``);
    AssertionError when an output differs."""
    from fusejit.onnx.backend import FusejitBackend

    kw = {"check_trace": False} if jit else {"jit": False}
    rep = FusejitBackend.prepare(case.model, "CPU", **kw)
    for inputs, outputs in case.data_sets:
        inputs, outputs = [_array(a) for a in inputs], [_array(a) for a in outputs]
        with np.errstate(all="ignore"):
            got = rep.run(inputs)
        assert len(got) == len(outputs), (len(got), len(outputs))
        for i, (g, want) in enumerate(zip(got, outputs)):
            want = np.asarray(want)
            assert g.dtype == want.dtype, f"output {i}: dtype {g.dtype}, expected {want.dtype}"
            assert g.shape == want.shape, f"output {i}: shape {g.shape}, expected {want.shape}"
            np.testing.assert_allclose(
                g, want, rtol=case.rtol, atol=case.atol, err_msg=f"output {i}"
            )
