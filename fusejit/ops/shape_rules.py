"""The result shapes of the op table's ops, from their input shapes and attributes alone.

``out_shapes(op, shapes, attrs)`` is what ``op``'s implementation would return the shapes of,
computed without data and without allocating: a graph read from a file is checked against it
before it runs (``fusejit/ir/typecheck.py``), so that a node cannot ask for more than its
declared type (a ``tile`` whose ``reps`` make terabytes). The rules follow the
implementations (numpy semantics); ``tests/test_typecheck.py`` compares them with the
implementations' results for every op.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple

from fusejit.ops.movement import diag_embed_shape
from fusejit.ops.registry import OpDef

Shape = tuple[int, ...]


class ShapeRuleError(ValueError):
    """Input shapes or attributes the op cannot take; the message says why."""


# a zero-stride stand-in of a shape: views of it cost nothing, whatever its size
_STANDIN = np.empty((), np.uint8)
_NUMPY = SimpleNamespace(xp=np, name="cpu")


def _standin(shape: Shape) -> np.ndarray:
    return np.broadcast_to(_STANDIN, shape)


def _views(op: OpDef, shapes: list, attrs: dict) -> list:
    """The ops that return views (permute, expand, getitem, split): their own implementation
    applied to zero-stride stand-ins, which gives numpy's exact shapes and errors for free."""
    out = op.impl(_NUMPY, *[_standin(s) for s in shapes], **attrs)
    return [r.shape for r in out] if isinstance(out, tuple) else [out.shape]


def _reduced(shapes, attrs) -> Shape:
    (s,) = shapes
    dim, keepdim = attrs.get("dim"), attrs.get("keepdim", False)
    axes = range(len(s)) if dim is None else normalize_axis_tuple(dim, len(s))
    if keepdim:
        return tuple(1 if i in axes else n for i, n in enumerate(s))
    return tuple(n for i, n in enumerate(s) if i not in axes)


def _same(shapes, attrs) -> Shape:
    if "dim" in attrs and attrs["dim"] is not None:
        normalize_axis_tuple(attrs["dim"], len(shapes[0]))
    return shapes[0]


def _reshape(shapes, attrs) -> Shape:
    (s,), shape = shapes, tuple(attrs["shape"])
    n = math.prod(s)
    if shape.count(-1) > 1 or any(k < -1 for k in shape):
        raise ShapeRuleError(f"bad shape {list(shape)}")
    if -1 in shape:
        rest = math.prod(k for k in shape if k != -1)
        if rest == 0 or n % rest:
            raise ShapeRuleError(f"shape {list(shape)} does not fit {n} elements")
        shape = tuple(n // rest if k == -1 else k for k in shape)
    if math.prod(shape) != n:
        raise ShapeRuleError(f"shape {list(shape)} does not hold {n} elements")
    return shape


def _matmul(shapes, attrs) -> Shape:
    a, b = shapes
    if not a or not b:
        raise ShapeRuleError("matmul of a 0-d tensor")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeRuleError(f"inner sizes {a2[-1]} and {b2[-2]} differ")
    out = np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2],) + (b2[-1],)
    if len(b) == 1:
        out = out[:-1]
    if len(a) == 1:
        out = out[:-2] + out[-1:] if len(b) != 1 else out[:-1]
    return out


def _linear(shapes, attrs) -> Shape:
    x, w, *bias = shapes
    if not x or len(w) != 2:
        raise ShapeRuleError("linear takes an input of one or more dims and a 2-d weight")
    if x[-1] != w[1]:
        raise ShapeRuleError(f"inner sizes {x[-1]} and {w[1]} differ")
    out = x[:-1] + (w[0],)
    try:
        fits = not bias or np.broadcast_shapes(out, bias[0]) == out
    except ValueError:
        fits = False
    if not fits:
        raise ShapeRuleError(f"a bias of shape {list(bias[0])} does not fit {list(out)}")
    return out


