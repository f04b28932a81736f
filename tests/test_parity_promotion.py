"""PyTorch's promotion of 0-d tensors (``torch.result_type``: tensors with dimensions, then 0-d
tensors, then Python scalars; a later group counts only when its category, bool < integer <
float, is above the earlier ones'), and float16 arithmetic with a Python number computed in
float32 with the number as a float32 (PyTorch's "opmath"), eager, traced and scripted, fused,
on every device."""

from __future__ import annotations

import numpy as np
import pytest

import fusejit as F
from fusejit.base.device import Device
from fusejit.ir.graph import TensorType
from fusejit.ir.typecheck import check_types
from tests import test_cuda_codegen as _cuda_codegen
from tests.parity_helpers import DEVICES, assert_close, assert_traced, host
from tests.parity_helpers import on as _on

# the CUDA code-generation tests' fixtures: CUDA kernels compiled as host C++
gxx = _cuda_codegen.gxx
host_backend = _cuda_codegen.host_backend


def on(a, device: str = "cpu") -> F.Tensor:
    """``parity_helpers.on``, keeping a 0-d array 0-d (``np.ascontiguousarray`` makes it 1-d)."""
    a = np.asarray(a)
    if a.ndim:
        return _on(a, device)
    t = F.from_numpy(a.copy())
    return t if device == "cpu" else t.to(device)


b, u8, i8, i16, i32, i64 = F.bool, F.uint8, F.int8, F.int16, F.int32, F.int64
f16, f32, f64 = F.float16, F.float32, F.float64


# ---- 0-d tensors ------------------------------------------------------------------------------
# An operand: ("d", dtype) a tensor with dimensions, ("z", dtype) a 0-d tensor, or a Python
# scalar. The results are torch.result_type's (PyTorch 2.x).
RESULT_TYPES = [
    ([("d", f32), ("z", f64)], f32),
    ([("d", i16), ("z", i64)], i16),
    ([("d", i16), ("z", f64)], f64),
    ([("d", u8), ("z", i64)], u8),
    ([("d", u8), ("z", i8)], u8),
    ([("d", i8), ("z", u8)], i8),
    ([("d", i64), ("z", f16)], f16),
    ([("d", i32), ("z", f32)], f32),
    ([("d", f16), ("z", f64)], f16),
    ([("d", f16), ("z", i64)], f16),
    ([("d", f32), ("z", i64)], f32),
    ([("d", i32), ("z", b)], i32),
    ([("d", b), ("z", i8)], i8),
    ([("d", b), ("z", f64)], f64),
    ([("d", b), ("z", b)], b),
    ([("d", i8), ("d", u8), ("z", i64)], i16),  # the dimensioned ones promote among themselves
    ([("d", i32), ("z", i16), 2.5], f32),  # the scalar lifts the 0-d group to float32
    ([("d", i32), ("z", f64), 2.5], f64),
    ([("d", b), ("z", i16), 3], i16),
    ([("d", b), ("z", b), 3], i64),
    # 0-d tensors alone promote as tensors do, then with the scalars
    ([("z", i16), ("z", f64)], f64),
    ([("z", i8), ("z", u8)], i16),
    ([("z", i32), ("z", i64)], i64),
    ([("z", f16), ("z", f32)], f32),
    ([("z", i16), 2.5], f32),
    ([("z", f64), 2.5], f64),
    ([("z", i8), 1], i8),
    ([("z", b), 1], i64),
    ([("z", b), True], b),
    # unchanged: tensors with dimensions and scalars alone
    ([("d", i16), ("d", f64)], f64),
    ([("d", i32), 2.5], f32),
    ([("d", b), 1], i64),
    ([1, 2.5], f32),
]


def _id(case):
    ops, want = case
    parts = [f"{o[0]}{o[1].name}" if isinstance(o, tuple) else repr(o) for o in ops]
    return "-".join(parts) + f"={want.name}"


def _make(spec, device="cpu", value=None):
    if not isinstance(spec, tuple):
        return spec
    kind, d = spec
    if value is None:
        value = np.array([1, 0, 1], d.np) if kind == "d" else np.array(1, d.np)
    return on(np.asarray(value, d.np), device)


def _type(spec):
    if not isinstance(spec, tuple):
        return spec
    return TensorType(spec[1], (3,) if spec[0] == "d" else (), None)


