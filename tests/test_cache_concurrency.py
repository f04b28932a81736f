"""One cache, many users at once: processes tracing the same and different kernels while
another clears the folder in a loop, and threads of one process compiling and loading the
same and different kernels. Everything succeeds with correct values, and the cache is
consistent afterwards (every entry verifies and loads; nothing half written is left)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import fusejit
from fusejit.store import (
    Recipe,
    Target,
    adding_files,
    load_or_build,
    remove_entries,
    verify_entry,
)

REPO = Path(__file__).resolve().parents[1]

# kernel k of worker w: the same body for every worker when k < SHARED, else its own
SHARED = 1


def model(k: int, w: int):
    c = float(k if k < SHARED else 10 + 3 * w + k)
    return lambda v: (v * (c + 2)).tanh() + v * c - 1


def reference(k: int, w: int, x: np.ndarray) -> np.ndarray:
    c = float(k if k < SHARED else 10 + 3 * w + k)
    return np.tanh(x * np.float32(c + 2)) + x * np.float32(c) - 1


MODELS = f"SHARED = {SHARED}\n" + inspect.getsource(model) + inspect.getsource(reference)

TRACER = (
    """
import json, os, sys, time
from pathlib import Path
import numpy as np
import fusejit
"""
    + MODELS
    + """
w, rounds = int(sys.argv[1]), int(sys.argv[2])
Path(os.environ["TEST_READY"] + str(w)).touch()
while not os.path.exists(os.environ["TEST_GO"]):
    time.sleep(0.005)
x = fusejit.arange(500, dtype=fusejit.float32) / 100 - 2
bad = []
for r in range(rounds):
    fusejit.clear_cache(disk=False)  # each round from the disk (or a compile), as a new process
    for k in range(SHARED + 1):
        f = fusejit.trace(model(k, w), x, check_trace=False)
        y = f(x).numpy()
        if not np.allclose(y, reference(k, w, x.numpy()), rtol=1e-5, atol=1e-5):
            bad.append((r, k))
print(json.dumps({"bad": bad}))
"""
)

CLEARER = """
import os, sys, time
from fusejit.__main__ import main
while not os.path.exists(os.environ["TEST_GO"]):
    time.sleep(0.005)
n = 0
while not os.path.exists(os.environ["TEST_STOP"]):
    assert main(["cache", "clear"]) == 0  # (the command's code, without a new process each time)
    assert main(["cache", "info"]) == 0
    n += 1
    time.sleep(0.05)
