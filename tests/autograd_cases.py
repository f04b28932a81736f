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
case("linear", F.linear, (3, 4), (2, 4), (2,))
case("linear", F.linear, (3, 4), (2, 4))
case("linear", F.linear, (4,), (2, 4), (2,))
case("linear", F.linear, (2, 3, 4), (5, 4), (1,))  # leading dims; a bias of one element
case("linear", F.linear, (3, 4), (2, 4), (2,), noncontig=True)
case("einsum", lambda a, b: F.einsum("ij,jk->ik", a, b), (3, 4), (4, 2))
case("einsum", lambda a, b: F.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 2))
case("einsum", lambda a, b: F.einsum("ij,j", a, b), (3, 4), (4,))
case("einsum", lambda a: F.einsum("ij->j", a), (3, 4))
case("einsum", lambda a, b: F.einsum("...ij,...jk->...ik", a, b), (2, 3, 4), (2, 4, 2))
case("einsum", lambda a, b, c: F.einsum("ij,jk,k->i", a, b, c), (2, 3), (3, 4), (4,))
case("einsum", lambda a, b: F.einsum("ij,jk->ik", a, b), (2, 3), (3, 2), noncontig=True)

# ---- movement ------------------------------------------------------------------------------


def _ix(x, values):
    """An int64 index tensor on ``x``'s device."""
    return F.tensor(values, device=x.device)


case("reshape", lambda x: x.reshape(4, 3), (3, 4))
case("reshape", lambda x: x.flatten(), (2, 3), noncontig=True)
case("reshape", lambda x: x.unsqueeze(-1).squeeze(0), (1, 3))
case("view", lambda x: x.view(2, -1), (3, 4))
case("permute", lambda x: x.permute(2, 0, 1), (2, 3, 4))
case("permute", lambda x: x.transpose(-1, 0), (2, 3), noncontig=True)
case("expand", lambda x: x.expand(3, 4), (1, 4))
case("expand", lambda x: x.expand(2, 3, 4), (3, 1))
case("getitem", lambda x: x[1:, ::2], (3, 4))
case("getitem", lambda x: x[None, ..., -1], (2, 3, 4))
case("getitem", lambda x: x[1, 2], (2, 3), noncontig=True)
case("contiguous", lambda x: x.mT.contiguous(), (3, 4))
case("contiguous", lambda x: x.contiguous(), (2, 3), noncontig=True)
case("clone", lambda x: x.clone(), (3, 4))
case("cat", lambda a, b: F.cat([a, b], 1), (3, 2), (3, 4))
case("cat", lambda a, b: F.cat([a, b, a], -1), (2, 3), (2, 1), noncontig=True)
case("stack", lambda a, b: F.stack([a, b], -1), (3, 2), (3, 2))
case("stack", lambda a, b: F.stack([a, b]), (2, 3), (2, 3), noncontig=True)
case("split", lambda x: F.split(x, [1, 3], 1), (3, 4))
case("split", lambda x: F.chunk(x, 2, -1)[1], (2, 3), noncontig=True)
case("split", lambda x: F.unbind(x, 0)[0], (3, 4))
case("flip", lambda x: F.flip(x, (0, -1)), (3, 4))
case("flip", lambda x: F.flip(x, (1,)), (2, 3), noncontig=True)
case("roll", lambda x: F.roll(x, (1, -2), (0, 1)), (3, 4))
case("roll", lambda x: F.roll(x, 4), (2, 3), noncontig=True)
case("tile", lambda x: x.repeat(2, 1, 3), (3, 4))
case("tile", lambda x: F.tile(x, (2,)), (2, 3), noncontig=True)
case("tril", lambda x: F.tril(x, 1), (3, 4))
case("tril", lambda x: F.tril(x, -1), (2, 3), noncontig=True)
case("triu", lambda x: F.triu(x), (2, 3, 4))
case("triu", lambda x: F.triu(x, 1), (2, 3), noncontig=True)
case("diag", lambda x: F.diag(x, 1), (3,))
case("diag", lambda x: F.diag(x, -1), (3, 4))
case("diag", lambda x: F.diag(x), (2, 3), noncontig=True)
case("diagonal", lambda x: F.diagonal(x, 1, 0, 2), (3, 2, 4))
case("diagonal", lambda x: F.diagonal(x, -1), (2, 3), noncontig=True)
case("diag_embed", lambda x: F.diag_embed(x, 1), (2, 3))
case("diag_embed", lambda x: F.diag_embed(x, -1, 0, 2), (2, 3), noncontig=True)
case("index_select", lambda x: F.index_select(x, 1, _ix(x, [0, 3, 0])), (3, 4))
case("index_select", lambda x: x[_ix(x, [1, 1, 0])], (2, 3), noncontig=True)  # advanced index
case("gather", lambda x: F.gather(x, 1, _ix(x, [[0, 0, 3], [1, 2, 1]])), (3, 4))
for _r in ("mean", "sum", "none"):  # (the eager op: no weight, no ignored target)
    case("cross_entropy", lambda z, r=_r: F.nn.functional.cross_entropy(
        z, _ix(z, [2, 0, 3]), reduction=r), (3, 4))  # fmt: skip
