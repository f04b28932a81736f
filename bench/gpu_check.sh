#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU (no package registry needed):
# the CUDA tests, the eager-vs-fused benchmark and, when present, the anchor systems
# (.anchors/gpu_anchors.py: torch eager/compile, cupy eager/fuse), and the CPU call-time targets
# on the host's own CPU (AVX-512 on the lent machines). Logs and JSON go to $OUT
# (a temporary folder when unset); a short table comes last. Run from anywhere; it works on the
# checkout it sits in (PYTHONPATH=., nothing installed). Stays under 9.5 minutes: each step has a
# timeout, cut to what is left of GPU_CHECK_BUDGET_S (540 s) for the steps after a slow one.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="${OUT:-$(mktemp -d /tmp/fusejit-gpu-check.XXXXXX)}"
mkdir -p "$OUT"
export OUT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
# kernels the benchmark compiles go to a fresh cache outside $OUT (only logs travel back)
export FUSEJIT_CACHE_DIR="${FUSEJIT_CACHE_DIR:-$(mktemp -d /tmp/fusejit-cache.XXXXXX)}"

START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-540}
# budget N: N seconds, or what is left of the budget if that is less (at least 5)
budget() {
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt "$1" ]; then echo $((left > 5 ? left : 5)); else echo "$1"; fi
}

