"""The public face of ``fusejit.script``: the ``script()`` decorator, ``ScriptFunction`` (a
scripted function with one compiled graph per input signature) and ``BoundScript`` (a scripted
method bound to its module), and running a specialization, or recording it into an enclosing
``fusejit.trace``."""

from __future__ import annotations

import functools
import inspect
import threading
import types
import weakref

from fusejit.eager import recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.random import generator_states, set_generator_states
from fusejit.eager.tensor import Tensor
from fusejit.ir.control import count_fused
from fusejit.ir.graph import Graph
from fusejit.ir.printer import format_code
from fusejit.jit.control_grad import script_call
from fusejit.jit.scripting.errors import ScriptError
from fusejit.jit.scripting.source import _params_of, _Source
from fusejit.jit.scripting.specialize import (
    Compiled,
    _device_of_args,
    _scalar_input,
    _specialize,
    compile_function,
    splice,
    unflatten_out,
)
from fusejit.jit.scripting.values import _IMMUTABLE, _kind_of
from fusejit.nn import Module, _Version


class ScriptFunction:
    """A function compiled by ``fusejit.script``; one compiled graph per input signature.

    ``graph`` / ``code`` show the latest specialization; ``specializations()`` lists them all.
    """

    def __init__(self, fn) -> None:
        self.fn = fn
        self.src = _Source(fn)
        self.src.check_syntax()
        self.param_names = _params_of(self.src.tree)
        self.is_method = bool(self.param_names) and self.param_names[0] == "self"
        sig = inspect.signature(fn)
        self.defaults = {k: p.default for k, p in sig.parameters.items()
                         if p.default is not inspect.Parameter.empty}  # fmt: skip
        for k, v in self.defaults.items():
            if not isinstance(v, (*_IMMUTABLE, tuple)):
                raise self.src.error(self.src.tree, f"default of `{k}` is a "
                                     f"{type(v).__name__}", "constant defaults")  # fmt: skip
        self._specs: dict = {}
        self._by_obj: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.RLock()
        self._last: Compiled | None = None
        # per module instance, its latest specialization (what its bound method shows)
        self._last_by_obj: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        functools.update_wrapper(self, fn)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return BoundScript(self, obj)

    def bind_args(self, args, kwargs, error):
        names = self.param_names[1:] if self.is_method else self.param_names
        args = list(args)
        for name in names[len(args) :]:
            if name in kwargs:
                args.append(kwargs.pop(name))
            elif name in self.defaults:
                args.append(self.defaults[name])
            else:
                break
        if kwargs:
            raise error
        return args

    def _table(self, obj) -> dict:
        if obj is None:
            return self._specs
        t = self._by_obj.get(obj)
        if t is None:
            t = self._by_obj[obj] = {}
        return t

    def specialization(self, obj, spec, flat, stack=()) -> Compiled:
        key = (spec, _Version.value if obj is not None else 0)
        table = self._table(obj)
        c = table.get(key)
        if c is None:
            with self._lock:
                c = table.get(key)
                if c is None:
                    # compiling runs the library calls it records (dropout draws its mask):
                    # the generators are put back, so a call draws what eager code draws
                    rng = generator_states()
                    try:
                        c = compile_function(self, obj, spec, flat, stack)
                    finally:
                        set_generator_states(rng)
                    table[key] = c
        self._last = c
        if obj is not None:
            self._last_by_obj[obj] = c
        return c

    def _call(self, obj, args, kwargs):
        if kwargs:
            args = self.bind_args(
                args,
                kwargs,
                TypeError(f"{self.__name__}: unexpected keyword arguments {list(kwargs)}"),
            )
        spec, flat = _specialize(args, constants=False)
        c = self.specialization(obj, spec, flat)
        dev = _device_of_args(flat)
        tensors = [v if isinstance(v, Tensor) else _scalar_input(v, _kind_of(v), dev)
                   for v in flat]  # fmt: skip
        tracer = recording.tracing()
        if tracer is not None:  # called while fusejit.trace records: keep the control flow
            return _record_into_trace(tracer, c, tensors)
        if MODE.enabled:  # a tensor requiring grad: compiled forward and backward graphs
            outs = script_call(c, tensors)
            if outs is not None:
                return unflatten_out(c.out_spec, iter(outs))
        outs = c.plan.run(tensors, c.graph.captured)
        return unflatten_out(c.out_spec, iter(outs))

    def __call__(self, *args, **kwargs):
        return self._call(None, args, kwargs)

    @property
    def graph(self) -> Graph:
        return self._latest().graph

    @property
    def code(self) -> str:
        return format_code(self._latest().graph, self.__name__)

    def _latest(self, obj=None) -> Compiled:
        if obj is not None:
            c = self._last_by_obj.get(obj)
            if c is not None:
                return c
            raise ScriptError(f"{self.__name__} has not been called on this "
                              f"{type(obj).__name__} yet: its graph is made for the types of "
                              "its first call", self.src.filename, self.src.start, 1, "",
                              "call it once first")  # fmt: skip
        if self._last is None:
            raise ScriptError(f"{self.__name__} has not been called yet: its graph is made "
                              "for the types of its first call", self.src.filename,
                              self.src.start, 1, "", "call it once first")  # fmt: skip
        return self._last

    def specializations(self, obj=None) -> list:
        return list(self._table(obj).values())

    def kernel_count(self) -> int:
        return count_fused(self._latest().graph.block)

    def __repr__(self) -> str:
        return f"<ScriptFunction {self.__qualname__}>"


