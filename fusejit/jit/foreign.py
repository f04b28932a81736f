"""Arrays of other libraries that a traced or optimized function hands over whole: a library
registers a test and a runner (``fusejit.dask`` registers Dask arrays when imported), and a
call with such an array among its arguments returns ``runner(fn, args)`` (for Dask: the
function mapped over the blocks) instead of running its plan. Only calls that fail the plan's
guards (or take an optimized function's slow path) look here."""

from __future__ import annotations

__all__ = ["register", "runner_for"]

_RUNNERS: list = []  # (test(arg) -> bool, runner(fn, args) -> result)


def register(test, runner) -> None:
    """Hand calls with an argument for which ``test(arg)`` is true to ``runner(fn, args)``."""
    if (test, runner) not in _RUNNERS:
        _RUNNERS.append((test, runner))


def runner_for(args):
    """The runner of the first registered kind among ``args``, or None."""
    if not _RUNNERS:
        return None
    for a in args:
        for test, runner in _RUNNERS:
            if test(a):
                return runner
    return None