echo "== GPU"
nvidia-smi -L || echo "nvidia-smi failed"
"$PY" - <<'EOF' 2>&1
import sys
print("python", sys.version.split()[0])
try:
    import cupy
    print("cupy", cupy.__version__, "| runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "| driver", cupy.cuda.runtime.driverGetVersion())
except Exception as e:
    print("cupy unusable:", type(e).__name__, e)
import fusejit
print("fusejit.is_cuda_available():", fusejit.is_cuda_available())
EOF
command -v nvcc >/dev/null && nvcc --version | tail -1

echo "== pytest (tests/test_cuda.py tests/test_cuda_codegen.py) -> $OUT/pytest_cuda.log"
timeout "$(budget 200)" "$PY" -m pytest -q -p no:cacheprovider --durations=15 \
    tests/test_cuda.py tests/test_cuda_codegen.py >"$OUT/pytest_cuda.log" 2>&1
echo "pytest exit status $?"
grep -E "^(FAILED|ERROR)" "$OUT/pytest_cuda.log" | head -40
tail -n 3 "$OUT/pytest_cuda.log"

echo "== pytest, the GPU tests of the other files (-k cuda) -> $OUT/pytest_cuda_more.log"
timeout "$(budget 90)" "$PY" -m pytest -q -p no:cacheprovider -k cuda tests/test_nn.py \
    tests/test_optimize.py tests/test_reduction_fusion.py tests/test_save_load.py \
    tests/test_errors.py tests/test_functional.py tests/test_nn_modules.py \
    tests/test_losses.py tests/test_optim.py tests/test_checkpoints.py tests/test_explain.py \
    tests/test_script_constructs.py tests/test_joint.py tests/test_array_api.py \
    tests/test_dynamic.py tests/test_graph_indexing.py tests/test_dask.py tests/test_sklearn.py \
    tests/test_col_fusion.py tests/test_training_optimized.py tests/test_script_loop_grad.py \
    tests/test_train_step_optimized.py tests/test_onnx_import.py \
    tests/test_onnx_import_shape_cuda.py tests/test_random_graphs.py \
    >"$OUT/pytest_cuda_more.log" 2>&1
echo "pytest exit status $?"
grep -E "^(FAILED|ERROR)" "$OUT/pytest_cuda_more.log" | head -20
tail -n 2 "$OUT/pytest_cuda_more.log"

echo "== pytest, PyTorch-parity ops on the GPU (tests/test_parity_*.py -k cuda) -> $OUT/pytest_parity.log"
timeout "$(budget 90)" "$PY" -m pytest -q -p no:cacheprovider -k cuda tests/test_parity_*.py \
    >"$OUT/pytest_parity.log" 2>&1
echo "pytest exit status $?"
grep -E "^(FAILED|ERROR)" "$OUT/pytest_parity.log" | head -30
tail -n 2 "$OUT/pytest_parity.log"

echo "== pytest, autograd and an MLP trained on the GPU (tests/test_autograd*.py tests/test_training.py -k cuda) -> $OUT/pytest_autograd.log"
timeout "$(budget 90)" "$PY" -m pytest -q -p no:cacheprovider -k cuda tests/test_autograd*.py \
    tests/test_training.py >"$OUT/pytest_autograd.log" 2>&1
echo "pytest exit status $?"
grep -E "^(FAILED|ERROR)" "$OUT/pytest_autograd.log" | head -30
tail -n 2 "$OUT/pytest_autograd.log"

echo "== pytest, fused optimizers on the GPU (tests/test_fused_optim.py -k cuda) -> $OUT/pytest_fused_optim.log"
timeout "$(budget 60)" "$PY" -m pytest -q -p no:cacheprovider -k cuda tests/test_fused_optim.py \
    >"$OUT/pytest_fused_optim.log" 2>&1
echo "pytest exit status $?"
grep -E "^(FAILED|ERROR)" "$OUT/pytest_fused_optim.log" | head -20
tail -n 2 "$OUT/pytest_fused_optim.log"

echo "== bench/gpu_bench.py -> $OUT/gpu_bench.json, $OUT/gpu_bench.log"
timeout "$(budget 110)" "$PY" bench/gpu_bench.py --json "$OUT/gpu_bench.json" >"$OUT/gpu_bench.log" 2>&1
echo "gpu_bench exit status $?"
tail -n 22 "$OUT/gpu_bench.log"

echo "== bench/gpu_bench.py --lone (a lone op: eager or a kernel of its own) -> $OUT/lone.log"
timeout "$(budget 30)" "$PY" bench/gpu_bench.py --lone >"$OUT/lone.log" 2>&1
echo "lone exit status $?"
tail -n 6 "$OUT/lone.log"

echo "== bench/bench_rows_cuda.py (row-kernel variants) -> $OUT/rows_cuda.json, $OUT/rows_cuda.log"
timeout "$(budget 90)" "$PY" bench/bench_rows_cuda.py --json "$OUT/rows_cuda.json" >"$OUT/rows_cuda.log" 2>&1
echo "rows exit status $?"
tail -n 34 "$OUT/rows_cuda.log"

echo "== bench/bench_cols.py --device cuda (column reductions vs cupy and unfused) -> $OUT/cols_cuda.log"
timeout "$(budget 40)" "$PY" bench/bench_cols.py --device cuda --repeat 5 >"$OUT/cols_cuda.log" 2>&1
echo "cols exit status $?"
tail -n 18 "$OUT/cols_cuda.log"

echo "== python -m fusejit bench --device cuda (eager, traced, optimized, cupy) -> $OUT/harness.log"
timeout "$(budget 150)" "$PY" -m fusejit bench --device cuda --quiet \
    --workloads chain-8op,gelu,bias-gelu,adam,lstm-cell,softmax,layernorm,softmax-1k,layernorm-1k,mse,mlp,adamw-step \
    --json "$OUT/harness.json" >"$OUT/harness.log" 2>&1
echo "harness exit status $?"
tail -n 16 "$OUT/harness.log"

echo "== python -m fusejit bench --device cuda, the training workloads -> $OUT/harness_train.log"
timeout "$(budget 120)" "$PY" -m fusejit bench --device cuda --quiet \
    --workloads softmax-bwd,layernorm-bwd,gelu-bwd,cross-entropy,mlp-train \
    --json "$OUT/harness_train.json" >"$OUT/harness_train.log" 2>&1
echo "harness (training) exit status $?"
tail -n 10 "$OUT/harness_train.log"

echo "== python -m fusejit bench --device cpu --workloads chain-8op (this host's CPU) -> $OUT/harness_cpu.log"
timeout "$(budget 45)" "$PY" -m fusejit bench --device cpu --quiet --workloads chain-8op \
    --json "$OUT/harness_cpu.json" >"$OUT/harness_cpu.log" 2>&1
echo "harness (cpu) exit status $?"
head -n 1 "$OUT/harness_cpu.log"

echo "== bench/bench_script_lstm.py -> $OUT/lstm.log"
timeout "$(budget 40)" "$PY" bench/bench_script_lstm.py --reps 3 >"$OUT/lstm.log" 2>&1
echo "lstm exit status $?"
tail -n 5 "$OUT/lstm.log"

echo "== bench/bench_script_lstm.py --train (backward through the loop) -> $OUT/lstm_train.log"
timeout "$(budget 45)" "$PY" bench/bench_script_lstm.py --train --steps 20 --reps 3 \
    >"$OUT/lstm_train.log" 2>&1
echo "lstm train exit status $?"
tail -n 3 "$OUT/lstm_train.log"

echo "== bench/bench_generate.py --small --device cuda:0 (dynamic dims, greedy generation) -> $OUT/generate.log"
timeout "$(budget 60)" "$PY" bench/bench_generate.py --small --device cuda:0 --tokens 32 \
    --rounds 3 >"$OUT/generate.log" 2>&1
echo "generate exit status $?"
tail -n 8 "$OUT/generate.log"

ANCHORS=""
for f in .anchors/gpu_anchors.py shared/anchors/gpu_anchors.py; do
    if [ -f "$f" ]; then ANCHORS="$ROOT/$f"; break; fi
done
if [ -n "$ANCHORS" ]; then
    echo "== anchors ($ANCHORS) -> $OUT/anchors.log, $OUT/gpu_anchors.json"
    (cd "$OUT" && timeout "$(budget 120)" "$PY" "$ANCHORS") >"$OUT/anchors.log" 2>&1
    echo "anchors exit status $?"
else
    echo "== anchors: no .anchors/gpu_anchors.py here; skipped"
fi

echo "logs: $OUT"
echo "== summary (% of the measured device-to-device copy bandwidth)"
"$PY" - <<'EOF'
import json, os
out = os.environ["OUT"]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
bench = load("gpu_bench.json") or {}
anchors = load("gpu_anchors.json") or []
copy = (bench.get("copy") or {}).get("gbs")
pct = {}  # the anchors' bandwidth as % of fusejit's copy measurement, so columns compare
for r in anchors:
    if "gbs" in r and "pct" in r:
        pct[(r["workload"], r["system"])] = 100 * r["gbs"] / copy if copy else r["pct"]
if copy:
    print(f"{bench.get('info', {}).get('device', '?')}: copy {copy:.0f} GB/s (cupy, read + "
          "written); anchors' lstm-cell uses H=1024, fusejit's H=4096")
print(f"{'workload':12s} {'fused':>7s} {'in turn':>8s} {'eager':>7s} {'torch.compile':>14s} "
      f"{'cupy.fuse':>10s}")
for r in bench.get("workloads", []):
    w = r["workload"]
    if "error" in r:
        print(f"{w:12s} ERROR {r['error'][:60]}")
        continue
    tc, cf = pct.get((w, "torch.compile")), pct.get((w, "cupy.fuse"))
    fmt = lambda v: "-" if v is None else f"{v:.1f}%"  # noqa: E731
    print(f"{w:12s} {fmt(r['fused_pct_copy']):>7s} "
          f"{fmt(r.get('fused_in_turn_with_eager_pct_copy')):>8s} {fmt(r['eager_pct_copy']):>7s} "
          f"{fmt(tc):>14s} {fmt(cf):>10s}")
ho = bench.get("host_overhead", {})
if "fused_us_per_call" in ho:
    print(f"host us/call chain-8op@4096: fused {ho['fused_us_per_call']:.1f}, "
          f"eager {ho['eager_us_per_call']:.1f}")
for r in anchors:
    if r.get("workload") == "chain-8op@4096":
        print(f"  anchor {r['system']}: {r['us_per_call']:.1f} us/call")
co = bench.get("compile", {})
if "cold_compile_first_call_s" in co:
    child = co.get("new_process", {})
    print(f"new kernel cold compile {co['cold_compile_first_call_s'] * 1e3:.0f} ms; "
          f"new-process disk load {child.get('first_call_s', float('nan')) * 1e3:.1f} ms")
if not bench:
    print("no benchmark results (see gpu_bench.log)")
rows = (load("rows_cuda.json") or {}).get("results", [])
best = {}
for r in rows:
    if "pct_copy" in r and r["variant"] != "fusejit call":
        p = min(r["pct_copy"])
        if p > best.get(r["workload"], ("", -1))[1]:
            best[r["workload"]] = (r["variant"], p)
for w, (v, p) in best.items():
    print(f"row variants: {w} best {v} {p:.1f}% of copy (see rows_cuda.log)")
for name, what in (("harness_cpu.json", "--device cpu, this host"), ("harness.json", "cuda")):
    harness = load(name) or {}
    if harness.get("targets"):
        print(f"targets (python -m fusejit bench, {what}):")
    for t in harness.get("targets", []):
        print(f"  {'met    ' if t['met'] else 'NOT met'}  {t['target']}: {t['value']:.3g}{t['unit']}")
EOF
