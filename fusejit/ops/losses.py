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
    picked = xp.take_along_axis(logp, xp.expand_dims(target, -1), axis=-1)
    if reduce == "none":
        return xp.negative(picked[..., 0])
    r = _sum_impl(b, picked) if reduce == "sum" else _mean_impl(b, picked)
    return xp.negative(r)


def _vjp_cross_entropy(F, ctx, g):
    z, target = ctx.inputs[0], ctx.inputs[1]
    reduce = ctx.attrs["reduce"]
    if reduce == "mean":
        g = g / target.numel()
    elif reduce == "none":
        g = F.unsqueeze(g, -1)
    n = z.shape[-1]
    # the class of each row marked by comparing positions, as gather's rule does (float32
    # compares exactly up to 2**24, and about twice as fast as int64 in the row kernels)
    pos_dtype = F.float32 if n <= 1 << 24 else F.int64
    pos = F.arange(n, dtype=pos_dtype, device=z.device)
    picked = pos == F.cast(F.unsqueeze(target, -1), pos_dtype)
    p = F.softmax(z, -1)
    return F.where(picked, p - 1.0, p) * g, None


CROSS_ENTROPY = register(
    OpDef(name="cross_entropy", kind="composite", arity=2, allowed=FLOAT_ONLY | frozenset("iu"),
          impl=_cross_entropy_impl, out_dtype=lambda z, t, reduce: z, vjp=_vjp_cross_entropy)
)  # fmt: skip
