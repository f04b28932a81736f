"""fusejit.save / fusejit.load: archives load in a fresh process that never imported the model's
code, shipped kernels are used without compiling, and damaged or hostile files raise
ArchiveError (never another exception, never code execution)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fusejit
from fusejit.jit.archive import ArchiveError

REPO = Path(__file__).resolve().parents[1]

MODEL_SRC = """
import fusejit
from fusejit import nn


@fusejit.script
class Net(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.ih = nn.Linear(n, 4 * n)
        self.hh = nn.Linear(n, 4 * n)

    def forward(self, x, h, c, gain: float):
        for t in range(x.shape[0]):
            i, f, g, o = (self.ih(x[t]) + self.hh(h)).chunk(4, 1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
        if h.sum() > 0:
            h = h * gain
        return h, c
"""

LOADER = """
import json, sys
import numpy as np
import fusejit
m = fusejit.load(sys.argv[1])
d = np.load(sys.argv[2])
args = [fusejit.from_numpy(d[k]) for k in ("x", "h", "c")] + [float(d["gain"])]
h, c = m(*args)
assert "netmodel" not in sys.modules
ok = bool(np.array_equal(h.numpy(), d["h_out"]) and np.array_equal(c.numpy(), d["c_out"]))
text = str(m.graph) + m.code
fusejit.save(m, sys.argv[1] + ".again")
m2 = fusejit.load(sys.argv[1] + ".again")
ok2 = bool(np.array_equal(m2(*args)[0].numpy(), d["h_out"]))
print(json.dumps({"ok": ok, "ok2": ok2, "loop": "loop[" in text and "while " in text,
                  "note": m.kernel_note, **fusejit.cache_info()}))
"""


def _env(cache: Path, key: str):
    env = dict(os.environ)
    env["FUSEJIT_CACHE_DIR"] = str(cache)
    env["FUSEJIT_ARCHIVE_KEY"] = key
    env["PYTHONPATH"] = str(REPO)
    env.pop("FUSEJIT_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The model saved by a child process that imports its source (netmodel.py)."""
    d = tmp_path_factory.mktemp("saved")
    (d / "netmodel.py").write_text(MODEL_SRC)
    saver = textwrap.dedent(f"""
        import sys, numpy as np, fusejit
        sys.path.insert(0, {str(d)!r})
        import netmodel
        fusejit.manual_seed(0)
        m = netmodel.Net(6)
        x, h, c = fusejit.randn(5, 2, 6), fusejit.randn(2, 6), fusejit.randn(2, 6)
        with fusejit.no_grad():  # (the inference path, whose kernels the loader runs: in
            ho, co = m(x, h, c, 1.5)  # grad mode the loop runs its joint graphs instead)
        fusejit.save(m, {str(d / "net.fjz")!r})
        np.savez({str(d / "io.npz")!r}, x=x.numpy(), h=h.numpy(), c=c.numpy(), gain=1.5,
                 h_out=ho.numpy(), c_out=co.numpy())
    """)
    r = subprocess.run(
        [sys.executable, "-c", saver],
        env=_env(d / "cache", "k1"),
        cwd=d,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return d


def _load_in_child(saved: Path, tmp_path: Path, key: str) -> dict:
    r = subprocess.run([sys.executable, "-c", LOADER, str(saved / "net.fjz"),
                        str(saved / "io.npz")], env=_env(tmp_path / "fresh", key), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_load_in_fresh_process_uses_shipped_kernels(saved, tmp_path):
    info = _load_in_child(saved, tmp_path, "k1")
    assert info["ok"] and info["ok2"] and info["loop"]
    assert info["compiled"] == 0 and info["disk_hits"] >= 2, info


MOVER = """
import json, sys
import numpy as np
import fusejit
dev = sys.argv[3]
m = fusejit.load(sys.argv[1], device=dev)
d = np.load(sys.argv[2])
args = [fusejit.from_numpy(d[k]).to(dev) for k in ("x", "h", "c")] + [float(d["gain"])]
assert "netmodel" not in sys.modules


def same(t, want):
    return t.device.type == dev.split(":")[0] and bool(
        np.allclose(t.cpu().numpy(), want, rtol=1e-4, atol=1e-6))


h, c = m(*args)
ok = same(h, d["h_out"]) and same(c, d["c_out"])
fusejit.save(m, sys.argv[1] + "." + dev)  # saved from that device, loaded where it was saved
m2 = fusejit.load(sys.argv[1] + "." + dev)
ok2 = same(m2(*args)[0], d["h_out"])
print(json.dumps({"ok": ok, "ok2": ok2}))
"""


@pytest.mark.parametrize(
    "dev",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
        not fusejit.is_cuda_available(), reason="no usable GPU (CUDA tests only)"))],
)  # fmt: skip
def test_load_onto_a_device_in_a_fresh_process(saved, tmp_path, dev):
    # the CPU-saved model loaded onto ``dev`` by a process that never imported its source,
    # run there, saved from there and loaded again
    r = subprocess.run([sys.executable, "-c", MOVER, str(saved / "net.fjz"),
                        str(saved / "io.npz"), dev], env=_env(tmp_path / "fresh", "k1"),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["ok"] and info["ok2"], info
    # the archive saved on ``dev`` ships the kernels built there (for cuda: binaries for this
    # GPU): a new process with an empty cache installs them, and runs them from disk
    r = subprocess.run([sys.executable, "-c", RELOADER, str(saved / "net.fjz") + "." + dev,
                        str(saved / "io.npz"), dev], env=_env(tmp_path / "fresh2", "k1"),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["ok"] and info["disk_hits"] >= 2 and "installed" in info["note"], info
    if dev == "cpu":
        assert info["compiled"] == 0, info


RELOADER = """
import json, sys
import numpy as np
import fusejit
dev = sys.argv[3]
m = fusejit.load(sys.argv[1])
d = np.load(sys.argv[2])
args = [fusejit.from_numpy(d[k]).to(dev) for k in ("x", "h", "c")] + [float(d["gain"])]
h, c = m(*args)
ok = h.device.type == dev and bool(np.allclose(h.cpu().numpy(), d["h_out"], rtol=1e-4,
                                               atol=1e-6))
print(json.dumps({"ok": ok, "note": m.kernel_note, **fusejit.cache_info()}))
"""


def test_unsigned_kernels_are_compiled_not_installed(saved, tmp_path):
    info = _load_in_child(saved, tmp_path, "another-key")
    assert info["ok"] and info["compiled"] >= 2 and "not installed" in info["note"]


def test_traced_and_optimized_round_trip(tmp_path):
    f = fusejit.trace(
        lambda x, y: ((x * y).tanh() + 1, x.sum()), (fusejit.ones(4), fusejit.ones(4))
    )
    fusejit.save(f, tmp_path / "t.fjz")
    g = fusejit.load(tmp_path / "t.fjz")
    x, y = fusejit.randn(4), fusejit.randn(4)
    for a, b in zip(g(x, y), f(x, y)):
        # (the graphs in the message tell whether the two plans differ; a 1-ulp difference of
        # the sum once came from where malloc put the buffers: see cpu_rows.APART)
        assert np.array_equal(a.numpy(), b.numpy()), (
            f"{x.numpy().tolist()}\n{f.graph}\n{g.entries[0].graph}"
        )
    opt = fusejit.optimize(lambda x: (x * 3).relu() - 1, warmup=0)
    opt(x)
    fusejit.save(opt, tmp_path / "o.fjz")
    assert np.array_equal(fusejit.load(tmp_path / "o.fjz")(x).numpy(), opt(x).numpy())
    with pytest.raises(fusejit.TraceError, match="no saved signature"):
        g(fusejit.ones(4, dtype=fusejit.int32), y)


def test_captured_zero_dim_tensors_keep_their_shape(tmp_path):
    # a 0-d tensor the function captures is stored and loaded as 0-d (not as shape [1])
    s, x = fusejit.tensor(2.5), fusejit.tensor([1.0, 2.0])
    f = fusejit.trace(lambda x: (x * s + 1, s * 2), (x,))
    assert [tuple(t.shape) for t in f.graph.captured] == [()]
    fusejit.save(f, tmp_path / "s.fjz")
    y, z = fusejit.load(tmp_path / "s.fjz")(x)
    assert y.tolist() == [3.5, 6.0] and z.shape == () and z.item() == 5.0


def test_tensors_load_onto_the_device_they_were_saved_from(tmp_path):
    s, x = fusejit.tensor([2.0, 3.0]), fusejit.tensor([1.0, 2.0])
    fusejit.save(fusejit.trace(lambda x: x * s, (x,)), tmp_path / "d.fjz")
    members = _members(tmp_path / "d.fjz")
    man = json.loads(members["fusejit-archive.json"])
    assert [t["device"] for t in man["tensors"]] == ["cpu"]
    # an archive whose tensors were saved from a GPU this machine lacks: a clear error, or
    # loaded onto the device load() is given
    man["tensors"][0]["device"] = "cuda:999"
    members["fusejit-archive.json"] = json.dumps(man)
    path = _write(tmp_path / "gpu.fjz", members)
    with pytest.raises(ArchiveError, match="device cuda:999 is not usable here"):
        fusejit.load(path)
    assert fusejit.load(path, device="cpu")(x).tolist() == [2.0, 6.0]


def test_script_not_called_yet_cannot_be_saved(tmp_path):
    @fusejit.script
    def f(x):
        return x

    with pytest.raises(ArchiveError, match="not been called"):
        fusejit.save(f, tmp_path / "f.fjz")


@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="no usable GPU (CUDA tests only)")
def test_cuda_round_trip(tmp_path):
    @fusejit.script
    def f(x):
        if x.sum() > 0:
            x = x.exp()
        return x * 2

    x = fusejit.randn(64, device="cuda")
    y = f(x)
    fusejit.save(f, tmp_path / "c.fjz")
    np.testing.assert_allclose(fusejit.load(tmp_path / "c.fjz")(x).cpu().numpy(),
                               y.cpu().numpy(), rtol=1e-6)  # fmt: skip
    cpu = fusejit.load(tmp_path / "c.fjz", device="cpu")
    np.testing.assert_allclose(cpu(x.cpu()).numpy(), y.cpu().numpy(), rtol=1e-5)


# ---- damaged and hostile files --------------------------------------------------------------
def _members(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return path


def _expect_error(path, match=None):
    with pytest.raises(ArchiveError, match=match):
        fusejit.load(path)


def test_fuzzed_archives_raise_archive_error(saved, tmp_path):
    good = (saved / "net.fjz").read_bytes()
    rng = np.random.default_rng(3)
    p = tmp_path / "bad.fjz"
    for n in (0, 10, len(good) // 3, len(good) - 30):  # truncated
        p.write_bytes(good[:n])
        _expect_error(p)
    flipped = 0
    for _ in range(40):  # bit flips: caught by CRCs, the format checks, or harmless
        b = bytearray(good)
        k = int(rng.integers(len(b)))
        b[k] ^= 1 << int(rng.integers(8))
        p.write_bytes(bytes(b))
        try:
            fusejit.load(p)
        except ArchiveError:
            flipped += 1
    assert flipped >= 34  # (the rest hit zip fields nothing reads, e.g. timestamps)
    base = _members(saved / "net.fjz")
    for name in base:  # every member removed in turn
        m = dict(base)
        del m[name]
        _expect_error(_write(p, m))


def _edit_node(base: dict, op: str, edit) -> dict:
    """``base`` with ``edit(node)`` applied to the first node of ``op`` in the stored graph."""
    g = json.loads(base["graphs/0.json"])

    def find(b):
        for n in b["nodes"]:
            if n["op"] == op:
                return n
            for sb in n.get("blocks", []):
                if (hit := find(sb)) is not None:
                    return hit
        return None

    edit(find(g["block"]))
    return {**base, "graphs/0.json": json.dumps(g).encode()}


def test_edited_nodes_are_refused_at_load(saved, tmp_path):
    base = _members(saved / "net.fjz")
    p = tmp_path / "e.fjz"
    # what a node's op entry tells: attributes, their types, operands
    _expect_error(_write(p, _edit_node(base, "split", lambda n: n["attrs"].pop("dim"))),
                  "do not fit the op")  # fmt: skip
    _expect_error(_write(p, _edit_node(base, "permute", lambda n: n["attrs"].update(
        dims={"tuple": [1.0, 0]}))), "dims is not a tuple of ints")  # fmt: skip
    _expect_error(_write(p, _edit_node(base, "matmul", lambda n: n["inputs"].pop())),
                  "do not fit the op")  # fmt: skip
    _expect_error(_write(p, _edit_node(base, "matmul", lambda n: n["inputs"].__setitem__(
        0, {"c": 1.0}))), "an operand that is not a tensor")  # fmt: skip
    # what the op gives for its inputs' types: a permutation that repeats a dim
    _expect_error(_write(p, _edit_node(base, "permute", lambda n: n["attrs"].update(
        dims={"tuple": [0, 0]}))), r"permute\): its inputs .* do not fit the op")  # fmt: skip


def _json_paths(x, path=()):
    yield path
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _json_paths(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _json_paths(v, (*path, i))


_ODD_VALUES = [None, True, 0, -1, 2**40, 1.5, "", "T", "float32", "cuda:0", [], {}, [1, 2],
               {"tuple": []}, {"tensor": 0}, {"tensor": 99}, {"dtype": "int8"}]  # fmt: skip


def test_structurally_fuzzed_archives(saved, tmp_path):
    """Values of the stored JSON replaced, deleted or shifted at random: each archive loads
    and runs (an edit can be harmless, or change a constant), or raises a FusejitError (an
    ArchiveError at load or at the call); never another exception."""
    import random

    base = _members(saved / "net.fjz")
    io_ = np.load(saved / "io.npz")
    args = [fusejit.from_numpy(io_[k]) for k in ("x", "h", "c")] + [1.5]
    rng = random.Random(1)
    p = tmp_path / "f.fjz"
    outcomes = {"refused": 0, "ran": 0, "call error": 0}
    for _ in range(600):
        name = rng.choice([k for k in base if k.endswith(".json")])
        doc = json.loads(base[name])
        path = rng.choice(list(_json_paths(doc))[1:])
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        r, k = rng.random(), path[-1]
        if r < 0.25:
            del parent[k]
        elif r < 0.4 and type(parent[k]) is int:
            parent[k] += rng.choice([-1, 1, 7])
        else:
            parent[k] = rng.choice(_ODD_VALUES)
        _write(p, {**base, name: json.dumps(doc).encode()})
        try:
            f = fusejit.load(p)
        except ArchiveError:
            outcomes["refused"] += 1
            continue
        try:
            f(*args)
            outcomes["ran"] += 1
        except fusejit.FusejitError:
            outcomes["call error"] += 1
    assert outcomes["refused"] > 500 and outcomes["call error"] > 0, outcomes


def test_hostile_archives(saved, tmp_path):
    base = _members(saved / "net.fjz")
    p = tmp_path / "h.fjz"
    _expect_error(_write(p, {**base, "../evil.py": b"import os"}), "unexpected member")
    _expect_error(_write(p, {**base, "kernels/cpu/abcdef12/../../x": b""}), "unexpected member")
    man = json.loads(base["fusejit-archive.json"])
    _expect_error(
        _write(p, {**base, "fusejit-archive.json": json.dumps({**man, "version": 99})}),
        "version 99 is not supported",
    )
    # a pickled object array where a tensor should be
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    _expect_error(_write(p, {**base, "tensors/0.npy": buf.getvalue()}))
    # a member far larger than the manifest's dtype and shape allow
    _expect_error(_write(p, {**base, "tensors/0.npy": b"\0" * (8 << 20)}), "too large")
    # an op outside the table, and a graph that is not well formed
    g = json.loads(base["graphs/0.json"])
    g["block"]["nodes"][0]["op"] = "os.system"
    _expect_error(_write(p, {**base, "graphs/0.json": json.dumps(g)}), "unknown op")
    g = json.loads(base["graphs/0.json"])
    g["block"]["results"] = [{"v": 10**6}]
    _expect_error(_write(p, {**base, "graphs/0.json": json.dumps(g)}), "out of range")
    _expect_error(_write(p, {**base, "graphs/0.json": b"{not json"}), "not valid JSON")
    p.write_bytes(b"PK\x03\x04 not really a zip")
    _expect_error(p, "not a fusejit archive")


def test_save_to_a_binary_file_and_several_traced_signatures_in_one_archive():
    f = lambda x: (x * x).sum(dim=1).reshape(-1, 1) + 1  # noqa: E731 - a shape-specific graph
    sigs = [fusejit.trace(f, fusejit.ones(n, 3)) for n in (4, 2)]
    buf = io.BytesIO()
    fusejit.save(sigs, buf)
    loaded = fusejit.load(io.BytesIO(buf.getvalue()))
    assert len(loaded.signatures()) == 2
    for n in (4, 2):
        x = fusejit.arange(n * 3, dtype=fusejit.float32).reshape(n, 3)
        ref = (x.numpy().astype(np.float64) ** 2).sum(1).reshape(-1, 1) + 1
        np.testing.assert_allclose(loaded(x).numpy(), ref, rtol=1e-6)
    with pytest.raises(TypeError, match="path must be a file name"):
        fusejit.save(sigs[0], 3)


def test_a_loaded_archive_runs_the_signature_traced_at_the_inputs_shapes_first():
    f = lambda x: x * x.shape[0]  # noqa: E731 - shape-generic graphs that differ by a constant
    buf = io.BytesIO()
    fusejit.save([fusejit.trace(f, fusejit.ones(6, 2)), fusejit.trace(f, fusejit.ones(4, 2))], buf)
    loaded = fusejit.load(io.BytesIO(buf.getvalue()))
    for n in (6, 4):
        assert loaded(fusejit.ones(n, 2)).tolist() == [[float(n)] * 2] * n
    assert loaded(fusejit.ones(3, 2)).tolist() == [[6.0] * 2] * 3  # else the first that fits