@pytest.mark.parametrize("case", RESULT_TYPES, ids=_id)
def test_result_type_table(case):
    ops, want = case
    got = F.result_type(*[_make(o) for o in ops])
    assert got is want
    # graph values' types promote the same way (the IR's dtype rules, fused kernels' dtypes)
    assert F.result_type(*[_type(o) for o in ops]) is want
    # a bare dtype counts as a tensor with dimensions, as before
    dims_only = [o[1] if isinstance(o, tuple) else o for o in ops]
    assert F.result_type(*dims_only) is _dims_rule(dims_only)


def _dims_rule(operands):
    tensors = [o for o in operands if isinstance(o, F.DType)]
    scalars = [o for o in operands if not isinstance(o, F.DType)]
    d = tensors[0] if tensors else None
    for t in tensors[1:]:
        d = F.promote_types(d, t)
    return F.result_type(d, *scalars) if d is not None else F.result_type(*scalars)


BINARY = [case for case in RESULT_TYPES if len(case[0]) == 2 and all(isinstance(o, tuple)
                                                                     for o in case[0])]  # fmt: skip
_NP = {"add": np.add, "mul": np.multiply, "sub": np.subtract}


def _values(spec):
    kind, d = spec
    if d is b:
        v = [True, False, True, True]
    elif d.kind == "f":
        v = [1.5, -0.0, 3.25, -2.0]
    elif d is u8:
        v = [0, 200, 7, 255]
    else:
        v = [1, -3, 7, 100]
    if kind == "z":
        return np.array(v[2] if d is not u8 else 255, d.np)
    return np.array(v, d.np)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", BINARY, ids=_id)
def test_binary_ops_with_a_0d_tensor(case, device):
    """Eager ops give result_type's dtype and numpy's values in it (both operands converted
    to it first, as PyTorch does: uint8 + 0-d int64 -1 wraps), in either order; traced calls
    give the same values and their graphs type-check."""
    (sa, sb), want = case
    a, bb = _values(sa), _values(sb)
    x, y = on(a, device), on(bb, device)
    names = ("add", "mul") if want is b else ("add", "mul", "sub")  # (sub refuses bool)
    for name in names:
        fn = getattr(F, name)
        ref = _NP[name](a.astype(want.np), bb.astype(want.np))
        ref_r = _NP[name](bb.astype(want.np), a.astype(want.np))
        assert_close(fn(x, y), np.asarray(ref, want.np), exact=True, what=name)
        assert_close(fn(y, x), np.asarray(ref_r, want.np), exact=True, what=name + " reflected")
    assert F.result_type(x, y) is want

    # traced, both orders, and (for numbers) a chain of operators: one fused kernel
    def both(p, q):
        outs = [getattr(F, n)(p, q) for n in names] + [getattr(F, n)(q, p) for n in names]
        return tuple(outs + ([] if want is b else [(p * q + q) * 2 - p]))

    g = assert_traced(both, x, y)
    assert g.kernel_count() == 1
    check_types(g.raw_graph)
    assert all(host(r).dtype == want.np for r in g(x, y))


@pytest.mark.parametrize("device", DEVICES)
def test_examples_of_the_issue(device):
    ones = F.ones(2, device=device)
    assert (ones * F.tensor(2.0, dtype=f64, device=device)).dtype is f32
    assert (F.tensor(2.0, dtype=f64, device=device) * ones).dtype is f32
    i = F.tensor([1, 2], dtype=i16, device=device)
    assert (i + F.tensor(5, device=device)).dtype is i16
    r = i + F.tensor(5.0, dtype=f64, device=device)
    assert r.dtype is f64 and r.tolist() == [6.0, 7.0]
    u = F.tensor([0, 1], dtype=u8, device=device) + F.tensor(-1, device=device)
    assert u.dtype is u8 and u.tolist() == [255, 0]
    # a learning rate kept as a 0-d float64 tensor does not widen float32 weights
    w = F.ones(3, device=device)
    lr = F.tensor(0.1, dtype=f64, device=device)
    assert (w - lr * w).dtype is f32


