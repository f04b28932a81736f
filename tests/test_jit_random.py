"""Random elementwise programs, traced and fused, against eager execution and numpy.

Programs (``jit_helpers.programs``) are straight-line DAGs of 1-6 ops drawn from the op table
(every unary and binary elementwise op with an ``expr``, plus ``where`` and ``cast``) over
inputs of random broadcastable shapes (0-d, size-1 dims, dropped leading dims), dtypes and
layouts (contiguous, transposed, sliced with a step), and Python scalar operands (weak).
Operands are clipped into each op's ``domain`` with ``maximum``/``minimum`` (op-table ops
too), denominators into ``[0.5, hi]`` (integers: ``[1, hi]``) and floats cast to integers
into ``[-100, 100]``, so there is no NaN, no division by zero and no integer overflow other
than the wrap-around of ``uint8`` subtraction and negation (which numpy and the kernels share).

Each program is run eagerly, traced with ``fusejit.trace`` (fused into CPU kernels), and
through the interpreter on the optimized graph. Checks, per output:

- dtype and shape equal eager's; the interpreter equals eager bit for bit (the passes only
  make value-preserving rewrites);
- integer programs (every op exact): fused equals eager and the numpy reference bit for bit;
- float programs, against a float64 reference carrying an error bound per element
  (``jit_helpers.float64_reference``): where every op leading to a value is ``exact``
  (correctly rounded), the value must equal the float64 result rounded to the dtype bit for
  bit (sign of zero included), whatever the chain's length; otherwise
  ``|fused - ref| <= 2 * bound`` and ``|fused - eager| <= 4 * bound``, where the bound adds
  per op 0.5 ulp (exact op on inexact inputs), 4 ulp (a library function: exp, log, sin,
  tanh, ... numpy's SIMD versions and libm are both within ~2.5 ulp), or 8 ulp plus
  8 * eps * |x| (activations computed in several steps: sigmoid, silu, softplus, gelu with
  its 1 + erf cancellation, gelu_tanh, rsqrt, exp2, pow, atan2) to the propagated effect of
  the inputs' errors (the op evaluated at the corners of its input intervals, which also
  covers comparisons, floor and casts that flip);
- when every op is exact, fused equals eager bit for bit.

The example counts keep the module near a minute: each example compiles a numba kernel.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from jit_helpers import (
    EXCLUDED,
    LEAF,
    Leaf,
    Program,
    as_np,
    assert_bitwise,
    float64_reference,
    module_cache_fixture,
    numpy_reference,
    programs,
)

import fusejit
from fusejit.base import dtypes as dt
from fusejit.ir.verify import verify

_cache = module_cache_fixture()

SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# more examples under a thorough profile (tests/conftest.py: FUSEJIT_HYPOTHESIS_PROFILE)
SCALE = max(1, settings.default.max_examples // 15)


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


def check_program(p: Program, device: str = "cpu") -> None:
    """The checks above for program ``p`` with its inputs on ``device`` (tests/test_cuda.py
    runs them on a GPU: there the inputs are contiguous copies)."""
    arrays = p.arrays()
    inputs = p.inputs(arrays)
    if device != "cpu":
        inputs = tuple(t.to(device) for t in inputs)
    eager = _tuple(p.fn(*inputs))
    traced = fusejit.trace(p.fn, inputs, check_trace=False)
    verify(traced.graph)
    fused = _tuple(traced(*inputs))
    interp = _tuple(traced.interpret(*inputs))
    assert len(fused) == len(eager) == len(p.outputs)
    approx = float64_reference(p, arrays)
    exact_ref = numpy_reference(p, arrays) if p.mode == "int" else None
    for i, k in enumerate(p.outputs):
        what = f"output {i} (v{k})"
        f, e = fused[i], eager[i]
        assert f.dtype is e.dtype is p.dtypes[k], what
        assert f.shape == e.shape == p.shapes[k], what
        assert_bitwise(interp[i], e, f"{what}: interpreter vs eager")
        if p.all_exact():
            assert_bitwise(f, e, f"{what}: fused vs eager")
        if exact_ref is not None:
            assert_bitwise(f, exact_ref[k], f"{what}: fused vs numpy reference")
        ref = approx[k]
        fv = as_np(f).astype(np.float64)
        ev = as_np(e).astype(np.float64)
        r = np.broadcast_to(ref.r, fv.shape)
        bound = np.broadcast_to(ref.e, fv.shape)
        exact = bound == 0
        if exact.any():
            want = r[exact].astype(f.dtype.np)
            assert_bitwise(as_np(f)[exact], want, f"{what}: fused vs float64 reference")
            assert_bitwise(as_np(e)[exact], want, f"{what}: eager vs float64 reference")
        err = np.abs(fv - r)
        assert np.all(err <= 2 * bound), (
            f"{what}: fused is {np.max(err / np.maximum(bound, 1e-300)):.3g}x the error bound "
            f"from the float64 reference"
        )
        assert np.all(np.abs(fv - ev) <= 4 * bound), f"{what}: fused vs eager beyond bound"


@settings(max_examples=22 * SCALE, **SETTINGS)
@given(p=programs("float"))
def test_random_float_programs(p):
    check_program(p)


@settings(max_examples=12 * SCALE, **SETTINGS)
@given(p=programs("int"))
def test_random_int_programs(p):
    check_program(p)


def test_an_operand_outside_its_ops_domain_is_taken_as_it_is():
    """A program whose compare reads a value past the op's default domain (x * x up to 100 >
    10), found by the random int programs: the float64 reference once clipped it first."""
    p = Program(
        mode="int",
        leaves=[Leaf(dtype=dt.int8, shape=(8, 8), layout="contiguous", seed=0, special=0.25)],
        steps=[(LEAF, 0, {}), ("mul", (("v", 0), ("v", 0)), {}), ("mul", (("s", 0), ("v", 0)), {}),
               ("gt", (("v", 1), ("s", 10)), {}), ("where", (("v", 3), ("v", 0), ("s", 0)), {})],
        outputs=[4, 2],
        dtypes=[dt.int8, dt.int8, dt.int8, dt.bool_, dt.int8],
        shapes=[(8, 8)] * 5,
    )  # fmt: skip
    check_program(p)
    x = p.arrays()[0]
    out = p.fn(*p.inputs([x]))[0].numpy()
    np.testing.assert_array_equal(out, np.where(x.astype(np.int64) ** 2 > 10, x, 0))


def test_the_op_pool_covers_the_table():
    from jit_helpers import POOLS

    from fusejit.ops.registry import OPS

    table = {n for n, op in OPS.items() if op.kind == "elementwise" and op.expr is not None}
    assert table - set(POOLS["float"]) == set(EXCLUDED)
    assert {"add", "floor_divide", "bitwise_xor", "where", "cast"} <= set(POOLS["int"])


def test_sign_of_negative_zero():
    # the op table's expr once returned x for a zero: sign(-0.0) was -0.0 fused, +0.0 eager
    x = fusejit.tensor([-0.0, 0.0, -2.0, 3.0, float("nan")])
    f = fusejit.trace(lambda x: (x * 1.5).sign(), x, check_trace=False)
    assert_bitwise(f(x), (x * 1.5).sign())
    assert_bitwise(f(x), np.sign(x.numpy() * np.float32(1.5)))