def _cross_entropy(shapes, attrs) -> Shape:
    z, target = shapes
    if len(z) not in (1, 2) or target != z[:-1]:
        raise ShapeRuleError(f"logits of shape {list(z)} and targets of shape {list(target)}")
    return target if attrs["reduce"] == "none" else ()


_EINSUM_TERM = re.compile(r"[A-Za-z]*(\.\.\.)?[A-Za-z]*")


def _einsum(shapes, attrs) -> Shape:
    eq = attrs["equation"].replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes) or not all(map(_EINSUM_TERM.fullmatch, terms + [rhs])):
        raise ShapeRuleError(f"equation {eq[:60]!r} does not fit {len(shapes)} operands")
    sizes: dict = {}
    ell: Shape = ()
    counts: dict = {}
    for t, s in zip(terms, shapes):
        head, dots, tail = t.partition("...")
        n_ell = len(s) - len(head) - len(tail)
        if (n_ell != 0 and not dots) or n_ell < 0:
            raise ShapeRuleError(f"term {t!r} does not fit a tensor of rank {len(s)}")
        ell = np.broadcast_shapes(ell, s[len(head) : len(head) + n_ell])
        for c, n in zip(head + tail, s[: len(head)] + s[len(s) - len(tail) :]):
            counts[c] = counts.get(c, 0) + 1
            if sizes.get(c, n) != n and 1 not in (n, sizes[c]):
                raise ShapeRuleError(f"index {c} has sizes {sizes[c]} and {n}")
            sizes[c] = max(sizes.get(c, n), n) if 1 in (n, sizes.get(c, n)) else n
    if not arrow:
        rhs = "..." + "".join(sorted(c for c, k in counts.items() if k == 1))
    head, dots, tail = rhs.partition("...")
    if any(c not in sizes for c in head + tail) or len(set(head + tail)) != len(head + tail):
        raise ShapeRuleError(f"output {rhs!r} names an index no input has, or one twice")
    return tuple(sizes[c] for c in head) + (ell if dots else ()) + tuple(sizes[c] for c in tail)


def _join(stack: bool) -> Callable:
    def rule(shapes, attrs) -> Shape:
        s0 = shapes[0]
        if stack:
            if any(s != s0 for s in shapes):
                raise ShapeRuleError("stack of tensors of different shapes")
            d = normalize_axis_index(attrs["dim"], len(s0) + 1)
            return s0[:d] + (len(shapes),) + s0[d:]
        d = normalize_axis_index(attrs["dim"], len(s0))
        if any(len(s) != len(s0) or s[:d] + s[d + 1 :] != s0[:d] + s0[d + 1 :] for s in shapes):
            raise ShapeRuleError("cat of tensors whose other dims differ")
        return s0[:d] + (sum(s[d] for s in shapes),) + s0[d + 1 :]

    return rule


def _tile(shapes, attrs) -> Shape:
    (s,), reps = shapes, tuple(attrs["reps"])
    if any(r < 0 for r in reps):
        raise ShapeRuleError(f"negative reps {list(reps)}")
    n = max(len(s), len(reps))
    s, reps = (1,) * (n - len(s)) + s, (1,) * (n - len(reps)) + reps
    return tuple(a * r for a, r in zip(s, reps))


def _tri(shapes, attrs) -> Shape:
    if len(shapes[0]) < 2:
        raise ShapeRuleError("needs a tensor of 2 or more dims")
    return shapes[0]


def _diag(shapes, attrs) -> Shape:
    (s,), k = shapes, attrs["diagonal"]
    if len(s) == 1:
        return (s[0] + abs(k),) * 2
    if len(s) != 2:
        raise ShapeRuleError("needs a tensor of 1 or 2 dims")
    rows, cols = s
    return (max(0, min(rows, cols - k) if k >= 0 else min(rows + k, cols)),)


def _index_select(shapes, attrs) -> Shape:
    s, idx = shapes
    d = normalize_axis_index(attrs["dim"], len(s))
    return s[:d] + idx + s[d + 1 :]