@pytest.mark.parametrize("device", DEVICES)
def test_0d_noncontiguous_empty_and_special_values(device):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    x = on(a, device)
    for s in (2.5, np.nan, np.inf, -np.inf, -0.0, 1e300):
        z = on(np.float64(s), device)
        with np.errstate(over="ignore", invalid="ignore"):
            want = a[:, ::2] * np.float32(s)
            want_t = a.T * np.float32(s)
        assert_close(x[:, ::2] * z, want, exact=True, what=f"sliced * {s}")
        assert_close(z * x.T, want_t, exact=True, what=f"{s} * transposed")
        assert_traced(lambda p, q: p[:, ::2] * q + 1, x, z)
    e = F.ones(0, 2, device=device) * on(np.float64(3), device)
    assert e.dtype is f32 and e.shape == (0, 2)
    i = on(np.array([[1, 2], [3, 4]], np.int16), device)
    r = i.T + on(np.int64(70000), device)  # converted to int16 first: wraps, as in PyTorch
    assert_close(r, np.array([[1, 3], [2, 4]], np.int16) + np.int16(70000 - 65536), exact=True)


@pytest.mark.parametrize("device", DEVICES)
def test_0d_in_where_inplace_and_compare(device):
    c = on(np.array([True, False, True]), device)
    x = on(np.array([1.0, 2.0, 3.0], np.float32), device)
    z = on(np.float64(0.1), device)
    w = F.where(c, x, z)
    assert_close(w, np.where([True, False, True], np.float32([1, 2, 3]), np.float32(0.1)),
                 exact=True)  # fmt: skip
    assert_traced(lambda c, x, z: F.where(c, x, z), c, x, z)
    i = on(np.array([1, 2, 3], np.int16), device)
    assert F.where(c, i, on(np.int64(5), device)).dtype is i16
    assert (x > z).dtype is b and (x > z).tolist() == [True, True, True]
    y = x.clone()
    y.mul_(on(np.float64(2.0), device))  # a float32 result: in place is allowed
    assert_close(y, np.float32([2, 4, 6]), exact=True)
    j = i.clone()
    j.add_(on(np.int64(5), device))
    assert j.dtype is i16 and j.tolist() == [6, 7, 8]


def test_scripted_graph_promotes_0d_tensors():
    @F.script
    def f(x, z):
        return x * z + 1

    x = F.tensor([1.0, 2.0])
    z = F.tensor(0.1, dtype=f64)
    r = f(x, z)
    assert r.dtype is f32
    assert_close(r, np.float32([1, 2]) * np.float32(0.1) + np.float32(1), exact=True)
    i = F.tensor([1, 2], dtype=i16)
    r = f(i, F.tensor(3))
    assert r.dtype is i16 and r.tolist() == [4, 7]


# ---- float16 with Python numbers ("opmath") -----------------------------------------------------
def _half_values():
    v = [3.0, 1000.0, -0.0, 0.0, 1.0, -2.5, 0.001, 65504.0, -65504.0, 6e-8, 0.33325,
         np.inf, -np.inf, np.nan, 1e-4, 7.0]  # fmt: skip
    return np.array(v, np.float16)


def _opmath_ref(fn, x, s, reflected=False):
    """float16 op with a Python number as PyTorch computes it: in float32, the number as a
    float32, the result rounded to float16."""
    xf, sf = x.astype(np.float32), np.float32(s)
    with np.errstate(all="ignore"):
        r = fn(sf, xf) if reflected else fn(xf, sf)
        return np.asarray(r).astype(np.float16)


HALF_OPS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "remainder": np.remainder,
    "floor_divide": np.floor_divide,
}
SCALARS = [0.1, 1e-8, 70000, 1e5, 3, -0.0, 2.5, 1 / 3, np.inf, np.nan]


def test_opmath_examples_of_the_issue():
    x = F.tensor([3.0], dtype=f16)
    r = x * 0.1
    assert r.dtype is f16 and r.tolist() == [float(np.float16(np.float32(3) * np.float32(0.1)))]
    assert abs(r.item() - 0.30005) < 1e-4
    r = F.tensor([1000.0], dtype=f16) * 1e-8
    assert r.dtype is f16 and r.item() == float(np.float16(1e-5)) and r.item() != 0
    # comparisons stay in float16, the scalar rounded to it (PyTorch does the same)
    h = F.tensor([0.0999755859375], dtype=f16)  # float16(0.1)
    assert (h < 0.1).tolist() == [False] and (h == 0.1).tolist() == [True]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(HALF_OPS))
