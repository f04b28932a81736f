"""Shared helpers for the JIT tests: an isolated kernel cache, bitwise comparison, and random
elementwise programs drawn from the op table with two references to check them against.

A *program* is a straight-line list of op-table calls over some input tensors ("leaves"),
Python scalars and earlier results. ``programs(mode)`` draws one (a hypothesis strategy);
``Program.fn`` runs it eagerly through ``fusejit.eager.call`` (what ``fusejit.trace`` records).

References (see ``tests/test_jit_random.py`` for the bounds they are used with):

- ``numpy_reference``: the program evaluated with each op's numpy ``ref`` in the dtypes the
  op table's rules give (compute dtype in, result dtype out, Python scalars weak). For
  integer programs, where every op is exact, the JIT must match it bit for bit.
- ``float64_reference``: the program evaluated in float64 with, per value, an error bound
  ``e`` such that a correct implementation's value lies within ``e`` of the float64 value.
  An exact op on exact inputs is rounded to its result dtype and keeps ``e == 0`` (so such
  values must match bit for bit); otherwise ``e`` is the op's sensitivity to its inputs'
  errors (the op evaluated at the corners of the input intervals, which also covers a
  comparison, ``floor`` or cast that may flip) plus the op's own rounding:
  ``0.5 ulp`` for an exact op, ``K_TRANSCENDENTAL ulp`` for a library function and
  ``K_COMPOSITE ulp`` (plus ``K_COMPOSITE * eps * |x|`` for the ``1 + erf`` / ``1 + tanh``
  cancellation of ``gelu``) for the activations written as several steps.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import strategies as st

import fusejit
from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError
from fusejit.eager import dispatch
from fusejit.ir.graph import TensorType
from fusejit.ops.registry import OPS

# ---- environment ------------------------------------------------------------------------------


@contextlib.contextmanager
def isolated_cache(path):
    """Point the kernel cache at ``path`` (FUSEJIT_CACHE_DIR is read at kernel build time)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSEJIT_CACHE_DIR", str(path))
    try:
        yield path
    finally:
        mp.undo()


def module_cache_fixture():
    """An autouse, module-scoped fixture giving the module its own kernel cache folder."""

    @pytest.fixture(autouse=True, scope="module")
    def _module_cache(tmp_path_factory):
        with isolated_cache(tmp_path_factory.mktemp("fusejit-cache")) as p:
            yield p

    return _module_cache


# ---- comparisons ------------------------------------------------------------------------------


def as_np(t) -> np.ndarray:
    return np.asarray(t.numpy() if isinstance(t, fusejit.Tensor) else t)


def assert_bitwise(actual, expected, what: str = "") -> None:
    """Equal values, dtypes and shapes (NaN where NaN), and for floats the same sign of every
    zero and infinity. The sign of a NaN is not compared: IEEE 754 leaves it unspecified for
    arithmetic, and compilers use that (LLVM compiles ``x * -1.0`` as a negation)."""
    a, b = as_np(actual), as_np(expected)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    np.testing.assert_array_equal(a, b, err_msg=what)
    if a.dtype.kind == "f":
        num = ~np.isnan(b)
        np.testing.assert_array_equal(np.signbit(a)[num], np.signbit(b)[num],
                                      err_msg=f"{what}: sign")  # fmt: skip


def ulp(x, np_dtype) -> np.ndarray:
    """The spacing of ``np_dtype`` at magnitude ``x`` (as float64)."""
    mag = np.minimum(np.abs(np.asarray(x, np.float64)), np.finfo(np_dtype).max)
    return np.spacing(mag.astype(np_dtype)).astype(np.float64)


# ---- random programs --------------------------------------------------------------------------

DEFAULT_DOMAIN = (-10.0, 10.0)
LEAF_RANGE = (-10, 10)  # leaves are drawn here (uint8: from 0)

# ops left out of random programs, with the reason (none at present; sign was, until its expr
# gave +0.0 for -0.0 as numpy does: see test_jit_random.py::test_sign_of_negative_zero)
EXCLUDED: dict = {}
COMPOSITE = {"sigmoid", "silu", "softplus", "gelu", "gelu_tanh", "rsqrt", "exp2", "pow", "atan2",
             "mish", "logsigmoid", "selu", "hardswish", "hardsigmoid", "softsign", "logaddexp",
             "logaddexp2", "xlogy", "tanhshrink", "erfinv"}  # fmt: skip
