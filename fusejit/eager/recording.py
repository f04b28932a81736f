"""The hook through which eager ops are recorded while ``fusejit.trace`` (or the script
compiler) runs a function: the tracer in force, and the warning for values read into Python.

Eager code reads ``TRACER`` on every op (``None`` when nothing records, the common case); the
JIT installs a tracer with ``recording``, never by assigning the global. The hook is
process-wide, but a tracer acts only on the thread that started it (``tracing``).
"""

from __future__ import annotations

import linecache
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from fusejit.base.errors import TracerWarning

__all__ = ["TRACER", "tracing", "recording", "read_value_hook", "user_line", "describe_line"]

TRACER = None


def tracing():
    """The tracer recording on this thread, or None."""
    t = TRACER
    if t is not None and t.owner == threading.get_ident():
        return t
    return None


@contextmanager
def recording(tracer) -> Iterator[None]:
    """Record eager ops into ``tracer`` (or, with None, suspend recording) inside the block;
    the tracer in force before is restored after it."""
    global TRACER
    prev = TRACER
    TRACER = tracer
    try:
        yield
    finally:
        TRACER = prev


# frames inside the package are skipped to name the user's line
_PKG_DIR = __file__.rsplit("/", 2)[0]


def user_line(depth: int = 1) -> tuple[str, int] | None:
    """(file name, line number) of the innermost caller outside the package, ``depth`` frames
    above this function's caller; None where there is none."""
    frame = sys._getframe(depth + 1)
    while frame is not None and frame.f_code.co_filename.startswith(_PKG_DIR):
        frame = frame.f_back
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def describe_line(where: tuple[str, int] | None) -> str:
    """``file:line: source text`` of a ``user_line`` result."""
    if where is None:
        return "<unknown>"
    return f"{where[0]}:{where[1]}: {linecache.getline(where[0], where[1]).strip()}"


def read_value_hook(t, what: str) -> None:
    """Warn when a trace reads a tensor's value into Python: the trace cannot generalize."""
    tracer = TRACER
    if tracer is None or not tracer.knows(t):
        return
    where = describe_line(user_line(1))
    warnings.warn(
        f"trace: converting a tensor to a Python value ({what}) at {where}; the traced graph "
        "treats the result as a constant and will not generalize to other inputs",
        TracerWarning,
        stacklevel=3,
    )
    tracer.note_value_read(what, where)