def test_half_with_python_number_computes_in_float32(name, device):
    a = _half_values()
    x = on(a, device)
    fn = getattr(F, name)
    for s in SCALARS:
        if name == "pow" and s in (70000, 1e5):
            continue
        with np.errstate(all="ignore"):
            _check_half_scalar(name, fn, x, a, s)
    # traced: every scalar in one function (one fused kernel, each scalar a float32 literal)
    scalars = [s for s in SCALARS if not (name == "pow" and s in (70000, 1e5))]
    m = _REFLECTED.get(name)

    def all_scalars(t):
        outs = [fn(t, s) for s in scalars]
        return tuple(outs + ([getattr(t, m)(s) for s in scalars] if m else []))

    with np.errstate(all="ignore"):
        assert_traced(all_scalars, x)


def _check_half_scalar(name, fn, x, a, s):
    got = fn(x, s)
    want = _opmath_ref(HALF_OPS[name], a, s)
    assert_close(got, want, exact=True, what=f"{name}(x, {s})")
    if name in _REFLECTED:
        got = getattr(x, _REFLECTED[name])(s)
        want = _opmath_ref(HALF_OPS[name], a, s, reflected=True)
        assert_close(got, want, exact=True, what=f"{s} {name} x")


_REFLECTED = {"add": "__radd__", "sub": "__rsub__", "mul": "__rmul__", "div": "__rtruediv__"}


@pytest.mark.parametrize("device", DEVICES)
def test_half_opmath_fused_chain_views_and_shapes(device):
    a = (np.arange(24, dtype=np.float32).reshape(4, 6) * 0.37 - 3).astype(np.float16)
    x = on(a, device)

    def chain(t):
        return ((t * 0.1 + 1e-4) / 3.0 - 7) * 1e-3

    def ref(v):
        for fn, s in ((np.multiply, 0.1), (np.add, 1e-4), (np.divide, 3.0),
                      (np.subtract, 7), (np.multiply, 1e-3)):  # fmt: skip
            v = _opmath_ref(fn, v, s)
        return v

    for view, av in ((x, a), (x[:, ::2], a[:, ::2]), (x.T, a.T)):
        assert_close(chain(view), ref(av), exact=True)
        f = assert_traced(chain, view)
        assert f.kernel_count() == 1
    z = on(np.float16(3.0), device)  # 0-d float16 with a Python float
    assert_close(z * 0.1, np.float16(np.float32(3) * np.float32(0.1)), exact=True)
    e = on(np.zeros((0, 3), np.float16), device) * 0.1
    assert e.dtype is f16 and e.shape == (0, 3)
    y = x.clone()
    y.mul_(0.1)
    assert_close(y, _opmath_ref(np.multiply, a, 0.1), exact=True)
    # mixed with a float16 tensor operand: tensor steps unchanged, scalar steps in float32
    f = assert_traced(lambda t: t * t * 0.1 + t, x)
    assert f.kernel_count() == 1
    want = _opmath_ref(np.multiply, a * a, 0.1) + a
    assert_close(f(x), want, exact=True)


@pytest.mark.parametrize("device", DEVICES)
def test_half_opmath_in_row_regions_and_float_ops(device):
    a = (np.arange(24, dtype=np.float32).reshape(4, 6) * 0.37 - 3).astype(np.float16)
    x = on(a, device)
    assert_traced(lambda t: F.softmax(t * 0.1, -1), x, exact=False)
    assert_traced(lambda t: (t * 1e-3).sum(-1), x, exact=False)
    with np.errstate(all="ignore"):
        want = np.arctan2(a.astype(np.float32), np.float32(0.1)).astype(np.float16)
    assert_close(F.atan2(x, 0.1), want, exact=False, ulps=1)
    assert_traced(lambda t: F.atan2(t, 0.1), x, exact=False, ulps=1)


def test_half_opmath_scripted():
    @F.script
    def f(x):
        return x * 0.1 + 1e-4

    a = np.array([3.0, 1000.0, 0.5], np.float16)
    r = f(on(a))
    assert_close(r, _opmath_ref(np.add, _opmath_ref(np.multiply, a, 0.1), 1e-4), exact=True)


