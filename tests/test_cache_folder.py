"""The cache folder itself: one that cannot be used degrades to memory with one warning, one
that is not private to the user is not used, numba's files go into the entries and nowhere
else, and only a folder fusejit created is ever cleared."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fusejit
from fusejit.__main__ import main
from fusejit.store import MARKER, CacheError, verify_entry

REPO = Path(__file__).resolve().parents[1]
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def fresh(monkeypatch):
    """An empty in-memory cache (and folder decisions) before and after."""
    monkeypatch.delenv("FUSEJIT_DEBUG", raising=False)
    fusejit.clear_cache(disk=False)
    yield
    fusejit.clear_cache(disk=False)


def two_kernels():
    """An eager kernel (sigmoid) and a traced one; the results against numpy."""
    x = fusejit.arange(64, dtype=fusejit.float32) / 10 - 3
    s = x.sigmoid().numpy()
    t = fusejit.trace(lambda v: (v * 3 + 1).tanh() - v, x, check_trace=False)
    want_s = 1 / (1 + np.exp(-x.numpy().astype(np.float64)))
    np.testing.assert_allclose(s, want_s, rtol=1e-5, atol=1e-6)
    xn = x.numpy()
    np.testing.assert_allclose(t(x).numpy(), np.tanh(xn * 3 + 1) - xn, rtol=1e-5, atol=1e-6)


def not_a_folder(tmp_path: Path) -> Path:
    p = tmp_path / "notadir"
    p.write_text("x\n")
    return p


def dangling_link(tmp_path: Path) -> Path:
    p = tmp_path / "link"
    p.symlink_to(tmp_path / "missing")
    return p


def group_writable(tmp_path: Path) -> Path:
    p = tmp_path / "shared"
    p.mkdir()
    p.chmod(0o775)
    return p


def other_owner(tmp_path: Path) -> Path:
    if not AS_ROOT:
        pytest.skip("giving a folder to another user needs root")
    p = tmp_path / "theirs"
    p.mkdir(mode=0o700)
    os.chown(p, 65534, 65534)
    return p


@pytest.mark.parametrize(
    "make, reason",
    [
        (not_a_folder, "it is not a folder"),
        (dangling_link, "symbolic link to a missing folder"),
        (group_writable, "writable by group or others (mode 775"),
        (other_owner, "owned by another user (uid 65534)"),
    ],
)
def test_an_unusable_cache_folder_keeps_kernels_in_memory_with_one_warning(
    fresh, tmp_path, monkeypatch, caplog, make, reason
):
    folder = make(tmp_path)
    before = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(folder))
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        two_kernels()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(folder) in warnings[0] and reason in warnings[0]
    assert "kept in memory only" in warnings[0]
    assert fusejit.cache_info()["compiled"] >= 2 and fusejit.cache_info()["disk_hits"] == 0
    # nothing was written there, and the broken link is still a broken link
    assert (sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None) == before
    assert folder.is_symlink() == (make is dangling_link)


def test_a_read_only_cache_folder_is_read_not_written(fresh, tmp_path, monkeypatch, caplog):
    if AS_ROOT:
        pytest.skip("root writes into a mode-555 folder: os.access says writable, and it is")
    folder = tmp_path / "ro"
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(folder))
    two_kernels()
    fusejit.clear_cache(disk=False)
    folder.chmod(0o555)
    try:
        with caplog.at_level(logging.WARNING, logger="fusejit"):
            two_kernels()
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "not writable" in warnings[0], warnings
        assert fusejit.cache_info()["disk_hits"] >= 2
    finally:
        folder.chmod(0o700)


def test_folders_fusejit_creates_are_private_and_marked(fresh, tmp_path, monkeypatch):
    folder = tmp_path / "new" / "kernels"
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(folder))
    two_kernels()
    assert (folder / MARKER).read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(folder) == 0o700
    entries = [e for e in (folder / "cpu").iterdir()]
    assert entries and all(verify_entry(e) is None for e in entries)
    for p in folder.rglob("*"):
        assert mode(p) == (0o700 if p.is_dir() else 0o600), p


def test_an_existing_empty_folder_is_marked_and_used(fresh, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(folder))
    two_kernels()
    assert (folder / MARKER).exists() and any((folder / "cpu").iterdir())


def test_info_names_an_unusable_cache_folder_and_changes_nothing(
    fresh, tmp_path, monkeypatch, capsys
):
    folder = group_writable(tmp_path)
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(folder))
    main(["info"])
    out = capsys.readouterr().out
    assert f"the kernel cache folder {folder} is not used" in out and "mode 775" in out
    fresh_folder = tmp_path / "not-yet"
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(fresh_folder))
    main(["info"])
    assert "kernel cache folder" not in capsys.readouterr().out and not fresh_folder.exists()
    assert not any(folder.iterdir())


CHILD = """
import json
import numpy as np
import fusejit
x = fusejit.arange(48, dtype=fusejit.float32).reshape(6, 8) / 10
xn = x.numpy().astype(np.float64)
f = fusejit.trace(lambda v: (v * 2 + 1).tanh() - v, x, check_trace=False)  # a flat kernel
g = fusejit.trace(lambda v: (v * 2).softmax(-1), x, check_trace=False)  # a row kernel
ok = np.allclose(f(x).numpy(), np.tanh(xn * 2 + 1) - xn, rtol=1e-5, atol=1e-6)
ok &= np.allclose(f(x.T).numpy(), np.tanh(xn.T * 2 + 1) - xn.T, rtol=1e-5, atol=1e-6)  # N-D
e = np.exp(xn * 2 - (xn * 2).max(-1, keepdims=True))
ok &= np.allclose(g(x).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
print(json.dumps({"ok": bool(ok), **fusejit.cache_info()}))
"""


def test_numba_caches_in_the_entries_and_nowhere_else(tmp_path, monkeypatch):
    """With ``NUMBA_CACHE_DIR`` set and a writable home, numba's compiled code still goes into
    the kernels' entries (numba's own locators would put it in either)."""
    cache, numba_dir, home = tmp_path / "cache", tmp_path / "numba", tmp_path / "home"
    numba_dir.mkdir()
    home.mkdir()
    env = dict(os.environ, FUSEJIT_CACHE_DIR=str(cache), NUMBA_CACHE_DIR=str(numba_dir),
               HOME=str(home), PYTHONPATH=str(REPO))  # fmt: skip
    env.pop("XDG_CACHE_HOME", None)
    infos = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        infos.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert all(i["ok"] for i in infos)
    assert infos[0]["compiled"] >= 3 and infos[1]["compiled"] == 0
    assert infos[1]["disk_hits"] == infos[0]["compiled"]
    assert not any(numba_dir.rglob("*"))
    # (the home holds the machine key that signs the entries, and nothing else)
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()) == [
        ".config/fusejit/archive-key"
    ]
    entries = [e for e in (cache / "cpu").iterdir()]
    assert len(entries) == infos[0]["compiled"]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))  # (the children's key)
    for e in entries:
        assert verify_entry(e) is None
        assert any(e.glob("__pycache__/*.nbc")), sorted(e.rglob("*"))


def _read_only_mounts() -> bool:
    """Whether this process may bind-mount a folder read-only in a private mount namespace
    (root in most containers): how a read-only cache is made for root, who writes anyway
    into a mode-555 folder."""
    if not AS_ROOT or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount --bind -o ro / / 2>/dev/null || mount -o remount,bind,ro / /"],
                           capture_output=True, timeout=10)  # fmt: skip
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mounts(), reason="needs root and unshare for a read-only mount")
def test_a_read_only_cache_and_home_are_read_and_never_written(tmp_path):
    """A filled cache on a read-only file system, with a read-only home: its kernels load
    (numba's code too: no recompiling), a new kernel is compiled in memory, one warning."""
    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, FUSEJIT_CACHE_DIR=str(cache), HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("XDG_CACHE_HOME", None)
    first = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert first.returncode == 0, first.stderr
    n = json.loads(first.stdout.strip().splitlines()[-1])["compiled"]
    files = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    home_files = sorted(p.relative_to(home) for p in home.rglob("*"))  # (the machine key)
    new = (
        "y = (x * 5).sigmoid().numpy()\n"  # a kernel not in the cache
        "assert np.allclose(y, 1 / (1 + np.exp(-xn * 5)), rtol=1e-5, atol=1e-6)\n"
    )
    child = CHILD.replace("print(", new + "print(")
    script = (f"mount --bind -o ro {cache} {cache} && mount --bind -o ro {home} {home} && "
              f'exec "$0" -c "$1"')  # fmt: skip
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                          sys.executable, child], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["ok"] and info["disk_hits"] == n and info["compiled"] == 1
    warnings = [line for line in out.stderr.splitlines() if line.startswith("fusejit:")]
    assert len(warnings) == 1 and str(cache) in warnings[0] and "not writable" in warnings[0]
    assert "NumbaWarning" not in out.stderr and "cannot cache" not in out.stderr
    assert sorted(p.relative_to(cache) for p in cache.rglob("*")) == files
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == home_files


