"""``MultiheadAttention``: PyTorch's layer (its parameter names, init and masks) written with
``F.linear``, reshapes and the attention of ``F.scaled_dot_product_attention``'s parts.

>>> import fusejit
>>> from fusejit import nn
>>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
>>> out, w = mha(fusejit.ones(3, 5, 8), fusejit.ones(3, 4, 8), fusejit.ones(3, 4, 8))
>>> out.shape, w.shape, list(mha.state_dict())
((3, 5, 8), (3, 5, 4), ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias'])
"""

from __future__ import annotations

import math

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.eager.creation import empty, full, zeros
from fusejit.eager.elementwise import where
from fusejit.eager.linalg import linear, matmul
from fusejit.eager.movement import reshape, tril
from fusejit.eager.reductions import mean, softmax
from fusejit.eager.tensor import Tensor
from fusejit.nn import functional as F
from fusejit.nn import init
from fusejit.nn.modules import Linear, Module, Parameter

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim / num_heads`` each, as
    ``torch.nn.MultiheadAttention``: inputs ``[L, N, E]`` (``[N, L, E]`` with
    ``batch_first``, or unbatched ``[L, E]``); ``attn_mask`` ``[L, S]`` or
    ``[N * num_heads, L, S]`` and ``key_padding_mask`` ``[N, S]``, bool (True: masked out) or
    float (added). Returns ``(output, weights)``: weights averaged over the heads
    (``average_attn_weights``) when ``need_weights``, else None.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim=None,
        vdim=None,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                f"({num_heads})"
            )
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn")
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.head_dim = embed_dim // num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout = float(dropout)
        self.batch_first = batch_first
        d = dt.as_dtype(dtype) if dtype is not None else dt.default_float
        e = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty((3 * e, e), dtype=d, device=device))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(empty((e, e), dtype=d, device=device))
            self.k_proj_weight = Parameter(empty((e, self.kdim), dtype=d, device=device))
            self.v_proj_weight = Parameter(empty((e, self.vdim), dtype=d, device=device))
        if bias:
            self.in_proj_bias = Parameter(zeros(3 * e, dtype=d, device=device))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, device=device, dtype=d)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def _project(self, query, key, value):
        e = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e : 2 * e], b[2 * e :])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:e], w[e : 2 * e], w[2 * e :]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask=None,
        need_weights: bool = True,
        attn_mask=None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ):
        name = "MultiheadAttention"
        for t, what in ((query, "query"), (key, "key"), (value, "value")):
            if not isinstance(t, Tensor) or not t.dtype.is_floating_point:
                raise DTypeError(f"{name}: {what} must be a floating-point tensor")
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(
                f"{name}: query, key and value must all be 3-D (batched) or 2-D, got "
                f"{fmt_shape(query.shape)}, {fmt_shape(key.shape)}, {fmt_shape(value.shape)}"
            )
        if not batched:
            query, key, value = (reshape(t, 1, *t.shape) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = reshape(key_padding_mask, 1, *key_padding_mask.shape)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length, e = query.shape
        s = key.shape[1]
        if e != self.embed_dim or key.shape[0] != n or value.shape[:2] != key.shape[:2]:
            raise ShapeError(
                f"{name}: query {fmt_shape(query.shape)}, key {fmt_shape(key.shape)} and value "
                f"{fmt_shape(value.shape)} (batch first) do not fit embed_dim={self.embed_dim}"
            )
        h, hd = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        q = reshape(q, n, length, h, hd).transpose(1, 2)
        k = reshape(k, n, s, h, hd).transpose(1, 2)
        v = reshape(v, n, s, h, hd).transpose(1, 2)
        scores = matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        if is_causal and attn_mask is None:
            attn_mask = ~tril(full((length, s), True, dtype=dt.bool_, device=query.device))
        if attn_mask is not None:
            if attn_mask.ndim == 3:
                if attn_mask.shape != (n * h, length, s):
                    raise ShapeError(
                        f"{name}: attn_mask of shape {fmt_shape(attn_mask.shape)}, expected "
                        f"{fmt_shape((n * h, length, s))}"
                    )
                attn_mask = reshape(attn_mask, n, h, length, s)
            elif attn_mask.shape != (length, s):
                raise ShapeError(
                    f"{name}: attn_mask of shape {fmt_shape(attn_mask.shape)}, expected "
                    f"{fmt_shape((length, s))}"
                )
            scores = _masked(scores, attn_mask)
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (n, s):
                raise ShapeError(
                    f"{name}: key_padding_mask of shape {fmt_shape(key_padding_mask.shape)}, "
                    f"expected {fmt_shape((n, s))}"
                )
            scores = _masked(scores, reshape(key_padding_mask, n, 1, 1, s))
        weights = softmax(scores, -1)
        if self.dropout > 0.0 and self.training:
            weights = F.dropout(weights, self.dropout, training=True)
        out = matmul(weights, v).transpose(1, 2)
        out = self.out_proj(reshape(out, n, length, e))
        if not batched:
            out = reshape(out, length, e)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        w = mean(weights, 1) if average_attn_weights else weights
        if not batched:
            w = reshape(w, *w.shape[1:])
        return out, w

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"


def _masked(scores: Tensor, mask: Tensor) -> Tensor:
    if mask.dtype is dt.bool_:
        return where(mask, -math.inf, scores)
    return scores + mask
