"""Greedy generation with ``fusejit.bench.models.NanoGPT`` (default size: 4 layers, 8 heads, 512
wide, vocab 8192, block 256): eager against ``fusejit.optimize`` (automatic dynamic dims).

Each round generates ``--tokens`` (64) tokens from a 4-token prompt with the eager model and the
optimized one in lockstep (each step of one right after the same step of the other, in
alternating order), ``--rounds`` times; time per token is a round's time over its tokens. The
optimized model is made once: its first generation (traces and compiles, reported apart) comes
before the rounds, which reuse its graphs. Also: the graphs compiled, and whether any call
ran eager (a fallback), from the executor's record; and that both give the same tokens.

Target (issue #21): at most 2 graphs compiled for the 64 tokens, no fallback, optimized at least as
fast as eager per token on the CPU.

    python bench/bench_generate.py [--tokens 64] [--rounds 5] [--small]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

try:
    import fusejit as F
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fusejit as F

from fusejit.bench.models import NanoGPT, generate


def _step(model, idx):
    """One greedy step of ``generate``: the next token appended."""
    context = idx if idx.shape[1] <= 256 else idx[:, -256:]
    logits = model(context)
    nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
    return F.cat([idx, nxt], dim=1)


def main(tokens: int = 64, rounds: int = 5, small: bool = False, device: str = "cpu") -> dict:
    F.manual_seed(0)
    cfg = dict(vocab=256, block_size=128, n_layer=2, n_head=4, n_embd=64) if small else {}
    model = NanoGPT(**cfg).eval().to(device)
    prompt = F.tensor([[1, 2, 3, 4]], device=device)
    opt = F.optimize(model)
    ex = opt._fusejit_executor

    t0 = time.perf_counter()
    first = generate(opt, prompt, tokens)
    first_s = time.perf_counter() - t0
    ref = generate(model, prompt, tokens)
    same = first.tolist() == ref.tolist()

    # Each round generates the tokens with both models in lockstep: at each step the eager
    # step and the optimized one run back to back (in alternating order), so that the load of
    # the machine, which swings by 2x from one second to the next on a shared machine, hits
    # both alike. A step's time includes the argmax and the cat, as in generate().
    eager_t, opt_t = [], []
    gc.disable()
    try:
        with F.no_grad():
            for r in range(rounds):
                a = b = prompt
                te = to = 0.0
                for k in range(tokens):
                    for which in (0, 1) if (r + k) % 2 == 0 else (1, 0):
                        t0 = time.perf_counter()
                        if which == 0:
                            a = _step(model, a)
                            te += time.perf_counter() - t0
                        else:
                            b = _step(opt, b)
                            to += time.perf_counter() - t0
                eager_t.append(te / tokens)
                opt_t.append(to / tokens)
                same &= a.tolist() == b.tolist() == ref.tolist()
    finally:
        gc.enable()
    specs = ex._specs
    res = {
        "config": cfg or "default",
        "tokens": tokens,
        "graphs_compiled": ex._n_traces,
        "fallbacks": sum(1 for s in specs if s.status == "eager"),
        "eager_calls_after_fallback": sum(s.eager_calls for s in specs),
        "first_round_s": round(first_s, 3),
        "compile_s": round(sum(s.compile_seconds for s in specs), 3),
        "eager_ms_per_token": [round(t * 1e3, 2) for t in eager_t],
        "optimized_ms_per_token": [round(t * 1e3, 2) for t in opt_t],
        "same_tokens": same,
    }
    for k in ("eager", "optimized"):
        ts = res[f"{k}_ms_per_token"]
        res[f"{k}_min_median"] = (min(ts), round(statistics.median(ts), 2))
    res["speedup_per_round"] = [round(e / o, 3) for e, o in zip(eager_t, opt_t)]
    res["speedup_median"] = round(statistics.median(res["speedup_per_round"]), 3)
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--small", action="store_true", help="a 2-layer, 64-wide model")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    for k, v in main(args.tokens, args.rounds, args.small, args.device).items():
        print(f"{k}: {v}")
