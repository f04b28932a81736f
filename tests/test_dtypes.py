"""dtypes and type promotion.

Inside a kind, and for bool with anything, the promotion table must equal numpy 2's (the Array
API table). Across kinds it follows PyTorch: an int tensor with a float tensor gives the float
tensor's dtype. Python scalars are weak (they never widen a tensor of their own kind).
"""

from __future__ import annotations

import copy
import itertools
import pickle

import numpy as np
import pytest

import fusejit as F
from fusejit.base import dtypes as fdt

ALL = (F.bool, F.uint8, F.int8, F.int16, F.int32, F.int64, F.float16, F.float32, F.float64)
PAIRS = list(itertools.product(ALL, ALL))
INTS = {"i", "u"}


def _shared_with_numpy(a, b):
    """The pairs numpy 2 and fusejit agree on: same kind, bool with anything, and signed with
    unsigned ints (the Array API's mixed-int rules)."""
    return a.kind == b.kind or "b" in (a.kind, b.kind) or {a.kind, b.kind} == INTS


SHARED = [p for p in PAIRS if _shared_with_numpy(*p)]
CROSS = [p for p in PAIRS if not _shared_with_numpy(*p)]


def _id(p):
    return f"{p[0].name}-{p[1].name}"


@pytest.mark.parametrize("pair", SHARED, ids=_id)
def test_promotion_matches_numpy_on_shared_pairs(pair):
    a, b = pair
    got = F.promote_types(a, b)
    assert got.np == np.promote_types(a.np, b.np)
    assert got.np == np.result_type(a.np, b.np)


@pytest.mark.parametrize("pair", CROSS, ids=_id)
def test_int_with_float_gives_the_float_dtype(pair):
    """torch's rule: int32 with float16 is float16 (numpy would say float32)."""
    a, b = pair
    f = a if a.is_floating_point else b
    assert F.promote_types(a, b) is f


def test_the_pairs_cover_the_table():
    assert len(SHARED) + len(CROSS) == 81
    assert len(CROSS) == 2 * 5 * 3


@pytest.mark.parametrize("pair", PAIRS, ids=_id)
def test_promotion_is_symmetric_and_of_the_inputs(pair):
    a, b = pair
    p = F.promote_types(a, b)
    assert p is F.promote_types(b, a)
    assert p in (a, b) or {a, b} == {F.int8, F.uint8} and p is F.int16
    assert F.promote_types(p, a) is p and F.promote_types(p, b) is p
    # what elementwise ops do with two tensors
    assert (F.zeros(1, dtype=a) + F.zeros(1, dtype=b)).dtype is p
    assert F.result_type(F.zeros(1, dtype=a), F.zeros(1, dtype=b)) is p


@pytest.mark.parametrize("a", ALL, ids=lambda d: d.name)
def test_promotion_is_idempotent_and_bool_is_the_identity(a):
    assert F.promote_types(a, a) is a
    assert F.promote_types(a, F.bool) is a


def test_promotion_table_written_out():
    """The matrix of CONTRIBUTING.md, row by row (columns in the order of ``ALL``)."""
    b, u8, i8, i16, i32, i64, f16, f32, f64 = ALL
    table = {
        b: [b, u8, i8, i16, i32, i64, f16, f32, f64],
        u8: [u8, u8, i16, i16, i32, i64, f16, f32, f64],
        i8: [i8, i16, i8, i16, i32, i64, f16, f32, f64],
        i16: [i16, i16, i16, i16, i32, i64, f16, f32, f64],
        i32: [i32, i32, i32, i32, i32, i64, f16, f32, f64],
        i64: [i64, i64, i64, i64, i64, i64, f16, f32, f64],
        f16: [f16, f16, f16, f16, f16, f16, f16, f32, f64],
        f32: [f32, f32, f32, f32, f32, f32, f32, f32, f64],
        f64: [f64, f64, f64, f64, f64, f64, f64, f64, f64],
    }
    for a, row in table.items():
        assert [F.promote_types(a, x) for x in ALL] == row, a


# ---- weak Python scalars ----------------------------------------------------------------------
# tensor dtype -> result dtype with a Python (bool, int, float)
WEAK = {
    F.bool: (F.bool, F.int64, F.float32),
    F.uint8: (F.uint8, F.uint8, F.float32),
    F.int8: (F.int8, F.int8, F.float32),
    F.int16: (F.int16, F.int16, F.float32),
    F.int32: (F.int32, F.int32, F.float32),
    F.int64: (F.int64, F.int64, F.float32),
    F.float16: (F.float16, F.float16, F.float16),
    F.float32: (F.float32, F.float32, F.float32),
    F.float64: (F.float64, F.float64, F.float64),
}


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.name)
def test_weak_scalars(d):
    t = F.ones(3, dtype=d)
    for scalar, want in zip((True, 2, 2.5), WEAK[d], strict=True):
        assert F.result_type(t, scalar) is want, (d, scalar)
        assert F.result_type(scalar, t) is want
        assert F.result_type(d, scalar) is want


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.name)
def test_weak_scalars_agree_with_numpy_inside_a_kind(d):
    """numpy 2 (NEP 50) has weak scalars too; it differs only where a float scalar meets an int
    or bool array (numpy: float64, fusejit and torch: float32)."""
    for scalar, want in zip((True, 2, 2.5), WEAK[d], strict=True):
        np_res = np.result_type(d.np, scalar)
        if isinstance(scalar, float) and not d.is_floating_point:
            assert np_res == np.float64 and want is F.float32
        else:
            assert want.np == np_res