# 0.5 * x * (1 + f(x)), x - tanh(x): absolute error ~ eps * |x|
CANCELLING = {"gelu", "gelu_tanh", "tanhshrink"}
K_TRANSCENDENTAL = 4.0
K_COMPOSITE = 8.0
# operand positions that must stay away from zero
DENOMINATORS = {("div", 1), ("floor_divide", 1), ("remainder", 1), ("fmod", 1), ("xlogy", 1),
                ("reciprocal", 0),
                ("rsqrt", 0)}  # fmt: skip

FLOAT_DTYPES = (dt.float32, dt.float64)
INT_DTYPES = (dt.int8, dt.int16, dt.int32, dt.int64, dt.uint8)


# drawn first (hypothesis favours the first choices): the ops that round
FIRST = ["mul", "add", "sub", "div", "exp", "tanh", "where", "cast", "sqrt", "remainder"]


def _pool(mode: str) -> list:
    ops = []
    for op in OPS.values():
        if op.kind != "elementwise" or op.expr is None or op.name in EXCLUDED:
            continue
        if op.name in ("where", "cast"):
            ops.append(op.name)
            continue
        if op.arity not in (1, 2):
            continue
        if mode == "int" and (op.rule == "float" or not (op.allowed & {"i", "u", "b"})):
            continue
        ops.append(op.name)
    return sorted(ops, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n))


POOLS = {"float": _pool("float"), "int": _pool("int")}


@dataclass
class Leaf:
    dtype: dt.DType
    shape: tuple
    layout: str  # contiguous, transposed, sliced
    seed: int
    special: float  # fraction of special values (0, -0.0, +-1, range ends)

    def array(self) -> np.ndarray:
        """The leaf's values, as a view with the leaf's layout."""
        rng = np.random.default_rng(self.seed)
        shape = self.shape
        if self.layout == "transposed":
            base_shape = shape[::-1]
        elif self.layout == "sliced":
            base_shape = shape[:-1] + (2 * shape[-1],)
        else:
            base_shape = shape
        lo, hi = LEAF_RANGE
        if self.dtype is dt.bool_:
            base = rng.random(base_shape) < 0.5
        elif self.dtype.is_floating_point:
            base = rng.uniform(lo, hi, base_shape)
            specials = np.array([0.0, -0.0, 1.0, -1.0, 0.5, lo, hi, 2.0, -2.5])
            mask = rng.random(base_shape) < self.special
            base = np.where(mask, rng.choice(specials, base_shape), base)
        else:
            base = rng.integers(0 if self.dtype is dt.uint8 else lo, hi + 1, base_shape)
        base = np.asarray(base).astype(self.dtype.np)
        if self.layout == "transposed":
            return base.T
        if self.layout == "sliced":
            return base[..., ::2]
        return base


LEAF = "<leaf>"


@dataclass
class Program:
    mode: str
    leaves: list = field(default_factory=list)
    # value k is made by steps[k]: (LEAF, leaf index, {}) or (op name, args, attrs); an arg is
    # ("v", value index) or ("s", python scalar)
    steps: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    dtypes: list = field(default_factory=list)  # fusejit dtype of each value
    shapes: list = field(default_factory=list)
    clips: set = field(default_factory=set)  # the steps that clip an operand into a domain

    def fn(self, *tensors):
        vals = []
        for name, args, attrs in self.steps:
            if name == LEAF:
                vals.append(tensors[args])
                continue
            ins = [vals[a[1]] if a[0] == "v" else a[1] for a in args]
            vals.append(fusejit.eager.call(name, *ins, **attrs))
        out = tuple(vals[i] for i in self.outputs)
        return out[0] if len(out) == 1 else out

    def arrays(self) -> list:
        return [leaf.array() for leaf in self.leaves]

    def inputs(self, arrays=None) -> tuple:
        """The input tensors (sharing memory with ``arrays``, default: fresh ones)."""
        arrays = self.arrays() if arrays is None else arrays
        return tuple(fusejit.from_numpy(a) for a in arrays)

    def op_steps(self) -> list:
        return [s for s in self.steps if s[0] != LEAF]

    def all_exact(self) -> bool:
        return all(OPS[s[0]].exact for s in self.op_steps())

    def is_leaf(self, k: int) -> bool:
        return self.steps[k][0] == LEAF

    def __str__(self) -> str:  # shown by hypothesis when an example fails
        lines = [f"Program({self.mode})"]
        for k, (name, args, attrs) in enumerate(self.steps):
            if name == LEAF:
                leaf = self.leaves[args]
                lines.append(f"  v{k} = input {args}: {leaf.dtype.name}{list(leaf.shape)} "
                             f"{leaf.layout} seed={leaf.seed} special={leaf.special}")  # fmt: skip
                continue
            a = ", ".join(f"v{x[1]}" if x[0] == "v" else repr(x[1]) for x in args)
            extra = "".join(f", {k2}={v!r}" for k2, v in attrs.items())
            lines.append(f"  v{k} = {name}({a}{extra})  # {self.dtypes[k].name}")
        lines.append(f"  return {', '.join(f'v{i}' for i in self.outputs)}")
        return "\n".join(lines)

    __repr__ = __str__