case("cross_entropy", lambda z: F.nn.functional.cross_entropy(z, _ix(z, 1)), (4,))
case("cross_entropy", lambda z: F.nn.functional.cross_entropy(z, _ix(z, [1, 1])), (2, 3),
     noncontig=True)  # fmt: skip
case("gather", lambda x: F.gather(x, 0, _ix(x, [[1, 1, 0]])), (2, 3), noncontig=True)

# ---- indexing ------------------------------------------------------------------------------
_J = [[0, 1, 0, 2], [2, 2, 1, 0]]  # (repeated places along dim 0 of a (3, 4))
case("scatter", lambda x, s: F.scatter(x, 1, _ix(x, [[0, 2], [3, 1]]), s), (3, 4), (2, 3))
case("scatter", lambda x: F.scatter(x, 0, _ix(x, _J), 1.5), (3, 4))
case("scatter", lambda x, s: F.scatter_add(x, 0, _ix(x, _J), s), (3, 4), (2, 4))
case("scatter", lambda x, s: F.scatter_add(x, 0, _ix(x, _J), s), (3, 4), (2, 4), noncontig=True)
for _r in ("sum", "mean", "prod", "amax", "amin"):
    for _inc in (True, False):
        case("scatter", lambda x, s, r=_r, i=_inc: F.scatter_reduce(x, 0, _ix(x, _J), s, r,
                                                                    include_self=i),
             (3, 4), (2, 4))  # fmt: skip
case("scatter", lambda x, s: F.index_add(x, 0, _ix(x, [2, 2]), s, alpha=2), (3, 4), (2, 4))
case("scatter", lambda x, s: F.index_copy(x, 1, _ix(x, [3, 0]), s), (3, 4), (3, 2))
case("scatter", lambda x: F.index_fill(x, 1, _ix(x, [0, -1]), 2.0), (3, 4))
case("index_put", lambda x, v: F.index_put(x, (_ix(x, [0, 2, 0]),), v, accumulate=True),
     (3, 4), (4,))  # fmt: skip
case("index_put", lambda x, v: F.index_put(x, (_ix(x, [0, -1]), _ix(x, [1, 3])), v),
     (3, 4), (1,))  # fmt: skip
case("masked_scatter", lambda x, s: F.masked_scatter(x, x.detach() > 0, s), (3, 4), (13,))
case("masked_scatter", lambda x, s: F.masked_scatter(x, _ix(x, [True, False, True]), s),
     (2, 3), (5,), noncontig=True)  # fmt: skip

# ---- sorting and statistics ----------------------------------------------------------------
case("sort", lambda x: F.sort(x, 1), (3, 4))
case("sort", lambda x: F.topk(x, 2, 0, largest=False).values, (3, 4))
case("sort", lambda x: F.sort(x, -1, descending=True).values, (2, 3), noncontig=True)
case("median", lambda x: F.median(x, 1).values, (3, 4))
case("median", lambda x: F.nanmedian(x, 0, keepdim=True).values, (2, 3), noncontig=True)
case("median", lambda x: F.median(x), (3, 5))
case("kthvalue", lambda x: F.kthvalue(x, 2, 1).values, (3, 4))
case("kthvalue", lambda x: F.kthvalue(x, 1, 0, keepdim=True).values, (2, 3), noncontig=True)
case("mode", lambda x: F.mode(x, 1).values, (3, 4))
case("cummax", lambda x: F.cummax(x, 1).values, (3, 4))
case("cummax", lambda x: F.cummax(x, 0).values, (2, 3), noncontig=True)
case("cummin", lambda x: F.cummin(x, -1).values, (3, 4))
case("logcumsumexp", lambda x: F.logcumsumexp(x, 1), (3, 4))
case("logcumsumexp", lambda x: F.logcumsumexp(x, 0), (2, 3), noncontig=True)
case("quantile", lambda x: F.quantile(x, 0.3, dim=1), (3, 4))
case("quantile", lambda x, q: F.quantile(x, q * 0.5 + 0.01, dim=-1, keepdim=True), (3, 4), (2,),
     domain=(0.05, 0.95))  # fmt: skip
