"""Control flow of a scripted function (``FunctionCompiler``'s ``ControlFlowMixin``): ``if``
on a run-time condition becomes an ``if`` node whose branches meet in its outputs; ``for`` over
a range or a tensor and ``while`` become a ``loop`` node with the loop-carried variables as
block parameters; ``for`` over a list, tuple or module container is unrolled. Also the helpers
that close a block over the values it reads from outside."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace

from fusejit.base import dtypes as dt
from fusejit.eager.tensor import Tensor, tensor
from fusejit.ir.control import scalar_type
from fusejit.ir.graph import Block, Const, Node, Value
from fusejit.jit.scripting.calls import _GROW_HINT, Grow
from fusejit.jit.scripting.source import _assigned_names
from fusejit.jit.scripting.values import (
    _MISSING,
    Dyn,
    DynRange,
    Enumerate,
    LoopList,
    Undef,
    Zip,
    _describe,
    _flat,
    _kind_of,
    _rebuild,
    _spec,
    _type_of,
)
from fusejit.nn import ModuleList, Sequential


class _Retry(Exception):
    def __init__(self, extra) -> None:
        self.extra = extra


@dataclass
class _Join:
    """Where the two branches of a data-dependent ``if`` meet: the condition, each branch's
    nodes, and the values each branch hands to the ``if`` node's outputs (collected)."""

    cond: Dyn
    nodes1: list
    nodes2: list
    outs1: list = field(default_factory=list)
    outs2: list = field(default_factory=list)