def operand_types(p: Program, args) -> list:
    """The operands of a step as ``dispatch.elementwise_dtypes`` takes them: each value's type
    (dtype and shape: a 0-d value promotes as a 0-d tensor), each Python scalar as it is."""
    return [TensorType(p.dtypes[a[1]], p.shapes[a[1]], None) if a[0] == "v" else a[1]
            for a in args]  # fmt: skip


def _broadcast(*shapes):
    return tuple(np.broadcast_shapes(*shapes))


class _Builder:
    def __init__(self, draw, mode: str) -> None:
        self.draw = draw
        self.p = Program(mode)
        self.mode = mode
        # (hypothesis favours the first choices: the interesting ones come first)
        rank = draw(st.sampled_from([2, 1, 3, 0]))
        self.out_shape = tuple(draw(st.lists(st.sampled_from([8, 3, 17, 1, 2]), min_size=rank,
                                             max_size=rank)))  # fmt: skip
        if mode == "float":
            self.base = draw(st.sampled_from(FLOAT_DTYPES))
            self.leaf_dtypes = [self.base, self.base, self.base, dt.int32, dt.float32]
        else:
            self.base = draw(st.sampled_from(INT_DTYPES))
            self.leaf_dtypes = [self.base, self.base, self.base, dt.int8, dt.uint8, dt.bool_]

    # values --------------------------------------------------------------------------------
    def add_leaf(self, dtype=None, full=False) -> int:
        d = self.draw
        dtype = dtype or d(st.sampled_from(self.leaf_dtypes))
        rank = len(self.out_shape)
        # mostly the full shape; sometimes leading dims dropped or dims of size 1
        drop = d(st.integers(0, rank)) if rank and not full and d(st.integers(0, 2)) == 2 else 0
        shape = list(self.out_shape[drop:])
        for i in range(len(shape)):
            if not full and d(st.integers(0, 3)) == 3:
                shape[i] = 1
        shape = tuple(shape)
        layouts = ["contiguous"]
        if len(shape) >= 1:
            layouts.append("sliced")
        if len(shape) >= 2:
            layouts.append("transposed")
        layout = d(st.sampled_from(layouts))
        leaf = Leaf(dtype, shape, layout, d(st.integers(0, 2**32 - 1)),
                    d(st.sampled_from([0.25, 0.0, 0.6])))  # fmt: skip
        self.p.leaves.append(leaf)
        self.p.steps.append((LEAF, len(self.p.leaves) - 1, {}))
        self.p.dtypes.append(dtype)
        self.p.shapes.append(shape)
        return len(self.p.steps) - 1

    def add_step(self, name, args, attrs=None) -> int:
        attrs = attrs or {}
        op = OPS[name]
        operands = operand_types(self.p, args)
        _, out = dispatch.elementwise_dtypes(op, operands, attrs)
        shape = _broadcast(*[self.p.shapes[a[1]] for a in args if a[0] == "v"])
        self.p.steps.append((name, tuple(args), dict(attrs)))
        self.p.dtypes.append(out)
        self.p.shapes.append(shape)
        return len(self.p.dtypes) - 1

    def pick_value(self, allow_bool=True) -> int:
        n = len(self.p.dtypes)
        choices = [i for i in range(n) if allow_bool or self.p.dtypes[i] is not dt.bool_]
        if not choices or self.draw(st.integers(0, 4)) == 4:
            return self.add_leaf(None if allow_bool else
                                 self.draw(st.sampled_from(self.leaf_dtypes[:-1])))  # fmt: skip
        # prefer recent values, so that programs are deep rather than wide
        recent = choices[-4:]
        return self.draw(st.sampled_from(choices if self.draw(st.booleans()) else recent))

    # domains -------------------------------------------------------------------------------
    def clip(self, v, name, pos, force=False, target=None):
        """Clip value ``v`` into the domain of operand ``pos`` of op ``name`` with
        maximum/minimum (exact op-table ops, so the clipped value is exactly in range)."""
        d = self.p.dtypes[v]
        if d is dt.bool_:
            return v
        lo, hi = operand_range(name, pos, d, target)
        needed = (
            force
            or not self.p.is_leaf(v)
            or (name, pos) in DENOMINATORS
            or tuple(OPS[name].domain) != DEFAULT_DOMAIN
            or name == "cast"
        )
        if not needed:
            return v
        v = self.add_step("maximum", [("v", v), ("s", lo)])
        self.p.clips.add(v)
        v = self.add_step("minimum", [("v", v), ("s", hi)])
        self.p.clips.add(v)
        return v

    def scalar(self, name, pos, partner_dtype):
        d = self.draw
        if not partner_dtype.is_floating_point and (self.mode == "int" or d(st.booleans())):
            lo, hi = operand_range(name, pos, partner_dtype)
            return d(st.integers(lo, hi))
        lo, hi = operand_range(name, pos, dt.float64)
        nice = [x for x in (0.1, 7.25, 2.0, -1.5, 0.5, 3.0, 1e-3, 1.0, -1.0, 0.0, -0.0)
                if lo <= x <= hi]  # fmt: skip
        if not d(st.booleans()) and nice:
            return d(st.sampled_from(nice))
        return round(d(st.floats(lo, hi, allow_nan=False, allow_infinity=False)), 3)

    # steps ---------------------------------------------------------------------------------
    def try_op(self, name) -> bool:
        d = self.draw
        op = OPS[name]
        if name == "where":
            bools = [i for i, t in enumerate(self.p.dtypes) if t is dt.bool_]
            if bools and d(st.booleans()):
                c = d(st.sampled_from(bools))
            else:
                x = self.pick_value(allow_bool=False)
                s = self.scalar("gt", 1, self.p.dtypes[x])
                c = self.add_step(d(st.sampled_from(["gt", "le", "ne"])), [("v", x), ("s", s)])
            a = ("v", self.pick_value())
            b = ("v", self.pick_value()) if d(st.booleans()) else (
                "s", self.scalar("where", 2, self.p.dtypes[a[1]]))  # fmt: skip
            if d(st.booleans()):
                a, b = b, a
            if a[0] == "s" and b[0] == "s":
                return False
            self.add_step("where", [("v", c), a, b])
            return True
        if name == "cast":
            targets = ([dt.float32, dt.float64, dt.int32, dt.int16, dt.bool_]
                       if self.mode == "float" else [*INT_DTYPES, dt.bool_])  # fmt: skip
            to = d(st.sampled_from(targets))
            v = self.pick_value()
            src = self.p.dtypes[v]
            if src.is_floating_point and not to.is_floating_point and to is not dt.bool_:
                v = self.clip(v, "cast", 0, force=True, target=to)
            self.add_step("cast", [("v", v)], {"dtype": to})
            return True
        args = []
        n_scalar = 0
        for pos in range(op.arity):
            use_scalar = op.arity == 2 and n_scalar == 0 and not d(st.booleans())
            if use_scalar:
                args.append(None)  # filled once the tensor operand's dtype is known
                n_scalar += 1
                continue
            bool_ok = "b" in op.allowed and (name, pos) not in DENOMINATORS
            v = self.pick_value(allow_bool=bool_ok)
            args.append(("v", v))
        tensor_dtypes = [self.p.dtypes[a[1]] for a in args if a is not None]
        if not tensor_dtypes:
            return False
        partner = tensor_dtypes[0]
        for pos, a in enumerate(args):
            if a is None:
                args[pos] = ("s", self.scalar(name, pos, partner))
        # the dtype the op computes in decides the domain clipping
        operands = operand_types(self.p, args)
        try:
            compute, out = dispatch.elementwise_dtypes(op, operands)
        except DTypeError:
            return False
        if self.mode == "int" and out.is_floating_point:
            return False
        if any(a[0] == "v" and self.p.dtypes[a[1]] is dt.bool_ for a in args) and (
            compute is not dt.bool_ and op.rule not in ("compare", "logical")
            and name not in ("add", "mul", "bitwise_and", "bitwise_or", "bitwise_xor")
        ):  # fmt: skip
            return False  # a bool operand of a numeric op with a domain: keep it simple
        for pos, a in enumerate(args):
            if a[0] == "v" and op.rule != "logical":
                args[pos] = ("v", self.clip(a[1], name, pos, target=compute))
        self.add_step(name, args)
        return True

    def build(self, n_ops: int) -> Program:
        pool = POOLS[self.mode]
        # half the programs draw only exact ops: their results must match bit for bit
        if self.draw(st.booleans()):
            pool = [n for n in pool if OPS[n].exact]
        self.add_leaf(self.base, full=True)
        made = 0
        tries = 0
        while made < n_ops and tries < 4 * n_ops:
            tries += 1
            name = self.draw(st.sampled_from(pool))
            if self.try_op(name):
                made += 1
        if not self.p.op_steps():
            self.add_step("add", [("v", 0), ("s", 1)])
        # return the values nothing reads (so no step is dead), the last ones first, and
        # sometimes an intermediate too (a fused region then exports it as an extra output)
        used = {a[1] for n, args, _ in self.p.op_steps() for a in args if a[0] == "v"}
        ops = [k for k in range(len(self.p.steps)) if not self.p.is_leaf(k)]
        sinks = [k for k in reversed(ops) if k not in used]
        self.p.outputs = sinks[:3]
        inner = [k for k in ops if k in used]
        if inner and self.draw(st.booleans()):
            self.p.outputs.append(self.draw(st.sampled_from(inner)))
        return self.p