def _gather(shapes, attrs) -> Shape:
    s, idx = shapes
    normalize_axis_index(attrs["dim"], len(s))
    if len(idx) != len(s):
        raise ShapeRuleError("index and input ranks differ")
    return idx


def _matrices(s: Shape, square: bool = False) -> tuple[int, int]:
    """The matrix size (m, n) of a batch of matrices of shape ``s``."""
    if len(s) < 2:
        raise ShapeRuleError("needs a tensor of 2 or more dims (a batch of matrices)")
    m, n = s[-2:]
    if square and m != n:
        raise ShapeRuleError(f"needs square matrices, got {m} by {n}")
    return m, n


def _square(shapes, attrs) -> Shape:
    _matrices(shapes[0], square=True)
    return shapes[0]


def _det(op, shapes, attrs) -> list:
    _matrices(shapes[0], square=True)
    return [shapes[0][:-2]] * op.n_out


def _rhs(a: Shape, b: Shape, square: bool) -> tuple:
    """(vector case, batch, the right-hand side's last dim or None) of solve / lstsq."""
    m, _ = _matrices(a, square)
    vector = len(b) == 1 or tuple(b) == tuple(a[:-1])
    b2 = tuple(b) + (1,) if vector else tuple(b)
    _matrices(b2)
    if b2[-2] != m:
        raise ShapeRuleError(f"A has {m} rows, B {b2[-2]}")
    return vector, tuple(np.broadcast_shapes(a[:-2], b2[:-2])), b2[-1]


def _solve(shapes, attrs) -> Shape:
    a, b = shapes
    vector, batch, k = _rhs(a, b, True)
    return batch + (a[-1],) + (() if vector else (k,))


def _qr(op, shapes, attrs) -> list:
    (s,), mode = shapes, attrs["mode"]
    m, n = _matrices(s)
    k = min(m, n)
    if mode == "r":
        return [(0,), s[:-2] + (k, n)]
    if mode == "complete":
        return [s[:-2] + (m, m), s]
    if mode == "reduced":
        return [s[:-2] + (m, k), s[:-2] + (k, n)]
    raise ShapeRuleError(f"mode {mode!r}")


def _svd(op, shapes, attrs) -> list:
    (s,) = shapes
    m, n = _matrices(s)
    k = min(m, n)
    if attrs["full_matrices"]:
        return [s[:-2] + (m, m), s[:-2] + (k,), s[:-2] + (n, n)]
    return [s[:-2] + (m, k), s[:-2] + (k,), s[:-2] + (k, n)]


def _svdvals(shapes, attrs) -> Shape:
    m, n = _matrices(shapes[0])
    return shapes[0][:-2] + (min(m, n),)


def _eigh(op, shapes, attrs) -> list:
    if attrs["UPLO"] not in ("L", "U"):
        raise ShapeRuleError(f"UPLO {attrs['UPLO']!r}")
    _matrices(shapes[0], square=True)
    s = shapes[0]
    return [s[:-1], s] if op.n_out == 2 else [s[:-1]]


def _pinv(shapes, attrs) -> Shape:
    m, n = _matrices(shapes[0], square=attrs["hermitian"])
    return shapes[0][:-2] + (n, m)


def _matrix_rank(shapes, attrs) -> Shape:
    _matrices(shapes[0], square=attrs["hermitian"])
    return shapes[0][:-2]


def _lstsq(op, shapes, attrs) -> list:
    a, b = shapes
    m, n = _matrices(a)
    vector, batch, k = _rhs(a, b, False)
    sol = batch + (n,) + (() if vector else (k,))
    res = (batch + (() if vector else (k,))) if m > n else (0,)
    return [sol, res, batch, batch + (min(m, n),)]


