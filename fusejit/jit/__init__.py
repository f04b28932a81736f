"""The JIT: front ends (``trace``, ``script``), graph passes, execution of compiled graphs
(plans behind guards, control flow, the reference interpreter), ``optimize``, ``explain`` and
archives. ``fusejit.jit.trace`` and ``fusejit.jit.script`` are the functions, as in torch.jit.
"""

from fusejit.jit.api import TracedFunction, trace


def __getattr__(name: str):
    # the script front end is imported on first use (PEP 562): tracing does not need it
    if name in ("script", "ScriptError"):
        from fusejit.jit import scripting

        return getattr(scripting, name)
    raise AttributeError(f"module 'fusejit.jit' has no attribute {name!r}")


__all__ = ["trace", "script", "TracedFunction", "ScriptError"]
