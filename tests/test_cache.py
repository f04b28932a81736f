"""The kernel cache: memory hits across sizes, disk hits in another process, corrupt entries,
concurrent builders, clearing, keys, and debug logging."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fusejit
from fusejit.store import CACHE, MARKER, cache_dir, verify_entry

REPO = Path(__file__).resolve().parents[1]
MODEL = "lambda x: ((x * 2 + 1).tanh() * 3) - x"  # numpy ops eagerly: no eager kernels

CHILD = """
import json, os, sys, time
from pathlib import Path
import numpy as np
import fusejit
go = os.environ.get("TEST_GO_FILE")
if go:  # start tracing together with the other process
    Path(os.environ["TEST_READY_FILE"]).touch()
    t0 = time.time()
    while not os.path.exists(go) and time.time() - t0 < 60:
        time.sleep(0.002)
x = fusejit.arange(1000, dtype=fusejit.float32) / 100
f = fusejit.trace(MODEL, x, check_trace=False)
y = f(x).numpy()
want = np.tanh(x.numpy() * 2 + 1) * 3 - x.numpy()
print(json.dumps({"ok": bool(np.allclose(y, want, rtol=1e-5, atol=1e-6)), **fusejit.cache_info()}))
""".replace("MODEL", MODEL)


def model(x):
    return eval(MODEL)(x)  # the same body as the child processes'


def build(n=1000):
    x = fusejit.arange(n, dtype=fusejit.float32) / 100
    t = fusejit.trace(model, x)
    return t, x


def entries(d: Path):
    return sorted(p for p in (d / "cpu").iterdir() if p.is_dir())


def child_env(d: Path, **extra):
    env = dict(os.environ)
    env["FUSEJIT_CACHE_DIR"] = str(d)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("FUSEJIT_DEBUG", None)
    env.update(extra)
    return env


def run_child(d: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD], env=child_env(d), cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- memory ----------------------------------------------------------------------------------


def test_other_sizes_hit_the_same_kernel(cache):
    t, x = build(1000)
    info = fusejit.cache_info()
    assert info["compiled"] == 1 and info["in_memory"] == 1
    kernel = t.plan.kernels[0][1]
    y = fusejit.arange(5000, dtype=fusejit.float32) / 1000
    np.testing.assert_allclose(t(y).numpy(), model(y).numpy(), rtol=1e-6, atol=1e-6)
    t2 = fusejit.trace(model, y)  # a new trace at the other size: a memory hit
    after = fusejit.cache_info()
    assert after["compiled"] == 1 and after["memory_hits"] >= 1 and after["disk_hits"] == 0
    assert t2.plan.kernels[0][1] is kernel


def test_key_changes_with_the_body_not_with_the_sizes(cache):
    def key(fn, *shape):
        t = fusejit.trace(fn, fusejit.randn(*shape))
        (node, kernel) = t.plan.kernels[0]
        assert node.attr("kernel_key") == node.attr("body").key()
        return node.attr("kernel_key"), kernel.key

    a = key(lambda x: (x * 2 + 1).exp(), 10)
    assert key(lambda x: (x * 2 + 1).exp(), 20) == a  # other sizes: the same kernel
    assert key(lambda x: (x * 2 + 1).exp(), 1000) == a
    assert key(lambda x: (x * 2 + 1).exp() * 1.0, 10) == a  # (* 1.0 is simplified away)
    assert key(lambda x: (x * 3 + 1).exp(), 10)[0] != a[0]  # another constant
    assert key(lambda x: (x * 2.5 + 1).exp(), 10)[0] != a[0]
    assert key(lambda x: (x * 2 + 1).exp(), 2, 5)[0] == a[0]  # the same body ...
    assert key(lambda x: (x * 2 + 1).exp(), 2, 5)[1] != a[1]  # ... at another rank
    d64 = fusejit.trace(lambda x: (x * 2 + 1).exp(), fusejit.randn(10).double())
    assert d64.plan.kernels[0][0].attr("kernel_key") != a[0]  # another dtype
    assert len(entries(cache)) == 5


# ---- disk ------------------------------------------------------------------------------------


def test_a_second_process_hits_the_disk_cache(cache):
    build()
    (entry,) = entries(cache)
    assert verify_entry(entry) is None
    assert {"kernel.py", "MANIFEST.json"} <= {p.name for p in entry.iterdir()}
    info = run_child(cache)
    assert info["ok"]
    assert info["disk_hits"] >= 1 and info["compiled"] == 0 and info["rebuilt_corrupt"] == 0
    assert info["dir"] == str(cache)


def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _flip(p: Path):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x40
    p.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "target, damage",
    [
        ("kernel.py", _truncate),
        ("kernel.py", _flip),
        ("*.nbc", _flip),
        ("*.nbi", _truncate),
        ("MANIFEST.json", _truncate),
    ],
)
def test_a_corrupt_entry_is_detected_and_rebuilt(cache, target, damage, caplog):
    build()
    (entry,) = entries(cache)
    (victim,) = [p for p in entry.rglob(target) if p.is_file()][:1]
    damage(victim)
    assert verify_entry(entry) is not None
    fusejit.clear_cache(disk=False)  # as a new process would: memory empty, disk kept
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        t, x = build()
    info = fusejit.cache_info()
    assert info["rebuilt_corrupt"] == 1 and info["compiled"] == 1 and info["disk_hits"] == 0
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(t(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
    assert verify_entry(entry) is None  # rebuilt whole
    fusejit.clear_cache(disk=False)
    build()
    assert fusejit.cache_info()["disk_hits"] == 1  # and loads from disk again


def test_an_entry_without_manifest_is_rebuilt_not_counted_corrupt(cache):
    # what another process sees while the first one is still building the entry
    build()
    (entry,) = entries(cache)
    (entry / "MANIFEST.json").unlink()
    fusejit.clear_cache(disk=False)
    t, x = build()
    info = fusejit.cache_info()
    assert info["rebuilt_corrupt"] == 0 and info["compiled"] == 1
    assert verify_entry(entry) is None


def test_two_processes_compiling_the_same_kernel_both_succeed(cache):
    procs = []
    go = cache.parent / "go"
    for i in range(2):
        ready = cache.parent / f"ready{i}"
        env = child_env(cache, TEST_GO_FILE=str(go), TEST_READY_FILE=str(ready))
        procs.append((ready, subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=REPO,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True)))  # fmt: skip
    t0 = time.time()
    while not all(r.exists() for r, _ in procs) and time.time() - t0 < 60:
        time.sleep(0.005)
    go.touch()  # both imported fusejit and numba: trace at the same moment
    infos = []
    for _, p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        infos.append(json.loads(out.strip().splitlines()[-1]))
    for info in infos:
        assert info["ok"] and info["rebuilt_corrupt"] == 0
        assert info["compiled"] + info["disk_hits"] == 1
    (entry,) = entries(cache)
    assert verify_entry(entry) is None
    build()  # what they left is a good entry
    assert fusejit.cache_info()["disk_hits"] == 1 and fusejit.cache_info()["compiled"] == 0


def test_clear_cache_empties_memory_and_disk(cache):
    build()
    assert fusejit.cache_info()["in_memory"] == 1 and cache.exists()
    assert fusejit.cache_info()["disk_bytes"] > 0
    fusejit.clear_cache()
    info = fusejit.cache_info()
    assert info["in_memory"] == 0 and not CACHE.memory
    # the folder stays fusejit's: its marker (CACHEDIR.TAG) is all that is left
    assert [p.name for p in cache.rglob("*") if p.is_file()] == [MARKER]
    assert info["disk_bytes"] == (cache / MARKER).stat().st_size
    assert info["compiled"] == 0 and info["memory_hits"] == 0
    t, x = build()
    assert fusejit.cache_info()["compiled"] == 1  # rebuilt from scratch
    np.testing.assert_allclose(t(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)


def test_cache_dir_follows_the_environment(cache, monkeypatch, tmp_path):
    assert cache_dir() == cache
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "elsewhere"))
    fusejit.clear_cache(disk=False)
    build()
    assert entries(tmp_path / "elsewhere") and not cache.exists()


# ---- debug logging ---------------------------------------------------------------------------


def test_debug_1_logs_the_compile_and_its_reason(cache, monkeypatch, caplog):
    monkeypatch.setenv("FUSEJIT_DEBUG", "1")
    with caplog.at_level(logging.INFO, logger="fusejit"):
        build()
    msgs = [r.getMessage() for r in caplog.records if r.name == "fusejit"]
    compiles = [m for m in msgs if "compiling CPU kernel" in m]
    assert len(compiles) == 1 and "not in the cache" in compiles[0]
    assert not any("source of" in m for m in msgs)
    caplog.clear()
    fusejit.clear_cache(disk=False)
    with caplog.at_level(logging.INFO, logger="fusejit"):
        build()  # from disk: nothing compiled, nothing logged about compiling
    assert not any("compiling" in r.getMessage() for r in caplog.records)


def test_debug_1_logs_a_rebuild_of_a_corrupt_entry_with_its_reason(cache, monkeypatch, caplog):
    build()
    (entry,) = entries(cache)
    _flip(entry / "kernel.py")
    fusejit.clear_cache(disk=False)
    monkeypatch.setenv("FUSEJIT_DEBUG", "1")
    with caplog.at_level(logging.INFO, logger="fusejit"):
        build()
    (m,) = [r.getMessage() for r in caplog.records if "compiling CPU kernel" in r.getMessage()]
    assert "corrupt" in m and "kernel.py does not match its checksum" in m


def test_debug_2_also_logs_the_source(cache, monkeypatch, caplog):
    monkeypatch.setenv("FUSEJIT_DEBUG", "2")
    with caplog.at_level(logging.INFO, logger="fusejit"):
        build()
    msgs = [r.getMessage() for r in caplog.records if r.name == "fusejit"]
    assert any("compiling CPU kernel" in m for m in msgs)
    (src,) = [m for m in msgs if "source of" in m]
    assert "def k_flat(" in src and "np.tanh" not in src.split("\n")[0]


def test_no_debug_no_logs(cache, caplog):
    with caplog.at_level(logging.DEBUG, logger="fusejit"):
        build()
    assert not [r for r in caplog.records if r.name == "fusejit"]
