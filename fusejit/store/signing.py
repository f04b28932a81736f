"""The machine-local key that signs what this machine trusts: kernel cache manifests and the
kernels shipped in archives (HMAC-SHA256).

The key is ``$FUSEJIT_ARCHIVE_KEY`` when set, else a random key kept in
``$XDG_CONFIG_HOME/fusejit/archive-key`` (``~/.config/fusejit/archive-key``), created on first
use readable by its owner only (0600, in a 0700 folder). As ssh does with private keys, a key
file that another user owns, or that group or others may read or write, is refused: the
process warns once and signs with an ephemeral key of its own (``MachineKey.persistent`` is
False), so it neither trusts nor writes the shared disk cache, and its archives' kernels are
recompiled wherever they are loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("fusejit")

ENV = "FUSEJIT_ARCHIVE_KEY"


@dataclass(frozen=True)
class MachineKey:
    """The key's bytes; ``persistent``: the same key signs in later processes (False for an
    ephemeral key of this process, see the module docstring)."""

    secret: bytes
    persistent: bool

    def sign(self, data: bytes) -> str:
        """The HMAC-SHA256 of ``data`` under this key, in hex."""
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()

    def verify(self, data: bytes, signature: object) -> bool:
        """Whether ``signature`` is this key's signature of ``data`` (compared in constant
        time)."""
        return isinstance(signature, str) and hmac.compare_digest(self.sign(data), signature)


def key_path() -> Path:
    """Where the key file lives: ``$XDG_CONFIG_HOME/fusejit/archive-key``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "fusejit" / "archive-key"


_EPHEMERAL = MachineKey(secrets.token_hex(32).encode(), persistent=False)
_WARNED: set = set()
_LOCK = threading.Lock()


def machine_key() -> MachineKey:
    """This machine's key (see the module docstring), read at each use: tests and users change
    the environment while a process runs, and it is needed only when an entry or an archive is
    written or loaded, never on a kernel call."""
    env = os.environ.get(ENV)
    if env:
        return MachineKey(env.encode(), persistent=True)
    path = key_path()
    try:
        return MachineKey(_read_key(path), persistent=True)
    except FileNotFoundError:
        pass
    except _Refused as e:
        return _ephemeral(f"refusing the key file {path}: {e}")
    except OSError as e:
        return _ephemeral(f"cannot read the key file {path}: {e}")
    try:
        _create_key(path)
        return MachineKey(_read_key(path), persistent=True)
    except (OSError, _Refused) as e:
        return _ephemeral(f"cannot create the key file {path}: {e}")


class _Refused(Exception):
    """A key file that is not safe to use (see ``_read_key``)."""


def _read_key(path: Path) -> bytes:
    """The contents of the key file, after checking, on the open file itself (no race with a
    rename; a link is judged by the file it leads to, as ssh does), that it is a regular file
    of the current user that nobody else may read or write: anyone who can read it can sign
    kernels this machine runs, anyone who can write it can choose the key."""
    # (non-blocking: a FIFO put there must be refused, not waited on)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Refused("not a regular file")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise _Refused(f"owned by uid {st.st_uid}, not by this user (uid {os.getuid()})")
        if st.st_mode & 0o077:
            raise _Refused(f"its permissions {stat.S_IMODE(st.st_mode):04o} let group or others "
                           "read or write it; make it 0600 (chmod 600)")  # fmt: skip
        data = f.read()
    if not data.strip():
        raise _Refused("it is empty")
    return data


def _create_key(path: Path) -> None:
    """A new random key at ``path``, 0600 in a 0700 folder. Written to a temporary file and
    linked into place, so a process reading the key at the same time sees none or the whole
    key, and of two processes creating it at once the first wins and both use its key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".archive-key-")  # (mode 0600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use that one
            pass
    finally:
        os.unlink(tmp)


def _ephemeral(why: str) -> MachineKey:
    with _LOCK:
        if why not in _WARNED:
            _WARNED.add(why)
            log.warning("fusejit: %s; this process uses a key of its own: kernels are cached "
                        "in memory only, archives it saves ship no usable kernels",
                        why)  # fmt: skip
    return _EPHEMERAL


__all__ = ["ENV", "MachineKey", "key_path", "machine_key"]
