"""Facts stated once in the op table: every renderer spells every primitive function of the
expression language, and the reductions' ``Reduce`` facts agree with numpy."""

from __future__ import annotations

import ast
import functools
import math
import subprocess

import numpy as np
import pytest
from cuda_host import require_nvcc
from fusejit.kernels import cpu_math
from test_cuda_codegen import NVCC_FLAGS

from fusejit.base import dtypes as dt
from fusejit.codegen import cpu, cpu_rows, cuda
from fusejit.codegen.expr import Renderer, parse
from fusejit.codegen.rows import row_reductions
from fusejit.ops.primitives import PRIMITIVES, check_expr
from fusejit.ops.registry import OPS, OpDef, accumulation_dtype, register

FLOATS = (dt.float32, dt.float64)
INTS = (dt.uint8, dt.int8, dt.int16, dt.int32, dt.int64)


def _renderers() -> dict:
    """Every renderer a target uses, by name."""
    return {
        "cpu": cpu.RENDERER,
        "cpu-guarded": cpu.NumbaRenderer(guards=[]),
        "cpu-rows-elements": cpu_rows._ELEMENTS,
        "cpu-rows-partials": cpu_rows._PARTIALS,
        "cuda": cuda.RENDERER,
    }


def _cases():
    """(primitive, its argument dtypes, the cast's target dtype) for every dtype it takes."""
    for p in PRIMITIVES.values():
        if p.kind == "float":
            dtypes = FLOATS
        elif p.kind in ("bool", "same", "extreme", "remainder"):
            dtypes = FLOATS + INTS
        else:
            dtypes = FLOATS + INTS + (dt.bool_,)
        for d in dtypes:
            if p.kind == "select":
                yield p.name, (dt.bool_, d, d), None
            elif p.kind == "cast":
                yield from ((p.name, (d, to), to) for to in FLOATS + INTS + (dt.bool_,))
            else:
                yield p.name, (d,) * p.arity, None


def _render(r: Renderer, name: str, dtypes, to) -> tuple[str, dt.DType]:
    args = "xyz"[: len(dtypes) if name != "cast" else 1]
    env = {v: (f"a{i}", d) for i, (v, d) in enumerate(zip(args, dtypes))}
    attrs = {"dtype": to} if to is not None else None
    return r.render(parse(f"{name}({', '.join(args)})"), env, dtypes[-1], attrs)


def _numba_names_resolve(code: str) -> list:
    """The module attributes ``code`` reads that do not exist (``_vm.``, ``_rk.``, ``math.``...)."""
    mods = {"_vm": cpu_math, "_rk": cpu_rows, "math": math, "np": np}
    missing = []
    for n in ast.walk(ast.parse(code, mode="eval")):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            if not hasattr(mods[n.value.id], n.attr):
                missing.append(f"{n.value.id}.{n.attr}")
        elif isinstance(n, ast.Name) and not n.id.startswith("a") and n.id not in mods:
            if n.id not in ("max", "min", "abs", "True", "False"):
                missing.append(n.id)
    return missing


@pytest.mark.parametrize("name", sorted(_renderers()))
def test_every_renderer_covers_every_primitive(name):
    r = _renderers()[name]
    for prim, dtypes, to in _cases():
        code, d = _render(r, prim, dtypes, to)
        assert isinstance(code, str) and code, (name, prim, dtypes)
        assert isinstance(d, dt.DType)
        if name.startswith("cpu"):
            assert not _numba_names_resolve(code), (name, prim, code)


def test_vector_math_implements_float_primitives():
    """cpu_math's vectorized functions are named after primitives, so a renderer finds them."""
    floats = {p.name for p in PRIMITIVES.values() if p.kind == "float"}
    assert {name for name, _ in cpu_math.VECTOR_MATH} <= floats


