"""``fusejit.optimize``: a profiling executor that compiles the input signatures a function is
really called with.

Each call is keyed by its *signature*: per tensor argument its dtype, device and shape, per
other argument its type and value, plus the training flags of the modules involved. The first
``warmup`` calls of a signature run eager. Then the signature is traced and compiled, and later
calls run the compiled plan. A plan whose graph is shape-generic (elementwise ops and
reductions only) serves every size with the same rank and broadcast pattern (which dims are 1);
other plans serve one exact shape, and a new shape fails their guards and re-specializes, once
with the changed dims symbolic (``dynamic``): that graph then serves their later sizes.

What a trace cannot capture (in-place ops, bool-mask indexing, Python branching on tensor values,
non-tensor results, random draws other than ``rand_like`` and dropout) runs eager for that
signature, and the reason is kept for ``fusejit.explain``. Dropout's masks are graph nodes: a
compiled call draws what an eager one would from the same generator state. A whole-tensor
``copy_`` into a buffer (a train-mode BatchNorm's running statistics) is captured: the graph's
extra results are written back after each call.
A whole training step (forward, ``loss.backward()``, ``opt.step()``, ``opt.zero_grad()``) is
captured as one graph too, its parameter, optimizer-state and ``.grad`` writes done after each
call (``fusejit/jit/train_step.py``); a trace that stops puts back what it wrote before the call
runs eagerly.
``strict=True`` raises ``TraceError`` instead.

Concurrency: the tracer hook ``recording.TRACER`` is process-wide, so while one thread records a
trace an op that another thread runs eagerly would be recorded into it. Optimized calls that
run ops through dispatch (eager runs, plans with unfused ops) therefore hold a shared gate that
a trace takes exclusively; plans of fused kernels only never touch dispatch and skip it.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections import deque

import numpy as np

from fusejit.base.device import CPU
from fusejit.base.errors import TraceError, fmt_shape
from fusejit.eager import recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.random import generator_states, set_generator_states
from fusejit.eager.tensor import Tensor
from fusejit.ir.verify import verify
from fusejit.jit import tracer as tr
from fusejit.jit.api import TracedFunction
from fusejit.jit.check import (
    TOL,
    check_outputs,
    float64_reference,
    input_scale,
    rounding_explains,
)
from fusejit.jit.foreign import runner_for
from fusejit.jit.graph_info import graph_info, module_tensor_names, name_captured
from fusejit.jit.runtime import GuardError
from fusejit.nn import Module, _Version
from fusejit.store import CACHE, debug_level

log = logging.getLogger("fusejit")

__all__ = ["optimize", "mark_dynamic", "Executor", "OptimizedModule", "OptimizeWarning"]

_FAST_LIMIT = 4096  # exact-signature memo entries kept before the memo is reset


class OptimizeWarning(UserWarning):
    """An optimized function runs a signature eager for a reason other than warm-up: it cannot
    be traced, its compiled result was wrong, or ``max_specializations`` was reached. Raised
    once per reason, pointing at the user's source line that caused it."""


# ---- the trace gate ----------------------------------------------------------------------------
class _Gate:
    """Shared for executions, exclusive for a trace; a waiting trace blocks new top-level
    executions so it cannot starve. A thread already inside an optimized call re-enters without
    waiting (a nested call must not wait for a trace that waits for its caller), and such
    threads never trace."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._waiting = 0
        self.writer: int | None = None  # ident of the thread recording a trace
        self._tls = threading.local()

    def depth(self) -> int:
        return getattr(self._tls, "depth", 0)

    def enter(self) -> None:
        tls = self._tls
        depth = getattr(tls, "depth", 0)
        with self._cond:
            if not depth:
                while self.writer is not None or self._waiting:
                    self._cond.wait()
            self._readers += 1
        tls.depth = depth + 1

    def exit(self) -> None:
        self._tls.depth -= 1
        with self._cond:
            self._readers -= 1
            if not self._readers and self._waiting:
                self._cond.notify_all()

    def begin_write(self) -> None:
        with self._cond:
            self._waiting += 1
            try:
                while self._readers or self.writer is not None:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self.writer = threading.get_ident()

    def end_write(self) -> None:
        with self._cond:
            self.writer = None
            self._cond.notify_all()


_GATE = _Gate()


@contextlib.contextmanager
def _exclusive():
    """Hold the gate as a trace does; inside an optimized call (which cannot wait for the
    others: see ``Executor._slow``) nothing is held."""
    if _GATE.depth():
        yield
        return
    _GATE.begin_write()
    try:
        yield
    finally:
        _GATE.end_write()


def _gated(fn, args):
    _GATE.enter()
    try:
        return fn(*args)
    finally:
        _GATE.exit()


# ---- signatures --------------------------------------------------------------------------------
def _key(args, prefix) -> tuple:
    """The exact signature, flat: a plain tensor adds (dtype, id of its device, shape), any
    other argument one tuple naming its class, so the encoding cannot be ambiguous. Devices
    are interned, and their ids hash in C where ``Device.__hash__`` runs Python. Scalars carry
    their type: ``1`` and ``1.0`` promote differently."""
    k = [prefix]
    for a in args:
        c = a.__class__
        if c is Tensor:
            k += (a._dtype, id(a._device), a._data.shape)
        elif c is tuple or c is list:
            k.append((c, _key(a, None)))
        elif isinstance(a, Tensor):  # a subclass (Parameter): its calls need plain views
            k.append((c, a._dtype, id(a._device), a._data.shape))
        else:
            k.append((c, a))
    return tuple(k)


def _pattern_key(args, prefix) -> tuple:
    """The signature with sizes reduced to the rank and broadcast pattern."""
    k = [prefix]
    for a in args:
        c = a.__class__
        if isinstance(a, Tensor):
            k.append((c, a._dtype, a._device, tuple(s == 1 for s in a._data.shape)))
        elif c is tuple or c is list:
            k.append((c, _pattern_key(a, None)))
        else:
            k.append((c, a))
    return tuple(k)


def _plain(args):
    """Tensor subclasses (``Parameter``) as plain tensor views: a plan's guards want Tensor."""
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.__class__ is not Tensor:
            if getattr(a, "_ag", None) is None or not a._ag.requires_grad:
                a = Tensor._wrap(a._data, a._dtype, a._device)  # (else kept: its grad edge)
        elif isinstance(a, (tuple, list)):
            a = type(a)(_plain(a))
        out.append(a)
    return tuple(out)