def operand_range(name, pos, d: dt.DType, target: dt.DType | None = None):
    """The range operand ``pos`` of op ``name`` is clipped to when it has dtype ``d`` (and
    the op computes in ``target``): the op's domain, kept away from zero for a denominator,
    in integers for an integer operand."""
    lo, hi = OPS[name].domain
    if (name, pos) in DENOMINATORS:
        lo = max(lo, 0.5)
    if name == "cast":
        lo, hi = (0.0 if target is dt.uint8 else -100.0), 100.0
    if d.is_floating_point:
        return float(lo), float(hi)
    lo, hi = math.ceil(lo), math.floor(hi)
    if d is dt.uint8:
        lo = max(lo, 0)
    return int(lo), int(hi)


@st.composite
def programs(draw, mode: str = "float", max_ops: int = 6):
    """A random elementwise program (see ``Program``) in ``mode`` "float" or "int"."""
    n_ops = draw(st.sampled_from([4, max_ops, 3, 2, 1]))
    return _Builder(draw, mode).build(n_ops)


# ---- references -------------------------------------------------------------------------------


def _call_ref(name, arrays, attrs):
    op = OPS[name]
    if name == "cast":
        return arrays[0].astype(attrs["dtype"].np)
    if name == "where":
        return np.where(arrays[0].astype(bool), arrays[1], arrays[2])
    with np.errstate(all="ignore"):
        return op.ref(*arrays)