print(n)
"""


def check_consistent(cache: Path) -> int:
    """Every entry of ``cache`` verifies, nothing being written or removed is left, and each
    entry loads in this process as a disk hit. Returns the number of entries."""
    leftovers = [p for p in cache.rglob("*") if p.name.startswith((".tmp-", ".trash-"))]
    assert not leftovers
    entries = [e for e in (cache / "cpu").iterdir()] if (cache / "cpu").exists() else []
    for e in entries:
        assert verify_entry(e) is None, e
        assert (e / "kernel.py").is_file()
    return len(entries)


def test_four_processes_trace_while_another_clears_in_a_loop(cache, tmp_path):
    env = dict(os.environ, FUSEJIT_CACHE_DIR=str(cache), PYTHONPATH=str(REPO),
               TEST_GO=str(tmp_path / "go"), TEST_STOP=str(tmp_path / "stop"),
               TEST_READY=str(tmp_path / "ready"))  # fmt: skip
    env.pop("FUSEJIT_DEBUG", None)

    def start(code: str, *args: str) -> subprocess.Popen:
        cmd = [sys.executable, "-c", code, *args]
        return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    tracers = [start(TRACER, str(w), "2") for w in range(4)]
    clearer = start(CLEARER)
    t0 = time.time()
    while not all((tmp_path / f"ready{w}").exists() for w in range(4)):
        assert time.time() - t0 < 60 and all(p.poll() is None for p in tracers)
        time.sleep(0.01)
    (tmp_path / "go").touch()
    try:
        results = []
        for p in tracers:
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        (tmp_path / "stop").touch()
        out, err = clearer.communicate(timeout=30)
    assert clearer.returncode == 0, err
    assert int(out.strip().splitlines()[-1]) >= 2  # (it did clear while they traced)
    assert all(r["bad"] == [] for r in results), results
    # consistent afterwards: what is left verifies and loads, and the kernels run right
    check_consistent(cache)
    x = fusejit.arange(500, dtype=fusejit.float32) / 100 - 2
    for k in range(SHARED + 1):
        y = fusejit.trace(model(k, 0), x, check_trace=False)(x).numpy()
        np.testing.assert_allclose(y, reference(k, 0, x.numpy()), rtol=1e-5, atol=1e-5)
    assert fusejit.cache_info()["rebuilt_corrupt"] == 0


def test_eight_threads_compile_and_load_the_same_and_different_kernels(cache):
    x = fusejit.arange(300, dtype=fusejit.float32) / 50 - 3
    xn = x.numpy()
    errors: list = []

    def run_threads() -> None:
        barrier = threading.Barrier(8)

        def work(w: int) -> None:
            try:
                barrier.wait(timeout=30)
                for k in range(SHARED + 1):
                    # shared kernels for every thread; the own one for 4 pairs of threads
                    y = fusejit.trace(model(k, w % 4), x, check_trace=False)(x).numpy()
                    np.testing.assert_allclose(y, reference(k, w % 4, xn), rtol=1e-5, atol=1e-5)
                    z = (x * float(w % 3 + 1)).sigmoid().numpy()  # eager kernels, shared
                    want = 1 / (1 + np.exp(-(xn.astype(np.float64) * (w % 3 + 1))))
                    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-6)
            except BaseException as e:  # (reported by the main thread)
                errors.append((w, repr(e)))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []

    run_threads()  # compiled: each kernel once, however many threads asked for it
    info = fusejit.cache_info()
    n = check_consistent(cache)
    assert info["compiled"] == n and info["disk_hits"] == 0 and info["rebuilt_corrupt"] == 0
    fusejit.clear_cache(disk=False)  # loaded: from the disk, each once
    run_threads()
    info = fusejit.cache_info()
    assert info["compiled"] == 0 and info["disk_hits"] == n and info["rebuilt_corrupt"] == 0
    assert check_consistent(cache) == n


# ---- one clear at a chosen moment ---------------------------------------------------------------

TEXT = Target("text", "v1")
KEY = "0123456789abcdef" * 2  # (a key as the targets make them)


def cleared_once(cache: Path, loads: list) -> Recipe:
    """A small text compiler whose first load finds the cache cleared by another process
    just before (the moment the loop above hits by chance)."""

    def build(folder: Path, src: str) -> None:
        (folder / "out.txt").write_text(src.upper())

    def load(folder: Path, origin: str):
        if not loads:
            remove_entries(cache)
        loads.append(origin)
        return (folder / "out.txt").read_text(), origin

    return Recipe("text kernel", lambda: "hello", build, load)


def test_an_entry_cleared_between_storing_and_loading_it_is_built_again(cache):
    loads: list = []
    assert load_or_build(TEXT, KEY, cleared_once(cache, loads)) == ("HELLO", "compiled")
    assert loads == ["compiled", "compiled"]
    info = fusejit.cache_info()
    assert info["compiled"] == 1 and info["rebuilt_corrupt"] == 0


def test_an_entry_cleared_while_it_is_loaded_is_rebuilt_not_counted_corrupt(cache, caplog):
    load_or_build(TEXT, KEY, cleared_once(cache, ["done"]))  # stored
    fusejit.clear_cache(disk=False)  # as a new process
    loads: list = []
    assert load_or_build(TEXT, KEY, cleared_once(cache, loads)) == ("HELLO", "compiled")
    assert loads[0] == "disk" and fusejit.cache_info()["rebuilt_corrupt"] == 0
    assert not [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert verify_entry(cache / "text" / KEY) is None  # stored again


def test_a_reader_waits_for_files_being_added_to_an_entry(tmp_path, monkeypatch):
    """While a compiler adds files to an entry (numba saving a new specialization) the entry
    does not match its manifest until they are signed into it; a process loading the entry
    then waits for the writer's lock instead of taking the entry for corrupt and removing it
    (which made two processes sharing a kernel fail now and then)."""
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "kernels"))
    fusejit.clear_cache(disk=False)
    x = fusejit.arange(100, dtype=fusejit.float32) / 10
    f = fusejit.trace(lambda v: (v * 3).tanh() - v, x, check_trace=False)
    f(x)
    (entry,) = [e for e in (tmp_path / "kernels" / "cpu").iterdir() if e.is_dir()]
    inside, release = threading.Event(), threading.Event()

    def writer():
        with adding_files(entry):
            (entry / "__pycache__").mkdir(exist_ok=True)
            (entry / "__pycache__" / "added.nbc").write_bytes(b"numba's new code")
            inside.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(10)
    assert verify_entry(entry) is not None  # (the file is not signed yet)
    fusejit.clear_cache(disk=False)
    threading.Timer(0.3, release.set).start()
    g = fusejit.trace(lambda v: (v * 3).tanh() - v, x, check_trace=False)
    t.join(10)
    info = fusejit.cache_info()
    assert info["disk_hits"] == 1 and info["rebuilt_corrupt"] == 0 and info["compiled"] == 0
    np.testing.assert_allclose(g(x).numpy(), np.tanh(x.numpy() * 3) - x.numpy(), rtol=1e-6)
    assert verify_entry(entry) is None