class BoundScript:
    """A scripted method bound to its module: attributes and submodules are constants."""

    def __init__(self, sf: ScriptFunction, obj) -> None:
        self.sf, self.obj = sf, obj
        self.__name__ = sf.__name__

    def __call__(self, *args, **kwargs):
        return self.sf._call(self.obj, args, kwargs)

    def bind_args(self, args, kwargs, error):
        return self.sf.bind_args(args, kwargs, error)

    def specializations(self) -> list:
        return self.sf.specializations(self.obj)

    @property
    def graph(self) -> Graph:
        """The latest specialization of this module's method (not another instance's)."""
        return self.sf._latest(self.obj).graph

    @property
    def code(self) -> str:
        return format_code(self.graph, self.__name__)

    def __repr__(self) -> str:
        return f"<scripted method {self.sf.__qualname__} of {type(self.obj).__name__}>"


ScriptedCall = BoundScript
_METHOD_SCRIPTS: dict = {}


def _method_script(func) -> ScriptFunction:
    """A plain method of a user module, scripted on first use (as submodules are)."""
    sf = _METHOD_SCRIPTS.get(func)
    if sf is None:
        sf = _METHOD_SCRIPTS[func] = ScriptFunction(func)
    return sf


def _record_into_trace(tracer, c: Compiled, tensors):
    """A scripted function called inside ``fusejit.trace``: its graph (with its control flow)
    joins the trace, and the real outputs are bound to the spliced results."""
    with recording.recording(None):
        outs = c.plan.run(tensors, c.graph.captured)
    refs = [tracer.value_of(t) for t in tensors]
    vals = splice(tracer, c.raw_graph, refs)
    for t, v in zip(outs, vals):
        tracer.values[id(t)] = v
        tracer.keep.append(t)
    return unflatten_out(c.out_spec, iter(outs))


def script(obj):
    """Compile a function, an ``nn.Module`` class or instance, or a method, keeping control
    flow (``if`` on tensors, loops, ``break``, early ``return``) in the graph.

    Each input signature (tensor dtypes, shapes and devices; the kinds of Python scalars) is
    compiled on its first call; straight-line parts of every block are fused.

    >>> import fusejit
    >>> @fusejit.script
    ... def clip_sum(x, limit: float):
    ...     total = x.sum()
    ...     if total > limit:
    ...         x = x * (limit / total)
    ...     return x
    >>> clip_sum(fusejit.ones(4), 2.0).tolist()
    [0.5, 0.5, 0.5, 0.5]
    >>> clip_sum(fusejit.ones(4), 10.0).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    if isinstance(obj, (ScriptFunction, BoundScript)):
        return obj
    if isinstance(obj, type):
        if not issubclass(obj, Module):
            raise ScriptError(
                f"fusejit.script on class {obj.__name__}: only nn.Module "
                "subclasses can be scripted",
                hint="decorate its methods",
            )
        fwd = obj.__dict__.get("forward")
        if fwd is not None and not isinstance(fwd, ScriptFunction):
            obj.forward = ScriptFunction(fwd)
        return obj
    if isinstance(obj, Module):
        fwd = type(obj).forward
        sf = fwd if isinstance(fwd, ScriptFunction) else _method_script(fwd)
        object.__setattr__(obj, "forward", BoundScript(sf, obj))
        return obj
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        if isinstance(obj, types.MethodType):
            return BoundScript(ScriptFunction(obj.__func__), obj.__self__)
        return ScriptFunction(obj)
    raise ScriptError(f"fusejit.script expects a function, method or nn.Module, got "
                      f"{type(obj).__name__}")  # fmt: skip
