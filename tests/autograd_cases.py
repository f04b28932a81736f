"""Gradient-check cases of the op table's differentiable ops, shared by the tests that enumerate
the table (``tests/test_autograd_rules.py``): ``CASES[op name]`` is a list of cases, each
``(fn, shapes)`` or ``(fn, shapes, opts)``: ``fn`` calls the op (through its public function)
on float64 tensors of ``shapes`` that require grad; ``opts`` may hold ``domain`` (the range the
values are drawn from, default (-1, 1)) and ``noncontig`` (the inputs are strided views of a
larger array). A new differentiable op needs a ``vjp`` in its entry and an entry here.

``PENDING``: differentiable ops whose rules and cases are being written elsewhere; the
enumerating test skips them. Whoever adds an op's rule adds its cases here and removes its name
from ``PENDING``.
"""

from __future__ import annotations

import fusejit as F

CASES: dict[str, list] = {}


def case(name: str, fn, *shapes, **opts) -> None:
    CASES.setdefault(name, []).append((fn, shapes, opts) if opts else (fn, shapes))


# ---- elementwise ---------------------------------------------------------------------------
_UNARY_DOMAIN = {
    "sqrt": (0.5, 2.0), "rsqrt": (0.5, 2.0), "reciprocal": (0.5, 2.0), "log": (0.5, 2.0),
    "log2": (0.5, 2.0), "log10": (0.5, 2.0), "log1p": (-0.5, 2.0), "asin": (-0.9, 0.9),
    "acos": (-0.9, 0.9), "tan": (-1.2, 1.2), "softplus": (-3.0, 3.0), "gelu": (-3.0, 3.0),
    "silu": (-3.0, 3.0), "erf": (-2.0, 2.0), "floor": (0.1, 0.9), "ceil": (0.1, 0.9),
    "trunc": (0.1, 0.9), "round": (0.1, 0.4), "sign": (0.1, 0.9),
}  # fmt: skip
for _n in ("neg", "abs", "sign", "square", "floor", "ceil", "trunc", "round", "sqrt", "rsqrt",
           "reciprocal", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos",
           "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "erf", "sigmoid", "relu",
           "gelu", "silu", "softplus"):  # fmt: skip
    _fn = getattr(F, _n)
    _d = _UNARY_DOMAIN.get(_n, (-1.0, 1.0))
    case(_n, _fn, (3, 4), domain=_d)
    case(_n, _fn, (2, 3), domain=_d, noncontig=True)
    case(_n, _fn, (), domain=_d)
case("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), (3, 4), domain=(-3.0, 3.0))
case("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), (2, 3), noncontig=True)

_BINARY = {
    "add": F.add, "sub": F.sub, "mul": F.mul, "div": lambda a, b: a / (b + 2.0),
    "pow": F.pow, "atan2": F.atan2, "maximum": F.maximum, "minimum": F.minimum,
    "remainder": lambda a, b: F.remainder(a, b + 3.0),
    "floor_divide": lambda a, b: F.floor_divide(a * 0.1 + 0.5, b + 3.0),
}  # fmt: skip
for _n, _fn in _BINARY.items():
    _d = (0.5, 2.0) if _n == "pow" else (-1.0, 1.0)
    case(_n, _fn, (3, 4), (3, 4), domain=_d)
    case(_n, _fn, (3, 4), (4,), domain=_d)  # broadcast
    case(_n, _fn, (2, 1, 3), (4, 1), domain=_d)  # both sides broadcast
    case(_n, _fn, (2, 3), (2, 3), domain=_d, noncontig=True)
case("add", lambda a: a + 2.5, (3,))  # a Python scalar operand
case("mul", lambda a: 3.0 * a, (3,))
case("div", lambda a: 2.0 / (a + 2.0), (3,))
case("sub", lambda a: 1.0 - a, (3,))
case("pow", lambda a: a**2.5, (3,), domain=(0.5, 2.0))
case("pow", lambda a: 2.0**a, (3,))
case("where", lambda a, b: F.where(a > 0, a, b), (3, 4), (4,))
case("where", lambda a, b: F.where(a > 0, a, b), (2, 3), (2, 3), noncontig=True)
case("where", lambda a: F.where(a > 0, a, 0.0), (3, 4))
case("cast", lambda a: F.cast(a, F.float64) * 2.0, (3, 4))

# ---- reductions, normalizations, scans -----------------------------------------------------
for _n, _fn in (("sum", F.sum), ("mean", F.mean), ("prod", F.prod), ("amax", F.amax),
                ("amin", F.amin), ("logsumexp", F.logsumexp)):  # fmt: skip
    _d = (0.5, 1.5) if _n == "prod" else (-1.0, 1.0)
    case(_n, lambda x, f=_fn: f(x, 1), (3, 4), domain=_d)
    case(_n, lambda x, f=_fn: f(x, (0, 1), keepdim=True), (3, 4), domain=_d)
    case(_n, lambda x, f=_fn: f(x, 0, keepdim=True), (2, 3), domain=_d, noncontig=True)
    case(_n, lambda x, f=_fn: f(x, -1), (2, 3, 2), domain=_d)
case("sum", lambda x: F.sum(x), (3, 4))
case("mean", lambda x: F.mean(x), (3, 4))
case("prod", lambda x: F.prod(x * F.tensor([0.0, 1.0, 1.0], dtype=F.float64), 0), (3,))
case("prod", lambda x: F.prod(x * F.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]],
                                         dtype=F.float64), 1), (2, 3))  # fmt: skip
