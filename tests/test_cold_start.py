"""Cold start: ``import fusejit`` imports neither numba nor the modules a first call does not
need, keeping every public name; a CPU kernel's machine code stored in its entry (``native/``)
is loaded by a new process without numba, gives the results numba's code gave, is verified
like any entry file (a damaged object is detected and rebuilt), and any call it does not
cover (another dtype or layout) falls back to numba."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fusejit.backends import cpu_kernels, native

import fusejit
from fusejit.store import verify_entry

REPO = Path(__file__).resolve().parents[1]


def run(code: str, cache: Path, **env) -> dict:
    e = dict(os.environ, FUSEJIT_CACHE_DIR=str(cache), **env)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e.pop("FUSEJIT_DEBUG", None)
    out = subprocess.run([sys.executable, "-c", code], env=e, cwd=REPO, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_is_lazy_and_keeps_every_public_name(tmp_path):
    code = """
import json, sys
import fusejit
heavy = sorted(m for m in ("numba", "scipy", "llvmlite", "fusejit.nn", "fusejit.optim",
                           "fusejit.jit.scripting", "fusejit.jit.api", "fusejit.fft",
                           "fusejit.jit.archive") if m in sys.modules)
lazy = sorted(fusejit._LAZY)
missing = [n for n in lazy if n not in dir(fusejit)]
import importlib
same = {}
for n in lazy:
    mod, attr = fusejit._LAZY[n]
    m = importlib.import_module(mod)
    same[n] = getattr(fusejit, n) is (m if attr is None else getattr(m, attr))
from fusejit import nn, optimize, trace  # (the from-import form)
print(json.dumps({"heavy": heavy, "missing": missing, "same": same,
                  "from": [nn is fusejit.nn, optimize is fusejit.optimize]}))
"""
    r = run(code, tmp_path)
    assert r["heavy"] == []
    assert r["missing"] == []
    assert all(r["same"].values()), r["same"]
    assert r["from"] == [True, True]
    assert len(r["same"]) >= 21
    # every name ``import fusejit`` gave before it was lazy (the submodules it imported too)
    assert {"jit", "ir", "checkpoint", "nn", "optim", "fft", "linalg", "autograd", "cuda",
            "trace", "script", "optimize", "explain", "save", "load"} <= set(r["same"])  # fmt: skip
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        fusejit.not_a_name  # noqa: B018


def test_star_import_gives_the_lazy_names_too(tmp_path):
    code = """
import json
ns = {}
exec("from fusejit import *", ns)
print(json.dumps({"got": sorted(k for k in ns if not k.startswith("__"))}))
"""
    got = set(run(code, tmp_path)["got"])
    # eager names, lazily imported functions and classes; submodules stay out as for packages
    assert {"tensor", "float32", "no_grad", "trace", "script", "optimize", "explain", "save",
            "load", "mark_dynamic", "save_state_dict", "ArchiveError"} <= got  # fmt: skip
    assert not {"nn", "jit", "onnx", "annotations"} & got


CHILD = """
import json, sys
import numpy as np
import fusejit
x = fusejit.from_numpy(np.linspace(-3, 3, N, dtype=np.float32).reshape(SHAPE))
f = fusejit.trace(FN, (x,), check_trace=False)
y = f(x).numpy()
info = fusejit.cache_info()
print(json.dumps({"y": y.astype(float).ravel().tolist(), "numba": "numba" in sys.modules,
                  "disk_hits": info["disk_hits"], "compiled": info["compiled"],
                  "corrupt": info["rebuilt_corrupt"]}))
