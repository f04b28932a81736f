"""The op table's shape rules (``fusejit/ops/shape_rules.py``) give the shapes the ops'
implementations return, and ``check_types`` accepts the graphs the front ends record."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit
from fusejit.base import dtypes as dt
from fusejit.base.device import CPU
from fusejit.ir.typecheck import check_types
from fusejit.ir.verify import VerifyError
from fusejit.ops.movement import encode_index
from fusejit.ops.registry import OPS
from fusejit.ops.shape_rules import RULES, ShapeRuleError, out_shapes

F32 = dt.float32
# (op, input shapes, attributes): the implementation's results' shapes are the rule's
CASES = [
    *[
        (op, [(2, 3, 4)], {"dim": d, "keepdim": k})
        for op in ("sum", "mean", "all")
        for d in (None, 1, -1, (0, 2))
        for k in (False, True)
    ],  # fmt: skip
    *[
        ("amax", [(2, 3, 4)], {"dim": d, "keepdim": k})
        for d in (None, (1,), (-1,), (0, 2))
        for k in (False, True)
    ],  # fmt: skip
    ("prod", [(2, 3)], {"dim": 0, "keepdim": False, "dtype": None}),
    ("var", [(2, 3)], {"dim": (1,), "correction": 1, "keepdim": True, "sqrt": True}),
    ("amin", [(5,)], {"dim": None, "keepdim": False}),
    ("any", [()], {"dim": None, "keepdim": True}),
    ("logsumexp", [(2, 3)], {"dim": -1, "keepdim": False}),
    *[
        (op, [(2, 3, 4)], {"dim": d, "keepdim": k})
        for op in ("argmax", "argmin")
        for d in (None, 2)
        for k in (False, True)
    ],  # fmt: skip
    *[
        (op, [(2, 3)], {"dim": 1, "keepdim": k})
        for op in ("max_dim", "min_dim")
        for k in (False, True)
    ],  # fmt: skip
    ("softmax", [(2, 3)], {"dim": -1, "log": True}),
    (
        "layer_norm",
        [(2, 3, 4), (3, 4), (3, 4)],
        {"normalized_ndim": 2, "eps": 1e-5, "has_weight": True, "has_bias": True},
    ),
    *[
        ("linear", s, {"dtype": F32})
        for s in (
            [(2, 3), (4, 3)],
            [(3,), (4, 3), (4,)],
            [(5, 2, 3), (4, 3), (1,)],
            [(0, 3), (4, 3), ()],
        )
    ],  # fmt: skip
    *[
        ("cross_entropy", s, {"reduce": r})
        for s in ([(4, 3), (4,)], [(3,), ()])
        for r in ("mean", "sum", "none")
    ],
    ("cumsum", [(2, 3)], {"dim": 1, "dtype": F32}),
    ("cumprod", [(4,)], {"dim": 0, "dtype": F32}),
    ("sort", [(3, 4)], {"dim": 0, "descending": True}),
    *[
        ("matmul", s, {"dtype": F32})
        for s in (
            [(3,), (3,)],
            [(2, 3), (3,)],
            [(3,), (3, 4)],
            [(2, 3), (3, 4)],
            [(5, 2, 3), (3, 4)],
            [(2, 1, 2, 3), (4, 3, 5)],
            [(3,), (2, 3, 4)],
            [(2, 2, 3), (3,)],
        )
    ],  # fmt: skip
    *[
        ("einsum", s, {"equation": e, "dtype": F32})
        for e, s in (
            ("ij,jk->ik", [(2, 3), (3, 4)]),
            ("ij,jk", [(2, 3), (3, 4)]),
            ("ii->i", [(3, 3)]),
            ("i,j->ij", [(2,), (5,)]),
            ("bij->bji", [(2, 3, 4)]),
            ("...ij,...jk->...ik", [(5, 2, 3), (3, 4)]),
            ("ij->", [(2, 3)]),
            ("ba", [(2, 3)]),
            ("i...->...i", [(2, 3, 4)]),
            ("ij,ij->i", [(1, 3), (4, 3)]),
        )
    ],  # fmt: skip
    ("reshape", [(2, 3, 4)], {"shape": (6, -1)}),
    ("reshape", [(2, 3, 4)], {"shape": (24,)}),
    ("reshape", [(0, 3)], {"shape": (3, 0)}),
    ("reshape", [()], {"shape": (1, 1)}),
    ("view", [(2, 3, 4)], {"shape": (-1,)}),
    ("permute", [(2, 3, 4)], {"dims": (2, 0, 1)}),
    ("expand", [(3, 1)], {"shape": (2, 3, 4)}),
    ("getitem", [(4, 5, 6)], {"index": encode_index((slice(None, None, 2), None, 1))}),
    ("getitem", [(4, 5, 6)], {"index": encode_index((Ellipsis, slice(-2, None)))}),
    ("getitem", [(4, 5)], {"index": encode_index((1, 2))}),
    ("contiguous", [(2, 3)], {}),
    ("clone", [()], {}),
    ("flip", [(2, 3)], {"dims": (0, 1)}),
    ("roll", [(2, 3)], {"shifts": (1,), "dims": (1,)}),
    ("cat", [(2, 3), (2, 5)], {"dim": 1, "dtype": F32}),
    ("cat", [(2, 3), (4, 3), (1, 3)], {"dim": -2, "dtype": F32}),
    ("stack", [(2, 3), (2, 3)], {"dim": -1, "dtype": F32}),
    ("stack", [(2, 3)] * 3, {"dim": 0, "dtype": F32}),
    *[("tile", [(2, 3)], {"reps": r}) for r in ((2,), (3, 1, 2), (2, 2), (), (0, 1))],
    ("tile", [()], {"reps": (3,)}),
    ("tril", [(3, 4)], {"diagonal": 1}),
    ("triu", [(2, 3, 4)], {"diagonal": -1}),
    *[
        ("diag", [s], {"diagonal": k})
        for s in ((4,), (3, 5), (5, 3), (3, 3))
        for k in (-4, -1, 0, 2, 6)
    ],  # fmt: skip
    ("split", [(7, 4)], {"sections": (3, 4), "dim": 0}),
    ("split", [(2, 6)], {"sections": (2, 2, 2), "dim": -1}),
    ("index_select", [(4, 5), (3,)], {"dim": 1}),
    ("gather", [(3, 4), (2, 4)], {"dim": 0}),
]


def _arrays(op: str, shapes) -> list:
    """Operands of ``shapes``; the index operand of index_select, gather and cross_entropy
    holds zeros."""
    return [np.zeros(s, np.int64) if k and op in ("index_select", "gather", "cross_entropy") else
            np.ones(s, np.float32) for k, s in enumerate(shapes)]  # fmt: skip


@pytest.mark.parametrize("op,shapes,attrs", CASES, ids=[c[0] for c in CASES])
def test_shape_rules_give_the_implementations_shapes(op, shapes, attrs):
    d = OPS[op]
    res = d.impl(CPU.backend, *_arrays(op, shapes), **attrs)
    got = [np.shape(r) for r in res] if isinstance(res, tuple) else [np.shape(res)]
    assert out_shapes(d, shapes, attrs) == got


BAD = [
    ("permute", [(2, 3)], {"dims": (0, 0)}),
    ("permute", [(2, 3)], {"dims": (0,)}),
    ("expand", [(3,)], {"shape": (2, 4)}),
    ("getitem", [(2,)], {"index": encode_index((5,))}),
    ("reshape", [(2, 3)], {"shape": (4, -1)}),
    ("reshape", [(2, 3)], {"shape": (7,)}),
    ("sum", [(2, 3)], {"dim": 2, "keepdim": False}),
    ("matmul", [(2, 3), (4, 5)], {"dtype": F32}),
    ("matmul", [(), (3,)], {"dtype": F32}),
    ("linear", [(2, 3), (4, 5)], {"dtype": F32}),
    ("cross_entropy", [(4, 3), (3,)], {"reduce": "mean"}),
    ("linear", [(2, 3), (4, 3), (3,)], {"dtype": F32}),
    ("einsum", [(2, 3), (4, 5)], {"equation": "ij,jk->ik", "dtype": F32}),
    ("einsum", [(2, 3)], {"equation": "ijk->i", "dtype": F32}),
    ("einsum", [(2, 3)], {"equation": "ij->iz", "dtype": F32}),
    ("cat", [(2, 3), (3, 4)], {"dim": 0, "dtype": F32}),
    ("stack", [(2, 3), (3, 2)], {"dim": 0, "dtype": F32}),
    ("tile", [(2,)], {"reps": (-1,)}),
    ("diag", [(2, 2, 2)], {"diagonal": 0}),
    ("gather", [(3, 4), (2,)], {"dim": 0}),
    ("sum", [(2, 3)], {"dim": 1 << 70, "keepdim": False}),
    ("cat", [(2, 3), (2, 3)], {"dim": -(1 << 40), "dtype": F32}),
    ("index_select", [(3, 4), (2,)], {"dim": 2}),
]


@pytest.mark.parametrize("op,shapes,attrs", BAD, ids=[c[0] for c in BAD])
def test_shape_rules_refuse_what_the_implementations_refuse(op, shapes, attrs):
    with pytest.raises(Exception):  # noqa: B017 (numpy's own errors, of several types)
        OPS[op].impl(CPU.backend, *_arrays(op, shapes), **attrs)
    with pytest.raises(ShapeRuleError):
        out_shapes(OPS[op], shapes, attrs)


def test_shape_rules_refuse_calls_eager_never_records():
    # numpy's tril reads a 1-d input as a row of a square; PyTorch's (and eager's) refuse it
    with pytest.raises(ShapeRuleError, match="2 or more dims"):
        out_shapes(OPS["tril"], [(3,)], {"diagonal": 0})


def test_every_op_of_the_table_has_a_shape_rule():
    missing = [n for n, d in OPS.items() if d.kind != "elementwise" and n not in RULES]
    assert not missing


def test_traced_graphs_type_check_and_an_edited_type_does_not():
    x, w = fusejit.randn(4, 6), fusejit.randn(6, 3)

    def fn(x):
        y = (x @ w).softmax(-1) * 2 + 1
        a, b = y.split([1, 2], 1)
        z = fusejit.cat([a, b], 1).repeat(2, 1).reshape(-1, 3).permute(1, 0)
        s, i = z.sort(1)
        return z.sum(0, keepdim=True) + s[:, :1], i.max(1)[1], (z > 0).any(), z.cumsum(1)

    f = fusejit.trace(fn, x)
    check_types(f.raw_graph, max_bytes=1 << 20)
    with pytest.raises(VerifyError, match="more than max_bytes=100"):
        check_types(f.raw_graph, max_bytes=100)
    n = next(n for n in f.raw_graph.block.nodes if n.op == "tile")
    t = n.outputs[0].type
    n.outputs[0].type = type(t)(t.dtype, (t.shape[0] + 1,) + t.shape[1:], t.device)
    with pytest.raises(
        VerifyError,
        match=r"\(tile\): output declared float32\[9, 3\], the op "
        r"gives float32\[8, 3\]",
    ):
        check_types(f.raw_graph)
