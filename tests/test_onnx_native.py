"""A model leaves Python: models exported by fusejit run in ``examples/onnx_native/onnx_run``, a
C++ program built with CMake on onnxruntime's C++ API, in a process with no Python in it; its
outputs equal fusejit's (the tolerance of tests/test_onnx_export.py).

onnxruntime's headers and library come from ``examples/onnx_native/get_onnxruntime.sh PREFIX``
(Debian's libonnxruntime-dev and the onnxruntime wheel); ``$FUSEJIT_ONNX_NATIVE_ROOT`` names that
PREFIX. ``.ci/run`` makes it and sets the variable; in CI (``$CI`` or the variable set) a missing
tool or PREFIX fails these tests, elsewhere they skip with the reason. The program is built once
per source and onnxruntime into ``$FUSEJIT_ONNX_NATIVE_BUILD`` (default: a folder in the system's
temporary folder), never into the checkout.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="fusejit.onnx.export needs the onnx package")
pytest.importorskip("onnxruntime", reason="the export tests' helpers need onnxruntime")

from test_onnx_cli import _cli as export_cli  # noqa: E402
from test_onnx_export import assert_same  # noqa: E402

import fusejit  # noqa: E402
import fusejit.nn as nn  # noqa: E402
import fusejit.nn.functional as Fn  # noqa: E402
import fusejit.onnx as fonnx  # noqa: E402
from fusejit.bench.models import NanoGPT  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_native"
ROOT_VAR = "FUSEJIT_ONNX_NATIVE_ROOT"
REQUIRED = bool(os.environ.get("CI") or os.environ.get(ROOT_VAR))


def _unavailable(why: str):
    if REQUIRED:
        pytest.fail(f"{why}: CI must build and run examples/onnx_native")
    pytest.skip(f"{why}; examples/onnx_native is not built")


def _onnxruntime_root() -> Path:
    root = os.environ.get(ROOT_VAR)
    if not root:
        _unavailable(f"${ROOT_VAR} is not set (make the folder with examples/onnx_native/"
                     "get_onnxruntime.sh PREFIX and set it to PREFIX)")  # fmt: skip
    root = Path(root)
    header = root / "include" / "onnxruntime" / "onnxruntime_cxx_api.h"
    lib = root / "lib" / "libonnxruntime.so"
    for f in (header, lib):
        if not f.is_file():
            _unavailable(f"{f} is missing (run examples/onnx_native/get_onnxruntime.sh {root})")
    return root


def _build_dir() -> Path:
    d = os.environ.get("FUSEJIT_ONNX_NATIVE_BUILD")
    uid = getattr(os, "getuid", lambda: 0)()
    return Path(d) if d else Path(tempfile.gettempdir()) / f"fusejit-onnx-native-{uid}"


@pytest.fixture(scope="module")
def onnx_run() -> Path:
    """The built ``onnx_run``: reused when the sources and onnxruntime are the same."""
    root = _onnxruntime_root()
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} not found")
    h = hashlib.sha256()
    for f in ("CMakeLists.txt", "onnx_run.cpp"):
        h.update((EXAMPLE / f).read_bytes())
    lib = (root / "lib" / "libonnxruntime.so").resolve()
    h.update(f"{root.resolve()}\0{lib}\0{lib.stat().st_size}".encode())
    h.update((root / "include" / "onnxruntime" / "onnxruntime_c_api.h").read_bytes())
    cache = _build_dir()
    final = cache / h.hexdigest()[:20]
    exe = final / "onnx_run"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # (test processes in parallel: one builds)
        if exe.is_file():
            return exe
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        steps = [["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-DONNXRUNTIME_ROOT={root}"],
                 ["cmake", "--build", str(build)]]  # fmt: skip
        for cmd in steps:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if p.returncode:
                shutil.rmtree(build, ignore_errors=True)
                pytest.fail(f"{' '.join(cmd)} failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(build, final)
    assert exe.is_file()
    return exe


def run_native(exe: Path, model: Path, inputs: list, folder: Path) -> list:
    """``onnx_run model`` on ``inputs`` (numpy arrays, written raw): its outputs as arrays."""
    files = []
    for i, a in enumerate(inputs):
        f = folder / f"in{i}.bin"
        np.ascontiguousarray(a).tofile(f)
        files.append(f"{f}:{','.join(map(str, a.shape))}")
    env = {"PATH": os.environ.get("PATH", "")}  # (nothing of Python's environment)
    p = subprocess.run([str(exe), str(model), str(folder / "out"), *files], capture_output=True,
                       text=True, timeout=300, env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    outs = []
    for line in p.stdout.splitlines():
        _name, dtype, shape, path = line.split("\t")
        shape = tuple(int(d) for d in shape.split(",") if d)
        outs.append(np.fromfile(path, dtype=np.dtype(dtype)).reshape(shape))
    return outs


def test_no_python_in_the_program(onnx_run):
    """The program links onnxruntime and the C/C++ runtime only."""
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("ldd not found")
    libs = subprocess.run([ldd, str(onnx_run)], capture_output=True, text=True).stdout
    assert "libonnxruntime.so.1" in libs and "not found" not in libs, libs
    assert "python" not in libs.lower(), libs


def test_readme_mlp(onnx_run, tmp_path):
    """The README's commands: the MLP saved, exported by ``python -m fusejit export``, run."""
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    x = fusejit.randn(8, 64)
    with fusejit.no_grad():
        fusejit.save(fusejit.trace(model, (x,)), tmp_path / "mlp.fjz")
        want = model(x).numpy()
    p = export_cli(tmp_path / "mlp.fjz", tmp_path / "mlp.onnx", "--input-names", "pixels")
    assert p.returncode == 0, p.stderr
    (got,) = run_native(onnx_run, tmp_path / "mlp.onnx", [x.numpy()], tmp_path)
    assert_same(got, want, False, "mlp")