case("quantile", lambda x: F.nanquantile(x, 0.7, interpolation="midpoint"), (2, 3),
     noncontig=True)  # fmt: skip

# ---- linalg --------------------------------------------------------------------------------


def _eye(x, scale=3.0):
    return F.eye(x.shape[-1], dtype=x.dtype, device=x.device) * scale


def _sym(x):
    return x @ x.mT + _eye(x, 1.0)


case("linalg_solve", lambda a, b: F.linalg.solve(a + _eye(a), b), (3, 3), (3, 2))
case("linalg_solve", lambda a, b: F.linalg.solve(a + _eye(a), b), (2, 3, 3), (3,))
case("linalg_inv", lambda a: F.linalg.inv(a + _eye(a)), (2, 3, 3))
case("linalg_det", lambda a: F.linalg.det(a + _eye(a)), (2, 3, 3))
case("linalg_slogdet", lambda a: F.linalg.slogdet(a + _eye(a)), (3, 3))
case("linalg_cholesky", lambda a: F.linalg.cholesky(_sym(a)), (3, 3))
case("linalg_cholesky", lambda a: F.linalg.cholesky(_sym(a), upper=True), (2, 3, 3))
case("linalg_qr", lambda a: F.linalg.qr(a), (4, 3))
case("linalg_qr", lambda a: F.linalg.qr(a), (2, 3, 4))
case("linalg_svd", lambda a: [t * t for t in F.linalg.svd(a, full_matrices=False)], (4, 3))
case("linalg_svd", lambda a: F.linalg.svd(a).S, (2, 3, 4))
case("linalg_svdvals", lambda a: F.linalg.svdvals(a), (2, 3, 4))
case("linalg_eigh", lambda a: [t * t for t in F.linalg.eigh(a + a.mT)], (3, 3))
case("linalg_eigvalsh", lambda a: F.linalg.eigvalsh(a + a.mT, UPLO="U"), (2, 3, 3))
case("linalg_pinv", lambda a: F.linalg.pinv(a), (3, 4))
case("linalg_pinv", lambda a: F.linalg.pinv(_sym(a), hermitian=True), (3, 3))
case("linalg_lstsq", lambda a, b: F.linalg.lstsq(a, b)[:2], (5, 3), (5, 2))
case("linalg_lstsq", lambda a, b: F.linalg.lstsq(a, b).solution, (3, 4), (3,))

# ---- complex: angle of real values (zero) --------------------------------------------------
case("angle", lambda x: F.angle(x) + x, (3, 4))

# ---- ops whose rules and cases come from elsewhere (see the module docstring) -------------
PENDING: set[str] = set()

# ---- the elementwise ops added for PyTorch parity -----------------------------------------------
_PARITY_UNARY = {
    "erfc": (-2.0, 2.0), "erfinv": (-0.9, 0.9), "selu": (-1.0, 1.0), "hardswish": (-2.5, 2.5),
    "hardsigmoid": (-2.5, 2.5), "relu6": (0.5, 5.5), "mish": (-3.0, 3.0),
    "logsigmoid": (-3.0, 3.0), "softsign": (-2.0, 2.0), "tanhshrink": (-2.0, 2.0),
    "frac": (0.1, 0.9), "asinh": (-2.0, 2.0), "acosh": (1.5, 3.0), "atanh": (-0.9, 0.9),
}  # fmt: skip
for _n, _d in _PARITY_UNARY.items():
    _fn = getattr(F, _n)
    case(_n, _fn, (3, 4), domain=_d)
    case(_n, _fn, (2, 3), domain=_d, noncontig=True)
    case(_n, _fn, (), domain=_d)

_PARITY_BINARY = {
    "fmod": lambda a, b: F.fmod(a * 3.0, b + 2.0),
    "hypot": lambda a, b: F.hypot(a + 2.0, b - 2.0),
    "copysign": lambda a, b: F.copysign(a + 2.0, b),
    "logaddexp": F.logaddexp,
    "logaddexp2": F.logaddexp2,
    "xlogy": lambda a, b: F.xlogy(a, b + 2.0),
}
for _n, _fn in _PARITY_BINARY.items():
    case(_n, _fn, (3, 4), (3, 4))
    case(_n, _fn, (3, 4), (4,))  # broadcast
    case(_n, _fn, (2, 3), (2, 3), noncontig=True)
case("xlogy", lambda a: F.xlogy(a, 3.0), (3,))  # a Python scalar operand
