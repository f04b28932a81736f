"""Archives of graphs with dynamic dims: an optimized function whose signature served several
batch sizes is saved with its symbolic sizes, the guards Python's comparisons made and the
floor divisions it holds, and the loaded function serves every size the original did (once it
was stored at the size of its trace, and refused the others). Edited sizes are refused."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fusejit
from fusejit import nn
from fusejit.jit.archive import ArchiveError
from fusejit.jit.runtime import GuardError


def _call(f, n: int):
    with fusejit.no_grad():
        return f(fusejit.tensor(np.arange(n * 8, dtype=np.float32).reshape(n, 8) / 10))


def test_an_optimized_model_keeps_its_dynamic_batch(tmp_path):
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4), nn.Softmax(-1)).eval()
    opt = fusejit.optimize(model)
    for n in (3, 3, 3, 5, 5, 5, 7):
        _call(opt, n)
    sigs = fusejit.explain(opt, as_dict=True)["signatures"]
    assert [s["status"] for s in sigs] == ["compiled", "compiled"]
    fusejit.save(opt, tmp_path / "m.fjz")
    graphs = [json.loads(v) for k, v in _members(tmp_path / "m.fjz").items()
              if k.startswith("graphs/")]  # fmt: skip
    assert sum("notes" in g for g in graphs) == 1  # (the second signature's)
    loaded = fusejit.load(tmp_path / "m.fjz")
    for n in (3, 5, 9, 64):
        np.testing.assert_allclose(_call(loaded, n).numpy(), _call(model, n).numpy(),
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(GuardError, match="sizes 0 and 1 specialize"):
        _call(loaded, 1)


def halves(x):
    h = x[: x.shape[0] // 2]  # (a floor division of the symbol: an atom, "(s0)//2")
    if x.shape[0] > 4:  # (a guard: the graph holds for sizes above 4 only)
        return h * 2.0
    return h - 1.0


def test_floor_divisions_and_guards_are_kept(tmp_path):
    opt = fusejit.optimize(halves)
    for n in (6, 6, 6, 9, 9):
        _call(opt, n)
    fusejit.save(opt, tmp_path / "h.fjz")
    stored = [json.loads(v) for k, v in _members(tmp_path / "h.fjz").items()
              if k.startswith("graphs/") and b'"notes"' in v]  # fmt: skip
    assert len(stored) == 1 and stored[0]["atoms"] and stored[0]["notes"]["guards"]
    loaded = fusejit.load(tmp_path / "h.fjz")
    for n in (6, 9, 10, 17):
        np.testing.assert_array_equal(_call(loaded, n).numpy(), _call(halves, n).numpy())
    with pytest.raises(GuardError, match="no saved signature"):
        _call(loaded, 3)  # (the guard fails: the function takes its other branch there)


def _members(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """``src`` with ``edit(graph)`` applied to its stored graph that has dynamic dims."""
    members = _members(src)
    for k, v in members.items():
        if k.startswith("graphs/") and b'"notes"' in v:
            g = json.loads(v)
            edit(g)
            members[k] = json.dumps(g).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return dst


def test_edited_sizes_are_refused(tmp_path):
    opt = fusejit.optimize(halves)
    for n in (6, 6, 6, 9, 9):
        _call(opt, n)
    src = tmp_path / "h.fjz"
    fusejit.save(opt, src)

    def atom_name(g):
        g["atoms"][0][0] = "(s0)//3"

    def unknown_symbol(g):
        g["values"][0]["shape"][0]["sym"]["poly"][0][0] = ["s7"]

    def symbol_dim(g):
        g["notes"]["symbols"][0][2] = 1

    def no_notes(g):
        del g["notes"]

    def bad_guard(g):
        g["notes"]["guards"][0][1] = "pow"

    cases = [(atom_name, "not the floor division it names"),
             (unknown_symbol, "unknown symbols"),
             (symbol_dim, "is not symbol s0"),
             (no_notes, "bad shape"),
             (bad_guard, "a guard is not")]  # fmt: skip
    for edit, match in cases:
        with pytest.raises(ArchiveError, match=match):
            fusejit.load(_rewrite(src, tmp_path / "bad.fjz", edit))
