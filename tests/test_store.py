"""The kernel store's protocol, shared by every target: memory, disk and build levels with their
counters, corrupt entries (not matching their manifest, or not loading), entries that appear
whole, an unwritable cache folder, and entries shipped and installed by archives.

A small text "compiler" exercises the protocol itself; the CPU target checks the same behaviour
on real numba kernels."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import numpy as np
import pytest

import fusejit
from fusejit.store import (
    Recipe,
    Target,
    build_entry,
    entry_folder,
    export_entry,
    install_entry,
    load_or_build,
    verify_entry,
    write_manifest,
)
from fusejit.store.keys import fingerprint

TEXT = Target("text", "v1")


def text_recipe(builds: list, text: str = "hello") -> Recipe:
    """A compiler whose kernel is its source in capitals (``out.txt``)."""

    def build(folder: Path, src: str) -> None:
        builds.append(folder)
        (folder / "out.txt").write_text(src.upper())

    def load(folder: Path, origin: str):
        data = (folder / "out.txt").read_text()
        if data != text.upper():
            raise ValueError(f"bad output {data!r}")
        return data, origin

    return Recipe("text kernel", lambda: text, build, load)


def counts() -> tuple:
    i = fusejit.cache_info()
    return i["memory_hits"], i["disk_hits"], i["compiled"], i["rebuilt_corrupt"]


def test_memory_then_disk_then_build(cache):
    builds = []
    assert load_or_build(TEXT, "k1", text_recipe(builds)) == ("HELLO", "compiled")
    entry = entry_folder("text", "k1")
    assert entry == cache / "text" / "k1" and verify_entry(entry) is None
    assert sorted(p.name for p in entry.iterdir()) == ["MANIFEST.json", "out.txt"]
    assert load_or_build(TEXT, "k1", text_recipe(builds)) == ("HELLO", "compiled")  # memory
    assert counts() == (1, 0, 1, 0)
    fusejit.clear_cache(disk=False)  # as a new process would
    assert load_or_build(TEXT, "k1", text_recipe(builds)) == ("HELLO", "disk")
    assert counts() == (0, 1, 0, 0) and len(builds) == 1
    # one key, one kernel a memory key (a GPU each): loaded again for another memory key
    assert load_or_build(TEXT, "k1", text_recipe(builds), memory_key="k1@gpu1")[1] == "disk"


@pytest.mark.parametrize("damage", ["checksum", "does not load", "missing file"])
def test_a_corrupt_entry_is_counted_reported_and_rebuilt(cache, damage, caplog):
    load_or_build(TEXT, "k1", text_recipe([]))
    entry = entry_folder("text", "k1")
    if damage == "checksum":
        (entry / "out.txt").write_text("HELLO!")
    elif damage == "does not load":  # matches its manifest, but the compiler refuses it
        (entry / "out.txt").write_text("garbage")
        write_manifest(entry)
    else:
        (entry / "out.txt").unlink()
    fusejit.clear_cache(disk=False)
    builds = []
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        assert load_or_build(TEXT, "k1", text_recipe(builds)) == ("HELLO", "compiled")
    assert counts() == (0, 0, 1, 1) and len(builds) == 1
    (msg,) = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert "TEXT kernel cache entry k1" in msg
    assert verify_entry(entry) is None and (entry / "out.txt").read_text() == "HELLO"


def test_an_entry_without_manifest_is_rebuilt_not_counted_corrupt(cache, monkeypatch, caplog):
    load_or_build(TEXT, "k1", text_recipe([]))
    entry = entry_folder("text", "k1")
    (entry / "MANIFEST.json").unlink()
    fusejit.clear_cache(disk=False)
    monkeypatch.setenv("FUSEJIT_DEBUG", "1")
    with caplog.at_level(logging.INFO, logger="fusejit"):
        load_or_build(TEXT, "k1", text_recipe([]))
    assert counts() == (0, 0, 1, 0) and verify_entry(entry) is None
    (msg,) = [r.getMessage() for r in caplog.records if "compiling" in r.getMessage()]
    assert msg == "fusejit: compiling text kernel: cache entry incomplete (no manifest yet)"


def test_an_entry_appears_whole_and_a_failed_build_leaves_nothing(cache):
    folder = cache / "text" / "k2"

    def write(stage: Path) -> None:
        assert not folder.exists() and stage.parent == folder.parent
        (stage / "out.txt").write_text("x")

    assert build_entry(folder, write) == folder and verify_entry(folder) is None

    def fail(stage: Path) -> None:
        (stage / "out.txt").write_text("half")
        raise RuntimeError("compiler error")

    with pytest.raises(RuntimeError, match="compiler error"):
        build_entry(cache / "text" / "k3", fail)
    assert sorted(p.name for p in (cache / "text").iterdir()) == ["k2"]  # no stage left behind


def test_the_first_complete_entry_in_place_wins(cache):
    folder = cache / "text" / "k4"
    build_entry(folder, lambda stage: (stage / "out.txt").write_text("first"))
    # a second builder (another process) finishing later keeps the entry it finds
    assert build_entry(folder, lambda stage: (stage / "out.txt").write_text("second")) == folder
    assert (folder / "out.txt").read_text() == "first" and verify_entry(folder) is None
    assert sorted(p.name for p in (cache / "text").iterdir()) == ["k4"]
    # a broken leftover in place is replaced
    (folder / "out.txt").write_text("broken")
    build_entry(folder, lambda stage: (stage / "out.txt").write_text("third"))
    assert (folder / "out.txt").read_text() == "third" and verify_entry(folder) is None


def test_export_and_install_an_entry(cache, tmp_path, monkeypatch):
    load_or_build(TEXT, "abcdef12", text_recipe([]))
    target, key, files = export_entry(entry_folder("text", "abcdef12"))
    assert (target, key) == ("text", "abcdef12")
    assert sorted(rel for rel, *_ in files) == ["MANIFEST.json", "out.txt"]
    assert export_entry(tmp_path) is None  # not an entry of the cache folder
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "other"))
    bad = [(r, b"HELLO!" if r == "out.txt" else d, m) for r, d, m in files]
    assert not install_entry(target, key, bad)  # files that do not match their manifest
    assert not install_entry(target, key, [("../x", b"", 0), *files])  # a path out of the entry
    assert not (tmp_path / "other" / "text" / key).exists()
    assert not (tmp_path / "other" / "text" / "x").exists()
    assert install_entry(target, key, files)
    assert not install_entry(target, key, files)  # already there
    mtimes = {rel: m for rel, _, m in files}
    entry = entry_folder(target, key)
    assert verify_entry(entry) is None
    assert (entry / "out.txt").stat().st_mtime_ns == mtimes["out.txt"]  # (numba checks it)
    fusejit.clear_cache(disk=False)
    assert load_or_build(TEXT, key, text_recipe([]))[1] == "disk"


def test_keys_follow_the_target_version_and_its_sources(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("x = 2\n")
    mod = [types.SimpleNamespace(__file__=str(p)) for p in (a, b)]
    assert fingerprint([mod[0]]) != fingerprint([mod[1]])
    assert Target("t", "1").key("body", 1) != Target("t", "2").key("body", 1)
    assert Target("t", "1").key("body", 1) != Target("u", "1").key("body", 1)
    assert Target("t", "1").key("body", 1) == Target("t", "1").key("body", 1)


# ---- the same behaviour on the CPU target ------------------------------------------------------


def cpu_build(n=1000):
    x = fusejit.arange(n, dtype=fusejit.float32) / 100
    t = fusejit.trace(lambda x: ((x * 2 + 1).tanh() * 3) - x, x)
    return t, x


def test_a_cpu_entry_that_does_not_load_is_corrupt_and_rebuilt(cache, caplog):
    t, x = cpu_build()
    want = t(x).numpy()
    (entry,) = [p for p in (cache / "cpu").iterdir()]
    (entry / "kernel.py").write_text("raise ImportError('not a kernel')\n")
    write_manifest(entry)  # matches its manifest: found only by loading it
    assert verify_entry(entry) is None
    fusejit.clear_cache(disk=False)
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        t, x = cpu_build()
    assert counts()[1:] == (0, 1, 1)
    assert any("does not load" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(t(x).numpy(), want)
    assert verify_entry(entry) is None and "not a kernel" not in (entry / "kernel.py").read_text()


def test_an_unwritable_cache_folder_still_runs_uncached(cache, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(blocker / "kernels"))  # (cannot be created)
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        t, x = cpu_build()
        y = t(x).numpy()
    np.testing.assert_allclose(y, np.tanh(x.numpy() * 2 + 1) * 3 - x.numpy(), rtol=1e-5, atol=1e-6)
    assert counts()[2] == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(blocker / "kernels") in warning and "a part of its path is a file" in warning
    assert "kept in memory only" in warning