"""

CASES = {
    # a flat elementwise kernel with transcendental math (cpu_math, inlined)
    "flat": ("lambda x: (x * 2 + 1).tanh() * 3 - x.exp()", (4096,),
             lambda x: np.tanh(x * 2 + 1) * 3 - np.exp(x)),
    # a row reduction kernel (softmax over rows)
    "rows": ("lambda x: (x * 1.5).softmax(-1)", (64, 128),
             lambda x: np.exp(1.5 * x - (1.5 * x).max(-1, keepdims=True))
             / np.exp(1.5 * x - (1.5 * x).max(-1, keepdims=True)).sum(-1, keepdims=True)),
    # a whole-tensor sum (a row kernel that splits a long row over threads)
    "sum": ("lambda x: (x * x + 1).sum()", (1 << 15,), lambda x: (x * x + 1).sum()),
}  # fmt: skip


def child(case: str) -> str:
    fn, shape, _ = CASES[case]
    n = int(np.prod(shape))
    return CHILD.replace("FN", fn).replace("SHAPE", repr(shape)).replace("N,", f"{n},")


def want(case: str) -> np.ndarray:
    _, shape, ref = CASES[case]
    n = int(np.prod(shape))
    x = np.linspace(-3, 3, n, dtype=np.float32).reshape(shape).astype(np.float64)
    return np.asarray(ref(x)).ravel()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_kernel_stored_by_one_process_runs_in_the_next_without_numba(case, tmp_path):
    first = run(child(case), tmp_path)
    assert first["compiled"] >= 1 and first["numba"]
    stored = sorted(p.name for p in tmp_path.glob("cpu/*/native/*"))
    assert stored and all(p.endswith((".o", ".json")) for p in stored)
    for entry in (tmp_path / "cpu").iterdir():
        assert verify_entry(entry) is None  # (the native files are signed into the manifest)
        files = json.loads((entry / "MANIFEST.json").read_text())["files"]
        assert all(f"native/{p.name}" in files for p in entry.glob("native/*"))
    second = run(child(case), tmp_path)
    assert second["compiled"] == 0 and second["disk_hits"] >= 1
    assert not second["numba"]  # served by the stored machine code
    np.testing.assert_allclose(second["y"], want(case), rtol=2e-5, atol=1e-6)
    assert second["y"] == first["y"]  # the same code: the same bits


OPTIMIZER_CHILD = """
import json, sys
import numpy as np
import fusejit
ps = [fusejit.from_numpy(np.linspace(-1, 1, n, dtype=np.float32)).requires_grad_()
      for n in (3, 1000)]
for p in ps:
    p.grad = fusejit.from_numpy(np.cos(np.arange(p.numel(), dtype=np.float32)))
opt = fusejit.optim.AdamW(ps, lr=0.1, weight_decay=0.01)
opt.step()
opt.step()
info = fusejit.cache_info()
print(json.dumps({"p": [float(v) for p in ps for v in p.detach().numpy()],
                  "numba": "numba" in sys.modules, "disk_hits": info["disk_hits"],
                  "compiled": info["compiled"]}))