def _has_subclass(args) -> bool:
    for a in args:
        if isinstance(a, Tensor) and a.__class__ is not Tensor:
            return True
        if isinstance(a, (tuple, list)) and _has_subclass(a):
            return True
    return False


def _describe(args, names) -> str:
    def one(a):
        if isinstance(a, Tensor):
            dev = "" if a.device.type == "cpu" else f" {a.device}"
            return f"{a.dtype.name}{fmt_shape(a.shape)}{dev}"
        if isinstance(a, (tuple, list)):
            inner = ", ".join(one(x) for x in a)
            return f"({inner})" if isinstance(a, tuple) else f"[{inner}]"
        r = repr(a)
        return r if len(r) <= 40 else r[:37] + "..."

    n = len(args) - len(names)
    parts = [one(a) for a in args[:n]]
    parts += [f"{k}={one(a)}" for k, a in zip(names, args[n:], strict=True)]
    return "(" + ", ".join(parts) + ")"


def _outputs_all_tensors(spec) -> bool:
    if spec == "T":
        return True
    kind, payload = spec
    return kind != "const" and all(_outputs_all_tensors(s) for s in payload)


class Specialization:
    """One input signature of an optimized function and what the JIT did with it."""

    __slots__ = (
        "label", "status", "calls", "eager_calls", "traced", "reason", "why", "generic", "call",
        "kernels", "trace_seconds", "compile_seconds", "param_ids", "pkey", "info", "warmup_runs",
        "timings",
        "dynamic",
    )  # fmt: skip

    def __init__(self, label: str, pkey) -> None:
        self.label = label
        self.pkey = pkey
        self.status = "warmup"  # -> "compiled" | "eager" | "invalidated"
        self.calls = 0  # calls counted toward the warmup
        self.warmup_runs = 0  # of those, the ones that ran eager
        self.eager_calls = 0  # calls run eager after falling back
        self.traced: TracedFunction | None = None
        self.reason: str | None = None  # why it runs eager / was invalidated
        self.why: str | None = None  # why it was re-specialized
        self.generic = False
        self.call = None
        self.kernels: list = []  # (ops, cache key, origin)
        self.trace_seconds = 0.0
        self.compile_seconds = 0.0
        self.param_ids: frozenset = frozenset()
        self.info: dict | None = None  # explain's view of a dropped plan
        self.timings: dict = {}  # trace, passes, compile, first run, check (seconds)
        self.dynamic: dict = {}  # input tensor index -> dims traced as symbolic sizes

    def __repr__(self) -> str:
        return f"<Specialization {self.label}: {self.status}>"


