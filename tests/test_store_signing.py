"""Kernel cache entries are code (``kernel.py`` runs, numba's index files are pickles): an entry
is loaded only when its manifest is signed with this machine's key, names the target and key
it is looked up under and lists every file numba loads. Planted, unsigned (older), swapped and
damaged entries are rebuilt, never run; the key file is refused when others could read or
write it; kernels shipped in an archive are signed into the cache once the archive's own
signature verified."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numba
import numpy as np
import pytest

import fusejit
from fusejit.store import Recipe, Target, entry_folder, load_or_build, verify_entry, write_manifest
from fusejit.store.manifest import MANIFEST, entry_files
from fusejit.store.signing import ENV, key_path, machine_key

REPO = Path(__file__).resolve().parents[1]
TEXT = Target("text", "v1")
MODEL = "lambda x: ((x * 2 + 1).tanh() * 3) - x"

CHILD = """
import json, os
import numpy as np
import fusejit
x = fusejit.arange(1000, dtype=fusejit.float32) / 100
f = fusejit.trace(MODEL, x, check_trace=False)
y = f(x).numpy()
want = np.tanh(x.numpy() * 2 + 1) * 3 - x.numpy()
print(json.dumps({"ok": bool(np.allclose(y, want, rtol=1e-5, atol=1e-6)), **fusejit.cache_info()}))
""".replace("MODEL", MODEL)


@pytest.fixture
def cache(cache, monkeypatch):
    """conftest's fresh cache, with a machine key of this test's own."""
    monkeypatch.setenv(ENV, "test-machine-key")
    return cache


def text_recipe(text: str = "hello") -> Recipe:
    """A compiler whose kernel is its source in capitals (``out.txt``)."""

    def build(folder: Path, src: str) -> None:
        (folder / "out.txt").write_text(src.upper())

    return Recipe("text kernel", lambda: text, build, lambda f, o: ((f / "out.txt").read_text(), o))


def build():
    x = fusejit.arange(1000, dtype=fusejit.float32) / 100
    return fusejit.trace(eval(MODEL), x), x


def want(x):
    return np.tanh(x.numpy() * 2 + 1) * 3 - x.numpy()


def cpu_entries(d: Path) -> list[Path]:
    return sorted(p for p in (d / "cpu").iterdir() if p.is_dir())


def counts() -> tuple:
    i = fusejit.cache_info()
    return i["disk_hits"], i["compiled"], i["rebuilt_corrupt"]


def start_child(d: Path, **env) -> subprocess.CompletedProcess:
    """A fresh process that traces and runs the model with the cache folder ``d``."""
    e = dict(os.environ, FUSEJIT_CACHE_DIR=str(d), PYTHONPATH=str(REPO), **env)
    e.pop("FUSEJIT_DEBUG", None)
    return subprocess.run([sys.executable, "-c", CHILD], env=e, cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def run_child(d: Path, **env) -> dict:
    """``start_child``'s result check and cache counters."""
    return child_info(start_child(d, **env))