def _scatter(shapes, attrs) -> Shape:
    s, idx, *src = shapes
    if attrs["reduce"] not in ("set", "sum", "prod", "mean", "amax", "amin"):
        raise ShapeRuleError(f"no reduction {attrs['reduce']!r}")
    if len(src) != (attrs["value"] is None):
        raise ShapeRuleError("needs a source tensor or a value, one of them")
    dim = normalize_axis_index(attrs["dim"], max(len(s), 1))
    if len(idx) != len(s) or any(len(x) != len(idx) for x in src):
        raise ShapeRuleError("index, input and source ranks differ")
    if any(i > n for k, (i, n) in enumerate(zip(idx, s)) if k != dim) or any(
        i > n for x in src for i, n in zip(idx, x)
    ):
        raise ShapeRuleError("index larger than the input or the source")
    return s


def _index_put(shapes, attrs) -> Shape:
    s, values, *indices = shapes
    if not 1 <= len(indices) <= len(s):
        raise ShapeRuleError("needs 1 to ndim indices")
    np.broadcast_shapes(values, np.broadcast_shapes(*indices) + tuple(s[len(indices) :]))
    return s


def _searchsorted(shapes, attrs) -> Shape:
    seq, values, *sorter = shapes
    if len(seq) > 1 and tuple(seq[:-1]) != tuple(values[:-1]):
        raise ShapeRuleError("sorted sequence and values differ in their leading dims")
    if any(tuple(x) != tuple(seq) for x in sorter):
        raise ShapeRuleError("sorter and sorted sequence differ in shape")
    return values


def _count(n: int, least: int) -> int:
    if n < least:
        raise ShapeRuleError(f"a count of {n} (at least {least})")
    return n


def _diag_embed(shapes, attrs) -> Shape:
    (s,), dims = shapes, attrs["dims"]
    if not s:
        raise ShapeRuleError("needs a tensor of 1 or more dims")
    d = normalize_axis_tuple(dims, len(s) + 1)
    if len(d) != 2:
        raise ShapeRuleError(f"dims {list(dims)}: expected two dims")
    return diag_embed_shape(s, attrs["offset"], d)


def _quantile(shapes, attrs) -> Shape:
    s, q = shapes[0], shapes[1:]
    if len(q) > 1 or (q and len(q[0]) > 1):
        raise ShapeRuleError("q must be a float or a 0-d or 1-d tensor")
    if not math.prod(s):
        raise ShapeRuleError("quantile of an empty tensor")
    return (q[0] if q else ()) + _reduced([s], attrs)


def _fft_len(n: int, what: str) -> int:
    if n < 1:
        raise ShapeRuleError(f"invalid number of data points ({n}) for {what}")
    return n


def _fft(kind: str) -> Callable:
    """Transforms: "c2c" keeps the length (or takes ``n`` / ``s``), "r2c" gives the last
    transformed dim n // 2 + 1 (n: the signal length), "c2r" n (by default 2 * (m - 1))."""

    def rule(shapes, attrs) -> Shape:
        (x,) = shapes
        dims, lengths = attrs["dim"], attrs.get("s", attrs.get("n"))
        one = isinstance(dims, int)
        dims = normalize_axis_tuple(dims, len(x))
        if lengths is None:
            lengths = (None,) * len(dims)
        elif one:
            lengths = (lengths,)
        if len(lengths) != len(dims) or not dims:
            raise ShapeRuleError("s and dim differ in length, or no dims")
        out = list(x)
        for k, (d, n) in enumerate(zip(dims, lengths)):
            last = k == len(dims) - 1
            if kind == "c2r" and last:
                out[d] = _fft_len(2 * (x[d] - 1) if n is None else n, "the output")
                continue
            m = _fft_len(x[d] if n is None else n, "the signal")
            out[d] = m // 2 + 1 if kind == "r2c" and last else m
        return tuple(out)

    return rule


def _view_as_real(shapes, attrs) -> Shape:
    return shapes[0] + (2,)


def _view_as_complex(shapes, attrs) -> Shape:
    (s,) = shapes
    if not s or s[-1] != 2:
        raise ShapeRuleError("needs a last dim of size 2")
    return s[:-1]


def _one(rule: Callable) -> Callable:
    return lambda op, shapes, attrs: [rule(shapes, attrs)]


def _pair(rule: Callable) -> Callable:
    return lambda op, shapes, attrs: [rule(shapes, attrs)] * 2