# ---- the executor ------------------------------------------------------------------------------
class Executor:
    """The state behind one optimized function or module: its specializations, the memo of
    exact signatures, what happened (for ``explain``). Calls come through ``_make_call``."""

    def __init__(self, fn, *, module: Module | None = None, warmup: int = 2,
                 strict: bool = False, max_specializations: int = 8,
                 warn: bool = True, dynamic: bool | None = None) -> None:  # fmt: skip
        if warmup < 0 or max_specializations < 0:
            raise ValueError("optimize: warmup and max_specializations must be >= 0")
        self._fn = fn
        self._module = module
        if module is not None:
            self._name = type(module).__name__
        else:
            self._name = getattr(fn, "__qualname__", getattr(fn, "__name__", type(fn).__name__))
        self.warmup = int(warmup)
        self.strict = bool(strict)
        self.max_specializations = int(max_specializations)
        self.warn = bool(warn)
        if dynamic not in (None, True, False):
            raise ValueError(f"optimize: dynamic must be True, False or None, got {dynamic!r}")
        self.dynamic = dynamic
        self._static_only = False  # a trace with dynamic dims failed: specialize from then on
        self._lock = threading.RLock()  # held while deciding and specializing
        self._fast: dict = {}  # exact signature -> Specialization (compiled or eager)
        self._by_pattern: dict = {}  # pattern signature -> latest Specialization
        self._invalidated: dict = {}  # pattern signature -> why its plan was dropped
        self._specs: list[Specialization] = []
        self._events: deque = deque(maxlen=1000)
        self._n_traces = 0
        self._warned: set = set()  # the reasons an OptimizeWarning was given for
        self._targets = {(): fn}
        self._prefixes: dict = {}  # (mode, keyword names) -> small int heading every key
        self._prefix_lock = threading.Lock()
        self._seen_modules: list = []  # modules called during this function's traces
        self._version = _Version.value
        self._refresh_mode()

    def _prefix_for(self, names: tuple) -> int:
        # an int hashes faster than the tuple of training flags it stands for
        k = (self._mode, names)
        p = self._prefixes.get(k)
        if p is None:
            with self._prefix_lock:  # two modes must never get the same number
                p = self._prefixes.setdefault(k, len(self._prefixes))
        return p

    def _call_slow(self, args, kwargs):
        names = ()
        if kwargs:  # keyword arguments go last, by name, and their names join the signature
            names = tuple(sorted(kwargs))
            args = (*args, *[kwargs[k] for k in names])
        if recording.TRACER is None and self._version == _Version.value:
            try:
                spec = self._fast.get(_key(args, self._prefix_for(names)))
            except TypeError:
                spec = None
            if spec is not None:
                try:
                    return spec.call(*args)
                except GuardError as e:
                    if spec.status == "eager":  # from the function itself
                        raise
                    return self._guard_error(spec, args, names, e)
        return self._slow(args, names)

    def __repr__(self) -> str:
        return f"<fusejit.optimize executor for {self._name}: {self._n_traces} specializations>"

    # ---- the slow path ----------------------------------------------------------------------
    def _target(self, names: tuple):
        """The callable taking keyword arguments (sorted by name) after the positional ones."""
        t = self._targets.get(names)
        if t is None:
            fn = self._fn

            def t(*a):
                k = len(a) - len(names)
                return fn(*a[:k], **dict(zip(names, a[k:], strict=True)))

            t.__name__ = getattr(fn, "__name__", "fn")
            self._targets[names] = t
        return t

    def _slow(self, args, names):
        gate = _GATE
        target = self._target(names)
        runner = runner_for(args)  # a Dask array: the function over its blocks
        if runner is not None:
            return runner(target, args)
        if recording.TRACER is not None and gate.writer in (None, threading.get_ident()):
            # inside a trace on this thread (ours or a direct fusejit.trace): run eagerly so
            # the ops are recorded into the enclosing trace
            return target(*args)
        nested = gate.depth() > 0
        # inside another optimized call, never wait for this function's lock: its holder may
        # be waiting on the gate for our caller to finish
        if not self._lock.acquire(blocking=not nested):
            return _gated(target, args)
        try:
            kind, value = self._decide(args, names, target, nested)
        finally:
            self._lock.release()
        if kind == "result":
            return value
        if kind == "call":
            return value.call(*args)
        return _gated(target, args)

    def _decide(self, args, names, target, nested):
        if self._version != _Version.value:
            self._revalidate()
        prefix = self._prefix_for(names)
        try:
            key = _key(args, prefix)
            pkey = _pattern_key(args, prefix)
            hash(key), hash(pkey)  # a dict argument fails here, not in a lookup below
        except TypeError as e:
            label = _describe(args, names)
            self._event("fallback", label, f"unhashable argument ({e})")
            if self.warn and "unhashable" not in self._warned:
                self._warned.add("unhashable")
                _warn(f"fusejit.optimize({self._name}): a call with {label} runs eager: an "
                      f"unhashable argument ({e}) cannot key a signature", None)  # fmt: skip
            return "eager", None
        spec = self._fast.get(key)
        if spec is not None:
            return "call", spec
        spec = self._by_pattern.get(pkey)
        why = None
        dynamic = None
        if spec is not None and spec.status == "compiled":
            _, tensors = tr.flatten_inputs(_plain(args))
            reason = spec.traced.plan.check(tensors)
            if reason is None:  # a shape-generic plan takes these sizes
                self._memo(key, spec)
                return "call", spec
            why = f"guard failure: {reason}"
            self._event("guard_failure", spec.label, reason)
            if self.dynamic is None:  # only sizes differ (same pattern): make them symbolic
                dynamic = _changed_dims(spec, tensors)
            spec = None
        elif spec is not None and spec.status == "eager":
            self._memo(key, spec)
            return "call", spec
        if spec is None:
            spec = Specialization(_describe(args, names) + self._mode_label(), pkey)
            spec.dynamic = dynamic or {}
            self._specs.append(spec)
            if why is None and pkey in self._invalidated:
                why = self._invalidated.pop(pkey)
            if why is not None:
                spec.calls = self.warmup  # hot already: re-specialize at once
            else:
                self._by_pattern[pkey] = spec
                why = self._new_signature_reason(args)
            spec.why = why
        spec.calls += 1
        if spec.calls <= self.warmup or nested:
            spec.warmup_runs += 1
            return "eager", None
        return self._specialize(spec, args, names, target)

    def _new_signature_reason(self, args) -> str | None:
        """For a signature after the first: which guard of the latest plan it fails."""
        for s in reversed(self._specs):
            if s.status == "compiled":
                _, tensors = tr.flatten_inputs(_plain(args))
                r = s.traced.plan.check(tensors)
                return f"new signature ({r})" if r else "new signature"
        return None

    def _specialize(self, spec, args, names, target):
        if self._n_traces >= self.max_specializations:
            reason = f"max_specializations={self.max_specializations} reached"
            if spec.why:
                reason += f" ({spec.why})"
            return self._give_up(spec, args, names, target, reason, limit=True)
        plain = _plain(args)
        _, tensors = tr.flatten_inputs(plain)
        if len({id(t) for t in tensors}) < len(tensors):
            # a trace needs distinct input tensors; this call aliases two, a later one may not
            spec.calls -= 1
            return "eager", None
        self._n_traces += 1
        seen: list = []
        # the default generators as the traced run finds them: the first compiled run draws
        # again what it drew (and an eager rerun of the call too)
        rng_before = generator_states({t.device for t in tensors})
        t0 = time.perf_counter()
        try:
            _GATE.begin_write()
            try:
                _Version.seen = seen
                with warnings.catch_warnings():
                    # value reads are recorded by the tracer and become the fallback reason
                    warnings.simplefilter("ignore", tr.TracerWarning)
                    dims = self._dynamic_dims(spec, tensors)
                    # a trace that succeeds, or one with fewer dynamic dims, or a static one
                    for attempt in range(_DYNAMIC_TRIES + 1):
                        try:
                            graph, in_spec, out_spec, eager_out, tracer = tr.capture(
                                target, plain, dims or None, train_steps=True
                            )
                            break
                        except tr.SymbolicShapeError as e:
                            _undo(e)
                            set_generator_states(rng_before)  # (the same draws again)
                            dims = _without(dims, e.rigid_dims)
                            if e.rigid_dims and dims and attempt < _DYNAMIC_TRIES:
                                # fix the sizes the op takes no other value of (a feature dim
                                # a weight fixes), keep the others dynamic (a batch dim)
                                self._event("fixed", spec.label, str(e))
                                spec.dynamic = dims
                                continue
                            self._event("static", spec.label, str(e))
                            spec.dynamic = {}
                            self._static_only = True  # (later sizes: not tried again)
                            graph, in_spec, out_spec, eager_out, tracer = tr.capture(
                                target, plain, train_steps=True
                            )
                            break
            finally:
                _Version.seen = None
                _GATE.end_write()
        except TraceError as e:
            _undo(e)  # (the call runs eagerly from where it started)
            set_generator_states(rng_before)
            return self._give_up(spec, args, names, target, f"cannot be traced: {e}",
                                 where=_user_line(e.__traceback__))  # fmt: skip
        trace_s = time.perf_counter() - t0
        rng_after = generator_states()
        self._watch(seen)
        name_captured(graph, module_tensor_names(self._watched()))
        result = tr.unflatten_outputs(out_spec, eager_out)
        reason = None
        where = None
        if tracer.not_yet is not None:
            # a training step that creates its optimizer's state: this call (run eagerly by
            # the trace) counts as a warm-up one, the next is traced
            self._n_traces -= 1
            spec.calls -= 1
            spec.warmup_runs += 1
            self._event("warmup", spec.label, tracer.not_yet)
            return "result", result
        if tracer.value_reads:
            what, where = tracer.value_reads[0]
            reason = (f"data-dependent Python control flow: reads a tensor's value ({what}) at "
                      f"{where}; a trace would freeze that decision")  # fmt: skip
        elif not _outputs_all_tensors(out_spec):
            reason = "returns a non-tensor value, which a trace would freeze as a constant"
        if reason is not None:
            return self._give_up(spec, args, names, target, reason, result=result, where=where)
        # state the traced (eager) run wrote (a BatchNorm's running statistics, a training
        # step's parameters, optimizer state and gradients): put back, so that the compiled
        # run below writes it once; the eager values again if that fails
        written = [(t, t._data.copy())
                   for t in tr.state_targets(tracer) + tr.host_state_targets(tracer)]  # fmt: skip
        grads = [(t, t.grad) for t, _ in tracer.grad_entry.values()]
        tr.restore_state(tracer)

        def eager_state():
            for t, data in written:
                t._data[...] = data
            for t, g in grads:
                tr._set_grad(t, g)
            set_generator_states(rng_after)

        try:
            verify(graph)
            # building the plan fetches or builds its kernels; holding the cache's lock makes
            # each origin this plan's to report. Not held for the first run below: that waits
            # on the gate, and a trace in progress may need the lock for an eager kernel.
            with CACHE.lock:
                before = set(CACHE.memory)
                traced = TracedFunction(target, graph, in_spec, out_spec, tracer)
                kernels = []
                for node, k in traced.plan.kernels:
                    ck = getattr(k, "key", None) or node.attr("kernel_key")
                    origin = "memory" if ck in before else CACHE.origin.get(ck, "compiled")
                    kernels.append(([n.op for n in node.blocks[0].nodes], ck, origin))
            t1 = time.perf_counter()
            # joint forward/backward graphs are recorded by a tracer: exclusive, as a trace
            traced.exclusive = _exclusive
            traced.prepare_joint(tensors)
            set_generator_states(rng_before)
            out = _gated(traced, plain)  # numba compiles on the first call
            first_run = time.perf_counter() - t1
        except Exception as e:  # eager is always right: fall back rather than fail the call
            why = f"compilation failed: {type(e).__name__}: {e}"
            if _wants_grad(graph, tensors):
                # the traced run's outputs have no autograd history: this call runs eagerly
                # again, from the state put back above
                set_generator_states(rng_before)
                return self._give_up(spec, args, names, target, why)
            eager_state()
            return self._give_up(spec, args, names, target, why, result=result)
        _, flat = tr.flatten_inputs((out,))
        t2 = time.perf_counter()
        problem = check_outputs(graph, tensors, flat, eager_out, 0)
        check_s = time.perf_counter() - t2
        if problem is None:
            problem = _state_differs(written)
            if problem is not None:  # (perhaps rounding an update amplified: float64 judges)
                problem = _state_not_rounding(graph, tensors, traced, tracer, written, problem)
        if problem is None:
            problem = _grads_differ(grads)
        if problem is not None:
            why = f"compiled result differs from eager: {problem}"
            if _wants_grad(graph, tensors):  # (as above: run eagerly again)
                tr.restore_state(tracer)
                set_generator_states(rng_before)
                return self._give_up(spec, args, names, target, why)
            eager_state()
            return self._give_up(spec, args, names, target, why, result=result)
        plan = traced.plan
        spec.traced = traced
        spec.status = "compiled"
        spec.generic = plan.shape_generic
        spec.kernels = kernels
        spec.trace_seconds = trace_s
        spec.compile_seconds = trace_s + traced.compile_seconds + first_run + check_s
        spec.timings = {**traced.timings, "trace": trace_s, "first run": first_run,
                        "check": check_s}  # fmt: skip
        current = self._module_tensor_ids()
        spec.param_ids = frozenset(id(t) for t in graph.captured if id(t) in current)
        gated = len(plan.kernels) < len(plan.steps)  # unfused ops run through dispatch
        spec.call = _compiled_caller(traced, gated, _has_subclass(args))
        prefix = self._prefix_for(names)  # the trace may have added modules to the mode
        spec.pkey = _pattern_key(args, prefix)
        self._by_pattern[spec.pkey] = spec
        self._memo(_key(args, prefix), spec)
        self._event("specialize", spec.label, spec.why, kernels=len(kernels),
                    seconds=round(spec.compile_seconds, 4))  # fmt: skip
        return "result", out

    def _give_up(self, spec, args, names, target, reason, *, result=None, limit=False,
                 where=None):  # fmt: skip
        """This signature runs eager from now on (or raise, with ``strict``). Unless quiet,
        an ``OptimizeWarning`` once per reason names ``where`` (``file:line: source``, the
        user's line that caused it) or else the line that called the optimized function."""
        msg = f"fusejit.optimize({self._name}): signature {spec.label} runs eager: {reason}"
        if self.strict:
            # the signature stays hot: each later call tries again and raises again
            self._event("error", spec.label, reason)
            spec.pkey = _pattern_key(args, self._prefix_for(names))
            self._by_pattern[spec.pkey] = spec
            raise TraceError(msg)
        spec.status = "eager"
        spec.reason = reason
        spec.call = _eager_caller(spec, target)
        prefix = self._prefix_for(names)
        spec.pkey = _pattern_key(args, prefix)
        self._by_pattern[spec.pkey] = spec
        self._memo(_key(args, prefix), spec)
        self._event("limit" if limit else "fallback", spec.label, reason)
        key = "limit" if limit else reason
        if self.warn and key not in self._warned:
            self._warned.add(key)
            if limit:
                msg += "; later new signatures run eager too"
            _warn(msg, where)
        if result is not None:
            spec.eager_calls += 1
            return "result", result
        return "call", spec

    def _guard_error(self, spec, args, names, err):
        if not self._lock.acquire(blocking=_GATE.depth() == 0):  # see _slow
            return _gated(self._target(names), args)
        try:
            if spec.status == "compiled":
                self._event("guard_failure", spec.label, str(err))
                self._invalidate(spec, f"guard failure: {err}")
        finally:
            self._lock.release()
        return self._slow(args, names)

    def _dynamic_dims(self, spec, tensors) -> dict:
        """Input tensor index -> the dims to trace as symbolic sizes (``dynamic``)."""
        if self.dynamic is False or self._static_only:
            return {}
        if self.dynamic is True:
            dims = {i: set(range(t.ndim)) for i, t in enumerate(tensors)}
        else:
            dims = {i: set(d) for i, d in spec.dynamic.items()}
        for i, t in enumerate(tensors):
            marked = _marked(t)
            if marked:
                dims.setdefault(i, set()).update(marked)
        spec.dynamic = {i: tuple(sorted(d)) for i, d in dims.items() if d}
        return spec.dynamic

    # ---- bookkeeping ------------------------------------------------------------------------
    def _memo(self, key, spec) -> None:
        if len(self._fast) >= _FAST_LIMIT:
            self._fast.clear()
        self._fast[key] = spec

    def _event(self, kind: str, label: str, detail, **extra) -> None:
        ev = {"event": kind, "signature": label, "detail": detail, **extra}
        self._events.append(ev)
        if debug_level() >= 1:
            log.info("fusejit.optimize(%s): %s %s%s", self._name, kind, label,
                     f": {detail}" if detail else "")  # fmt: skip

    def _watched(self) -> list:
        mods = list(self._module.modules()) if self._module is not None else []
        known = {id(m) for m in mods}
        for m in self._seen_modules:
            if id(m) not in known:
                known.add(id(m))
                mods.append(m)
        return mods

    def _watch(self, seen) -> None:
        known = {id(m) for m in self._seen_modules}
        for m in seen:
            if id(m) not in known:
                known.add(id(m))
                self._seen_modules.append(m)
        self._refresh_mode()

    def _refresh_mode(self) -> None:
        # training flags are part of every signature: a plan traced in eval mode has no dropout
        self._mode = tuple(m.training for m in self._watched())
        self._prefix = self._prefix_for(())

    def _mode_label(self) -> str:
        if not self._mode:
            return ""
        if all(self._mode):
            return " training"
        return " eval" if not any(self._mode) else " mixed train/eval"

    def _module_tensor_ids(self) -> set:
        ids = set()
        for m in self._watched():
            for store in (m._parameters, m._buffers):
                ids.update(id(t) for t in store.values() if t is not None)
        return ids

    def _revalidate(self) -> None:
        """Parameters were reassigned, moved or converted: drop plans reading stale ones."""
        version = _Version.value
        self._refresh_mode()
        current = self._module_tensor_ids()
        for spec in self._specs:
            if spec.status != "compiled":
                continue
            problem = _stale(spec, current)
            if problem is not None:
                self._event("invalidate", spec.label, problem)
                self._invalidate(spec, problem)
        # last: the lock-free fast path trusts its memo only once this matches
        self._version = version

    def _invalidate(self, spec, why: str) -> None:
        spec.status = "invalidated"
        spec.reason = why
        # keep what explain shows, let go of the plan and the stale tensors it holds
        spec.info = graph_info(spec.traced, spec.kernels)
        spec.traced = None
        for k in [k for k, s in self._fast.items() if s is spec]:
            del self._fast[k]
        for k in [k for k, s in self._by_pattern.items() if s is spec]:
            del self._by_pattern[k]
            self._invalidated[k] = why