case("var", lambda x: F.var(x, 1), (3, 4))
case("var", lambda x: F.var(x, 0, correction=0, keepdim=True), (3, 4), noncontig=True)
case("var", lambda x: F.std(x, 1), (3, 4))
case("var", lambda x: F.std(x, (0, 1), keepdim=True), (3, 4))
case("max_dim", lambda x: F.max(x, 1).values, (3, 4))
case("max_dim", lambda x: F.max(x, 0, keepdim=True).values, (3, 4), noncontig=True)
case("min_dim", lambda x: F.min(x, 1).values, (3, 4))
case("min_dim", lambda x: F.min(x, -1, keepdim=True).values, (2, 3))
case("softmax", lambda x: F.softmax(x, 1), (3, 4))
case("softmax", lambda x: F.softmax(x, 0), (2, 3), noncontig=True)
case("softmax", lambda x: F.log_softmax(x, 1), (3, 4))
case("softmax", lambda x: F.log_softmax(x, -1), (2, 3), noncontig=True)
case("layer_norm", lambda x: F.layer_norm(x, (4,)), (3, 4))
case("layer_norm", lambda x, w, b: F.layer_norm(x, (4,), w, b), (3, 4), (4,), (4,))
case("layer_norm", lambda x, w: F.layer_norm(x, (2, 3), w), (2, 2, 3), (2, 3))
case("layer_norm", lambda x, w, b: F.layer_norm(x, (3,), w, b), (2, 3), (3,), (3,),
     noncontig=True)  # fmt: skip
case("cumsum", lambda x: F.cumsum(x, 1), (3, 4))
case("cumsum", lambda x: F.cumsum(x, 0), (2, 3), noncontig=True)
case("cumprod", lambda x: F.cumprod(x, 1), (3, 4), domain=(0.5, 1.5))
case("cumprod", lambda x: F.cumprod(x, 0), (2, 3), domain=(0.5, 1.5), noncontig=True)
_Z = F.tensor([[1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0, 1.0]], dtype=F.float64)
case("cumprod", lambda x: F.cumprod(x * _Z.to(x.device), 1), (2, 5), domain=(0.5, 1.5))  # zeros

# ---- matmul family -------------------------------------------------------------------------
case("matmul", F.matmul, (3, 4), (4, 2))
case("matmul", F.matmul, (4,), (4, 2))
case("matmul", F.matmul, (3, 4), (4,))
case("matmul", F.matmul, (4,), (4,))
case("matmul", F.matmul, (2, 3, 4), (4, 2))  # batch broadcast
case("matmul", F.matmul, (2, 1, 3, 4), (3, 4, 2))
case("matmul", F.matmul, (2, 3), (3, 2), noncontig=True)
case("einsum", lambda a, b: F.einsum("ij,jk->ik", a, b), (3, 4), (4, 2))
case("einsum", lambda a, b: F.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 2))
case("einsum", lambda a, b: F.einsum("ij,j", a, b), (3, 4), (4,))
case("einsum", lambda a: F.einsum("ij->j", a), (3, 4))
case("einsum", lambda a, b: F.einsum("...ij,...jk->...ik", a, b), (2, 3, 4), (2, 4, 2))
case("einsum", lambda a, b, c: F.einsum("ij,jk,k->i", a, b, c), (2, 3), (3, 4), (4,))
case("einsum", lambda a, b: F.einsum("ij,jk->ik", a, b), (2, 3), (3, 2), noncontig=True)

# ---- ops whose rules and cases come from elsewhere (see the module docstring) -------------
PENDING = {
    "angle", "cat", "clone", "conj", "contiguous", "cummax", "cummin", "diag", "diag_embed",
    "diagonal", "expand", "fft_fft", "fft_fftn", "fft_hfft", "fft_ifft", "fft_ifftn",
    "fft_ihfft", "fft_irfft", "fft_irfftn", "fft_rfft", "fft_rfftn", "flip", "gather",
    "getitem", "histc", "imag", "index_put", "index_select", "kthvalue", "linalg_cholesky",
    "linalg_det", "linalg_eigh", "linalg_eigvalsh", "linalg_inv", "linalg_lstsq",
    "linalg_matrix_rank", "linalg_pinv", "linalg_qr", "linalg_slogdet", "linalg_solve",
    "linalg_svd", "linalg_svdvals", "logcumsumexp", "masked_scatter", "median", "mode",
    "one_hot", "permute", "quantile", "real", "reshape", "roll", "scatter", "searchsorted",
    "sort", "split", "stack", "tile", "tril", "triu", "view", "view_as_complex", "view_as_real",
}  # fmt: skip