# ---- clearing ---------------------------------------------------------------------------------


def _cli(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, FUSEJIT_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "fusejit", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_cache_clear_refuses_a_folder_fusejit_did_not_create(fresh, tmp_path, monkeypatch):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "keep").write_text("mine\n")
    entry_like = d / "sub" / "deadbeefdeadbeefdeadbeef"
    entry_like.mkdir()
    p = _cli(["cache", "clear"], d)
    assert p.returncode == 1 and "removed" not in p.stdout
    assert "not a fusejit kernel cache" in p.stderr and str(d) in p.stderr
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(d))
    with pytest.raises(CacheError, match=r"fusejit.clear_cache: .* nothing was removed"):
        fusejit.clear_cache(disk=True)
    assert (d / "keep").read_text() == "mine\n" and entry_like.is_dir()
    assert not (d / MARKER).exists()


def test_clear_removes_only_what_fusejit_created(fresh, tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(d))
    two_kernels()
    (d / "notes.txt").write_text("mine\n")  # the user's, inside the marked folder
    (d / "mine").mkdir()
    (d / "mine" / "data.npy").write_bytes(b"1")
    n = len(list((d / "cpu").iterdir()))
    main(["cache", "info"])
    p = _cli(["cache", "clear"], d)
    assert p.returncode == 0, p.stderr
    assert f"removed {n} kernel entries" in p.stdout
    assert sorted(q.relative_to(d).as_posix() for q in d.rglob("*")) == [
        MARKER, "mine", "mine/data.npy", "notes.txt"]  # fmt: skip
    fusejit.clear_cache(disk=False)
    two_kernels()  # rebuilt into the same folder
    assert fusejit.cache_info()["compiled"] >= 2 and (d / "cpu").is_dir()


def test_clear_on_a_missing_or_empty_folder_does_nothing(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(tmp_path / "none"))
    fusejit.clear_cache(disk=True)
    assert not (tmp_path / "none").exists()
    (tmp_path / "empty").mkdir()
    p = _cli(["cache", "clear"], tmp_path / "empty")
    assert p.returncode == 0 and "removed 0 kernel entries" in p.stdout