def _changed_dims(spec, tensors) -> dict:
    """The dims whose sizes differ from those ``spec`` was traced with, joined with those it
    already traced as symbolic: what the next trace makes symbolic."""
    dims = {i: set(d) for i, d in spec.dynamic.items()}
    plan = spec.traced.plan
    for i, (t, guard) in enumerate(zip(tensors, plan.guards)):
        shape = guard[4]
        if isinstance(t, Tensor) and t.ndim == len(shape):
            for k, (a, b) in enumerate(zip(t._data.shape, shape)):
                if a != int(b):
                    dims.setdefault(i, set()).add(k)
    return {i: tuple(sorted(d)) for i, d in dims.items() if d}


# tensors given to mark_dynamic: id -> (weak reference, dims)
_MARKED: dict = {}


def _marked(t) -> set:
    entry = _MARKED.get(id(t))
    if entry is None or entry[0]() is not t:
        return set()
    return entry[1]


def mark_dynamic(t: Tensor, dim) -> None:
    """Make dim ``dim`` (an int or a sequence of ints) of ``t`` a symbolic size when a function
    that ``fusejit.optimize`` wraps is traced with ``t`` as an input: the graph then serves every
    size of that dim (``torch._dynamo.mark_dynamic``). Sizes 0 and 1 stay specialized.

    >>> import fusejit
    >>> x = fusejit.ones(2, 5)
    >>> fusejit.mark_dynamic(x, 1)
    """
    import weakref

    from fusejit.base.shapes import norm_dim

    if not isinstance(t, Tensor):
        raise TypeError(f"mark_dynamic: expected a tensor, got {type(t).__name__}")
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    dims = {norm_dim("mark_dynamic", d, t.ndim) for d in dims}
    key = id(t)
    ref = weakref.ref(t, lambda _r, k=key: _MARKED.pop(k, None))
    _MARKED[key] = (ref, _marked(t) | dims)


