"""Saving never follows a link or leaves a temporary file; loading refuses, before it allocates,
an archive that asks for more memory than its size or ``max_bytes`` allows, and a graph whose
declared types are not those its ops give."""

from __future__ import annotations

import copy
import io
import json
import os
import stat
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_save_load import _members, _write

import fusejit
from fusejit.jit import archive
from fusejit.jit.archive import ArchiveError


def _traced(fn=lambda x, w: (x * w).exp() + 1, shapes=((4,), (4,))):
    x, w = (fusejit.ones(*s) for s in shapes)
    return fusejit.trace(lambda x: fn(x, w), x)


def _names(folder: Path) -> set:
    return {p.name for p in folder.iterdir()}


# ---- save: one fresh temporary file, never a link ------------------------------------------
def test_save_does_not_follow_a_link_planted_at_the_old_temporary_name(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    p = tmp_path / "m.fjz"
    (tmp_path / "m.fjz.tmp").symlink_to(victim)
    fusejit.save(_traced(), p)
    assert victim.read_text() == "mine"
    assert (tmp_path / "m.fjz.tmp").is_symlink()
    assert fusejit.load(p)(fusejit.zeros(4)).tolist() == [2.0] * 4
    assert _names(tmp_path) == {"victim.txt", "m.fjz", "m.fjz.tmp"}


def test_save_does_not_follow_a_link_at_a_guessed_random_name(tmp_path, monkeypatch):
    # the temporary name is random; one guessed and planted is skipped, never opened
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    names = iter(["guessed", "fresh"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    planted = tmp_path / ".m.fjz.guessed.tmp"
    planted.symlink_to(victim)
    fusejit.save(_traced(), tmp_path / "m.fjz")
    assert victim.read_text() == "mine" and planted.is_symlink()
    assert _names(tmp_path) == {"victim.txt", "m.fjz", planted.name}


def test_save_onto_a_symlink_replaces_the_link_not_its_target(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("mine")
    link = tmp_path / "m.fjz"
    link.symlink_to(target)
    fusejit.save(_traced(), link)
    assert target.read_text() == "mine"
    assert not link.is_symlink() and zipfile.is_zipfile(link)


def test_saved_archive_has_the_mode_open_gives(tmp_path):
    umask = os.umask(0o027)
    try:
        fusejit.save(_traced(), tmp_path / "m.fjz")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.fjz").stat().st_mode) == 0o640


def test_a_failed_save_leaves_no_temporary_file_and_the_old_archive(tmp_path, monkeypatch):
    p = tmp_path / "m.fjz"
    fusejit.save(_traced(), p)
    old = p.read_bytes()
    with pytest.raises(ArchiveError, match="cannot save a int"):
        fusejit.save(42, p)
    assert p.read_bytes() == old and _names(tmp_path) == {"m.fjz"}

    # a write error half way (a full disk)
    real = zipfile.ZipFile.writestr

    def writestr(self, name, data, *a, **k):
        if name.startswith("tensors/"):
            raise OSError(28, "No space left on device")
        return real(self, name, data, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
    with pytest.raises(OSError, match="No space left"):
        fusejit.save(_traced(), p)
    assert p.read_bytes() == old and _names(tmp_path) == {"m.fjz"}
    monkeypatch.undo()
    # an interrupt, too
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        fusejit.save(_traced(), p)
    assert p.read_bytes() == old and _names(tmp_path) == {"m.fjz"}


# ---- load's arguments ----------------------------------------------------------------------
def test_load_names_a_bad_argument(tmp_path):
    for bad in (None, 123, 1.5, ["m.fjz"]):
        with pytest.raises(TypeError, match="load: path must be a file name"):
            fusejit.load(bad)
    with pytest.raises(ArchiveError, match="load: .* is a folder"):
        fusejit.load(tmp_path)
    p = tmp_path / "m.fjz"
    fusejit.save(_traced(), p)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        fusejit.load(p, max_bytes="1G")
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        fusejit.load(p, max_bytes=-1)
    with open(p, "rb") as f:  # an open file still loads, and a name in bytes
        assert fusejit.load(f)(fusejit.zeros(4)).tolist() == [2.0] * 4
    assert fusejit.load(os.fsencode(p))(fusejit.zeros(4)).tolist() == [2.0] * 4


# ---- tensors: sizes checked before anything is allocated -----------------------------------
def _npy_header(shape, descr="<f4") -> bytes:
    return b"\x93NUMPY\x01\x00" + _header_text(shape, descr)


def _header_text(shape, descr) -> bytes:
    d = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    pad = 64 - (10 + len(d) + 1) % 64
    h = d + b" " * pad + b"\n"
    return len(h).to_bytes(2, "little") + h


def test_an_npy_header_claiming_a_huge_shape_is_refused_without_allocating(tmp_path):
    p = tmp_path / "m.fjz"
    fusejit.save(_traced(), p)
    m = _members(p)
    huge = _npy_header((1 << 40,))
    assert len(huge) < 200
    # the manifest says [4]: the header disagrees (and the file is far too small for it)
    with pytest.raises(ArchiveError, match=r"tensors/0.npy: it holds float32\[1099511627776\]"):
        fusejit.load(_write(p, {**m, "tensors/0.npy": huge}))
    # the manifest says so too
    man = json.loads(m["fusejit-archive.json"])
    man["tensors"][0]["shape"] = [1 << 40]
    edited = {**m, "tensors/0.npy": huge, "fusejit-archive.json": json.dumps(man)}
    for bound in (archive.MAX_BYTES, None):  # (the member cannot hold it, bound or not)
        with pytest.raises(ArchiveError, match=r"tensors/0.npy is too small \(128 bytes\)"):
            fusejit.load(_write(p, edited), max_bytes=bound)


BOMB = 512 << 20  # bytes of zeros a small member inflates to


def _write_bomb(p: Path, members: dict, manifest: dict) -> Path:
    """``members`` and ``manifest``, with tensor 0 as 512 MiB of zeros (about 500 KiB
    deflated) whose .npy header and zip entry say so."""
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("fusejit-archive.json", json.dumps(manifest))
        for k, v in members.items():
            z.writestr(k, v)
        with z.open("tensors/0.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((BOMB // 4,)))
            zeros = bytes(1 << 20)
            for _ in range(BOMB >> 20):
                f.write(zeros)
    assert p.stat().st_size < 4 << 20
    return p


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The members (but the manifest and tensor 0) and the manifest of a small archive."""
    p = tmp_path_factory.mktemp("small") / "m.fjz"
    fusejit.save(_traced(), p)
    m = _members(p)
    del m["tensors/0.npy"]
    return m, json.loads(m.pop("fusejit-archive.json"))


def _peak_of(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _refused(path, match, **kw):
    with pytest.raises(ArchiveError, match=match):
        fusejit.load(path, **kw)


def test_a_zip_bomb_tensor_beyond_max_bytes_is_refused_with_little_memory(small, tmp_path):
    m, man = copy.deepcopy(small)
    man["tensors"][0]["shape"] = [BOMB // 4]  # what the manifest says agrees: 512 MiB
    p = _write_bomb(tmp_path / "m.fjz", m, man)
    peak = _peak_of(lambda: _refused(p, "more than max_bytes=67108864", max_bytes=64 << 20))
    assert peak < 8 << 20, peak


def test_a_zip_bomb_tensor_the_graph_does_not_describe_is_refused_before_it_is_read(
    small, tmp_path
):
    m, man = copy.deepcopy(small)
    man["tensors"][0]["shape"] = [BOMB // 4]  # within the default max_bytes; the graph says [4]
    p = _write_bomb(tmp_path / "m.fjz", m, man)
    peak = _peak_of(lambda: _refused(p, "a captured tensor does not match its parameter"))
    assert peak < 8 << 20, peak


def test_a_zip_bomb_tensor_the_manifest_does_not_describe_is_refused(small, tmp_path):
    m, man = copy.deepcopy(small)  # the manifest says float32[4]
    p = _write_bomb(tmp_path / "m.fjz", m, man)
    peak = _peak_of(lambda: _refused(p, "tensors/0.npy is too large"))
    assert peak < 8 << 20, peak


def test_tensors_within_max_bytes_load_with_one_copy_in_memory(tmp_path):
    w = fusejit.ones(4 << 20)  # 16 MiB
    f = fusejit.trace(lambda x: x + w, fusejit.zeros(4 << 20))
    p = tmp_path / "m.fjz"
    fusejit.save(f, p)
    del f
    got = []
    peak = _peak_of(lambda: got.append(fusejit.load(p, max_bytes=32 << 20)))
    assert peak < 24 << 20, peak  # the tensor, not the member's bytes and then the tensor
    assert got[0].tensors["tensor0"].sum().item() == 4 << 20
    with pytest.raises(ArchiveError, match=r"tensor 0: float32\[4194304\] .* more than max_bytes"):
        fusejit.load(p, max_bytes=8 << 20)


def test_max_bytes_bounds_the_tensors_together(tmp_path):
    w1, w2 = fusejit.ones(1 << 18), fusejit.ones(1 << 18)  # 1 MiB each
    f = fusejit.trace(lambda x: x + w1 + w2, fusejit.zeros(1 << 18))
    p = tmp_path / "m.fjz"
    fusejit.save(f, p)
    fusejit.load(p, max_bytes=3 << 20)
    with pytest.raises(ArchiveError, match="tensor 1: .* brings the tensors to 2097152 bytes"):
        fusejit.load(p, max_bytes=(2 << 20) - 1)


# ---- graphs: declared types are what the ops give, and bounded ----------------------------
def _edit_graph(p: Path, edit) -> Path:
    m = _members(p)
    g = json.loads(m["graphs/0.json"])
    edit(g)
    return _write(p.with_name("edited.fjz"), {**m, "graphs/0.json": json.dumps(g)})


def _node(g: dict, op: str) -> dict:
    return next(n for n in g["block"]["nodes"] if n["op"] == op)


def test_a_tile_with_huge_reps_is_refused_at_load(tmp_path):
    p = tmp_path / "m.fjz"
    fusejit.save(fusejit.trace(lambda x: x.repeat(2, 1) * 2, fusejit.ones(2, 3)), p)
    assert fusejit.load(p)(fusejit.ones(2, 3)).shape == (4, 3)

    def reps(g):
        _node(g, "tile")["attrs"]["reps"] = {"tuple": [1 << 20, 1 << 20]}

    with pytest.raises(
        ArchiveError,
        match=r"node 0 \(tile\): output declared float32\[4, 3\], "
        r"the op gives float32\[2097152, 3145728\]",
    ):
        fusejit.load(_edit_graph(p, reps))

    def reps_and_types(g):  # the declared types say so too: more than max_bytes
        reps(g)
        for v in g["values"]:
            if v["shape"] == [4, 3]:
                v["shape"] = [2 << 20, 3 << 20]

    with pytest.raises(
        ArchiveError,
        match=r"node 0 \(tile\): value float32\[2097152, 3145728\] "
        "takes 26388279066624 bytes, more than max_bytes",
    ):
        fusejit.load(_edit_graph(p, reps_and_types))


def test_a_declared_dtype_that_the_op_does_not_give_is_refused(tmp_path):
    p = tmp_path / "m.fjz"
    fusejit.save(_traced(lambda x, w: (x * w).sum(1) > 0, ((3, 4), (3, 4))), p)

    def retype(op, dtype):
        def edit(g):
            g["values"][_node(g, op)["outputs"][0]]["dtype"] = dtype

        return edit

    # elementwise (the op table's dtype rules), a reduction (its out_dtype), a comparison;
    # the first node to disagree is named (the next one's input then disagrees too)
    for op, dtype, gives in (("mul", "float64", "float32"), ("sum", "int64", "float32"),
                             ("gt", "float32", "bool")):  # fmt: skip
        with pytest.raises(
            ArchiveError,
            match=rf"\({op}\): output declared {dtype}\[.*\], "
            rf"the op gives {gives}\[",
        ):
            fusejit.load(_edit_graph(p, retype(op, dtype)))


def test_a_declared_shape_that_the_op_does_not_give_is_refused(tmp_path):
    p = tmp_path / "m.fjz"
    fusejit.save(_traced(lambda x, w: (x @ w).reshape(-1), ((3, 4), (4, 5))), p)

    def edit(g):
        g["values"][_node(g, "matmul")["outputs"][0]]["shape"] = [3, 4]

    with pytest.raises(
        ArchiveError,
        match=r"\(matmul\): output declared float32\[3, 4\], "
        r"the op gives float32\[3, 5\]",
    ):
        fusejit.load(_edit_graph(p, edit))


def test_max_bytes_bounds_each_graph_value(tmp_path):
    p = tmp_path / "m.fjz"
    fusejit.save(fusejit.trace(lambda x: x.repeat(64, 64).sum(), fusejit.ones(16, 16)), p)
    with pytest.raises(
        ArchiveError,
        match=r"float32\[1024, 1024\] takes 4194304 bytes, more "
        "than max_bytes=1048576",
    ):
        fusejit.load(p, max_bytes=1 << 20)
    assert fusejit.load(p, max_bytes=4 << 20)(fusejit.ones(16, 16)).item() == 1 << 20


def test_archive_module_names_the_default_bound():
    assert archive.MAX_BYTES == 4 << 30


def _int_paths(x, path=()):
    """The paths of the ints in the JSON value ``x``."""
    if isinstance(x, int) and not isinstance(x, bool):
        yield path
    elif isinstance(x, (dict, list)):
        for k, v in x.items() if isinstance(x, dict) else enumerate(x):
            yield from _int_paths(v, path + (k,))


def test_extreme_attribute_values_are_refused_at_load_or_at_the_call(tmp_path):
    x, w = fusejit.randn(4, 6), fusejit.randn(6, 3)

    def fn(x):
        y = (x @ w).softmax(-1) * 2 + 1
        a, b = y.split([1, 2], 1)
        z = fusejit.cat([a, b], 1).repeat(2, 1).reshape(-1, 3).permute(1, 0)
        s, i = z.sort(1)
        e = z[None, :, 1:].expand(2, 3, 7)
        return z.sum(0, keepdim=True) + s[:, :1], i.max(1)[1], z.cumsum(1), e, z.flip(0).tril(1)

    p = tmp_path / "m.fjz"
    fusejit.save(fusejit.trace(fn, x), p)
    g0 = json.loads(_members(p)["graphs/0.json"])
    tried = 0
    for k, node in enumerate(g0["block"]["nodes"]):
        for path in _int_paths(node["attrs"]):
            for big in (1 << 70, -(1 << 70), 1 << 40, -1, 0, 10**6):

                def edit(g, k=k, path=path, big=big):
                    t = g["block"]["nodes"][k]["attrs"]
                    for key in path[:-1]:
                        t = t[key]
                    t[path[-1]] = big

                tried += 1
                try:
                    f = fusejit.load(_edit_graph(p, edit))
                except ArchiveError:
                    continue
                try:  # what only the data tells: an error of fusejit's, never numpy's
                    f(x)
                except fusejit.FusejitError:
                    pass
    assert tried > 100


def test_damaged_npy_members_are_refused_and_fortran_order_reads_the_same(tmp_path):
    w = fusejit.arange(12.0).reshape(3, 4)
    p = tmp_path / "m.fjz"
    fusejit.save(fusejit.trace(lambda x: x + w, fusejit.zeros(3, 4)), p)
    m = _members(p)
    npy = m["tensors/0.npy"]
    cases = [npy[:k] for k in range(len(npy))] + [npy + b"\0"]
    for i in range(0, 64):  # (the header: magic, version, length, dict)
        for v in (0, 0x7F, 0xFF):
            cases.append(npy[:i] + bytes([v]) + npy[i + 1 :])
    for data in cases:
        try:
            got = fusejit.load(_write(p, {**m, "tensors/0.npy": data})).tensors["tensor0"]
        except ArchiveError:
            continue
        assert got.shape == (3, 4) and got.dtype is fusejit.float32  # (a changed value at most)
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(w.numpy()))
    got = fusejit.load(_write(p, {**m, "tensors/0.npy": buf.getvalue()})).tensors["tensor0"]
    np.testing.assert_array_equal(got.numpy(), w.numpy())
    assert got.numpy().flags.c_contiguous
