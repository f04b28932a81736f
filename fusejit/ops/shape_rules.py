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
         "real", "imag", "conj", "angle")  # fmt: skip
_FFTS = {"c2c": ("fft", "ifft", "fftn", "ifftn"), "r2c": ("rfft", "ihfft", "rfftn"),
         "c2r": ("irfft", "hfft", "irfftn")}  # fmt: skip
RULES: dict[str, Callable] = {
    **{n: _one(_reduced) for n in _REDUCTIONS},
    **{n: _one(_same) for n in _SAME},
    **{n: _views for n in ("permute", "expand", "getitem", "split")},
    "max_dim": _pair(_reduced),
    "min_dim": _pair(_reduced),
    "sort": _pair(_same),
    "reshape": _one(_reshape),
    "view": _one(_reshape),
    "matmul": _one(_matmul),
    "einsum": _one(_einsum),
    "cat": _one(_join(stack=False)),
    "stack": _one(_join(stack=True)),
    "tile": _one(_tile),
    "tril": _one(_tri),
    "triu": _one(_tri),
    "diag": _one(_diag),
    "index_select": _one(_index_select),
    "gather": _one(_gather),
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
