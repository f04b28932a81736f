"""The ``python -m fusejit`` command: info, bench (small, CPU) and cache."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cache_dir, timeout=120):
    env = dict(os.environ, FUSEJIT_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "fusejit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_info_prints_sections(tmp_path):
    p = _run(["info"], tmp_path / "cache")
    assert p.returncode == 0, p.stderr
    for section in ("Versions", "Devices", "Toolchain", "Cache", "Problems"):
        assert section in p.stdout
    assert "numba" in p.stdout and "cpu" in p.stdout
    assert str(tmp_path / "cache") in p.stdout


def test_version(tmp_path):
    import fusejit

    p = _run(["--version"], tmp_path / "cache")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"fusejit {fusejit.__version__}"
    toml = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{fusejit.__version__}"' in toml  # one version, in both places


def _info(monkeypatch, capsys, tmp_path, gpu_hardware: bool) -> tuple[int, str]:
    """``fusejit info`` on a machine without cupy, with or without a GPU the OS shows."""
    import fusejit.__main__ as cli

    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "cupy", None)  # (import cupy fails)
    monkeypatch.setattr(cli, "_gpu_hardware", lambda: gpu_hardware)
    rc = cli.main(["info"])
    return rc, capsys.readouterr().out


def test_info_without_gpu_lists_the_missing_gpu_stack_as_a_note(tmp_path, monkeypatch, capsys):
    rc, out = _info(monkeypatch, capsys, tmp_path, gpu_hardware=False)
    assert rc == 0
    notes = out[out.index("Notes (1)") : out.index("Problems")]
    assert "no GPU support: cupy is not installed" in notes and "CPU only" in notes
    assert "Problems: none" in out


def test_info_with_a_gpu_but_no_cupy_is_a_problem(tmp_path, monkeypatch, capsys):
    rc, out = _info(monkeypatch, capsys, tmp_path, gpu_hardware=True)
    assert rc == 0  # (only a broken numba fails the command)
    assert "Notes" not in out
    problems = out[out.index("Problems (1)") :]
    assert "cupy is not importable" in problems and "has an NVIDIA GPU" in problems


def test_gpu_hardware_probe_matches_the_device_files():
    import glob

    from fusejit.__main__ import _gpu_hardware

    files = glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*")
    assert _gpu_hardware() == bool(files)


def test_bench_small_cpu_writes_json(tmp_path):
    import importlib.util

    out, png = tmp_path / "res.json", tmp_path / "res.png"
    args = ["bench", "--device", "cpu", "--workloads", "arith-chain", "--size", "65536",
            "--repeat", "3", "--json", str(out)]  # fmt: skip
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    if has_mpl:
        args += ["--plot", str(png)]
    p = _run(args, tmp_path / "cache")
    assert p.returncode == 0, p.stderr
    if has_mpl:
        assert png.read_bytes()[:4] == b"\x89PNG"
    assert "arith-chain" in p.stdout and "speedup" in p.stdout
    res = json.loads(out.read_text())
    assert res["device"] == "cpu"
    assert res["copy"]["gbs"] > 0
    (row,) = res["workloads"]
    assert row["name"] == "arith-chain" and row["size"] == 65536
    assert row["verified"] is True and row["repeats"] == 3
    for k in ("eager_s", "fused_s", "ref_s", "speedup", "vs_ref", "fused_gbs", "pct_copy"):
        assert row[k] > 0, k
    assert row["kernels"] == 1
    comp = res["compile"]
    assert comp["cold"]["workloads"]["arith-chain"]["kernels_compiled"] == 1
    assert comp["warm"]["workloads"]["arith-chain"]["kernels_from_disk"] == 1
    assert row["cold_compile_s"] > 0 and row["warm_compile_s"] > 0
    assert res["host"]["fused_s"] > 0
    # the workload targets are for the default sizes: not judged at --size 65536
    names = {t["target"] for t in res["targets"]}
    assert "arith-chain fused >= 6x numpy" not in names
    assert "optimized within 10% of traced (worst workload)" in names


def test_every_workload_verified_against_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "cache"))
    from fusejit.bench import harness
    from fusejit.bench.workloads import WORKLOADS

    for name in WORKLOADS:
        r = harness.run_workload(name, "cpu", size=8192, repeat=1)
        assert r["verified"] and r["fused_s"] > 0, name


def test_interleaved_timing_warms_up_by_time_then_times_every_call_in_turn():
    from fusejit.bench.harness import time_interleaved

    log = []
    calls = {k: (lambda k=k: log.append(k) or time.sleep(0.002)) for k in "abc"}
    timed, first, gc_on = [], [], []

    def timer(f):  # a timer of one call, as a GPU's events are
        first.append(first[0] if first else time.perf_counter())
        gc_on.append(gc.isenabled())
        n = len(log)
        f()
        timed.append(log[n])
        return 1e-3 * len(timed)

    t0 = time.perf_counter()
    t = time_interleaved(calls, repeat=None, sync=lambda: None, warmup=1, warmup_s=0.05,
                         min_repeat=4, max_repeat=4, timer=timer)  # fmt: skip
    warm = len(log) - len(timed)
    # untimed whole rounds first, more than the one asked for: 50 ms of them
    assert warm % 3 == 0 and warm > 3 and first[0] - t0 >= 0.05
    assert len(timed) == 12 and {k: len(v) for k, v in t.items()} == {"a": 4, "b": 4, "c": 4}
    # each round starts one call later: a, b, c / b, c, a / c, a, b / a, b, c
    assert "".join(timed) == "abcbcacababc"
    assert t["a"] == [1e-3, 6e-3, 8e-3, 10e-3]
    assert not any(gc_on) and gc.isenabled()  # no collection while timing, as timeit


def test_mismatch_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "cache"))
    from fusejit.bench import harness
    from fusejit.bench.workloads import WORKLOADS, Workload

    good = WORKLOADS["arith-chain"]
    bad = Workload("wrong", "x*2+1 vs x*2", lambda x: x * 2 + 1, lambda xp, x: x * 2,
                   good.make, good.default_size)  # fmt: skip
    with pytest.raises(harness.MismatchError, match="differs from the reference"):
        harness.run_workload(bad, "cpu", size=1024, repeat=1)


def test_cache_clear_empties_folder(tmp_path, monkeypatch, capsys):
    from fusejit.__main__ import main

    cache = tmp_path / "cache"
    entry = cache / "cpu" / "0123456789abcdef0123456789abcdef"  # (a cache without marker)
    entry.mkdir(parents=True)
    (entry / "kernel.py").write_text("x = 1\n")
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(cache))
    assert main(["cache", "info"]) == 0
    assert "cpu: 1 kernels" in capsys.readouterr().out
    p = _run(["cache", "clear"], cache)
    assert p.returncode == 0, p.stderr
    assert "removed 1 kernel entries" in p.stdout
    assert not cache.exists() or not any(cache.rglob("*"))


def test_bench_rejects_bad_arguments(capsys):
    from fusejit.__main__ import main

    assert main(["bench", "--workloads", "nope"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    assert main(["bench", "--size", "0"]) == 2


def test_bench_cuda_without_gpu_says_so(capsys):
    import fusejit
    from fusejit.__main__ import main

    if fusejit.is_cuda_available():
        pytest.skip("a CUDA GPU is usable here")
    assert main(["bench", "--device", "cuda", "--workloads", "arith-chain", "--quiet"]) == 2
    assert "no CUDA GPU is usable" in capsys.readouterr().err


def test_plot_without_matplotlib_says_so(tmp_path, capsys):
    import importlib.util

    from fusejit.__main__ import main

    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed")
    args = [
        "bench",
        "--device",
        "cpu",
        "--workloads",
        "arith-chain",
        "--plot",
        str(tmp_path / "p.png"),
    ]
    assert main(args) != 0
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_check_tolerance_rule():
    from fusejit.bench.harness import MismatchError, _check
    from fusejit.bench.workloads import WORKLOADS

    w = WORKLOADS["arith-chain"]
    ref = np.ones(4, np.float32)
    assert _check("t", "fused", ref * (1 + 1e-6), ref, w) < w.rtol
    with pytest.raises(MismatchError, match="float64"):
        _check("t", "fused", ref.astype(np.float64), ref, w)
    with pytest.raises(MismatchError):
        _check("t", "fused", np.array([1, 1, np.nan, 1], np.float32), ref, w)


def test_targets_follow_the_device():
    """A CUDA result is judged by the CUDA issues' targets (% of copy, host time, compile),
    never by the CPU ones; the values are the result's own."""
    from fusejit.bench.harness import TARGETS_CUDA, check_targets, format_targets

    def row(name, pct, ratio):
        return {"name": name, "pct_copy": pct, "optimized_vs_fused": ratio, "vs_ref": 50.0}

    res = {
        "device": "cuda:0", "size_override": None,
        "workloads": [row("chain-8op", 86.0, 1.02), row("softmax", 51.9, 1.08)],
        "host": {"fused_s": 14.0e-6, "optimized_s": 15.5e-6},
        "compile": {
            "cold": {"workloads": {"chain-8op": {"kernels_compiled": 1, "compile_s": 0.057}},
                     "process_first_kernel_s": 0.3},
            "warm": {"workloads": {"chain-8op": {"kernels_compiled": 0, "compile_s": 0.0016}},
                     "process_first_kernel_s": 0.01},
        },
    }  # fmt: skip
    got = {t["target"]: (t["value"], t["met"]) for t in check_targets(res)}
    assert set(got) <= {t[0] for t in TARGETS_CUDA}
    assert got["chain-8op fused >= 85% of copy bandwidth"] == (86.0, True)
    assert got["softmax fused >= 85% of copy bandwidth"] == (51.9, False)
    assert got["chain-8op call on 4096 elements <= 15 us of host time"][1] is True
    assert got["optimized within 10% of traced (worst workload)"] == (1.08, True)
    assert got["new fused kernel cold <= 200 ms (worst workload)"] == (0.057, True)
    assert got["new fused kernel from disk in a new process <= 10 ms (worst workload)"][1]
    assert "gelu fused >= 85% of copy bandwidth" not in got  # not measured: not judged
    text = format_targets(check_targets(res))
    assert text.startswith("targets (CUDA):") and "NOT met  softmax" in text


def test_harness_docstring_examples(tmp_path, monkeypatch):
    import doctest

    from fusejit.bench import harness

    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "cache"))
    res = doctest.testmod(harness)
    assert res.attempted > 0 and res.failed == 0