def test_dynamic_batch(onnx_run, tmp_path):
    """A model whose batch dim is named (not a number): the program takes it from the file's
    size, or from the shape given after the file name (which it needs when two dims are
    named)."""

    def f(x):
        return fusejit.tanh(x) * 3 + x.abs()

    proto = fonnx.export(fusejit.trace(f, (fusejit.randn(2, 6),)), tmp_path / "m.onnx")
    for v in (proto.graph.input[0], proto.graph.output[0]):
        v.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp_path / "m.onnx"))
    x = fusejit.randn(7, 6)
    want = f(x).numpy()
    x.numpy().tofile(tmp_path / "x.bin")

    def run(shape):
        return subprocess.run([str(onnx_run), str(tmp_path / "m.onnx"), str(tmp_path / "out"),
                               f"{tmp_path / 'x.bin'}{shape}"], capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    for shape in ("", ":7,6"):
        p = run(shape)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split("\t")[2] == "7,6"
        got = np.fromfile(tmp_path / "out0.bin", np.float32).reshape(7, 6)
        assert_same(got, want, False, f"dynamic batch {shape!r}")
    proto.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    onnx.save(proto, str(tmp_path / "m.onnx"))
    p = run("")
    assert p.returncode == 1 and "several dynamic dims [-1,-1]: give its shape" in p.stderr
    assert run(":7,6").returncode == 0


def test_nanogpt(onnx_run, tmp_path):
    """The nanoGPT-style model (small config), exported through a saved archive: int64 token
    ids in, float32 logits out."""
    fusejit.manual_seed(0)
    model = NanoGPT(vocab=64, block_size=16, n_layer=2, n_head=2, n_embd=32).eval()
    idx = fusejit.tensor(np.random.default_rng(0).integers(0, 64, (2, 16)))
    with fusejit.no_grad():
        fusejit.save(fusejit.trace(model, (idx,)), tmp_path / "gpt.fjz")
    loaded = fusejit.load(tmp_path / "gpt.fjz")
    fonnx.export(loaded, tmp_path / "gpt.onnx")
    (got,) = run_native(onnx_run, tmp_path / "gpt.onnx", [idx.numpy()], tmp_path)
    assert got.shape == (2, 16, 64)
    assert_same(got, loaded(idx).numpy(), False, "nanogpt")


def test_norm_block_dtypes(onnx_run, tmp_path):
    """Several inputs and outputs of several dtypes: a float16 layer norm / softmax block, a
    float64 RMSNorm, an int32 tensor's sum (int64, as in PyTorch) and a bool mask."""

    def block(x, w, d, k):
        h = Fn.layer_norm(x, (16,), w)
        r = d * fusejit.rsqrt((d * d).mean(-1, keepdim=True) + 1e-6)
        return Fn.softmax(h, -1), r, k.sum(0), k > 2

    rng = np.random.default_rng(2)
    half = np.float16
    args = (rng.standard_normal((3, 16)).astype(half), rng.standard_normal(16).astype(half),
            rng.standard_normal((4, 16)), rng.integers(-5, 6, (5, 3)).astype(np.int32))  # fmt: skip
    inputs = tuple(fusejit.tensor(a) for a in args)
    traced = fusejit.trace(block, inputs)
    fonnx.export(traced, tmp_path / "block.onnx")
    got = run_native(onnx_run, tmp_path / "block.onnx", list(args), tmp_path)
    want = [t.numpy() for t in traced(*inputs)]
    assert [g.dtype for g in got] == [np.float16, np.float64, np.int64, np.bool_]
    for k, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, k >= 2, f"block output {k}")


def test_errors_are_reported(onnx_run, tmp_path):
    fonnx.export(fusejit.trace(lambda x: x * 2, (fusejit.ones(4),)), tmp_path / "m.onnx")
    (tmp_path / "short.bin").write_bytes(b"\0" * 6)
    cases = [([], "has 1 inputs, 0 files were given"),
             ([str(tmp_path / "short.bin")], "6 bytes is not a whole number of 4-byte elements"),
             ([str(tmp_path / "nope.bin")], "cannot read")]  # fmt: skip
    for files, message in cases:
        p = subprocess.run([str(onnx_run), str(tmp_path / "m.onnx"), str(tmp_path / "o"), *files],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert p.returncode == 1 and message in p.stderr, (files, p.stderr)