def child_info(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def unkeyed_manifest(entry: Path) -> None:
    """What an attacker (or an earlier fusejit) writes: plain SHA-256 checksums, no key."""
    files = {
        p.relative_to(entry).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in entry_files(entry)
    }
    (entry / MANIFEST).write_text(json.dumps(files))


def manifest_signed_with(entry: Path, key: str) -> None:
    """A manifest of the right form, target and key, signed with another machine's key."""
    old = os.environ.get(ENV)
    os.environ[ENV] = key
    try:
        write_manifest(entry)
    finally:
        os.environ[ENV] = old


class _Evil:
    """A pickle that writes a file when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def plant_kernel(entry: Path, marker: Path) -> None:
    src = (entry / "kernel.py").read_text()
    (entry / "kernel.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n{src}")


def plant_index(entry: Path, marker: Path) -> None:
    (nbi,) = entry.rglob("*.nbi")
    nbi.write_bytes(pickle.dumps(numba.__version__) + pickle.dumps(_Evil(marker)))


# ---- planted entries are never run (process level) ---------------------------------------------


@pytest.mark.parametrize("sign", ["unkeyed", "other key"])
@pytest.mark.parametrize("plant", [plant_kernel, plant_index])
def test_a_planted_entry_is_not_run_by_a_fresh_process(cache, tmp_path, plant, sign):
    build()
    (entry,) = cpu_entries(cache)
    marker = tmp_path / "marker"
    plant(entry, marker)
    if sign == "unkeyed":
        unkeyed_manifest(entry)
    else:
        manifest_signed_with(entry, "an attacker's key")
    out = start_child(cache)
    assert not marker.exists(), out.stderr
    info = child_info(out)
    assert info["ok"] and info["rebuilt_corrupt"] == 1 and info["compiled"] == 1
    assert verify_entry(entry) is None and "marker" not in (entry / "kernel.py").read_text()


def test_a_planted_file_beside_a_signed_manifest_is_not_run(cache, tmp_path):
    # the manifest is genuine; an index file numba would read is added beside it
    build()
    (entry,) = cpu_entries(cache)
    marker = tmp_path / "marker"
    (nbi,) = entry.rglob("*.nbi")
    extra = nbi.with_name("kernel.k_flat-99.py311.nbi")
    extra.write_bytes(pickle.dumps(numba.__version__) + pickle.dumps(_Evil(marker)))
    out = start_child(cache)
    assert not marker.exists(), out.stderr
    info = child_info(out)
    assert info["ok"] and info["rebuilt_corrupt"] == 1
    assert not extra.exists()


def test_an_unsigned_entry_of_an_earlier_fusejit_is_rebuilt(cache, caplog):
    t, x = build()
    (entry,) = cpu_entries(cache)
    unkeyed_manifest(entry)  # the manifest entries had before they were signed
    fusejit.clear_cache(disk=False)
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        t, x = build()
    assert counts() == (0, 1, 1)
    (msg,) = [r.getMessage() for r in caplog.records if r.name == "fusejit"]
    assert "corrupt (unsigned manifest" in msg
    np.testing.assert_allclose(t(x).numpy(), want(x), rtol=1e-5, atol=1e-6)
    assert verify_entry(entry) is None
    fusejit.clear_cache(disk=False)
    build()
    assert counts() == (1, 0, 0)


def test_another_machine_key_rebuilds_every_entry(cache, monkeypatch):
    build()
    monkeypatch.setenv(ENV, "another-machine-key")
    fusejit.clear_cache(disk=False)
    t, x = build()
    assert counts() == (0, 1, 1)
    np.testing.assert_allclose(t(x).numpy(), want(x), rtol=1e-5, atol=1e-6)


# ---- entries are bound to their target and key -------------------------------------------------


def test_swapped_entries_are_detected_and_rebuilt(cache):
    x = fusejit.arange(1000, dtype=fusejit.float32) / 100
    h = fusejit.arange(1000, dtype=fusejit.float32).half() / 1000
    fusejit.trace(lambda x: (x * 2 + 1).tanh(), x)
    fusejit.trace(lambda x: (x * 3).exp(), h)  # (a float16 kernel: half_to_f32)
    a, b = cpu_entries(cache)
    tmp = a.with_name("swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    fusejit.clear_cache(disk=False)
    f = fusejit.trace(lambda x: (x * 2 + 1).tanh(), x)
    g = fusejit.trace(lambda x: (x * 3).exp(), h)
    assert counts() == (0, 2, 2)
    np.testing.assert_allclose(f(x).numpy(), np.tanh(x.numpy() * 2 + 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g(h).numpy(), np.exp(h.numpy() * 3), rtol=1e-3)
    assert verify_entry(a) is None and verify_entry(b) is None


def test_a_swapped_entry_is_not_loaded_by_a_fresh_process(cache):
    build()
    (entry,) = cpu_entries(cache)
    fusejit.trace(lambda x: (x * 5).exp(), fusejit.ones(8))
    (other,) = [p for p in cpu_entries(cache) if p != entry]
    os.rename(entry, cache / "swap")
    os.rename(other, entry)
    info = run_child(cache)
    assert info["ok"] and info["rebuilt_corrupt"] == 1 and info["compiled"] == 1


def test_the_store_checks_the_key_and_target_an_entry_names(cache):
    load_or_build(TEXT, "k1", text_recipe())
    load_or_build(TEXT, "k2", text_recipe("other"))
    k1, k2 = entry_folder("text", "k1"), entry_folder("text", "k2")
    assert verify_entry(k1) is None
    assert verify_entry(k1, "text", "k2") == "the entry of text/k1, not of text/k2"
    assert verify_entry(k1, "cuda", "k1") == "the entry of text/k1, not of cuda/k1"
    (k1 / "out.txt").write_text((k2 / "out.txt").read_text())
    (k1 / MANIFEST).write_bytes((k2 / MANIFEST).read_bytes())  # a copied genuine manifest
    assert verify_entry(k1) == "the entry of text/k2, not of text/k1"
    fusejit.clear_cache(disk=False)
    assert load_or_build(TEXT, "k1", text_recipe()) == ("HELLO", "compiled")
    assert counts() == (0, 1, 1)


# ---- numba's files live in the entry, covered by its manifest ----------------------------------


def _manifest_files(entry: Path) -> set:
    return set(json.loads((entry / MANIFEST).read_text())["files"])


def test_numba_caches_in_the_entry_whatever_numba_cache_dir_says(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    t, x = build()
    t(x[::2])  # a second specialization (strided input): the N-D kernel, its own entry
    rows = fusejit.trace(lambda x: x.softmax(-1), fusejit.randn(4, 64))  # a row kernel
    rows(fusejit.randn(4, 64))
    assert len(cpu_entries(cache)) == 3
    for entry in cpu_entries(cache):
        files = {p.relative_to(entry).as_posix() for p in entry_files(entry)}
        assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files)
        assert _manifest_files(entry) == files and verify_entry(entry) is None
    assert not (tmp_path / "numba").exists() or not any((tmp_path / "numba").rglob("*.nb*"))


@pytest.mark.parametrize("manifest", ["deleted", "kept"])
def test_a_truncated_index_with_numba_cache_dir_set_is_rebuilt(cache, tmp_path, manifest):
    numba_dir = tmp_path / "numba"
    assert run_child(cache, NUMBA_CACHE_DIR=str(numba_dir))["compiled"] == 1
    (entry,) = cpu_entries(cache)
    (nbi,) = [*entry.rglob("*.nbi"), *numba_dir.rglob("*.nbi")]
    nbi.write_bytes(nbi.read_bytes()[:20])
    if manifest == "deleted":
        (entry / MANIFEST).unlink()
    info = run_child(cache, NUMBA_CACHE_DIR=str(numba_dir))
    assert info["ok"] and info["compiled"] == 1
    assert info["rebuilt_corrupt"] == (manifest == "kept")
    info = run_child(cache, NUMBA_CACHE_DIR=str(numba_dir))  # and every later process
    assert info["ok"] and info["disk_hits"] == 1 and info["compiled"] == 0


def test_an_entry_without_manifest_is_removed_with_its_numba_files(cache):
    build()
    (entry,) = cpu_entries(cache)
    (nbi,) = entry.rglob("*.nbi")
    nbi.write_bytes(b"")
    (entry / MANIFEST).unlink()
    fusejit.clear_cache(disk=False)
    t, x = build()
    np.testing.assert_allclose(t(x).numpy(), want(x), rtol=1e-5, atol=1e-6)
    (nbi,) = entry.rglob("*.nbi")
    assert nbi.stat().st_size > 0 and verify_entry(entry) is None


# ---- the key file ------------------------------------------------------------------------------


@pytest.fixture
def keyfile(cache, tmp_path, monkeypatch):
    """No ``$FUSEJIT_ARCHIVE_KEY``: the key file under a config folder of this test."""
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "fusejit" / "archive-key"


def test_the_key_file_is_created_private(keyfile):
    k = machine_key()
    assert k.persistent and key_path() == keyfile
    assert keyfile.stat().st_mode & 0o777 == 0o600
    assert keyfile.parent.stat().st_mode & 0o777 == 0o700
    assert machine_key() == k and keyfile.read_bytes() == k.secret  # kept, not replaced
    assert not [p for p in keyfile.parent.iterdir() if p != keyfile]  # no temporary left


def test_an_existing_private_key_file_is_used_as_it_is(keyfile):
    keyfile.parent.mkdir(parents=True)
    keyfile.write_bytes(b"0123456789abcdef")
    keyfile.chmod(0o600)
    assert machine_key().secret == b"0123456789abcdef" and machine_key().persistent


def _refused(keyfile, caplog, why):
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        first = machine_key()
        assert machine_key() == first  # one key for the process, one warning
    assert not first.persistent and first.secret != keyfile.read_bytes()
    (msg,) = [r.getMessage() for r in caplog.records if r.name == "fusejit"]
    assert f"refusing the key file {keyfile}" in msg and why in msg


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666], ids=oct)
def test_a_key_file_others_may_read_or_write_is_refused(keyfile, caplog, mode):
    keyfile.parent.mkdir(parents=True)
    keyfile.write_bytes(f"key-{mode:o}".encode())  # (a key of its own: one warning each)
    keyfile.chmod(mode)
    _refused(keyfile, caplog, f"its permissions {mode:04o}")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown (root)")
def test_a_key_file_of_another_user_is_refused(keyfile, caplog):
    keyfile.parent.mkdir(parents=True)
    keyfile.write_bytes(b"someone else's key")
    keyfile.chmod(0o600)
    os.chown(keyfile, 65534, -1)
    _refused(keyfile, caplog, "owned by uid 65534")


def test_a_refused_key_keeps_the_disk_cache_untouched(keyfile, cache, caplog):
    keyfile.parent.mkdir(parents=True)
    keyfile.write_bytes(b"a good key")
    keyfile.chmod(0o600)
    build()
    (entry,) = cpu_entries(cache)
    before = {p: p.read_bytes() for p in entry.rglob("*") if p.is_file()}
    keyfile.write_bytes(b"a key others can read")  # (another key: its own warning)
    keyfile.chmod(0o644)
    fusejit.clear_cache(disk=False)
    with caplog.at_level(logging.WARNING, logger="fusejit"):
        t, x = build()
        np.testing.assert_allclose(t(x).numpy(), want(x), rtol=1e-5, atol=1e-6)
    # built in memory (a private folder): the entry is neither trusted, nor removed, nor replaced
    assert counts() == (0, 1, 0) and cpu_entries(cache) == [entry]
    assert before == {p: p.read_bytes() for p in entry.rglob("*") if p.is_file()}
    assert not t.plan.kernels[0][1].folder.is_relative_to(cache)
    assert [r for r in caplog.records if "refusing the key file" in r.getMessage()]


# ---- archives ----------------------------------------------------------------------------------


def _save(tmp_path) -> tuple[Path, fusejit.Tensor]:
    t, x = build()
    path = tmp_path / "m.fjz"
    fusejit.save(t, path)
    return path, x


def _rewrite(path: Path, edit) -> None:
    """Rewrite the archive's kernel members with ``edit(member, data) -> data`` and sign the
    listing again with the current key (as a genuine archive of this machine would be)."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    man = json.loads(members["fusejit-archive.json"])
    for f in man["kernels"]["files"]:
        data = members[f["member"]] = edit(f["member"], members[f["member"]])
        f["sha256"], f["size"] = hashlib.sha256(data).hexdigest(), len(data)
    listing = json.dumps(man["kernels"]["files"], sort_keys=True).encode()
    man["kernels"]["hmac"] = machine_key().sign(listing)
    members["fusejit-archive.json"] = json.dumps(man).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def _load_fresh(path: Path, x, monkeypatch, tmp_path) -> tuple[str, Path]:
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(fresh))
    fusejit.clear_cache(disk=False)
    m = fusejit.load(path)
    np.testing.assert_allclose(m(x).numpy(), want(x), rtol=1e-5, atol=1e-6)
    return m.kernel_note, fresh


