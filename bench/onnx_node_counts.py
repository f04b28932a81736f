"""Pass counts of onnx's node tests through ``fusejit.onnx.backend``, per op family.

Runs every node test case of an op in ``COVERED`` (``tests/onnx_node_cases.py``: the ONNX ops
fusejit's op table covers) and prints, per family: the cases that pass, the cases that need an
element type fusejit has no dtype for (bfloat16, uint16/32/64, float8, int4, ...), and the ops
all of whose other cases pass. The function-body ("_expanded") cases are counted apart (and
run eagerly, as in ``tests/test_onnx_import_node.py``).

    PYTHONPATH=. python bench/onnx_node_counts.py [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import onnx_node_cases as nc  # noqa: E402

_DTYPE_WORDS = ("has no fusejit dtype", "ONNX type", "is not a fusejit dtype")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="write each case's result here")
    args = ap.parse_args()
    results = {}
    t0 = time.perf_counter()
    for name, case in sorted(nc.cases().items()):
        if not nc.selected(case):
            continue
        try:
            nc.run_case(case, jit="_expanded" not in name)  # (as the tests run them)
            results[name] = "ok"
        except Exception as e:  # (a failing case is a count, not a stop)
            results[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    seconds = time.perf_counter() - t0
    cases = nc.cases()
    per_op: dict = collections.defaultdict(lambda: [0, 0, 0])  # pass, dtype, fail
    expanded = [0, 0, 0]  # pass, dtype, fail
    for name, r in results.items():
        op = nc.op_of(cases[name])
        slot = 0 if r == "ok" else 1 if any(w in r for w in _DTYPE_WORDS) else 2
        if op is None:
            expanded[slot] += 1
        else:
            per_op[op][slot] += 1
    print(f"{len(results)} cases in {seconds:.0f} s")
    print(f"{'family':16} {'ops pass':>9} {'cases pass':>11} {'dtype n/a':>10} {'fail':>5}")
    tot = [0, 0, 0, 0, 0]
    for fam in nc.FAMILIES:
        ops = [op for op in per_op if nc.FAMILY[op] == fam]
        ok_ops = sum(1 for op in ops if per_op[op][2] == 0 and per_op[op][0] > 0)
        p, d, f = (sum(per_op[op][i] for op in ops) for i in range(3))
        print(f"{fam:16} {ok_ops:>4}/{len(ops):<4} {p:>5}/{p + d + f:<5} {d:>10} {f:>5}")
        for i, v in enumerate((ok_ops, len(ops), p, p + d + f, f)):
            tot[i] += v
    print(f"{'all':16} {tot[0]:>4}/{tot[1]:<4} {tot[2]:>5}/{tot[3]:<5} {'':>10} {tot[4]:>5}")
    print(
        f"expanded (function bodies of covered ops): {expanded[0]}/{sum(expanded)} pass, "
        f"{expanded[1]} need a dtype fusejit lacks, {expanded[2]} fail"
    )
    missing = sorted(nc.COVERED - set(per_op))
    print(f"covered ops with no single-op case: {' '.join(missing) or '-'}")
    failing = sorted(op for op, v in per_op.items() if v[2])
    for op in failing:
        names = [n for n, r in results.items() if nc.op_of(cases[n]) == op and r != "ok"
                 and not any(w in r for w in _DTYPE_WORDS)]  # fmt: skip
        print(f"  {op}: {per_op[op][2]} failing, e.g. {names[0]}: {results[names[0]][:120]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