def numpy_reference(p: Program, arrays) -> list:
    """The program's values computed by the op table's numpy references, in the dtypes the
    rules give: the tensor operands converted to the compute dtype (a where's condition and
    the operands of logical ops as they are), Python scalars weak, the result converted to the
    result dtype."""
    vals = []
    for name, args, attrs in p.steps:
        if name == LEAF:
            vals.append(np.asarray(arrays[args]))
            continue
        op = OPS[name]
        operands = operand_types(p, args)
        compute, out = dispatch.elementwise_dtypes(op, operands, attrs)
        ins = []
        for i, a in enumerate(args):
            if a[0] == "s":
                # a where's scalar branch takes the compute dtype; elsewhere scalars stay weak
                ins.append(np.asarray(a[1], compute.np) if name == "where" else a[1])
                continue
            x = vals[a[1]]
            if not (op.rule in ("logical", "cast") or (name == "where" and i == 0)):
                x = x.astype(compute.np)
            ins.append(x)
        res = np.asarray(_call_ref(name, ins, attrs))
        vals.append(res.astype(out.np))
    return vals


def _round_to(x: np.ndarray, d: dt.DType) -> np.ndarray:
    if d is dt.bool_:
        return (x != 0).astype(np.float64)
    if d.is_floating_point:
        return x.astype(d.np).astype(np.float64)
    return x.astype(np.int64).astype(d.np).astype(np.float64)


@dataclass
class Approx:
    r: np.ndarray  # float64 reference value
    e: np.ndarray  # error bound (0: the implementation must match r exactly)
    dtype: dt.DType