class ControlFlowMixin:
    """``if``, ``for`` and ``while``: constant conditions fold, run-time ones become nodes."""

    def if_stmt(self, s) -> None:
        c = self.truth(self.expr(s.test), s.test)
        if isinstance(c, bool):  # known when compiling: only the branch taken exists
            self.block(s.body if c else s.orelse)
            return
        self.dyn_if(c, lambda: self.block(s.body), lambda: self.block(s.orelse), s)

    def compile_region(self, fn):
        """Run ``fn`` (which compiles statements) into a new node list; returns it."""
        saved = self.cc.tr.nodes
        nodes: list = []
        self.cc.tr.nodes = nodes
        self.dynamic += 1
        try:
            fn()
        finally:
            self.dynamic -= 1
            self.cc.tr.nodes = saved
        return nodes

    def dyn_if(self, cond: Dyn, then_fn, else_fn, node) -> None:
        before = dict(self.env)
        branches = []
        for f in (then_fn, else_fn):
            self.env = dict(before)
            nodes = self.compile_region(f)
            branches.append((nodes, self.env))
        self.env = dict(before)
        (n1, e1), (n2, e2) = branches
        # a branch that always fails an assert hands on nothing: the other side's values
        raised = (e1.get("$raise") is True, e2.get("$raise") is True)
        names = [k for k in dict.fromkeys(list(e1) + list(e2))
                 if k != "$raise" and not all(raised)
                 and (e1.get(k, _MISSING) is not before.get(k, _MISSING)
                      or e2.get(k, _MISSING) is not before.get(k, _MISSING))]  # fmt: skip
        if all(raised):
            self.env["$raise"] = True
        line = self.src.start + getattr(node, "lineno", 1) - 1
        merged_specs = []  # (name, spec, leaves1, leaves2)
        for k in names:
            a, b = e1.get(k, _MISSING), e2.get(k, _MISSING)
            if raised[0] and b is not _MISSING and not isinstance(b, Undef):
                a = b if b is before.get(k, _MISSING) else self.dummy_into(n1, b)
            elif raised[1] and a is not _MISSING and not isinstance(a, Undef):
                b = a if a is before.get(k, _MISSING) else self.dummy_into(n2, a)
            if k == "$retval":  # a return on one side only: the other side's value is unused
                if a is _MISSING or isinstance(a, Undef):
                    a = self.dummy_into(n1, b)
                if b is _MISSING or isinstance(b, Undef):
                    b = self.dummy_into(n2, a)
            if a is _MISSING or b is _MISSING or isinstance(a, Undef) or isinstance(b, Undef):
                self.env[k] = Undef(f"is defined only in one branch of the `if` at line {line}")
                continue
            if k in ("$brk", "$cont", "$ret") and a is False and b is False:
                self.env[k] = False
                continue
            merged_specs.append((k, a, b))
        # leaves that differ between the branches become outputs of the if node
        join = _Join(cond, n1, n2)
        rebuild = [(k, self.merge_spec(k, a, b, node, join)) for k, a, b in merged_specs]
        outs1, outs2 = join.outs1, join.outs2
        blk1, caps1 = _close(n1, [self.cc.ref(v) for v in outs1], ())
        blk2, caps2 = _close(n2, [self.cc.ref(v) for v in outs2], ())
        caps = list(dict.fromkeys(caps1 + caps2))
        blk1 = _with_params(blk1, caps1, caps)
        blk2 = _with_params(blk2, caps2, caps)
        out_vals = [Value(self.cc.ref(v).type) for v in outs1]
        self.cc.tr.nodes.append(Node("if", (self.cc.ref(cond), *caps), (), tuple(out_vals),
                                     (blk1, blk2)))  # fmt: skip
        new = [self.cc.fresh(v, o) for v, o in zip(outs1, out_vals)]
        for v2, nv in zip(outs2, new):  # (the example is the then-branch's data)
            if isinstance(v2, Tensor) and self.is_external(v2):
                self.external.append(nv)  # the else branch's value may be an argument's
        it = iter(new)
        for k, spec in rebuild:
            self.env[k] = _rebuild(spec, it)

    def merge_spec(self, name, a, b, node, join: _Join):
        """The structure of a variable after an if; collects the leaves that become outputs."""
        label = {"$retval": "the return value", "$ifexp": "the value of `a if c else b`"}.get(
            name, f"variable `{name}`"
        )
        if isinstance(a, LoopList) and isinstance(b, LoopList) and a.key == b.key:
            return ("looplist", a.n, a.key, self.merge_spec(name, a.buf, b.buf, node, join))
        if isinstance(a, LoopList) or isinstance(b, LoopList):
            if a is b:
                return ("same", a)
            raise self.err(node, f"{label} is a list grown in a loop in one branch only",
                           "grow it in the loop itself, outside the branch")  # fmt: skip
        if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
            if type(a) is not type(b) or len(a) != len(b):
                raise self.err(
                    node,
                    f"{label} is a {_describe(a)} in one branch and a {_describe(b)} in the other",
                    "the same type on both branches",
                )
            return (type(a), [self.merge_spec(name, x, y, node, join) for x, y in zip(a, b)])
        if a is b:
            return ("same", a)
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
                raise self.err(
                    node,
                    f"{label} is a {_describe(a)} in one branch and a {_describe(b)} in the other",
                    "the same type on both branches",
                )
            if (a.dtype, tuple(a.shape), a.device) != (b.dtype, tuple(b.shape), b.device):
                raise self.err(node, f"{label} has type {_describe(a)} in one branch and "
                               f"{_describe(b)} in the other (types must match where branches "
                               "meet)", "cast or reshape so both branches give one dtype and "
                               "shape")  # fmt: skip
            join.outs1.append(a)
            join.outs2.append(b)
            return ("out",)
        ka, kb = _kind_of(a), _kind_of(b)
        if ka != kb or ka not in ("int", "float", "bool"):
            if not isinstance(a, (Dyn,)) and not isinstance(b, Dyn) and a == b and ka == kb:
                return ("same", a)
            raise self.err(
                node,
                f"{label} is a {ka} in one branch and a {kb} in the other",
                "one type on both branches (convert with int() / float())",
            )
        if not isinstance(a, Dyn) and not isinstance(b, Dyn):
            if a == b:
                return ("same", a)
            if ka == "bool":  # True on one side, False on the other: the condition itself
                c = join.cond
                return ("same", c if a else Dyn(c.t.logical_not(), "bool"))
        join.outs1.append(self.into(join.nodes1, lambda: self.cc.materialize(a, ka)))
        join.outs2.append(self.into(join.nodes2, lambda: self.cc.materialize(b, kb)))
        return ("out",)

    def into(self, nodes, fn):
        saved = self.cc.tr.nodes
        self.cc.tr.nodes = nodes
        try:
            return fn()
        finally:
            self.cc.tr.nodes = saved

    def dummy_into(self, nodes, like):
        return self.into(nodes, lambda: self.dummy(like))

    def dummy(self, like):
        """A value of ``like``'s type that is never read (the other side of a return)."""
        if isinstance(like, Tensor):
            z = self.cc.const_tensor(0, like.dtype) if like.device == self.cc.dev else None
            if z is None:
                z = tensor(0, dtype=like.dtype, device=like.device)
            return z.expand(*like.shape) if like.shape else z.clone()
        if isinstance(like, Dyn):
            return self.cc.materialize({"int": 0, "float": 0.0, "bool": False}[like.kind],
                                       like.kind)  # fmt: skip
        if isinstance(like, LoopList):
            return LoopList(self.dummy(like.buf), like.n, like.key)
        if isinstance(like, (tuple, list)):
            return type(like)(self.dummy(x) for x in like)
        return like

    def for_stmt(self, s) -> None:
        if s.orelse:
            raise self.err(s, "`for ... else` is not supported", "a flag variable")
        it = s.iter
        seq = self.loop_seq(self.expr(it))
        if isinstance(seq, range):
            return self.range_loop(s, [seq.start, seq.stop, seq.step])
        if isinstance(seq, DynRange):
            return self.range_loop(s, seq.args)
        if isinstance(seq, Tensor):
            if not seq.shape:
                raise self.err(it, "iteration over a 0-d tensor")
            return self.range_loop(s, [seq.shape[0]], over=seq)
        if isinstance(seq, (Enumerate, Zip)) and not self.has_static(seq):
            # over ranges and tensors only: a loop node, each item picked by the loop index
            trip = self.seq_length(seq, it)
            if isinstance(trip, int) and trip <= 0:
                return None
            return self.dyn_loop(s, trip, True, s.body, lambda i: self.seq_item(seq, i, it),
                                 None)  # fmt: skip
        return self.unrolled(s, self.static_items(seq, it))

    def loop_seq(self, seq):
        """``seq`` with each list grown in a loop as its buffer (a loop over its rows)."""
        if isinstance(seq, LoopList):
            return seq.buf
        if isinstance(seq, Enumerate):
            return Enumerate(self.loop_seq(seq.seq), seq.start)
        if isinstance(seq, Zip):
            return Zip([self.loop_seq(q) for q in seq.seqs])
        return seq

    def has_static(self, seq) -> bool:
        """Whether ``seq`` holds a list, tuple or module container (so it is unrolled)."""
        if isinstance(seq, Enumerate):
            return self.has_static(seq.seq)
        if isinstance(seq, Zip):
            return any(self.has_static(q) for q in seq.seqs)
        return not isinstance(seq, (range, DynRange, Tensor))

    def seq_length(self, seq, node):
        """The number of items of a range, tensor, enumerate or zip (int or run-time int)."""
        if isinstance(seq, (range, list, tuple)):
            return len(seq)
        if isinstance(seq, (ModuleList, Sequential)):
            return len(seq._modules)
        if isinstance(seq, Tensor):
            if not seq.shape:
                raise self.err(node, "iteration over a 0-d tensor")
            return seq.shape[0]
        if isinstance(seq, DynRange):
            return self.range_trip(seq.args, node)
        if isinstance(seq, Enumerate):
            return self.seq_length(seq.seq, node)
        if isinstance(seq, Zip):
            out = None
            for q in seq.seqs:
                n = self.seq_length(q, node)
                if out is None:
                    out = n
                elif isinstance(out, int) and isinstance(n, int):
                    out = min(out, n)
                else:
                    out = self.scalar_builtin(min, [out, n], node)
            return out
        raise self.err(node, f"cannot iterate over a {_kind_of(seq)}",
                       "range(...), a tensor, a list or tuple, or a ModuleList")  # fmt: skip

    def seq_item(self, seq, i: Dyn, node):
        """Item ``i`` (the loop index) of a range, tensor, enumerate or zip."""
        if isinstance(seq, Tensor):
            return self.select(seq, i, 0, node)
        if isinstance(seq, (range, DynRange)):
            start, _stop, step = self.range_args(seq.args if isinstance(seq, DynRange) else
                                                 [seq.start, seq.stop, seq.step])  # fmt: skip
            v = i
            if step != 1:
                v = self.binop(ast.Mult, v, step, node)
            if not (isinstance(start, int) and start == 0):
                v = self.binop(ast.Add, v, start, node)
            return v
        if isinstance(seq, Enumerate):
            k = i if seq.start == 0 else self.binop(ast.Add, i, seq.start, node)
            return (k, self.seq_item(seq.seq, i, node))
        if isinstance(seq, Zip):
            return tuple(self.seq_item(q, i, node) for q in seq.seqs)
        raise self.err(node, f"cannot iterate over a {_kind_of(seq)}")  # pragma: no cover

    def static_items(self, seq, node):
        if isinstance(seq, (ModuleList, Sequential)):
            return list(seq._modules.values())
        if isinstance(seq, (list, tuple, range)):
            return list(seq)
        if isinstance(seq, Tensor):
            if not seq.shape:
                raise self.err(node, "iteration over a 0-d tensor")
            return [seq[k] for k in range(seq.shape[0])]
        if isinstance(seq, Enumerate):
            return [(seq.start + k, x) for k, x in enumerate(self.static_items(seq.seq, node))]
        if isinstance(seq, Zip):
            return list(zip(*[self.static_items(q, node) for q in seq.seqs]))
        if isinstance(seq, DynRange):
            raise self.err(node, "a range with a run-time bound cannot be zipped with a list",
                           "bounds known when compiling (literals, .shape sizes)")  # fmt: skip
        raise self.err(node, f"cannot iterate over a {_kind_of(seq)}",
                       "range(...), a tensor, a list or tuple, or a ModuleList")  # fmt: skip

    def unrolled(self, s, items) -> None:
        """``for x in <list>``: the body once per item, compiled in sequence."""
        saved = {f: self.env.get(f, _MISSING) for f in ("$brk", "$cont")}
        self.env["$brk"] = False
        self.loop_depth += 1
        try:
            self._unrolled(s, items)
        finally:
            self.loop_depth -= 1
        for f, v in saved.items():
            if v is _MISSING:
                self.env.pop(f, None)
            else:
                self.env[f] = v

    def _unrolled(self, s, items) -> None:
        for k, item in enumerate(items):
            self.env["$cont"] = False
            self.assign(s.target, item, s)
            self.block(s.body)
            self.env["$cont"] = False
            brk = self.exit_flag()
            if brk is True:
                return
            if isinstance(brk, Dyn) and k + 1 < len(items):
                go = Dyn(brk.t.logical_not(), "bool")
                self.dyn_if(go, lambda r=items[k + 1 :]: self._unrolled(s, r), lambda: None, s)
                return

    def range_args(self, args) -> tuple:
        return (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]

    def range_trip(self, args, node):
        """The trip count of ``range(*args)`` (an int, or a run-time int)."""
        start, stop, step = self.range_args(args)
        if isinstance(step, Dyn):
            raise self.err(node, "range() step must be known when compiling", "a literal")
        if step == 0:
            raise self.err(node, "range() step must not be zero")
        if not isinstance(start, Dyn) and not isinstance(stop, Dyn):
            return len(range(start, stop, step))
        if isinstance(start, int) and start == 0 and step == 1:
            # a negative stop runs no iteration; clamped here, since a negative trip count of
            # a loop node means "no bound" (a while loop)
            return self.scalar_builtin(max, [stop, 0], node)
        # trip = max(0, ceil((stop - start) / step)), in int64
        span = self.binop(ast.Sub, stop, start, node)
        adj = self.binop(ast.Add, span, step - 1 if step > 0 else step + 1, node)
        trip = self.binop(ast.FloorDiv, adj, step, node)
        return self.scalar_builtin(max, [trip, 0], node)

    def range_loop(self, s, args, over: Tensor | None = None) -> None:
        trip = self.range_trip(args, s.iter)
        if isinstance(trip, int) and trip == 0:
            return
        seq = over if over is not None else DynRange(list(args))
        self.dyn_loop(s, trip, True, s.body, lambda i: self.seq_item(seq, i, s.iter), None)

    def while_stmt(self, s) -> None:
        if s.orelse:
            raise self.err(s, "`while ... else` is not supported", "a flag variable")
        c = self.truth(self.expr(s.test), s.test)
        if c is False:
            return
        self.dyn_loop(s, -1, c, s.body, None, s.test)

    def dyn_loop(self, s, trip, cond0, body, target, test) -> None:
        """A ``loop`` node: the body compiled once with its loop-carried variables as block
        parameters. Variables first bound inside the loop are not defined after it."""
        assigned = _assigned_names(body) | (_assigned_names([ast.Expr(test)]) if test else set())
        tgt_names = _assigned_names([ast.Assign(targets=[s.target], value=ast.Constant(0))]) \
            if isinstance(s, ast.For) else set()  # fmt: skip
        before = dict(self.env)
        carried = [
            k
            for k in before
            if k in assigned
            and k not in tgt_names
            and not isinstance(before[k], Undef)
            and k not in ("$brk", "$cont")
        ]
        if "$ret" in assigned and "$ret" not in carried:
            carried.append("$ret")
        line = self.src.start + s.lineno - 1
        keys: set = set()  # the lists this loop grows
        for _attempt in range(3 + len(before)):
            try:
                new_carried = self._dyn_loop(s, trip, cond0, body, target, test, before,
                                             carried, line, keys)  # fmt: skip
            except _Retry as r:
                self.env = dict(before)
                for k, v in r.extra.items():
                    before[k] = v
                    self.env[k] = v
                    carried.append(k)
                continue
            except Grow as g:
                self.env = dict(before)
                acc = self.loop_list(g, trip, before, line)
                keys.add(acc.key)
                for k, v in list(before.items()):
                    if v is g.lst:
                        before[k] = acc
                        self.env[k] = acc
                        carried.append(k)
                continue
            return new_carried
        raise self.err(s, "loop-carried values did not settle")  # pragma: no cover

    def loop_list(self, g: Grow, trip, before: dict, line: int) -> LoopList:
        """The buffer a loop grows a list in: one row per iteration, so the loop's trip
        count must be known when compiling; it starts as zeros broadcast (nothing stored)."""
        names = [k for k, v in before.items() if v is g.lst]
        if len(names) != 1:
            raise self.err(g.node, "only a list held by one local variable can grow in a loop"
                           + (f" (it is bound to {', '.join(names)})" if names else ""),
                           "one name per list")  # fmt: skip
        if not isinstance(trip, int) or trip < 0:
            raise self.err(g.node, f"the list grows in the loop at line {line}, whose number "
                           "of iterations is known only at run time (a `while`, or a range "
                           "with a run-time bound)", _GROW_HINT)  # fmt: skip
        if g.lst:
            raise self.err(g.node, "a list that grows in a loop must be empty before it",
                           "start from [] and cat the items before it with the result")  # fmt: skip
        v = g.value
        zero = tensor(0, dtype=v.dtype, device=v.device)
        return LoopList(zero.expand(trip, *v.shape), trip, object())

    def _dyn_loop(self, s, trip, cond0, body, target, test, before, carried, line,
                  keys) -> None:  # fmt: skip
        cc = self.cc
        # constants that the loop may change become run-time values first
        init = {}
        for k in carried:
            v = self.env[k]
            init[k] = self.dynamic_leaves(v)
            self.env[k] = init[k]
        init_leaves = []
        specs = {k: _spec(init[k], init_leaves) for k in carried}
        outer_env = dict(self.env)
        idx_t = cc.const_tensor(0, dt.int64)
        idx_v = Value(scalar_type("int", self.cc.dev), "i")
        cc.bind(idx_t, idx_v)
        idx = Dyn(idx_t, "int")
        params = [cc.fresh(x) for x in init_leaves]
        pit = iter(params)
        for k in carried:
            self.env[k] = _rebuild(specs[k], pit)
        self.env["$brk"] = False
        self.env["$cont"] = False
        self.loop_depth += 1
        result: dict = {}

        def compile_body():
            if target is not None:
                self.assign(s.target, target(idx), s)
            self.block(body)
            self.env["$cont"] = False
            go = self.env.get("$brk")
            stop = self.env.get("$ret", False)
            flags = self.e_bool_or(go, stop)
            nxt = self.truth(flags, s)
            nxt = (not nxt) if isinstance(nxt, bool) else Dyn(nxt.t.logical_not(), "bool")
            if test is not None and nxt is not False:
                c = self.truth(self.expr(test), test)
                nxt = self.e_bool_and(nxt, c)
            result["next"] = nxt
            result["env"] = dict(self.env)

        loop = {"depth": self.dynamic + 1, "idx": idx, "keys": keys, "appends": {}}
        self.loops.append(loop)
        try:
            nodes = self.compile_region(compile_body)
        finally:
            self.loop_depth -= 1
            self.loops.pop()
        env_after = result["env"]
        if keys and result["next"] is not True:
            raise self.err(s, f"the loop at line {line} grows a list, so it must run every "
                           "iteration: no `break` or `return` inside it", _GROW_HINT)  # fmt: skip
        # a return value first bound inside the loop must be carried: compile again with it
        extra = {}
        if "$retval" in env_after and "$retval" not in carried:
            rv = env_after["$retval"]
            if not isinstance(rv, Undef):
                self.env = dict(outer_env)
                extra["$retval"] = self.dummy(rv)
        if extra:
            raise _Retry(extra)
        out_leaves = []
        for k in carried:
            v = env_after.get(k, _MISSING)
            if v is _MISSING or isinstance(v, Undef):
                raise self.err(
                    s,
                    f"variable `{k}` is not defined at the end of every loop iteration",
                    "assign it on every path through the loop body",
                )
            leaves: list = []
            try:
                sp = _spec(v, leaves)
            except TypeError:
                sp = None
            if sp != specs[k]:
                raise self.err(
                    s,
                    f"variable `{k}` changes type in the loop at line {line}: "
                    f"{_describe(init[k])} before it, {_describe(v)} after one "
                    "iteration",
                    "keep each loop variable's dtype and shape",
                )
            for p, q in zip([x for x in _flat(init[k])], leaves):
                qq = q
                if not isinstance(q, (Tensor, Dyn)):
                    qq = self.into(nodes, lambda q=q, p=p: cc.materialize(q, p.kind))
                elif _type_of(q) != _type_of(p):
                    raise self.err(
                        s,
                        f"variable `{k}` changes type in the loop at line {line}:"
                        f" {_describe(p)} before it, {_describe(q)} after one "
                        "iteration",
                        "keep each loop variable's dtype and shape",
                    )
                out_leaves.append(qq)
        nxt = result["next"]
        nxt_ref = Const(nxt) if isinstance(nxt, bool) else cc.ref(nxt)
        own = [idx_v] + [cc.ref(p) for p in params]
        blk, caps = _close(nodes, [nxt_ref] + [cc.ref(v) for v in out_leaves], own)
        blk = Block(own + blk.params, blk.nodes, blk.results)
        trip_ref = Const(trip) if isinstance(trip, int) else cc.ref(trip)
        c0 = Const(cond0) if isinstance(cond0, bool) else cc.ref(cond0)
        outs = [Value(cc.ref(x).type) for x in init_leaves]
        cc.tr.nodes.append(Node(
            "loop", (trip_ref, c0, *[cc.ref(x) for x in init_leaves], *caps),
            (("n_carried", len(init_leaves)),), tuple(outs), (blk,)))  # fmt: skip
        self.env = dict(outer_env)
        new = iter([cc.fresh(x, o) for x, o in zip(init_leaves, outs)])
        for k in carried:
            self.env[k] = _rebuild(specs[k], new)
        for k in env_after:
            if k not in self.env and not k.startswith("$"):
                self.env[k] = Undef(f"is bound only inside the loop at line {line}")
            elif k not in carried and k in before and env_after[k] is not before.get(k) \
                    and not k.startswith("$"):  # fmt: skip
                # an unrolled-for target or a name the loop rebinds but had no type before
                self.env[k] = Undef(f"is rebound inside the loop at line {line}")
        for f in ("$brk", "$cont"):
            if f in before:
                self.env[f] = before[f]
            else:
                self.env.pop(f, None)

    def dynamic_leaves(self, v):
        if isinstance(v, (tuple, list)):
            return type(v)(self.dynamic_leaves(x) for x in v)
        if isinstance(v, (bool, int, float)) and not isinstance(v, Dyn):
            return self.cc.materialize(v)
        if isinstance(v, (Tensor, Dyn)):
            return v
        return v