def test_fast_path_and_general_path_agree_for_half_scalars():
    """The eager fast path (CPU, one numpy call) leaves float16 with a Python number to the
    general path, which computes in float32."""
    from fusejit.eager import dispatch
    from fusejit.ops.registry import OPS

    for name in HALF_OPS:
        op = OPS[name]
        for st in (float, int):
            e = dispatch.fast_entry(op, f16, Device("cpu"), st)
            assert e is None, (name, st)
        if name != "remainder":  # (a float remainder never takes it: the sign of a zero)
            assert dispatch.fast_entry(op, f32, Device("cpu"), float) is not None
    a = _half_values()
    with np.errstate(all="ignore"):
        assert_close(F.mul(on(a), 0.1), dispatch.elementwise(OPS["mul"], (on(a), 0.1)), exact=True)


def test_half_opmath_scripted_runtime_numbers():
    """A run-time int or float of a scripted function (a 0-d float64 / int64 tensor in its
    graph) meets float16 as a Python number does in eager mode."""

    @F.script
    def f(x, s: float, n: int):
        return (x * s + n) / s, F.mul(x, s), x.mul(s), s - x, x < s

    a = np.array([3.0, 1000.0, 0.5, -0.0, 65504.0], np.float16)
    x = on(a)
    for s, n in ((0.1, 3), (1e-8, 70000), (2.5, -1)):
        got = f(x, s, n)
        with np.errstate(all="ignore"):
            want = ((x * s + n) / s, x * s, x * s, s - x, x < s)
            step = _opmath_ref(np.add, _opmath_ref(np.multiply, a, s), n)
            assert_close(got[0], _opmath_ref(np.divide, step, s), exact=True)
        for g, w in zip(got, want, strict=True):
            assert_close(g, host(w), exact=True)


def test_gpu_kernels_emulated_on_the_host(tmp_path, monkeypatch):
    """The CUDA target's fused kernels (compiled as host C++, ``tests/cuda_host.py``) give
    eager's values bitwise: float16 steps with a Python number in float32, 0-d operands of
    another dtype converted to the result dtype."""
    from tests.cuda_host import find_gxx
    from tests.test_cuda_codegen import _run_cuda_plan

    cxx = find_gxx()
    h = on(np.concatenate([_half_values(), np.linspace(-30, 30, 37).astype(np.float16)]))

    def chain(t):
        return ((t * 0.1 + 1e-4) / 3.0 - 7) * 1e-3 + (1000 - t) * 1e-8

    cases = [
        ("half_scalars", chain, (h,)),
        ("half_pow_mod", lambda t: (t % 0.3) ** 2 + t // 0.7, (h,)),
        ("f32_0d_f64", lambda p, q: (p * q + q) * 2 - p, (on(np.float32([1.5, -2, 3])),
                                                           on(np.float64(0.1)))),
        ("i16_0d_i64", lambda p, q: (p * q + q) * 2 - p, (on(np.int16([1, -3, 300])),
                                                           on(np.int64(70000)))),
        ("u8_0d_i64", lambda p, q: p + q, (on(np.uint8([0, 1, 255])), on(np.int64(-1)))),
    ]  # fmt: skip
    for i, (name, fn, args) in enumerate(cases):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        outs, eager, n_fused = _run_cuda_plan(fn, args, cxx, folder, monkeypatch)
        assert n_fused == 1, name
        for g, w in zip(outs, eager, strict=True):
            assert_close(g, host(w), exact=True, what=name)


def test_gpu_backend_eager_half_scalars_emulated(host_backend):
    """The CUDA backend's eager path (numpy standing in for cupy, its own kernels compiled as
    host C++) computes float16 with a Python number as the dtypes dispatch gives it say:
    in float32, rounded to float16, bitwise as the CPU."""
    from fusejit.eager import dispatch
    from fusejit.ops.registry import OPS

    a = _half_values()
    for name in ("mul", "div", "sub", "remainder", "floor_divide", "pow"):
        op = OPS[name]
        for s in (0.1, 1e-8, 3, 2.5):
            for args in ((a, s), (s, a)):
                compute, out = dispatch.elementwise_dtypes(op, [f16 if v is a else v
                                                                for v in args])  # fmt: skip
                assert (compute, out) == (f32, f16)
                vals = [v.astype(np.float32) if v is a else v for v in args]
                with np.errstate(all="ignore"):
                    got = np.asarray(host_backend.elementwise(op, vals, compute, out, None))
                    want = getattr(F, name)(*[on(v) if v is a else v for v in args])
                assert_close(got, host(want), exact=True, what=f"{name}{args}")
