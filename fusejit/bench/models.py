"""Whole models for the harness and the tests, written the way a PyTorch user writes them.

``NanoGPT`` is a GPT-2-style decoder (token and position embeddings, pre-LayerNorm blocks with
causal self-attention masked by a ``tril`` buffer, a GELU MLP, a tied-free head), ported from
the usual PyTorch code nearly line for line.

>>> import fusejit
>>> m = NanoGPT(vocab=64, block_size=16, n_layer=1, n_head=2, n_embd=16)
>>> m(fusejit.tensor([[1, 2, 3]])).shape
(1, 3, 64)
"""

from __future__ import annotations

import math

import fusejit
from fusejit import nn
from fusejit.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int) -> None:
        super().__init__()
        assert n_embd % n_head == 0
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.n_embd = n_embd
        mask = fusejit.tril(fusejit.ones(block_size, block_size))
        self.register_buffer("bias", mask.view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    """GPT-2-style language model; defaults are the 4-layer, 512-wide, vocab-8192 size."""

    def __init__(self, vocab: int = 8192, block_size: int = 256, n_layer: int = 4,
                 n_head: int = 8, n_embd: int = 512) -> None:  # fmt: skip
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx):
        B, T = idx.shape
        pos = fusejit.arange(0, T, dtype=fusejit.int64, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def generate(model, idx, new_tokens: int):
    """Greedy decoding: append the most likely next token ``new_tokens`` times.

    ``model`` is any callable from token ids ``(B, T)`` to logits ``(B, T, vocab)`` (an
    ``NanoGPT``, or what ``fusejit.optimize`` returns for one).
    """
    with fusejit.no_grad():
        for _ in range(new_tokens):
            context = idx if idx.shape[1] <= 256 else idx[:, -256:]
            logits = model(context)
            nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            idx = fusejit.cat([idx, nxt], dim=1)
    return idx
