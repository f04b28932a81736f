"""Arguments of the public API: a size, count or dim that is not an int (a float, even 2.0 or
nan, a string, None, a bool), a negative size, data ``tensor`` cannot take and what ``trace``
cannot record raise a fusejit error naming the call and the bad argument; the forms PyTorch
accepts (``zeros(2, 3)``, ``zeros((2, 3))``, ``zeros([2, 3])``, ``zeros(())``, numpy ints,
``x.shape``, -1 in ``reshape`` and ``expand``) keep working, checked against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_errors import raises

import fusejit as F

T = F.tensor
nan, inf = math.nan, math.inf

# ---- sizes of the factories: not ints ---------------------------------------------------------
FACTORIES = {
    "zeros": F.zeros,
    "ones": F.ones,
    "empty": F.empty,
    "rand": F.rand,
    "randn": F.randn,
    "full": lambda *s: F.full(s[0] if len(s) == 1 else s, 1.0),
    "randint": lambda *s: F.randint(0, 5, s[0] if len(s) == 1 else s),
}
NOT_INTS = {  # the sizes given, and what the message shows of the bad one
    "float": ((2.5,), "float 2.5"),
    "integral float": ((2.0,), "float 2.0"),
    "string": (("3",), "str '3'"),
    "None": ((None,), "None"),
    "nan": ((nan,), "float nan"),
    "inf": ((inf,), "float inf"),
    "bool": ((True,), "bool True"),
    "numpy float": ((np.float64(2.0),), "float64"),
    "second of two": ((2, 2.5), "float 2.5"),
    "in a tuple": (((2, 2.5),), "float 2.5"),
    "in a list": (([2, None],), "None"),
    "nested tuple": (((2,), 3), "tuple (2,)"),
    "float tensor": ((T(2.0),), "Tensor"),
}
SIZE_CASES = {
    f"{f} {k}": (lambda f=f, s=s: FACTORIES[f](*s), F.DTypeError, f"{f}:", "size", shown)
    for f in FACTORIES
    for k, (s, shown) in NOT_INTS.items()
}
SIZE_CASES.update({
    f"{f} negative": (lambda f=f: FACTORIES[f](2, -3), F.ShapeError, f"{f}:", "non-negative",
                      "[2, -3]")
    for f in FACTORIES
})  # fmt: skip

# ---- the other arguments of the factories -----------------------------------------------------
FACTORY_CASES = {
    "full fill_value str": (lambda: F.full(3, "a"), F.DTypeError, "full:", "fill_value", "'a'"),
    "full fill_value None": (lambda: F.full(3, None), F.DTypeError, "full:", "fill_value",
                             "None"),
    "full fill_value tensor": (lambda: F.full(3, T([1.0, 2.0])), F.ShapeError, "full:",
                               "fill_value", "[2]"),
    "randint low float": (lambda: F.randint(0.5, 10, (2,)), F.DTypeError, "randint:", "low",
                          "0.5"),
    "randint high str": (lambda: F.randint(0, "9", (2,)), F.DTypeError, "randint:", "high",
                         "'9'"),
    "randint size None": (lambda: F.randint(0, 10, None), F.DTypeError, "randint:", "size",
                          "None"),
    "randint empty range": (lambda: F.randint(5, 5, (2,)), F.ShapeError, "randint:", "low",
                            "high"),
    "arange str": (lambda: F.arange("5"), F.DTypeError, "arange:", "end", "'5'"),
    "arange None": (lambda: F.arange(None), F.DTypeError, "arange:", "end", "None"),
    "arange step str": (lambda: F.arange(0, 5, "1"), F.DTypeError, "arange:", "step", "'1'"),
    "arange start list": (lambda: F.arange([0], 5), F.DTypeError, "arange:", "start", "[0]"),
    "arange nan": (lambda: F.arange(nan), F.ShapeError, "arange:", "end", "nan"),
    "arange inf": (lambda: F.arange(0, inf), F.ShapeError, "arange:", "end", "inf"),
    "arange step nan": (lambda: F.arange(0, 1, nan), F.ShapeError, "arange:", "step", "nan"),
    "arange step 0": (lambda: F.arange(0, 5, 0), F.ShapeError, "arange:", "step", "nonzero"),
    "arange wrong way": (lambda: F.arange(5, 0), F.ShapeError, "arange:", "step 1", "start 5",
                         "end 0"),
    "arange wrong way neg": (lambda: F.arange(0, 5, -1), F.ShapeError, "arange:", "step -1"),
    "linspace steps float": (lambda: F.linspace(0, 1, 2.5), F.DTypeError, "linspace:",
                             "steps", "2.5"),
    "linspace steps str": (lambda: F.linspace(0, 1, "3"), F.DTypeError, "linspace:", "steps",
                           "'3'"),
    "linspace steps None": (lambda: F.linspace(0, 1, None), F.DTypeError, "linspace:",
                            "steps", "None"),
    "linspace steps negative": (lambda: F.linspace(0, 1, -1), F.ShapeError, "linspace:",
                                "steps", "-1"),
    "linspace start str": (lambda: F.linspace("a", 1, 3), F.DTypeError, "linspace:", "start",
                           "'a'"),
    "eye n float": (lambda: F.eye(2.5), F.DTypeError, "eye:", "n", "2.5"),
    "eye n str": (lambda: F.eye("3"), F.DTypeError, "eye:", "n", "'3'"),
    "eye n None": (lambda: F.eye(None), F.DTypeError, "eye:", "n", "None"),
    "eye m float": (lambda: F.eye(2, 2.5), F.DTypeError, "eye:", "m", "2.5"),
    "eye n negative": (lambda: F.eye(-1), F.ShapeError, "eye:", "n=-1"),
    "eye m negative": (lambda: F.eye(2, -1), F.ShapeError, "eye:", "m=-1"),
    "new_zeros float": (lambda: F.ones(2).new_zeros(2.5), F.DTypeError, "zeros:", "size",
                        "2.5"),
}  # fmt: skip

# ---- movement ops ------------------------------------------------------------------------------
X = F.arange(100.0)
M = F.ones(2, 3)
R = F.ones(1, 3)
MOVEMENT_CASES = {
    "reshape nan": (lambda: X.reshape(nan), F.DTypeError, "reshape:", "shape", "nan"),
    "reshape float": (lambda: X.reshape(2.5, 40), F.DTypeError, "reshape:", "2.5", "[2.5, 40]"),
    "reshape integral float": (lambda: X.reshape(4.0, 25), F.DTypeError, "reshape:", "4.0"),
    "reshape str": (lambda: X.reshape("100"), F.DTypeError, "reshape:", "'100'"),
    "reshape None": (lambda: X.reshape(None), F.DTypeError, "reshape:", "None"),
    "reshape tuple and int": (lambda: X.reshape((4, 25), 1), F.DTypeError, "reshape:",
                              "tuple (4, 25)"),
    "reshape function": (lambda: F.reshape(X, [4, 25.0]), F.DTypeError, "reshape:", "25.0"),
    "reshape -2": (lambda: X.reshape(-2, -50), F.ShapeError, "reshape:", "-2"),
    "view nan": (lambda: X.view(nan), F.DTypeError, "view:", "shape", "nan"),
    "view float": (lambda: X.view(4.0, 25), F.DTypeError, "view:", "4.0"),
    "view None": (lambda: X.view(None), F.DTypeError, "view:", "None"),
    "view dtype": (lambda: X.view(F.int32), F.DTypeError, "view:", "view(dtype)", ".to(dtype)"),
    "view str": (lambda: X.view("100"), F.DTypeError, "view:", "'100'"),
    "expand -2": (lambda: R.expand(-2, 3), F.ShapeError, "expand:", "-2", "-1 to keep"),
    "expand -2 existing dim": (lambda: R.expand(2, -2), F.ShapeError, "expand:", "-2"),
    "expand -1 new dim": (lambda: R.expand(-1, 2, 3), F.ShapeError, "expand:", "-1",
                          "new leading dim"),
    "expand float": (lambda: R.expand(2.5, 3), F.DTypeError, "expand:", "sizes", "2.5"),
    "expand str": (lambda: R.expand("2", 3), F.DTypeError, "expand:", "'2'"),
    "expand None": (lambda: R.expand(None), F.DTypeError, "expand:", "None"),
    "broadcast_to float": (lambda: F.broadcast_to(R, (2.5, 3)), F.DTypeError, "broadcast_to:",
                           "shape", "2.5"),
    "broadcast_to None": (lambda: F.broadcast_to(R, None), F.DTypeError, "broadcast_to:",
                          "None"),
    "broadcast_to -2": (lambda: F.broadcast_to(R, (-2, 3)), F.ShapeError, "broadcast_to:",
                        "-2"),
    "broadcast_to shapes": (lambda: F.broadcast_to(F.zeros(3), (2, 4)), F.ShapeError,
                            "broadcast_to:", "[3]", "[2, 4]"),
    "repeat float": (lambda: M.repeat(2.5, 1), F.DTypeError, "repeat:", "sizes", "2.5"),
    "repeat str": (lambda: M.repeat("2", 1), F.DTypeError, "repeat:", "'2'"),
    "repeat None": (lambda: M.repeat(None), F.DTypeError, "repeat:", "None"),
    "repeat negative": (lambda: M.repeat(-1, 1), F.ShapeError, "repeat:", "non-negative",
                        "[-1, 1]"),
    "tile float": (lambda: F.tile(M, 2.5), F.DTypeError, "tile:", "dims", "2.5"),
    "tile None": (lambda: F.tile(M, None), F.DTypeError, "tile:", "None"),
    "tile in tuple": (lambda: F.tile(M, (2, 2.5)), F.DTypeError, "tile:", "2.5"),
    "tile negative": (lambda: F.tile(M, (-1, 1)), F.ShapeError, "tile:", "non-negative"),
    "permute float": (lambda: M.permute(0.0, 1), F.DTypeError, "permute:", "dims", "0.0"),
    "permute None": (lambda: M.permute(None), F.DTypeError, "permute:", "None"),
    "flip float": (lambda: M.flip(0.5), F.DTypeError, "flip:", "0.5"),
    "flip function float": (lambda: F.flip(M, 0.5), F.DTypeError, "flip:", "0.5"),
    "roll float": (lambda: M.roll(1.5), F.DTypeError, "roll:", "shifts", "1.5"),
    "roll in tuple": (lambda: M.roll((1, None), (0, 1)), F.DTypeError, "roll:", "None"),
    "roll dims float": (lambda: M.roll(1, 0.5), F.DTypeError, "roll:", "dim", "0.5"),
    "tril diagonal float": (lambda: M.tril(0.5), F.DTypeError, "tril:", "diagonal", "0.5"),
    "diag diagonal str": (lambda: M.diag("1"), F.DTypeError, "diag:", "diagonal", "'1'"),
    "flatten float": (lambda: M.flatten(0.5), F.DTypeError, "flatten:", "dim", "0.5"),
    "flatten str": (lambda: M.flatten(0, "1"), F.DTypeError, "flatten:", "'1'"),
    "flatten None": (lambda: M.flatten(None), F.DTypeError, "flatten:", "None"),
    "transpose float": (lambda: M.transpose(0.5, 1), F.DTypeError, "transpose:", "0.5"),
    "unsqueeze float": (lambda: M.unsqueeze(1.0), F.DTypeError, "unsqueeze:", "1.0"),
    "squeeze float": (lambda: M.squeeze(0.5), F.DTypeError, "squeeze:", "0.5"),
    "narrow length float": (lambda: F.narrow(M, 1, 0, 2.5), F.DTypeError, "narrow:", "length",
                            "2.5"),
    "narrow start float": (lambda: M.narrow(1, 0.5, 2), F.DTypeError, "narrow:", "start",
                           "0.5"),
    "narrow start None": (lambda: M.narrow(1, None, 1), F.DTypeError, "narrow:", "start",
                          "None"),
    "narrow length negative": (lambda: M.narrow(1, 0, -1), F.ShapeError, "narrow:", "length",
                               "-1"),
    "narrow dim float": (lambda: M.narrow(1.0, 0, 1), F.DTypeError, "narrow:", "dim", "1.0"),
    "split size float": (lambda: M.split(1.5, 1), F.DTypeError, "split:", "split_size", "1.5"),
    "split size None": (lambda: M.split(None, 1), F.DTypeError, "split:", "None"),
    "split size str": (lambda: M.split("1", 1), F.DTypeError, "split:", "'1'"),
    "split size 0": (lambda: M.split(0, 1), F.ShapeError, "split:", "positive", "0"),
    "split sections float": (lambda: M.split([1, 1.5], 1), F.DTypeError, "split:", "sections",
                             "1.5"),
    "split sections negative": (lambda: M.split([2, -1, 2], 1), F.ShapeError, "split:",
                                "non-negative", "[2, -1, 2]"),
    "chunk float": (lambda: M.chunk(1.5, 1), F.DTypeError, "chunk:", "chunks", "1.5"),
    "chunk None": (lambda: M.chunk(None), F.DTypeError, "chunk:", "None"),
    "chunk str": (lambda: M.chunk("2"), F.DTypeError, "chunk:", "'2'"),
    "chunk 0": (lambda: M.chunk(0), F.ShapeError, "chunk:", "positive", "0"),
}  # fmt: skip

# ---- fusejit.tensor of what is not numbers -----------------------------------------------------
TENSOR_CASES = {
    "dict": (lambda: T({"a": 1}), F.DTypeError, "tensor:", "data is dict"),
    "set": (lambda: T({1, 2}), F.DTypeError, "tensor:", "data is set"),
    "string": (lambda: T("abc"), F.DTypeError, "tensor:", "data is str 'abc'"),
    "string as float32": (lambda: T("abc", dtype=F.float32), F.DTypeError, "tensor:",
                          "str 'abc'"),
    "list of strings": (lambda: T(["a"]), F.DTypeError, "tensor:", "data[0] is str 'a'"),
    "None": (lambda: T(None), F.DTypeError, "tensor:", "data is None"),
    "None inside": (lambda: T([[1.0, 2.0], [3.0, None]]), F.DTypeError, "tensor:",
                    "data[1][1] is None"),
    "object": (lambda: T(object()), F.DTypeError, "tensor:", "data is object"),
    "ragged": (lambda: T([[1, 2], [3]]), F.ShapeError, "tensor:", "ragged",
               "data[1] has shape [1]"),
    "ragged deeper": (lambda: T([[[1], [2]], [[3], [4, 5]]]), F.ShapeError, "tensor:",
                      "ragged", "data[1][1] has shape [2]"),
    "number and list": (lambda: T([1, [2]]), F.ShapeError, "tensor:", "ragged", "data[0]"),
    "ragged as float32": (lambda: T([[1, 2], [3]], dtype=F.float32), F.ShapeError, "tensor:",
                          "ragged"),
}  # fmt: skip

# ---- trace: inputs and outputs it cannot record -----------------------------------------------
ONE = F.ones(3)
TRACE_CASES = {
    "constant output": (lambda: F.trace(lambda x: 3, (ONE,)), "output is int 3",
                        "not a tensor computed from the inputs"),
    "None output": (lambda: F.trace(lambda x: None, ONE), "output is None", "not a tensor"),
    "float output": (lambda: F.trace(lambda x: 2.5, ONE), "output is float 2.5"),
    "string output": (lambda: F.trace(lambda x: "abc", ONE), "output is str 'abc'"),
    "number in a tuple": (lambda: F.trace(lambda x: (x * 2, 3), ONE), "output[1] is int 3"),
    "None in a list": (lambda: F.trace(lambda x: [x * 2, [None]], ONE), "output[1][0] is None"),
    "dict output": (lambda: F.trace(lambda x: {"y": x * 2}, ONE), "output is dict"),
    "numpy output": (lambda: F.trace(lambda x: np.ones(3), ONE), "output is ndarray"),
    "factory output": (lambda: F.trace(lambda x: (x * 2, F.ones(2)), ONE), "output[1]",
                       "not a tensor computed from the inputs"),
    "numpy input": (lambda: F.trace(lambda x: x * 2, np.ones(3)), "example_inputs",
                    "numpy array", "fusejit.from_numpy"),
    "numpy in the tuple": (lambda: F.trace(lambda x: x * 2, (np.ones(3),)),
                           "example_inputs[0]", "fusejit.from_numpy"),
    "numpy nested": (lambda: F.trace(lambda x, y: x * 2, (ONE, [np.ones(3)])),
                     "example_inputs[1][0]", "fusejit.from_numpy"),
    "None inputs": (lambda: F.trace(lambda x: x * 2, None), "example_inputs", "None"),
    "int inputs": (lambda: F.trace(lambda x: x * 2, 3), "example_inputs", "int 3"),
    "dict input": (lambda: F.trace(lambda x: x["a"] * 2, ({"a": ONE},)), "example_inputs[0]",
                   "dict"),
    "object input": (lambda: F.trace(lambda x, f: f(x), (ONE, object())),
                     "example_inputs[1]", "object"),
}  # fmt: skip

CASES = {**SIZE_CASES, **FACTORY_CASES, **MOVEMENT_CASES, **TENSOR_CASES}
CASES.update({f"trace {k}": (fn, F.TraceError, "trace:", *w) for k, (fn, *w) in
              TRACE_CASES.items()})  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_arguments_raise_a_fusejit_error_naming_the_call(case):
    """Not an int where one is needed: DTypeError (a TypeError, as PyTorch's); a negative or
    zero size or count: ShapeError (a ValueError); what trace cannot record: TraceError."""
    fn, kind, *needles = CASES[case]
    raises(kind, fn, *needles)


# ---- what PyTorch accepts keeps working --------------------------------------------------------
SIZE_FORMS = [  # the arguments, and the numpy shape they mean
    ((), ()),
    (((),), ()),
    (([],), ()),
    ((3,), (3,)),
    ((0,), (0,)),
    ((np.int64(3),), (3,)),
    ((T(3),), (3,)),
    ((2, 3), (2, 3)),
    (((2, 3),), (2, 3)),
    (([2, 3],), (2, 3)),
    ((2, 0, 4), (2, 0, 4)),
    (((np.int64(2), np.int32(3)),), (2, 3)),
    ((np.int16(2), np.uint8(3)), (2, 3)),
    ((F.zeros(4, 5).shape,), (4, 5)),
]


@pytest.mark.parametrize("args, shape", SIZE_FORMS, ids=repr)
def test_factory_size_forms(args, shape):
    np.testing.assert_array_equal(F.zeros(*args).numpy(), np.zeros(shape, np.float32))
    np.testing.assert_array_equal(F.ones(*args).numpy(), np.ones(shape, np.float32))
    for make in (F.empty, F.rand, F.randn):
        t = make(*args)
        assert t.shape == shape and t.dtype is F.float32
    assert F.ones(2).new_zeros(*args).shape == shape
    size = args[0] if len(args) == 1 else args
    np.testing.assert_array_equal(F.full(size, 7).numpy(), np.full(shape, 7))
    r = F.randint(0, 5, size)
    assert r.shape == shape and r.dtype is F.int64 and ((r >= 0) & (r < 5)).all()


@pytest.mark.parametrize("args, want", [
    ((5,), np.arange(5)),
    ((np.int64(5),), np.arange(5)),
    ((T(4),), np.arange(4)),
    ((2, 7), np.arange(2, 7)),
    ((5, 0, -2), np.arange(5, 0, -2)),
    ((0, 0), np.arange(0, 0)),
    ((0.0, 1.0, 0.25), np.arange(0, 1, 0.25, dtype=np.float32)),
    ((np.float32(0.5), 3), np.arange(0.5, 3, dtype=np.float32)),
    ((True,), np.arange(1)),
])  # fmt: skip
def test_arange_forms(args, want):
    got = F.arange(*args)
    assert got.dtype is (F.int64 if want.dtype.kind == "i" else F.float32)
    np.testing.assert_array_equal(got.numpy(), want)


def test_linspace_eye_forms():
    np.testing.assert_allclose(F.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5), rtol=1e-7)
    np.testing.assert_allclose(F.linspace(-1, np.float64(1), np.int64(3)).numpy(), [-1, 0, 1])
    assert F.linspace(0, 1, 0).shape == (0,)
    np.testing.assert_array_equal(F.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(F.eye(2, 4).numpy(), np.eye(2, 4))
    np.testing.assert_array_equal(F.eye(np.int64(2), T(3)).numpy(), np.eye(2, 3))
    assert F.eye(0).shape == (0, 0)
    np.testing.assert_array_equal(F.full((2,), T(1.5)).numpy(), [1.5, 1.5])


RESHAPE_FORMS = [
    ((4, 25), (4, 25)),
    (((4, 25),), (4, 25)),
    (([4, 25],), (4, 25)),
    ((-1, 25), (-1, 25)),
    ((np.int64(4), -1), (4, -1)),
    (((np.int64(2), 2, np.int32(25)),), (2, 2, 25)),
    ((F.zeros(10, 10).shape,), (10, 10)),
    ((100,), (100,)),
]


@pytest.mark.parametrize("args, shape", RESHAPE_FORMS, ids=repr)
def test_reshape_view_forms(args, shape):
    want = np.arange(100.0, dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(X.reshape(*args).numpy(), want)
    np.testing.assert_array_equal(X.view(*args).numpy(), want)
    np.testing.assert_array_equal(F.reshape(X, *args).numpy(), want)
    np.testing.assert_array_equal(T([5.0]).reshape(()).numpy(), np.array(5.0))


@pytest.mark.parametrize("args, shape", [
    ((2, 3), (2, 3)),
    ((2, -1), (2, 3)),
    ((-1, 3), (1, 3)),
    (((4, 2, 3),), (4, 2, 3)),
    (([4, -1, -1],), (4, 1, 3)),
    ((np.int64(2), np.int64(3)), (2, 3)),
    ((0, 3), (0, 3)),
])  # fmt: skip
def test_expand_forms(args, shape):
    base = np.arange(3.0, dtype=np.float32).reshape(1, 3)
    r = F.from_numpy(base.copy())
    np.testing.assert_array_equal(r.expand(*args).numpy(), np.broadcast_to(base, shape))
    size = args[0] if len(args) == 1 else args
    np.testing.assert_array_equal(F.broadcast_to(r, size).numpy(), np.broadcast_to(base, shape))


def test_repeat_tile_split_chunk_narrow_forms():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    m = F.from_numpy(a.copy())
    for reps in [(2, 1), ((2, 1),), ([1, 2],), (np.int64(2), 1), (2, 1, 2), (0, 1)]:
        r = reps[0] if len(reps) == 1 else reps
        np.testing.assert_array_equal(m.repeat(*reps).numpy(), np.tile(a, r))
    for dims in [2, np.int64(2), (2,), [1, 2], (2, 1, 1)]:
        np.testing.assert_array_equal(F.tile(m, dims).numpy(), np.tile(a, dims))
    for size in [1, 2, np.int64(2), T(2)]:
        got = [p.numpy() for p in m.split(size, 1)]
        want = np.split(a, range(int(size), 3, int(size)), axis=1)
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
    for sections in [[1, 2], (np.int64(2), 1), [0, 3]]:
        got = [p.numpy() for p in m.split(sections, 1)]
        cuts = np.cumsum([int(s) for s in sections])[:-1]
        assert all(np.array_equal(g, w) for g, w in zip(got, np.split(a, cuts, axis=1)))
    assert [p.shape for p in F.zeros(0, 2).split(0)] == [(0, 2)]  # as torch: 0 on an empty dim
    assert [p.shape for p in m.chunk(np.int64(2), 1)] == [(2, 2), (2, 1)]
    np.testing.assert_array_equal(m.narrow(1, np.int64(1), T(2)).numpy(), a[:, 1:3])
    np.testing.assert_array_equal(m.narrow(1, -2, 0).numpy(), a[:, 1:1])
    np.testing.assert_array_equal(m.permute(np.int64(1), 0).numpy(), a.T)
    np.testing.assert_array_equal(m.flip(np.int64(1)).numpy(), a[:, ::-1])
    np.testing.assert_array_equal(m.roll(np.int64(1)).numpy(), np.roll(a, 1))
    np.testing.assert_array_equal(m.roll((1, -1), (0, 1)).numpy(), np.roll(a, (1, -1), (0, 1)))
    np.testing.assert_array_equal(m.tril(np.int64(1)).numpy(), np.tril(a, 1))


def test_tensor_and_trace_forms_still_taken():
    np.testing.assert_array_equal(T([[1, 2], (3, 4)]).numpy(), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(T([np.float32(1.5), True, 2]).numpy(), [1.5, 1.0, 2.0])
    np.testing.assert_array_equal(T([np.ones(2), F.zeros(2)]).numpy(), [[1, 1], [0, 0]])
    assert T([]).shape == (0,) and T([[], []]).shape == (2, 0)
    x = F.randn(3)
    for inputs in (x, (x,), [x], (x, 2.0, None, "s", F.float64, np.float32(1.0))):
        t = F.trace(lambda x, *rest: x * 2, inputs)
        args = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        np.testing.assert_array_equal(t(*args).numpy(), x.numpy() * 2)
