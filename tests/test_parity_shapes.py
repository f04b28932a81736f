"""PyTorch parity of the shape functions: repeat_interleave, unflatten, diagonal, diag_embed,
tensor_split, hsplit, vsplit, meshgrid, broadcast_tensors, atleast_1d/2d/3d, rot90,
column_stack, hstack, vstack, dstack; against numpy, on every device, traced."""

from __future__ import annotations

import numpy as np
import pytest
from parity_helpers import DEVICES, assert_close, assert_traced, host, on

import fusejit
from fusejit.ops.registry import OPS
from fusejit.ops.shape_rules import out_shapes

DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32,
          np.float64]  # fmt: skip


def _arr(dtype, shape=(3, 4), seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(-5, 6, shape)
    if np.dtype(dtype).kind == "b":
        return a > 0
    if np.dtype(dtype).kind == "u":
        a = np.abs(a)
    a = a.astype(dtype)
    if np.dtype(dtype).kind == "f" and a.size > 2:
        a.flat[0], a.flat[1] = np.nan, -0.0
    return a


def on0(v, dtype, device: str) -> fusejit.Tensor:
    """A 0-d tensor (``on`` gives numpy's ascontiguousarray, which makes 0-d arrays 1-d)."""
    t = fusejit.from_numpy(np.array(v, dtype))
    return t if device == "cpu" else t.to(device)


def _same(got, want, what=""):
    assert_close(got, want, exact=True, what=what)
    if want.dtype.kind == "f":
        assert np.array_equal(np.signbit(host(got)), np.signbit(want)), what


# ---- repeat_interleave ------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_repeat_interleave_int(device):
    for dtype in DTYPES:
        a = _arr(dtype, (2, 3))
        x = on(a, device)
        _same(x.repeat_interleave(2), np.repeat(a.reshape(-1), 2), str(dtype))
        for dim in (0, 1, -1, -2):
            _same(fusejit.repeat_interleave(x, 3, dim), np.repeat(a, 3, axis=dim), str(dtype))
    a = _arr(np.float32, (4, 6))
    _same(on(a, device)[:, ::2].repeat_interleave(2, 1), np.repeat(a[:, ::2], 2, 1))
    _same(on(a, device).repeat_interleave(0, 0), np.repeat(a, 0, 0))
    _same(fusejit.repeat_interleave(on0(5, np.int64, device), 3), np.array([5, 5, 5]))
    _same(fusejit.repeat_interleave(on0(5, np.int64, device), 2, 0), np.array([5, 5]))
    _same(on(np.zeros((0, 2), np.int8), device).repeat_interleave(2, 0), np.zeros((0, 2), np.int8))
    with pytest.raises(fusejit.ShapeError, match="non-negative"):
        on(a, device).repeat_interleave(-1)
    with pytest.raises(fusejit.DimError):
        on(a, device).repeat_interleave(2, 2)
    with pytest.raises(fusejit.DTypeError):
        on(a, device).repeat_interleave(1.5)
    with pytest.raises(fusejit.ShapeError, match="output_size"):
        on(a, device).repeat_interleave(2, 0, output_size=7)
    assert on(a, device).repeat_interleave(2, 0, output_size=8).shape == (8, 6)
    assert_traced(lambda x: x.repeat_interleave(2, 1) * 2, on(a, device))
    assert_traced(lambda x: fusejit.repeat_interleave(x, 3), on(a, device))


@pytest.mark.parametrize("device", DEVICES)
def test_repeat_interleave_tensor_repeats(device):
    a = _arr(np.float64, (3, 2))
    x = on(a, device)
    r = on(np.array([1, 0, 2]), device)
    _same(x.repeat_interleave(r, 0), np.repeat(a, [1, 0, 2], axis=0))
    _same(x.repeat_interleave(on(np.array([2, 1], np.int32), device), dim=1),
          np.repeat(a, [2, 1], axis=1))  # fmt: skip
    _same(x.repeat_interleave(on(np.array([2]), device), dim=1), np.repeat(a, 2, axis=1))
    _same(x.repeat_interleave(on0(2, np.int64, device)), np.repeat(a.reshape(-1), 2))
    _same(fusejit.repeat_interleave(on(np.array([2, 0, 1]), device)), np.array([0, 0, 2]))
    with pytest.raises(fusejit.ShapeError, match="expected one count or 3"):
        x.repeat_interleave(on(np.array([1, 2]), device), 0)
    with pytest.raises(fusejit.ShapeError, match="non-negative"):
        x.repeat_interleave(on(np.array([1, -1, 2]), device), 0)
    with pytest.raises(fusejit.DTypeError, match="integer"):
        x.repeat_interleave(on(np.array([1.0, 1.0, 1.0]), device), 0)
    with pytest.raises(fusejit.ShapeError, match="output_size"):
        x.repeat_interleave(r, 0, output_size=2)
    # a data-dependent shape: eager only
    with pytest.raises(fusejit.TraceError, match="repeat_interleave with a tensor of repeats"):
        fusejit.trace(lambda x, r: x.repeat_interleave(r, 0), (x, r))


# ---- unflatten, diagonal, diag_embed ----------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_unflatten(device):
    a = _arr(np.int16, (2, 12))
    x = on(a, device)
    for dim, sizes, shape in ((1, (3, 4), (2, 3, 4)), (-1, (2, -1, 3), (2, 2, 2, 3)),
                              (0, [2, 1], (2, 1, 12)), (1, (12,), (2, 12))):  # fmt: skip
        _same(x.unflatten(dim, sizes), a.reshape(shape))
    _same(fusejit.unflatten(x.t(), 0, (4, 3)), a.T.reshape(4, 3, 2))
    with pytest.raises(fusejit.ShapeError):
        x.unflatten(1, (5, -1))
    with pytest.raises(fusejit.ShapeError):
        x.unflatten(1, (3, 3))
    with pytest.raises(fusejit.ShapeError, match="only one"):
        x.unflatten(1, (-1, -1))
    with pytest.raises(fusejit.DimError):
        x.unflatten(2, (1,))
    assert_traced(lambda x: x.unflatten(1, (4, 3)).sum(-1), x)


@pytest.mark.parametrize("device", DEVICES)
def test_diagonal(device):
    for dtype in DTYPES:
        a = _arr(dtype, (3, 4, 5))
        for offset, d1, d2 in ((0, 0, 1), (1, 0, 1), (-2, 0, 1), (2, 1, 2), (0, -1, 0),
                               (-1, 2, 0), (9, 0, 1)):  # fmt: skip
            got = on(a, device).diagonal(offset, d1, d2)
            _same(got, np.diagonal(a, offset, d1, d2), f"{dtype} {offset} {d1} {d2}")
    a = np.arange(12.0).reshape(3, 4)
    x = on(a, device)
    d = fusejit.diagonal(x, 1)
    d.fill_(-1.0)  # a view: writes reach x
    want = a.copy()
    want[[0, 1, 2], [1, 2, 3]] = -1
    _same(x, want)
    _same(on(a, device).t().diagonal(), np.diagonal(a.T))  # non-contiguous
    with pytest.raises(fusejit.DimError, match="at least 2 dims"):
        on(np.zeros(3), device).diagonal()
    with pytest.raises(fusejit.DimError, match="same dim"):
        x.diagonal(0, 1, -1)
    with pytest.raises(fusejit.DimError):
        x.diagonal(0, 0, 2)
    assert_traced(lambda x: x.diagonal(1) * 2, on(a, device))


def _np_diag_embed(a, offset, d1, d2):
    n = a.shape[-1]
    m = n + abs(offset)
    nd = a.ndim + 1
    d1, d2 = d1 % nd, d2 % nd
    out_shape = list(a.shape[:-1])
    for d in sorted((d1, d2)):
        out_shape.insert(d, m)
    out = np.zeros(out_shape, a.dtype)
    for idx in np.ndindex(a.shape[:-1]):
        for i in range(n):
            r, c = (i, i + offset) if offset >= 0 else (i - offset, i)
            full = list(idx)
            for d, v in sorted(((d1, r), (d2, c))):
                full.insert(d, v)
            out[tuple(full)] = a[idx + (i,)]
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_diag_embed(device):
    for dtype in DTYPES:
        a = _arr(dtype, (2, 3))
        for offset, d1, d2 in ((0, -2, -1), (1, 0, 2), (-2, 2, 0), (0, 1, 0)):
            got = on(a, device).diag_embed(offset, d1, d2)
            _same(got, _np_diag_embed(a, offset, d1, d2), f"{dtype} {offset} {d1} {d2}")
    a = _arr(np.float64, (4, 6))
    _same(fusejit.diag_embed(on(a, device)[:, ::2]), _np_diag_embed(a[:, ::2], 0, -2, -1))
    _same(fusejit.diag_embed(on(np.zeros((2, 0)), device)), np.zeros((2, 0, 0)))
    with pytest.raises(fusejit.DimError, match="same dim"):
        on(a, device).diag_embed(0, 0, -3)
    with pytest.raises(fusejit.DimError):
        on(a, device).diag_embed(0, 0, 3)
    with pytest.raises(fusejit.DimError):
        fusejit.diag_embed(on0(1.0, np.float32, device))
    assert_traced(lambda x: fusejit.diag_embed(x + 1, 1), on(a, device))


# ---- tensor_split, hsplit, vsplit -------------------------------------------------------------


def _parts(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        _same(g, w)


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_split(device):
    a = _arr(np.int32, (7, 4))
    x = on(a, device)
    for n in (1, 2, 3, 7, 9):
        _parts(x.tensor_split(n), np.array_split(a, n))
        _parts(fusejit.tensor_split(x, n, 1), np.array_split(a, n, 1))
    for idx in ([2, 5], (0, 3, 3), [4, 1], [-2], [10], []):
        _parts(x.tensor_split(idx), [a[s:e] for s, e in zip([0, *idx], [*idx, 7])])
    _parts(x.tensor_split(on(np.array([1, 3]), device), dim=-1), np.split(a, [1, 3], 1))
    _parts(x.tensor_split(on0(3, np.int64, device)), np.array_split(a, 3))
    _parts(x.t().tensor_split(2, 1), np.array_split(a.T, 2, 1))  # non-contiguous
    parts = x.tensor_split(2)
    parts[0].fill_(0)  # views
    assert (host(x)[:4] == 0).all()
    with pytest.raises(fusejit.ShapeError, match="positive"):
        x.tensor_split(0)
    with pytest.raises(fusejit.DTypeError):
        x.tensor_split(on(np.array([1.0]), device))
    with pytest.raises(fusejit.DimError):
        on0(1, np.int64, device).tensor_split(1)
    assert_traced(lambda x: [p * 2 for p in x.tensor_split([2, 5])], on(a, device))


@pytest.mark.parametrize("device", DEVICES)
def test_hsplit_vsplit(device):
    a = _arr(np.float32, (4, 6, 2))
    x = on(a, device)
    _parts(x.hsplit(3), np.hsplit(a, 3))
    _parts(fusejit.hsplit(x, [1, 4]), np.hsplit(a, [1, 4]))
    _parts(x.vsplit(2), np.vsplit(a, 2))
    _parts(fusejit.vsplit(x, [3]), np.vsplit(a, [3]))
    v = _arr(np.int8, (6,))
    _parts(on(v, device).hsplit(2), np.hsplit(v, 2))
    with pytest.raises(fusejit.ShapeError, match="equal"):
        x.hsplit(4)
    with pytest.raises(fusejit.ShapeError, match="equal"):
        x.vsplit(3)
    with pytest.raises(fusejit.DimError):
        on(v, device).vsplit(2)
    with pytest.raises(fusejit.DimError):
        on0(1.0, np.float32, device).hsplit(1)
    assert_traced(lambda x: x.vsplit(2)[1] + x.hsplit([2])[0][:2, :1], x)


# ---- meshgrid, broadcast_tensors, atleast_nd --------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_meshgrid(device):
    a, b, c = np.arange(3, dtype=np.float64), np.arange(4.0), np.arange(2.0)
    ta, tb, tc = on(a, device), on(b, device), on(c, device)
    _parts(fusejit.meshgrid(ta, tb), np.meshgrid(a, b, indexing="ij"))
    _parts(fusejit.meshgrid([ta, tb, tc], indexing="ij"), np.meshgrid(a, b, c, indexing="ij"))
    _parts(fusejit.meshgrid(ta, tb, indexing="xy"), np.meshgrid(a, b, indexing="xy"))
    _parts(fusejit.meshgrid(ta, tb, tc, indexing="xy"), np.meshgrid(a, b, c, indexing="xy"))
    _parts(fusejit.meshgrid(ta, indexing="xy"), [a])
    _parts(fusejit.meshgrid(on0(5.0, np.float64, device), tb), np.meshgrid([5.0], b, indexing="ij"))
    empty = np.zeros(0)
    _parts(fusejit.meshgrid(on(empty, device), tb), np.meshgrid(empty, b, indexing="ij"))
    with pytest.raises(fusejit.DTypeError, match="one dtype"):
        fusejit.meshgrid(ta, on(np.arange(3), device))
    with pytest.raises(fusejit.ShapeError, match="0-d or 1-d"):
        fusejit.meshgrid(ta, on(np.zeros((2, 2)), device))
    with pytest.raises(ValueError, match="indexing"):
        fusejit.meshgrid(ta, tb, indexing="ji")
    assert_traced(lambda p, q: [g * 2 for g in fusejit.meshgrid(p, q, indexing="xy")], ta, tb)


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_tensors(device):
    arrs = [_arr(np.int64, (2, 1, 3)), _arr(np.float32, (4, 1)), _arr(np.bool_, (3,))]
    got = fusejit.broadcast_tensors(*[on(a, device) for a in arrs])
    _parts(got, np.broadcast_arrays(*arrs))
    got = fusejit.broadcast_tensors([on(arrs[0], device)])
    _parts(got, [arrs[0]])
    _parts(fusejit.broadcast_tensors(on0(1, np.int64, device), on(arrs[1], device)),
           np.broadcast_arrays(np.array(1), arrs[1]))  # fmt: skip
    with pytest.raises(fusejit.ShapeError):
        fusejit.broadcast_tensors(on(np.zeros(2), device), on(np.zeros(3), device))
    assert_traced(lambda p, q: [t + 1 for t in fusejit.broadcast_tensors(p, q)],
                  on(arrs[0], device), on(arrs[1], device))  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_atleast_nd(device):
    shapes = [(), (3,), (2, 3), (2, 3, 4), (0,)]
    for name in ("atleast_1d", "atleast_2d", "atleast_3d"):
        fn, ref = getattr(fusejit, name), getattr(np, name)
        for s in shapes:
            a = np.arange(int(np.prod(s)), dtype=np.int16).reshape(s)
            t = on0(a, np.int16, device) if s == () else on(a, device)
            _same(fn(t), ref(a), f"{name} {s}")
        arrs = [np.ones(()), np.ones(2), np.ones((1, 2))]
        ts = [on0(1.0, np.float64, device), on(arrs[1], device), on(arrs[2], device)]
        got = fn(*ts)
        assert isinstance(got, tuple)
        _parts(got, ref(*arrs))
        _parts(fn(ts), ref(*arrs))
        assert_traced(lambda x, f=fn: f(x) * 2, on(np.arange(3.0), device))


# ---- rot90 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_rot90(device):
    for dtype in DTYPES:
        a = _arr(dtype, (2, 3, 4))
        for k in (-5, -1, 0, 1, 2, 3, 4, 6):
            for dims in ((0, 1), (1, 0), (2, 0), (-1, -2)):
                got = on(a, device).rot90(k, dims)
                _same(got, np.rot90(a, k, dims), f"{dtype} {k} {dims}")
    a = _arr(np.float32, (4, 6))
    _same(fusejit.rot90(on(a, device)[:, ::2]), np.rot90(a[:, ::2]))
    r = fusejit.rot90(on(a, device), 0)
    r.fill_(0)  # k = 0: a copy, as torch's
    assert host(on(a, device)).any()
    with pytest.raises(fusejit.DimError, match="two dims"):
        on(a, device).rot90(1, (0,))
    with pytest.raises(fusejit.DimError, match="differ"):
        on(a, device).rot90(1, (0, -2))
    with pytest.raises(fusejit.DimError, match="at least 2 dims"):
        on(np.zeros(3), device).rot90()
    with pytest.raises(fusejit.DimError):
        on(a, device).rot90(1, (0, 2))
    for k in (1, 2, 3):
        assert_traced(lambda x, k=k: x.rot90(k) + 1, on(a, device))


# ---- column_stack, hstack, vstack, dstack -----------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["column_stack", "hstack", "vstack", "dstack"])
def test_stacks(device, name):
    fn, ref = getattr(fusejit, name), getattr(np, name)
    rows = name in ("vstack",)
    cols = name in ("column_stack", "hstack")
    cases = [
        [np.arange(3, dtype=np.int32), np.arange(3, 6, dtype=np.int32)],
        [np.ones((2, 3)), np.ones((1, 3))] if rows else [np.ones((3, 2)), np.zeros((3, 1))],
        [np.arange(4.0).reshape(2, 2), np.arange(2.0).reshape(2, 1)]
        if cols else [np.ones((2, 2)), np.zeros((1, 2))],
        [np.array([True, False]), np.array([1, 2], np.int8)],  # promotes, as cat
    ]  # fmt: skip
    if name == "dstack":
        cases[1] = [np.ones((3, 2)), np.zeros((3, 2))]
        cases[2] = [np.ones((2, 2, 1)), np.zeros((2, 2, 3))]
    for arrs in cases:
        _same(fn([on(a, device) for a in arrs]), ref(arrs), name)
    if name != "dstack":  # 0-d entries
        s = [np.array(1.5), np.array(2.5)]
        _same(fn([on0(1.5, np.float64, device), on0(2.5, np.float64, device)]), ref(s))
    a = np.arange(12.0).reshape(3, 4)
    _same(fn((on(a, device).t(), on(a, device).t())), ref((a.T, a.T)))  # non-contiguous
    with pytest.raises(TypeError):
        fn(on(a, device))
    with pytest.raises(ValueError, match="non-empty"):
        fn([])
    with pytest.raises(fusejit.ShapeError):
        fn([on(np.ones((2, 2)), device), on(np.ones((3, 3)), device)])
    assert_traced(lambda x, y: fn([x, y * 2]), on(a, device), on(a, device))


@pytest.mark.parametrize(
    "op,shapes,attrs",
    [
        ("diagonal", [(3, 4, 5)], {"offset": 1, "dims": (2, 0)}),
        ("diagonal", [(3, 4)], {"offset": -7, "dims": (0, 1)}),
        ("diag_embed", [(2, 3)], {"offset": -1, "dims": (0, 2)}),
        ("diag_embed", [(4,)], {"offset": 2, "dims": (1, 0)}),
    ],
)
def test_shape_rules_give_the_implementations_shapes(op, shapes, attrs):
    cpu = fusejit.device("cpu").backend
    res = OPS[op].impl(cpu, *[np.ones(s, np.float32) for s in shapes], **attrs)
    assert out_shapes(OPS[op], shapes, attrs) == [res.shape]


def test_docstring_examples():
    import doctest

    from fusejit.eager import movement

    res = doctest.testmod(movement)
    assert res.attempted > 0 and res.failed == 0