def _eval64(name, attrs, compute, xs, ranges):
    """Op ``name`` on float64 operand values ``xs`` (each clipped to its range, as the program
    clipped it), computed exactly where the compute dtype is an integer or bool."""
    op = OPS[name]
    ins = []
    for pos, x in enumerate(xs):
        if ranges[pos] is not None:
            lo, hi = ranges[pos]
            if compute.is_floating_point:
                # the program clipped with weak scalars, i.e. bounds rounded to the compute dtype
                lo, hi = (float(np.asarray(b, compute.np)) for b in (lo, hi))
            x = np.clip(x, lo, hi)
        if (name == "where" and pos == 0) or op.rule == "logical" or compute is dt.bool_:
            ins.append(x != 0)
        elif name == "cast" or compute.is_floating_point:
            ins.append(x)
        else:
            ins.append(np.rint(x).astype(np.int64))
    if name == "cast":
        to, x = attrs["dtype"], ins[0]
        if to is dt.bool_:
            return (x != 0).astype(np.float64)
        if to.is_floating_point:
            return x.astype(np.float64)
        return np.trunc(x).astype(np.int64).astype(to.np).astype(np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(_call_ref(name, ins, attrs)).astype(np.float64)


def _within(r: np.ndarray, rng, compute: dt.DType) -> bool:
    """Whether the values ``r`` lie in ``rng`` as ``_eval64`` clips to it. Values outside it
    were not clipped by the program, so the reference takes them as they are: clipping them
    here would compute another program than the one that ran."""
    lo, hi = rng
    if compute.is_floating_point:
        lo, hi = (float(np.asarray(b, compute.np)) for b in (lo, hi))
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isnan(r) | ((r >= lo) & (r <= hi))))


def float64_reference(p: Program, arrays) -> list:
    """Each value of the program as an ``Approx`` (see the module docstring)."""
    vals = []
    for name, args, attrs in p.steps:
        if name == LEAF:
            a = np.asarray(arrays[args])
            vals.append(Approx(a.astype(np.float64), np.zeros(a.shape), p.dtypes[len(vals)]))
            continue
        op = OPS[name]
        operands = operand_types(p, args)
        compute, out = dispatch.elementwise_dtypes(op, operands, attrs)
        base, errs, ranges = [], [], []
        for pos, a in enumerate(args):
            if a[0] == "s":
                v = a[1]
                if name == "where" or (compute.is_floating_point and op.rule != "logical"):
                    v = np.asarray(v, compute.np)  # weak: converted to the compute dtype
                base.append(np.asarray(v, np.float64))
                errs.append(np.zeros(()))
                ranges.append(None)
                continue
            v = vals[a[1]]
            base.append(v.r)
            errs.append(v.e)
            # the operand is within its range: the program clipped it (or drew it there)
            clipped = name not in ("where", "cast") and op.rule != "logical"
            clipped = clipped and v.dtype is not dt.bool_ and len(vals) not in p.clips
            rng = operand_range(name, pos, v.dtype, compute) if clipped else None
            ranges.append(rng if rng is not None and _within(v.r, rng, compute) else None)
        r = _eval64(name, attrs, compute, base, ranges)
        exact_inputs = not any(np.any(e) for e in errs)
        if op.exact and exact_inputs:
            vals.append(Approx(_round_to(r, out), np.zeros(r.shape), out))
            continue
        # sensitivity to the inputs' errors: the op at the corners of the input intervals
        dev = np.zeros(r.shape)
        moving = [i for i, e in enumerate(errs) if np.any(e)]
        for signs in itertools.product((-1.0, 0.0, 1.0), repeat=len(moving)):
            xs = list(base)
            for i, sgn in zip(moving, signs, strict=True):
                xs[i] = base[i] + sgn * errs[i]
            dev = np.maximum(dev, np.abs(_eval64(name, attrs, compute, xs, ranges) - r))
        if out.is_floating_point:  # the op's own rounding
            npd = out.np
            mag = np.abs(r) + dev
            if op.exact:
                dev = dev + 0.5 * ulp(mag, npd)
            else:
                k = K_COMPOSITE if name in COMPOSITE | CANCELLING else K_TRANSCENDENTAL
                dev = dev + k * ulp(mag, npd) + k * np.finfo(npd).tiny
                if name in CANCELLING:
                    dev = dev + k * np.finfo(npd).eps * (np.abs(base[0]) + errs[0])
        vals.append(Approx(r, dev, out))
    return vals