"""


def test_a_fused_optimizer_step_stored_by_one_process_runs_in_the_next_without_numba(tmp_path):
    # the multi-tensor kernel takes its scalars as an array: every argument one the stored
    # machine code takes (a float argument kept it on numba's path, which loads numba's whole
    # compiler first: 0.5-0.9 s of a new process's first step)
    first = run(OPTIMIZER_CHILD, tmp_path)
    assert first["compiled"] >= 1
    assert list(tmp_path.glob("cpu/*/native/k_multi.*.o"))
    second = run(OPTIMIZER_CHILD, tmp_path)
    assert second["compiled"] == 0 and second["disk_hits"] >= 1 and not second["numba"]
    assert second["p"] == first["p"]  # the same code: the same bits
    # against the update written out in float64 (two AdamW steps, PyTorch's formulas)
    want = []
    for n in (3, 1000):
        p = np.linspace(-1, 1, n, dtype=np.float32).astype(np.float64)
        g = np.cos(np.arange(n, dtype=np.float32)).astype(np.float64)
        m = v = 0.0
        for t in (1, 2):
            p = p * (1 - 0.1 * 0.01)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            p = p - 0.1 / (1 - 0.9**t) * m / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        want += p.tolist()
    np.testing.assert_allclose(second["p"], want, rtol=1e-5, atol=1e-6)


def test_a_damaged_object_file_is_detected_and_rebuilt(tmp_path, caplog):
    run(child("flat"), tmp_path)
    (obj,) = tmp_path.glob("cpu/*/native/*.o")
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x40
    obj.write_bytes(bytes(data))
    assert verify_entry(obj.parent.parent) is not None
    r = run(child("flat"), tmp_path)
    assert r["corrupt"] == 1 and r["compiled"] == 1
    np.testing.assert_allclose(r["y"], want("flat"), rtol=2e-5, atol=1e-6)
    assert verify_entry(obj.parent.parent) is None
    r = run(child("flat"), tmp_path)  # and the rebuilt entry serves the next process
    assert r["corrupt"] == 0 and r["disk_hits"] >= 1 and not r["numba"]


def test_a_threaded_call_runs_the_stored_code_on_each_thread(tmp_path):
    code = child("flat").replace("4096", str(1 << 16))
    env = {"FUSEJIT_CPU_PARALLEL_THRESHOLD": "1024", "NUMBA_NUM_THREADS": "2"}
    run(code, tmp_path, **env)
    code = code.replace("info = fusejit", "f(x)\ninfo = fusejit")  # (compiled: then threaded)
    r = run(code, tmp_path, **env)
    assert not r["numba"]
    x = np.linspace(-3, 3, 1 << 16, dtype=np.float32).astype(np.float64)
    np.testing.assert_allclose(r["y"], np.tanh(x * 2 + 1) * 3 - np.exp(x), rtol=2e-5, atol=1e-6)


def _kernel():
    from fusejit.codegen.body import KernelBody, Step

    body = KernelBody(in_dtypes=("float32",), outputs=(("t", 0),),
                      steps=(Step("exp", (("in", 0),), (), "float32", "float32"),))  # fmt: skip
    return cpu_kernels.cpu_kernel(body, 1)


def test_a_call_the_stored_code_does_not_cover_falls_back_to_numba(cache):
    a = np.linspace(-2, 2, 1000, dtype=np.float32)
    k = _kernel()
    np.testing.assert_allclose(k(a)[0], np.exp(a), rtol=1e-6)
    fusejit.clear_cache(disk=False)  # as a new process: memory empty, the entry on disk
    k = _kernel()
    assert k.origin == "disk" and isinstance(k.flat, native.NativeFunction)
    assert len(k.flat.overloads) == 1 and k.flat._dispatcher is None
    # (the only specialization stored: a 1-D C-contiguous float32 input and output)
    assert k.flat.overloads[0].signature == (("array", "<f4", 1, "C", True),) * 2
    out = np.empty_like(a)
    k.flat(a, out)
    assert k.flat._dispatcher is None  # (numba not needed)
    np.testing.assert_allclose(out, np.exp(a), rtol=1e-6)
    # a strided input: the C-contiguous code does not take it; numba does
    b = np.linspace(-2, 2, 2000, dtype=np.float32)[::2]
    out2 = np.empty(1000, np.float32)
    k.flat(b, out2)
    assert k.flat._dispatcher is not None
    np.testing.assert_allclose(out2, np.exp(b), rtol=1e-6)
    # another dtype, and a read-only output (numba refuses to write it, as before)
    with pytest.raises(Exception):  # noqa: B017 (numba's typing error)
        ro = np.empty(1000, np.float32)
        ro.setflags(write=False)
        k.flat(a, ro)
    assert np.all(np.isfinite(out))


def test_undefined_symbols_of_an_object_file():
    numba = pytest.importorskip("numba")

    @numba.njit
    def f(a, o):
        for i in range(a.shape[0]):
            o[i] = np.exp(a[i])

    a = np.ones(3)
    f(a, np.empty(3))
    obj = f.overloads[f.signatures[0]].library._get_compiled_object()
    assert {"exp", "PyArg_UnpackTuple"} <= native.undefined_symbols(obj)
    with pytest.raises(native.Unsupported):
        native.undefined_symbols(b"\xcf\xfa\xed\xfe" + bytes(60))  # (a Mach-O header)


def test_an_unloadable_spec_is_skipped(tmp_path, caplog):
    d = tmp_path / native.FOLDER
    d.mkdir()
    meta = {"format": native.FORMAT, "machine": ["no-such-triple", "cpu", ""], "entry": "e",
            "args": [["int64"]], "needs": [], "source": "ab"}  # fmt: skip
    (d / "k_flat.0.json").write_text(json.dumps(meta))
    (d / "k_flat.0.o").write_bytes(b"")
    meta = dict(meta, needs=["no_such_function_anywhere"], machine=["x", "y", "z"])
    (d / "k_flat.1.json").write_text(json.dumps(meta))
    (d / "k_flat.1.o").write_bytes(b"")
    with caplog.at_level(logging.DEBUG, logger="fusejit"):
        assert native.load(tmp_path, "k_flat", "ab") == []
    assert sum("not used" in r.getMessage() for r in caplog.records) == 2
    assert native.load(tmp_path, "k_flat", "cd") == []  # (code of another source: not read)