def test_shipped_kernels_are_signed_into_the_cache_with_this_machines_key(
    cache, tmp_path, monkeypatch
):
    path, x = _save(tmp_path)

    def legacy(member: str, data: bytes) -> bytes:  # the manifest an earlier fusejit wrote
        if not member.endswith(MANIFEST):
            return data
        return json.dumps(json.loads(data)["files"]).encode()

    _rewrite(path, legacy)
    note, fresh = _load_fresh(path, x, monkeypatch, tmp_path)
    assert note == "1 kernel cache entries installed from the archive"
    assert counts() == (1, 0, 0)
    (entry,) = cpu_entries(fresh)
    assert verify_entry(entry) is None and "hmac" in json.loads((entry / MANIFEST).read_text())


def test_shipped_entries_must_name_their_key(cache, tmp_path, monkeypatch):
    path, x = _save(tmp_path)

    def rename(member: str, data: bytes) -> bytes:
        if not member.endswith(MANIFEST):
            return data
        m = json.loads(data)
        m["key"] = "0" * 32
        return json.dumps(m).encode()

    _rewrite(path, rename)
    note, fresh = _load_fresh(path, x, monkeypatch, tmp_path)
    assert note == "0 kernel cache entries installed from the archive"
    assert counts() == (0, 1, 0)


def test_kernels_of_an_archive_signed_with_another_key_are_not_installed(
    cache, tmp_path, monkeypatch
):
    path, x = _save(tmp_path)
    monkeypatch.setenv(ENV, "another-machine-key")
    note, fresh = _load_fresh(path, x, monkeypatch, tmp_path)
    assert "not installed" in note and counts() == (0, 1, 0)
