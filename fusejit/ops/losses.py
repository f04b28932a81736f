"""Losses of the op table: ``cross_entropy`` of logits and class indices, one op where its
composition (log_softmax, gather, mean, neg) is five, so that an eager loss records one
autograd node and its backward is one rule (``softmax(z) - onehot``, scaled).

Eager only, for the calls that need no more (``fusejit/nn/losses.py``: logits of one or two
dims, no class weights, no ignored target, no label smoothing, checked outside a trace); a trace
records the composition, which the JIT fuses and every exporter takes. The forward values are
the composition's: the same log_softmax, the same picks and the same mean.
"""

from __future__ import annotations

from fusejit.ops.movement import _check_index_values
from fusejit.ops.reductions import _mean_impl, _softmax_impl, _sum_impl
from fusejit.ops.registry import FLOAT_ONLY, OpDef, register


def _cross_entropy_impl(b, z, target, reduce):
    xp = b.xp
    logp = _softmax_impl(b, z, z.ndim - 1, log=True)
    _check_index_values("cross_entropy", target, z.shape[-1])
    if z.ndim == 1:
        picked = xp.asarray(logp[target])  # (a 0-d index: numpy gives a scalar)
    else:  # (indexing by row and class: a fifth of take_along_axis's host time)
        picked = logp[xp.arange(z.shape[0]), target]
    if reduce == "none":
        return xp.negative(picked)
    r = _sum_impl(b, picked) if reduce == "sum" else _mean_impl(b, picked)
    return xp.negative(r)


def _vjp_cross_entropy(F, ctx, g):
    z, target = ctx.inputs[0], ctx.inputs[1]
    reduce = ctx.attrs["reduce"]
    if reduce == "mean":
        g = g / target.numel()
    elif reduce == "none":
        g = F.unsqueeze(g, -1)
    # softmax(z) - onehot(target): the gradient of the log-probability picked (the one-hot
    # integers promote to the probabilities' dtype, as in PyTorch)
    return (F.softmax(z, -1) - F.one_hot(target, z.shape[-1])) * g, None


CROSS_ENTROPY = register(
    OpDef(name="cross_entropy", kind="composite", arity=2, allowed=FLOAT_ONLY | frozenset("iu"),
          impl=_cross_entropy_impl, out_dtype=lambda z, t, reduce: z, vjp=_vjp_cross_entropy)
)  # fmt: skip