_REDUCTIONS = ("sum", "prod", "mean", "var", "amax", "amin", "argmax", "argmin", "logsumexp",
               "all", "any")  # fmt: skip
_SAME = ("softmax", "layer_norm", "cumsum", "cumprod", "contiguous", "clone", "flip", "roll",
         "logcumsumexp", "real", "imag", "conj", "angle", "rand_like", "detach")  # fmt: skip
_FFTS = {"c2c": ("fft", "ifft", "fftn", "ifftn"), "r2c": ("rfft", "ihfft", "rfftn"),
         "c2r": ("irfft", "hfft", "irfftn")}  # fmt: skip
RULES: dict[str, Callable] = {
    **{n: _one(_reduced) for n in _REDUCTIONS},
    **{n: _one(_same) for n in _SAME},
    **{n: _views for n in ("permute", "expand", "getitem", "split")},
    **{n: _views for n in ("diagonal",)},
    **{n: _pair(_reduced) for n in ("median", "kthvalue", "mode")},
    **{n: _pair(_same) for n in ("cummax", "cummin")},
    "diag_embed": _one(_diag_embed),
    "quantile": _one(_quantile),
    "max_dim": _pair(_reduced),
    "min_dim": _pair(_reduced),
    "sort": _pair(_same),
    "reshape": _one(_reshape),
    "view": _one(_reshape),
    "matmul": _one(_matmul),
    "linear": _one(_linear),
    "cross_entropy": _one(_cross_entropy),
    "einsum": _one(_einsum),
    "cat": _one(_join(stack=False)),
    "stack": _one(_join(stack=True)),
    "tile": _one(_tile),
    "tril": _one(_tri),
    "triu": _one(_tri),
    "diag": _one(_diag),
    "index_select": _one(_index_select),
    "gather": _one(_gather),
    "linalg_solve": _one(_solve),
    "linalg_inv": _one(_square),
    "linalg_cholesky": _one(_square),
    "linalg_det": _det,
    "linalg_slogdet": _det,
    "linalg_qr": _qr,
    "linalg_svd": _svd,
    "linalg_svdvals": _one(_svdvals),
    "linalg_eigh": _eigh,
    "linalg_eigvalsh": _eigh,
    "linalg_pinv": _one(_pinv),
    "linalg_matrix_rank": _one(_matrix_rank),
    "linalg_lstsq": _lstsq,
    "scatter": _one(_scatter),
    "index_put": _one(_index_put),
    "masked_scatter": _one(lambda shapes, attrs: np.broadcast_shapes(*shapes[:2])),
    "one_hot": _one(lambda shapes, attrs: tuple(shapes[0]) + (_count(attrs["num_classes"], 0),)),
    "searchsorted": _one(_searchsorted),
    "histc": _one(lambda shapes, attrs: (_count(attrs["bins"], 1),)),
    "view_as_real": _one(_view_as_real),
    "view_as_complex": _one(_view_as_complex),
    **{f"fft_{n}": _one(_fft(kind)) for kind, names in _FFTS.items() for n in names},
}


def out_shapes(op: OpDef, shapes: list, attrs: dict) -> list | None:
    """The shapes of ``op``'s results for inputs of ``shapes`` (tensor operands only) and
    ``attrs``; None for an op without a rule. Raises ``ShapeRuleError`` for inputs the op
    cannot take.

    >>> from fusejit.ops.registry import OPS
    >>> out_shapes(OPS["tile"], [(2, 3)], {"reps": (4, 1)})
    [(8, 3)]
    """
    try:
        if op.kind == "elementwise":
            return [tuple(np.broadcast_shapes(*shapes))]
        rule = RULES.get(op.name)
        return None if rule is None else [tuple(s) for s in rule(op, shapes, attrs)]
    except ShapeRuleError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as e:  # AxisError too
        raise ShapeRuleError(str(e)[:200]) from None


__all__ = ["RULES", "ShapeRuleError", "out_shapes"]
