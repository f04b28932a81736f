"""The JIT: front ends (``trace``, ``script``), graph passes, execution of compiled graphs
(plans behind guards, control flow, the reference interpreter), ``optimize``, ``explain`` and
archives. ``fusejit.jit.trace`` and ``fusejit.jit.script`` are the functions, as in torch.jit.
"""

from fusejit.jit.api import TracedFunction, trace
from fusejit.jit.scripting import ScriptError, script

__all__ = ["trace", "script", "TracedFunction", "ScriptError"]