# frames in these folders are the library's own; a warning names the first frame outside them
# (the models in fusejit/bench are written as user code)
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_USER_DIRS = (os.path.join(_PKG_DIR, "bench") + os.sep,)


def _is_user(filename: str) -> bool:
    return not filename.startswith(_PKG_DIR + os.sep) or filename.startswith(_USER_DIRS)


def _fmt_where(filename: str, lineno: int) -> str:
    return f"{filename}:{lineno}: {linecache.getline(filename, lineno).strip()}"


def _user_line(tb) -> str | None:
    """The innermost user frame of a traceback, as ``file:line: source``."""
    where = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if _is_user(code.co_filename):
            where = _fmt_where(code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return where


_WHERE = re.compile(r"(.+?):(\d+): ")


def _warn(msg: str, where: str | None) -> None:
    """An ``OptimizeWarning`` attributed to ``where`` (``file:line: source``) or else to the
    first user frame on the stack (the line that called the optimized function)."""
    m = _WHERE.match(where or "")
    if m is not None:
        filename, lineno = m.group(1), int(m.group(2))
        if where not in msg:
            msg += f" (at {where})"
        warnings.warn_explicit(msg, OptimizeWarning, filename, lineno,
                               module=_module_name(filename))  # fmt: skip
        return
    f = sys._getframe(1)
    while f is not None and not _is_user(f.f_code.co_filename):
        f = f.f_back
    if f is None:
        warnings.warn(msg, OptimizeWarning, stacklevel=2)
        return
    where = _fmt_where(f.f_code.co_filename, f.f_lineno)
    warnings.warn_explicit(f"{msg} (called at {where})", OptimizeWarning, f.f_code.co_filename,
                           f.f_lineno, module=f.f_globals.get("__name__"),
                           module_globals=f.f_globals)  # fmt: skip


def _module_name(filename: str) -> str:
    for name, mod in list(sys.modules.items()):
        if getattr(mod, "__file__", None) == filename:
            return name
    return os.path.splitext(os.path.basename(filename))[0]


def _stale(spec, current_ids) -> str | None:
    g = spec.traced.graph
    for v, t in zip(g.block.params[g.n_inputs :], g.captured, strict=True):
        ty = v.type
        if t._dtype is not ty.dtype or t._device is not ty.device or t._data.shape != ty.shape:
            return (f"a captured tensor traced as {ty} is now {t._dtype.name}"
                    f"{fmt_shape(t.shape)} on {t._device}")  # fmt: skip
        if id(t) in spec.param_ids and id(t) not in current_ids:
            return "a parameter it read was replaced by another tensor object"
    return None


def _differing(written):
    """``(index, tensor, compiled value, eager value)`` (host arrays) of each buffer of
    ``written`` whose compiled value differs from eager's beyond float32 rounding of a few ops
    (any difference for integers)."""
    for j, (t, want) in enumerate(written):
        got = t._data
        if hasattr(got, "get"):  # (cupy)
            got, want = got.get(), want.get()
        if want.dtype.kind in "fc":
            ok = np.allclose(got, want, rtol=1e-4, atol=1e-6, equal_nan=True)
        else:
            ok = np.array_equal(got, want)
        if not ok:
            yield j, t, got, want


def _state_differs(written) -> str | None:
    """Whether the state the compiled run wrote differs from what the eager run wrote, as a
    reason, or None."""
    for _, _, _, want in _differing(written):
        return f"the buffer of shape {list(want.shape)} written in place"
    return None


def _state_not_rounding(graph, tensors, traced, tracer, written, problem: str) -> str | None:
    """``problem`` (the state a compiled run wrote differs from eager's), or None where every
    buffer that differs is explained by rounding: at most ``ROUNDING_FACTOR`` times as far from
    the float64 evaluation of the graph as eager's (``check.rounding_explains``). An update can
    amplify rounding without bound: AdamW's first step moves a parameter whose gradient is zero
    up to rounding (a convolution's bias before a BatchNorm) by up to its learning rate, in a
    direction the rounding decides, in eager and compiled runs alike."""
    n_state = len(traced.state)
    if not n_state:
        return problem
    # the graph reads the state as the call found it: put it back for the float64 run (the
    # compiled run's values are what is judged, kept aside meanwhile)
    saved = [(t, t._data.copy(), before) for t, before in tracer.state_before.values()]
    try:
        for t, _, before in saved:
            t._data[...] = before
        reference = float64_reference(graph, tensors)
    except Exception:  # an op without float64: the plain comparison stands
        return problem
    finally:
        for t, now, _ in saved:
            t._data[...] = now
    scale = input_scale(graph, tensors)
    for j, t, got, want in _differing(written):
        if j >= n_state or want.dtype.kind not in "fc":  # (host state, integers: exact)
            return problem
        exact = reference[traced._n_out + j]
        eager = Tensor._wrap(want, t._dtype, CPU)
        compiled = Tensor._wrap(got, t._dtype, CPU)
        ok, how = rounding_explains(compiled, eager, exact, TOL[t._dtype.name], scale)
        if not ok:
            return f"{problem}; {how}" if how else problem
    return None


def _undo(err) -> None:
    """Put back the state a trace that stopped with ``err`` wrote (``tracer.capture``)."""
    tracer = getattr(err, "tracer", None)
    if tracer is not None:
        tr.restore_state(tracer)


def _wants_grad(graph, tensors) -> bool:
    """Whether a call's outputs take gradients (grad mode on, an input or captured tensor
    requiring grad; not a whole training step, whose backward ran inside): the traced run's
    outputs, recorded without autograd, cannot stand for them."""
    if not MODE.enabled or graph.notes.get("train_step") is not None:
        return False
    for t in (*tensors, *graph.captured):
        info = getattr(t, "_ag", None)
        if info is not None and info.requires_grad:
            return True
    return False


def _grads_differ(grads) -> str | None:
    """Whether the ``.grad`` the compiled run of a training step left differs from the eager
    run's, as a reason, or None."""
    for t, want in grads:
        got = t.grad
        if (got is None) != (want is None):
            return f"the .grad of a tensor of shape {fmt_shape(t.shape)} (None or not)"
        if got is not None and _state_differs([(got, want._data)]) is not None:
            return f"the .grad of a tensor of shape {fmt_shape(t.shape)}"
    return None


# retraces with dynamic dims, each fixing the sizes an op refused, before a static trace
_DYNAMIC_TRIES = 4


def _without(dims: dict, fixed) -> dict:
    """``dims`` (input index -> dynamic dims) less the (input, dim) pairs of ``fixed``."""
    out = {}
    for i, ds in dims.items():
        keep = tuple(d for d in ds if (i, d) not in fixed)
        if keep:
            out[i] = keep
    return out


def _compiled_caller(traced: TracedFunction, gated: bool, convert: bool):
    if not gated and not convert:
        return traced

    def call(*args):
        if convert:
            args = _plain(args)
        if not gated:
            return traced(*args)
        _GATE.enter()
        try:
            return traced(*args)
        finally:
            _GATE.exit()

    return call


def _eager_caller(spec: Specialization, target):
    def call(*args):
        spec.eager_calls += 1
        _GATE.enter()
        try:
            return target(*args)
        finally:
            _GATE.exit()

    return call


def _make_call(ex: Executor):
    """The optimized callable: one key, one dict lookup, then the plan. A closure rather than
    a class with ``__call__``: that saves a frame on every call."""
    fast = ex._fast
    slow = ex._slow

    def optimized(*args, **kwargs):
        if kwargs or recording.TRACER is not None or ex._version != _Version.value:
            return ex._call_slow(args, kwargs)
        if len(args) == 1 and args[0].__class__ is Tensor:  # _key, inlined for one tensor
            a = args[0]
            spec = fast.get((ex._prefix, a._dtype, id(a._device), a._data.shape))
        else:
            try:
                spec = fast.get(_key(args, ex._prefix))
            except TypeError:  # an unhashable argument
                spec = None
        if spec is None:
            return slow(args, ())
        try:
            return spec.call(*args)
        except GuardError as e:
            if spec.status == "eager":  # from the function itself
                raise
            return ex._guard_error(spec, args, (), e)

    optimized._fusejit_executor = ex
    return optimized


# ---- modules -----------------------------------------------------------------------------------
class OptimizedModule(Module):
    """A module whose calls go through the profiling executor. It shares the wrapped module's
    parameters, buffers and submodules (``state_dict`` keys are the same) and forwards other
    attribute reads and writes to it."""

    def __init__(self, module: Module, executor: Executor) -> None:
        d = self.__dict__
        d["_orig_mod"] = module
        d["_fusejit_executor"] = executor
        d["_fusejit_call"] = _make_call(executor)
        for k in ("_parameters", "_buffers", "_modules", "_non_persistent"):
            d[k] = module.__dict__[k]

    @property
    def training(self) -> bool:  # type: ignore[override]
        return self._orig_mod.training

    def __call__(self, *args, **kwargs):
        return self._fusejit_call(*args, **kwargs)

    forward = __call__

    def __getattr__(self, name: str):
        d = self.__dict__
        if "_orig_mod" not in d:  # half-built (copy, unpickling)
            raise AttributeError(name)
        return getattr(d["_orig_mod"], name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._orig_mod, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._orig_mod, name)

    def train(self, mode: bool = True) -> OptimizedModule:
        self._orig_mod.train(mode)
        return self

    def to(self, *args, **kwargs) -> OptimizedModule:
        self._orig_mod.to(*args, **kwargs)
        return self

    def __repr__(self) -> str:
        inner = repr(self._orig_mod).replace("\n", "\n  ")
        return f"OptimizedModule(\n  {inner}\n)"


def optimize(model_or_fn=None, *, warmup: int = 2, strict: bool = False,
             max_specializations: int = 8, warn: bool = True,
             dynamic: bool | None = None):  # fmt: skip
    """Wrap a function or ``nn.Module`` so that its hot input signatures run compiled.

    The first ``warmup`` calls of each signature run eager; the next one is traced and
    compiled, and later calls run the compiled plan. Up to ``max_specializations`` traces
    are made per function; then new signatures run eager. What cannot be traced runs eager,
    or raises ``TraceError`` with ``strict=True``. Running eager for a reason other than
    warm-up gives an ``OptimizeWarning`` once per reason, naming the source line that caused
    it (``warn=False``, or a warnings filter, keeps quiet).
    ``fusejit.explain`` reports what happened. Works as a decorator, with or without options.

    ``dynamic`` (as ``torch.compile``'s): None (automatic) compiles the first hot signature for
    its exact sizes and, when a later call fails the guards only because sizes changed, traces
    once more with those dims as symbolic sizes (``s0``, ...), a graph that then serves every
    size they take (within the guards on what it assumed, e.g. ``T <= 256`` from a slice);
    True makes every dim of size 2 or more symbolic from the first trace (a dim an op fixes,
    as a weight fixes a Linear's features, is then traced at its size); False always
    specializes. ``fusejit.mark_dynamic(t, dim)`` makes one dim symbolic from the start.

    >>> import fusejit
    >>> @fusejit.optimize(warmup=1)
    ... def f(x):
    ...     return (x * 2 + 1).relu()
    >>> [f(fusejit.ones(3)).tolist() for _ in range(3)][-1]
    [3.0, 3.0, 3.0]
    """
    if model_or_fn is None:
        return functools.partial(optimize, warmup=warmup, strict=strict,
                                 max_specializations=max_specializations, warn=warn,
                                 dynamic=dynamic)  # fmt: skip
    opts = dict(warmup=warmup, strict=strict, max_specializations=max_specializations, warn=warn,
                dynamic=dynamic)  # fmt: skip
    if isinstance(model_or_fn, OptimizedModule):
        model_or_fn = model_or_fn._orig_mod
    if isinstance(model_or_fn, Module):
        ex = Executor(model_or_fn.forward, module=model_or_fn, **opts)
        return OptimizedModule(model_or_fn, ex)
    ex = getattr(model_or_fn, "_fusejit_executor", None)
    if isinstance(ex, Executor):  # re-optimizing: start over from the original function
        model_or_fn = ex._fn
    if not callable(model_or_fn):
        raise TypeError(f"optimize: expected a function or a Module, got {model_or_fn!r}")
    fn = _make_call(Executor(model_or_fn, **opts))
    functools.update_wrapper(fn, model_or_fn, updated=())
    return fn