def _close(nodes, results, own) -> tuple[Block, list]:
    """Make a block closed: every value it reads from outside becomes a parameter. Returns
    the block (parameters = the captured values' stand-ins) and the outside values."""
    defined = set(own)
    for n in nodes:
        defined.update(n.outputs)
    free: dict = {}
    for n in nodes:
        for v in n.inputs:
            if isinstance(v, Value) and v not in defined:
                free.setdefault(v, None)
    for v in results:
        if isinstance(v, Value) and v not in defined:
            free.setdefault(v, None)
    caps = list(free)
    params = [Value(v.type, v.hint) for v in caps]
    m = dict(zip(caps, params))
    new_nodes = []
    for n in nodes:
        if any(isinstance(v, Value) and v in m for v in n.inputs):
            n = replace(n, inputs=tuple(m.get(v, v) if isinstance(v, Value) else v
                                        for v in n.inputs))  # fmt: skip
        new_nodes.append(n)
    res = [m.get(v, v) if isinstance(v, Value) else v for v in results]
    return Block(params, new_nodes, res), caps


def _with_params(blk: Block, caps: list, all_caps: list) -> Block:
    """``blk`` (params standing for ``caps``) re-parameterized over ``all_caps``."""
    by_cap = dict(zip(caps, blk.params))
    params = [by_cap.get(c) or Value(c.type, c.hint) for c in all_caps]
    return Block(params, blk.nodes, blk.results)
