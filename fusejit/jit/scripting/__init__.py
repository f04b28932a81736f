"""``fusejit.script``: compile a typed subset of Python straight into the graph IR, keeping
its control flow as ``if`` / ``loop`` nodes (see ``fusejit.ir.control``).

The compiler walks the function's syntax tree once per input signature (dtypes, shapes and
devices of the tensors, kinds of the Python scalars). Tensor expressions are evaluated on
example tensors while the tracer records them, so every op, method, operator and built-in
layer means exactly what it means in eager mode; the compiler itself handles names, types,
Python scalars and control flow:

- ``int``, ``float`` and ``bool`` arguments and locals that may change at run time are 0-d
  int64 / float64 / bool tensors in the graph; they meet tensors as weak Python scalars do.
  Locals whose values are known when compiling (literals, shapes, module attributes) stay
  constants and fold: ``range(x.shape[0])`` or ``if self.training:`` cost nothing at run time.
- ``if`` on a tensor or a run-time scalar becomes an ``if`` node; on a constant, only the
  branch taken is compiled. ``for i in range(...)``, ``while`` and iteration over a tensor's
  first dim become a ``loop`` node whose body is compiled (and fused, and built) once.
  ``for`` over a list, tuple, ``ModuleList`` or ``Sequential`` is unrolled.
- ``break``, ``continue`` and an early ``return`` set flags that guard the rest of their
  block, so they work inside data-dependent branches and loops.
- A variable keeps its kind (tensor, int, float, bool, list, ...) for its whole life; where two
  branches or a loop's iterations meet, its tensor dtype and shape must agree too.
- ``assert`` becomes an ``assert`` node (one known to fail when compiling ends its block: the
  ``$raise`` flag); f-strings with run-time fields are ``FStr`` parts that ``print`` and
  ``assert`` nodes format at run time; ``math`` functions fold on constants and become ops
  on run-time scalars; ``*`` spreads tuples and lists in calls and displays; ``range``,
  ``enumerate`` and ``zip`` are values a ``for`` takes (a loop node over ranges and tensors).
- ``x[i] = v`` is an ``update`` node that rebinds ``x``; ``append`` in a loop body to a list
  made before the loop compiles the loop again (``Grow``) with the list as a ``LoopList``, a
  buffer carried through the loop and written at the loop index. Both are refused where
  Python's mutation could be seen through another name.

Anything outside the subset raises ``ScriptError`` at decoration (syntax) or at the first
call (names, types), with the file, line, column, the source line and what to write instead.

The modules, in pipeline order: ``errors`` (``ScriptError``), ``source`` (syntax tree, subset
check, positions), ``values`` (``Dyn``, ``Undef``, kinds, specs), ``compiler``
(``FunctionCompiler``, made of ``statements``, ``expressions``, ``calls`` and
``control_flow``), ``specialize`` (one compiled signature, inlining) and ``decorator``
(``script``, ``ScriptFunction``, ``BoundScript``).
"""

from __future__ import annotations

from fusejit.jit.scripting.decorator import BoundScript as BoundScript
from fusejit.jit.scripting.decorator import ScriptedCall, ScriptFunction, script
from fusejit.jit.scripting.errors import ScriptError
from fusejit.jit.scripting.specialize import _device_of_args as _device_of_args
from fusejit.jit.scripting.specialize import _scalar_input as _scalar_input
from fusejit.jit.scripting.specialize import _specialize as _specialize
from fusejit.jit.scripting.specialize import unflatten_out as unflatten_out
from fusejit.jit.scripting.values import _kind_of as _kind_of

__all__ = ["script", "ScriptError", "ScriptFunction", "ScriptedCall"]
