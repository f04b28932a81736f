"""The store's settings, read from the environment at each use (tests and users change them
while a process runs): the cache folder and the debug level."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$FUSEJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/fusejit`` (``~/.cache/fusejit``)."""
    env = os.environ.get("FUSEJIT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fusejit"


def debug_level() -> int:
    """``$FUSEJIT_DEBUG``: 0 silent, 1 logs each compile and its reason, 2 also the source."""
    try:
        return int(os.environ.get("FUSEJIT_DEBUG", "0") or 0)
    except ValueError:
        return 1
