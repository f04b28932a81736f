"""save_state_dict / load_state_dict: safetensors checkpoints of models, dicts of tensors and
optimizers; bitwise round trips, files other tools read, errors naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fusejit
from fusejit import nn, optim
from tests.parity_helpers import DEVICES, host, on

st_numpy = pytest.importorskip("safetensors.numpy")

DTYPES = [
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "complex64",
]


def _values(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == "bool":
        return rng.integers(0, 2, (3, 4)).astype(bool)
    if dtype in ("float16", "float32", "float64"):
        a = rng.standard_normal((3, 4)).astype(dtype)
        a.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).tiny]
        return a
    if dtype == "complex64":
        return (rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))).astype(dtype)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (3, 4), dtype=dtype, endpoint=True)
    a.flat[:2] = [info.min, info.max]
    return a


def _bitwise(got, want):
    g, w = host(got), np.asarray(want)
    assert g.dtype == w.dtype and g.shape == w.shape
    assert g.tobytes() == np.ascontiguousarray(w).tobytes()


@pytest.mark.parametrize("device", DEVICES)
def test_round_trip_every_dtype_bitwise(tmp_path, device):
    arrays = {f"t.{d}": _values(d) for d in DTYPES}
    sd = {k: on(v, device) for k, v in arrays.items()}
    sd["scalar"] = on(np.array(2.5, np.float32), device)
    sd["empty"] = on(np.zeros((0, 3), np.int64), device)
    arrays["scalar"], arrays["empty"] = np.array(2.5, np.float32), np.zeros((0, 3), np.int64)
    path = tmp_path / "all.safetensors"
    fusejit.save_state_dict(sd, path)
    back = fusejit.load_state_dict(path)
    assert list(back) == list(sd)  # the saved order
    for k, v in arrays.items():
        _bitwise(back[k], v)
        assert back[k].device == fusejit.device("cpu")
    # another reader: safetensors' own numpy loader sees the same names and values
    other = st_numpy.load_file(str(path))
    assert set(other) == set(arrays)
    for k, v in arrays.items():
        _bitwise(other[k], v)
    onto = fusejit.load_state_dict(path, device=device)
    assert all(t.device == fusejit.device(device) for t in onto.values())


def test_views_shared_storage_and_noncontiguous(tmp_path):
    base = fusejit.arange(12, dtype=fusejit.float32).reshape(3, 4)
    sd = {"base": base, "row": base[1], "cols": base[:, ::2], "t": base.T, "same": base}
    fusejit.save_state_dict(sd, tmp_path / "v.safetensors")
    back = fusejit.load_state_dict(tmp_path / "v.safetensors")
    for k, v in sd.items():
        _bitwise(back[k], host(v))
    back["row"].fill_(-1.0)  # each loaded tensor is its own
    assert back["base"][1].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert base[1].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_header_metadata(tmp_path):
    from safetensors import safe_open

    path = str(tmp_path / "m.safetensors")
    fusejit.save_state_dict({"a": fusejit.ones(2)}, path, metadata={"epoch": "3"})
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    head = json.loads(meta["fusejit"])
    assert head["version"] == fusejit.__version__ and head["kind"] == "state_dict"
    assert meta["epoch"] == "3"
    with pytest.raises(ValueError, match="metadata"):
        fusejit.save_state_dict({"a": fusejit.ones(2)}, path, metadata={"epoch": 3})


def test_file_written_elsewhere_loads(tmp_path):
    path = str(tmp_path / "plain.safetensors")
    st_numpy.save_file({"w": np.eye(2, dtype=np.float32), "b": np.ones(2, np.float16)}, path)
    back = fusejit.load_state_dict(path)
    assert sorted(back) == ["b", "w"]
    _bitwise(back["w"], np.eye(2, dtype=np.float32))


def test_refusals(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(fusejit.DTypeError, match="'z' has dtype complex128"):
        fusejit.save_state_dict({"z": fusejit.zeros(2, dtype=fusejit.complex128)}, path)
    with pytest.raises(TypeError, match="'epoch' is a int, not a tensor"):
        fusejit.save_state_dict({"epoch": 3}, path)
    with pytest.raises(TypeError, match="keys must be strings"):
        fusejit.save_state_dict({1: fusejit.ones(1)}, path)
    with pytest.raises(TypeError, match="got list"):
        fusejit.save_state_dict([fusejit.ones(1)], path)
    assert not path.exists() and os.listdir(tmp_path) == []  # nothing half-written left


def test_missing_corrupt_truncated_files(tmp_path):
    missing = str(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        fusejit.load_state_dict(missing)
    good = tmp_path / "good.safetensors"
    fusejit.save_state_dict({"a": fusejit.ones(100)}, good)
    data = good.read_bytes()
    for name, content in [
        ("trunc", data[: len(data) - 17]),
        ("head", data[:40]),
        ("junk", b"not a checkpoint at all"),
        ("empty", b""),
    ]:
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(content)
        with pytest.raises(fusejit.CheckpointError, match=f"{name}.safetensors"):
            fusejit.load_state_dict(p)


def test_without_safetensors_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match="'safetensors' package"):
        fusejit.save_state_dict({"a": fusejit.ones(1)}, tmp_path / "a.safetensors")
    with pytest.raises(ImportError, match="'safetensors' package"):
        fusejit.load_state_dict(tmp_path / "a.safetensors")


def test_fusejit_save_of_a_state_dict_points_to_save_state_dict(tmp_path):
    with pytest.raises(fusejit.ArchiveError, match="save_state_dict"):
        fusejit.save(nn.Linear(2, 2).state_dict(), tmp_path / "m.fj")


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 5, bias=False)
        self.out.weight = self.emb.weight  # tied, as in language models


def test_tied_weights(tmp_path):
    fusejit.manual_seed(0)
    m = _Tied()
    fusejit.save_state_dict(m, tmp_path / "tied.safetensors")
    sd = fusejit.load_state_dict(tmp_path / "tied.safetensors")
    fusejit.manual_seed(1)
    fresh = _Tied()
    fresh.load_state_dict(sd)
    assert fusejit.equal(fresh.emb.weight, m.emb.weight)
    assert fresh.out.weight is fresh.emb.weight


def test_model_reloaded_in_a_fresh_process(tmp_path):
    fusejit.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    x = fusejit.randn(5, 4)
    ckpt = tmp_path / "model.safetensors"
    fusejit.save_state_dict(model, ckpt)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", model(x).numpy())
    script = textwrap.dedent(f"""
        import numpy as np, fusejit
        from fusejit import nn
        fusejit.manual_seed(99)
        model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
        model.load_state_dict(fusejit.load_state_dict({str(ckpt)!r}))
        y = model(fusejit.from_numpy(np.load({str(tmp_path / "x.npy")!r}))).numpy()
        want = np.load({str(tmp_path / "y.npy")!r})
        assert y.tobytes() == want.tobytes(), (y, want)
        print("same")
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0 and "same" in r.stdout, r.stderr[-2000:]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "cls,kw",
    [
        (optim.Adam, dict(lr=0.01, amsgrad=True)),
        (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
        (optim.SGD, dict(lr=0.1)),
        (optim.RMSprop, dict(centered=True, momentum=0.5)),
        (optim.Adagrad, dict(lr_decay=0.1)),
    ],
)
def test_optimizer_round_trip(tmp_path, device, cls, kw):
    rng = np.random.default_rng(0)
    grads = [(rng.standard_normal((2, 3)), rng.standard_normal(3)) for _ in range(6)]

    def make():
        a = nn.Parameter(on(np.ones((2, 3)), device))
        b = nn.Parameter(on(np.zeros(3, np.float32), device))
        return a, b, cls([{"params": [a]}, {"params": [b], "lr": 0.05}], **kw)

    def steps(a, b, opt, gs):
        for ga, gb in gs:
            a.grad, b.grad = on(ga, device), on(gb.astype(np.float32), device)
            opt.step()

    a, b, opt = make()
    steps(a, b, opt, grads)
    a2, b2, opt2 = make()
    steps(a2, b2, opt2, grads[:3])
    path = tmp_path / "opt.safetensors"
    fusejit.save_state_dict(opt2, path)
    sd = fusejit.load_state_dict(path, device=device)
    assert set(sd) == {"state", "param_groups"}
    ref = opt2.state_dict()
    assert sd["param_groups"] == ref["param_groups"]  # tuples (betas) come back as tuples
    assert sorted(sd["state"]) == sorted(ref["state"])
    for i, entries in ref["state"].items():
        assert set(sd["state"][i]) == set(entries)
        for name, v in entries.items():
            _bitwise(sd["state"][i][name], host(v))
    a3, b3, opt3 = make()
    with fusejit.no_grad():
        a3.copy_(a2)
        b3.copy_(b2)
    opt3.load_state_dict(sd)
    steps(a3, b3, opt3, grads[3:])
    _bitwise(a3, host(a))
    _bitwise(b3, host(b))


def test_optimizer_state_dict_without_tensors_and_bad_values(tmp_path):
    p = nn.Parameter(fusejit.ones(2))
    opt = optim.SGD([p], lr=0.1)
    fusejit.save_state_dict(opt.state_dict(), tmp_path / "sgd.safetensors")
    sd = fusejit.load_state_dict(tmp_path / "sgd.safetensors")
    assert sd == {"state": {}, "param_groups": opt.state_dict()["param_groups"]}
    opt.param_groups[0]["lr"] = fusejit.tensor(0.1)
    with pytest.raises(TypeError, match=r"param_groups\[0\]"):
        fusejit.save_state_dict(opt, tmp_path / "bad.safetensors")