def test_weak_scalars_in_ops():
    f32 = F.tensor([1.0, 2.0])
    assert (f32 * 2.0).dtype is F.float32 and (2.0 * f32).dtype is F.float32
    assert (f32 + 2).dtype is F.float32
    h = F.tensor([1.0, 2.0], dtype=F.float16)
    assert (h * 1e3).dtype is F.float16 and (h + True).dtype is F.float16
    i = F.tensor([1, 2], dtype=F.int32)
    r = i * 2.5
    assert r.dtype is F.float32 and r.tolist() == [2.5, 5.0]
    assert (i * 2).dtype is F.int32 and (i + True).dtype is F.int32
    u = F.tensor([250, 3], dtype=F.uint8)
    assert (u + 10).dtype is F.uint8 and (u + 10).tolist() == [4, 13]  # wraps, as numpy
    b = F.tensor([True, False])
    assert (b + 1).dtype is F.int64 and (b + 1).tolist() == [2, 1]
    assert (b * 1.5).dtype is F.float32 and (b & True).dtype is F.bool
    assert (i / 2).dtype is F.float32 and (i // 2).dtype is F.int32
    assert (b < 0.5).dtype is F.bool


def test_scalar_out_of_range_of_the_tensor_dtype_is_an_error():
    """As numpy 2: a Python int that the tensor's int dtype cannot hold is an error."""
    with pytest.raises(F.DTypeError, match="add"):
        F.tensor([1, 2], dtype=F.int8) + 1000
    with pytest.raises(F.DTypeError, match="sub"):
        F.tensor([1, 2], dtype=F.uint8) - (-1)


def test_result_type_of_scalars_only():
    assert F.result_type(True, False) is F.bool
    assert F.result_type(1, True) is F.int64
    assert F.result_type(1, 2.5) is F.float32
    with pytest.raises(TypeError):
        F.result_type("a")


def test_cross_kind_ops_use_the_float_dtype():
    i = F.tensor([1, 2], dtype=F.int64)
    h = F.tensor([0.5, 0.25], dtype=F.float16)
    r = i * h
    assert r.dtype is F.float16 and r.tolist() == [0.5, 0.5]
    assert (F.tensor([1], dtype=F.int32) + F.tensor([1.0], dtype=F.float32)).dtype is F.float32
    assert F.cat([i, h]).dtype is F.float16
    assert F.where(F.tensor([True, False]), i, h).dtype is F.float16
    assert (F.ones(2, 2, dtype=F.int32) @ F.ones(2, 2, dtype=F.float16)).dtype is F.float16


# ---- the rules of op kinds --------------------------------------------------------------------
@pytest.mark.parametrize("d", [F.bool, F.uint8, F.int8, F.int16, F.int32, F.int64],
                         ids=lambda d: d.name)  # fmt: skip
def test_kind_rules_for_ints_and_bool(d):
    t = F.ones(4, dtype=d)
    assert (t / t).dtype is F.float32  # true division of ints (and bools) gives float32
    assert t.sum().dtype is F.int64 and t.prod().dtype is F.int64
    assert (t == t).dtype is F.bool and F.logical_and(t, t).dtype is F.bool
    # float ops on ints and bools give float32 (as PyTorch's)
    assert F.exp(t).dtype is F.float32 and F.sqrt(t).dtype is F.float32
    if d is not F.bool:
        assert t.mean().dtype is F.float32 and t.var().dtype is F.float32
        assert F.softmax(t, 0).dtype is F.float32 and F.logsumexp(t, 0).dtype is F.float32
        assert (-t).dtype is d and abs(t).dtype is d and F.relu(t).dtype is d


@pytest.mark.parametrize("d", [F.float16, F.float32, F.float64], ids=lambda d: d.name)
def test_kind_rules_for_floats(d):
    t = F.ones(4, dtype=d)
    for r in (F.exp(t), t / t, t.sum(), t.prod(), t.mean(), t.var(), F.softmax(t, 0),
              F.sigmoid(t), F.logsumexp(t, 0), t.amax()):  # fmt: skip
        assert r.dtype is d
    assert t.argmax().dtype is F.int64 and (t > 0).dtype is F.bool


# ---- as_dtype and the DType objects -----------------------------------------------------------
@pytest.mark.parametrize(
    "obj,want",
    [
        ("float32", F.float32), ("float", F.float32), ("double", F.float64), ("half", F.float16),
        ("long", F.int64), ("int", F.int32), ("short", F.int16), ("bool", F.bool),
        ("bool_", F.bool), ("uint8", F.uint8), ("int8", F.int8), (np.float64, F.float64),
        (np.dtype("int16"), F.int16), (np.bool_, F.bool), (np.uint8, F.uint8), (bool, F.bool),
        (int, F.int64), (float, F.float32), (F.float16, F.float16), ("f4", F.float32),
        (np.dtype("<f8"), F.float64),
    ],
)  # fmt: skip
def test_as_dtype(obj, want):
    assert fdt.as_dtype(obj) is want


@pytest.mark.parametrize("obj", ["complex32", np.clongdouble, np.uint16, "float128x", object,
                                 np.dtype(">f4"), np.dtype(">c8"), str])  # fmt: skip
def test_as_dtype_rejects_unsupported(obj):
    with pytest.raises(F.DTypeError, match="unsupported dtype"):
        fdt.as_dtype(obj)
    with pytest.raises(TypeError):  # a DTypeError is a TypeError
        fdt.as_dtype(obj)


@pytest.mark.parametrize("d", ALL, ids=lambda d: d.name)
def test_dtype_objects(d):
    assert repr(d) == f"fusejit.{d.name}"
    assert d.itemsize == d.np.itemsize
    assert d.is_floating_point == (d.np.kind == "f")
    assert d.is_integer == (d.np.kind in "iu") and d.is_bool == (d.np.kind == "b")
    assert pickle.loads(pickle.dumps(d)) is d
    assert copy.deepcopy(d) is d and copy.copy(d) is d
    assert getattr(F, d.name if d is not F.bool else "bool") is d
    assert F.zeros(1, dtype=d).dtype is d and F.zeros(1, dtype=d).numpy().dtype == d.np


def test_torch_aliases():
    assert (F.half, F.float, F.double) == (F.float16, F.float32, F.float64)
    assert (F.short, F.int, F.long, F.bool) == (F.int16, F.int32, F.int64, F.bool_)


# ---- complex dtypes ---------------------------------------------------------------------------
COMPLEX = (F.complex64, F.complex128)


@pytest.mark.parametrize("d", COMPLEX, ids=lambda d: d.name)
def test_complex_dtype_objects(d):
    assert d.kind == "c" and d.is_complex and not d.is_floating_point and not d.is_integer
    assert d.itemsize == d.np.itemsize and d not in fdt.ALL_DTYPES
    assert pickle.loads(pickle.dumps(d)) is d and copy.deepcopy(d) is d
    assert getattr(F, d.name) is d and fdt.as_dtype(d.np) is d and fdt.as_dtype(d.name) is d
    assert F.zeros(1, dtype=d).dtype is d and F.zeros(1, dtype=d).numpy().dtype == d.np


def test_complex_aliases():
    assert (F.cfloat, F.cdouble) == (F.complex64, F.complex128)
    assert fdt.as_dtype("cfloat") is F.complex64 and fdt.as_dtype(complex) is F.complex64
    assert not any(d.kind == "c" for d in ALL)  # the real dtypes' lists stay real


def test_complex_promotion_as_torch():
    """A complex dtype with a real one: the complex dtype whose parts hold both."""
    c64, c128 = F.complex64, F.complex128
    for d in ALL:
        want64 = c128 if d is F.float64 else c64
        assert F.promote_types(c64, d) is F.promote_types(d, c64) is want64
        assert F.promote_types(c128, d) is F.promote_types(d, c128) is c128
    assert F.promote_types(c64, c128) is F.promote_types(c128, c64) is c128
    for a, b in itertools.product(COMPLEX, COMPLEX):  # numpy agrees between complex dtypes
        assert F.promote_types(a, b).np == np.promote_types(a.np, b.np)


def test_complex_weak_scalars():
    """A Python complex gives the complex dtype of the tensor's precision (complex64 for bool,
    ints and float16, which has no complex dtype here; torch: complex32 for float16); a Python
    float or int never widens a complex tensor."""
    for d, want in [(F.bool, F.complex64), (F.int64, F.complex64), (F.float16, F.complex64),
                    (F.float32, F.complex64), (F.float64, F.complex128),
                    (F.complex64, F.complex64), (F.complex128, F.complex128)]:  # fmt: skip
        assert F.result_type(F.zeros(1, dtype=d), 1j) is want
        assert (F.zeros(1, dtype=d) * 2j).dtype is want
    for s in (True, 2, 2.5):
        assert F.result_type(F.zeros(1, dtype=F.complex64), s) is F.complex64
    assert F.result_type(1j, 2.0) is F.complex64