def test_every_cuda_primitive_compiles(tmp_path):
    """Every CUDA spelling of every primitive, for each dtype it takes, compiles with nvcc."""
    nvcc = require_nvcc("the CUDA spellings of the primitives")
    fns = []
    for i, (prim, dtypes, to) in enumerate(_cases()):
        code, d = _render(cuda.RENDERER, prim, dtypes, to)
        params = ", ".join(f"{cuda.ctype(t)} a{j}" for j, t in enumerate(dtypes[: 1 if to else 3]))
        fns.append(f"__device__ {cuda.ctype(d)} f{i}({params}) {{ return {code}; }}")
    src = tmp_path / "prims.cu"
    src.write_text("#define FJ_HAVE_CUDA_FP16 1\n" + cuda.prelude() + "\n" + "\n".join(fns))
    cmd = [nvcc, "--ptx", "-arch=sm_80", *NVCC_FLAGS, "-o", str(tmp_path / "p.ptx"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_op_table_expressions_call_only_primitives():
    for op in OPS.values():
        for src in (op.expr, *((op.reduce.combine, op.reduce.finalize) if op.reduce else ())):
            if src is not None:
                parse(src)  # raises on anything else
    with pytest.raises(ValueError, match="no primitive"):
        check_expr("softsign(x)", "x")
    with pytest.raises(ValueError, match="unknown name"):
        check_expr("x + w", "xy")
    with pytest.raises(ValueError, match="no primitive"):
        check_expr("max(x)", "x")


def test_a_misspelled_expression_is_refused_when_registered():
    with pytest.raises(ValueError, match="no primitive"):
        register(OpDef(name="_bad", kind="elementwise", arity=1, expr="exq(x)"))
    assert "_bad" not in OPS


# ---- reductions ------------------------------------------------------------------------------
_NP = {"max": np.maximum, "min": np.minimum}  # (the primitives: NaN-propagating)


def _eval(src: str, **env):
    return eval(compile(src, src, "eval"), {"__builtins__": {}}, {**_NP, **env})  # noqa: S307


def _samples(d: dt.DType) -> np.ndarray:
    if d.is_floating_point:
        vals = [0.0, -0.0, 1.5, -2.25, 1e4, -1e-3, np.inf, -np.inf, np.finfo(d.np).max]
        return np.array(vals, dtype=d.np)
    if d is dt.bool_:
        return np.array([False, True])
    info = np.iinfo(d.np)
    return np.array([0, 1, 7, info.min, info.max, info.max - 1, info.min + 1], dtype=d.np)


def test_row_reductions_are_the_table_entries_with_facts():
    assert row_reductions() == ("sum", "mean", "amax", "amin")


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("d", [dt.float16, *FLOATS, *INTS], ids=str)
def test_identity_is_the_neutral_element_of_combine(name, d):
    facts = OPS[name].reduce
    acc = facts.acc_dtype(d)
    ident = acc.np.type(facts.identity_of(acc))
    for v in _samples(acc):
        for a, b in ((ident, v), (v, ident)):
            r = acc.np.type(_eval(facts.combine, x=a, y=b))
            assert r == v, (name, d, v, r)
            if name != "sum" and name != "mean":  # (+0.0 + -0.0 is +0.0, as numpy sums)
                assert np.signbit(r) == np.signbit(v), (name, d, v, r)
    if acc.is_floating_point:  # NaN propagates
        assert np.isnan(_eval(facts.combine, x=ident, y=acc.np.type("nan")))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("d", [dt.float16, *FLOATS, dt.int8, dt.int32, dt.int64], ids=str)
def test_facts_reduce_rows_as_numpy(name, d):
    """Folding a row with ``combine`` from ``identity`` in the accumulation dtype, then
    ``finalize``, gives the eager result (numpy's) for small exact rows, and the documented
    value for an empty row (sum 0, mean nan, amax -inf / amin inf in a float dtype)."""
    op = OPS[name]
    facts = op.reduce
    out = op.out_dtype(d)
    acc = facts.acc_dtype(out)
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 64):
        row = rng.integers(-20, 20, n).astype(d.np)
        ident = acc.np.type(facts.identity_of(acc))
        with np.errstate(invalid="ignore", divide="ignore"):
            x = functools.reduce(
                lambda s, v: acc.np.type(_eval(facts.combine, x=s, y=acc.np.type(v))), row, ident
            )
            if facts.finalize is not None:
                x = _eval(facts.finalize, x=x, n=acc.np.type(n))
        got = np.asarray(x).astype(out.np)
        if n == 0:
            want = {"sum": 0, "mean": np.nan, "amax": -np.inf, "amin": np.inf}[name]
            if not d.is_floating_point and name in ("amax", "amin"):
                continue  # (eager raises; a kernel gives the dtype's extreme)
            np.testing.assert_equal(got, np.asarray(want).astype(out.np))
            continue
        want = op.ref(row.astype(acc.np)).astype(out.np)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} {d} n={n}")


def test_float16_accumulates_in_float32():
    assert accumulation_dtype(dt.float16) is dt.float32
    for d in (*FLOATS, *INTS, dt.bool_):
        assert accumulation_dtype(d) is d
    assert OPS["sum"].reduce.acc_dtype(dt.float16) is dt.float32
    assert OPS["mean"].reduce.acc_dtype(dt.float16) is dt.float32
    assert OPS["amax"].reduce.acc_dtype(dt.float16) is dt.float16  # exact: no widening


def test_private_helpers_of_two_eager_modules_may_share_a_name(monkeypatch):
    """Binding Tensor methods looks only at the eager modules' public functions: a private
    helper of the same name in two modules is no conflict."""
    from fusejit.eager import indexing, methods, movement

    for mod in (indexing, movement):

        def _shared_helper():
            return None

        _shared_helper.__module__ = mod.__name__
        monkeypatch.setattr(mod, "_shared_helper", _shared_helper, raising=False)
    methods.bind_methods()  # (raised "two public functions named _shared_helper" before)
