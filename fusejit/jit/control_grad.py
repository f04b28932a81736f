"""Gradients through a scripted graph's control flow: ``if`` and ``loop`` nodes.

A ``fusejit.script`` function whose graph has ``if`` / ``loop`` nodes, called with grad mode on
and an input or a captured tensor (a parameter) requiring grad, runs its graph block by block:

- each maximal run of op-table nodes in a block (a loop body's cell, the code between two
  control nodes) is a *segment*, compiled once per grad mask into a joint forward and backward
  graph (``fusejit/jit/joint.py``: the table's derivative rules, partitioned, fused). Each run
  of a segment adds one ``CompiledFunctionBackward`` node to the eager autograd graph, whose
  edges are its inputs' histories: the previous iteration's segment, a leaf's accumulator;
- ``if`` runs the block its condition picks (the other one takes no gradient);
- ``loop`` runs its body once per iteration (``for i in range(n)``, a ``while`` loop with a
  data-dependent condition, ``break``: the trip count is whatever the forward took), so the
  backward runs the body's compiled backward once per iteration, last iteration first, and the
  eager engine sums the gradients of captured values (weights read in every iteration) and
  carries those of the carried values from one iteration's backward to the previous one;
- ``select`` (``x[t]``) is an eager view, ``update`` (``ys[t] = h``, ``append``) writes a row:
  a loop-carried buffer that only ``update`` nodes read (a list appended to once per
  iteration, then stacked) is written in place and gets one node whose backward hands each
  written row its slice of the gradient; any other ``update`` is a differentiable copy.

Each iteration's backward reads what its forward saved (the values the partition keeps, as
eager autograd keeps each op's operands): residuals are stored per iteration, not recomputed
(``bench/bench_script_lstm.py --train`` measures the memory: the README's LSTM, 512 -> 512,
batch 64, 100 steps, peaks at 133 MB in a training step against eager autograd's 415 MB, the
partition saving matmul results and recomputing the cell's elementwise chains). A segment
whose joint graph cannot be built (an op without a derivative rule, a rule that reads a
tensor's value) runs op by op under eager autograd instead, with the same gradients.
``create_graph=True`` works through both (a segment's compiled backward differentiates an
eager run of the segment). A function that calls ``detach()`` never gets here: with tensors
requiring grad it runs eagerly (``scripting/decorator.py``).
"""

from __future__ import annotations

from fusejit.base.errors import DimError, TraceError
from fusejit.eager import autograd, dispatch
from fusejit.eager.creation import arange
from fusejit.eager.grad_mode import MODE
from fusejit.eager.indexing import mask_positions
from fusejit.eager.tensor import GradInfo, Tensor
from fusejit.ir.graph import Block, Const, Graph, Value
from fusejit.jit import control as ctl
from fusejit.jit import joint
from fusejit.jit.api import _target_of, optimize_graph
from fusejit.jit.runtime import Plan
from fusejit.ops.registry import OPS

__all__ = ["script_call", "run_with_grad"]


# ---- segments ----------------------------------------------------------------------------------
class _Segment:
    """A run of op-table nodes of one block, as a graph of its own: its params are the values
    it reads from before it, its results those read after it."""

    def __init__(self, nodes: list, later_uses: set, target: str) -> None:
        produced = {o for n in nodes for o in n.outputs}
        ins: list = []
        seen: set = set()
        for n in nodes:
            for v in n.inputs:
                if isinstance(v, Value) and v not in produced and v not in seen:
                    seen.add(v)
                    ins.append(v)
        outs = [o for n in nodes for o in n.outputs if o in later_uses]
        self.inputs = ins
        self.outputs = outs
        self.graph = Graph(Block(list(ins), list(nodes), list(outs)), len(ins))
        self.target = target
        self.plan: Plan | None = None  # no input requires grad
        self.joints: dict = {}  # grad mask -> CompiledJoint, or None: run eagerly

    def _eager(self, *tensors) -> list:
        """The segment op by op through eager dispatch (recording autograd when grad mode is
        on): where no joint graph can be built, and what ``create_graph`` differentiates."""
        env = dict(zip(self.graph.block.params, tensors))
        for n in self.graph.block.nodes:
            args = [v.value if isinstance(v, Const) else env[v] for v in n.inputs]
            res = dispatch.call(n.op, *args, **n.attr_dict)
            outs = tuple(res) if len(n.outputs) > 1 else (res,)
            for o, t in zip(n.outputs, outs, strict=True):
                env[o] = t
        return [env[v] for v in self.graph.block.results]

    def run(self, tensors: list) -> list:
        mask = joint.grad_mask(tensors)
        if True not in mask:
            if self.plan is None:
                self.plan = Plan(optimize_graph(self.graph, self.target))
            prev, MODE.enabled = MODE.enabled, False
            try:
                return self.plan.run(tensors, [])
            finally:
                MODE.enabled = prev
        if mask not in self.joints:
            try:
                self.joints[mask] = joint.compile_joint(self.graph, tensors, mask,
                                                        optimize_graph, self.target)  # fmt: skip
            except TraceError:
                self.joints[mask] = None
        cj = self.joints[mask]
        if cj is None:
            return self._eager(*tensors)
        return joint.call_joint(cj, tensors, [], eager_fn=self._eager)


def _steps(block: Block, target: str) -> list:
    """The block as steps: ``_Segment`` objects and single (control or special) nodes."""
    steps: list = []
    run: list = []

    def flush(k: int) -> None:
        if run:
            later = {v for n in block.nodes[k:] for v in n.inputs if isinstance(v, Value)}
            later.update(v for v in block.results if isinstance(v, Value))
            seg = _Segment(list(run), later, target)
            if seg.outputs:  # (op-table ops have no side effects: nothing read, nothing run)
                steps.append(seg)
            run.clear()

    for k, n in enumerate(block.nodes):
        if n.op in OPS and not n.blocks:
            run.append(n)
        else:
            flush(k)
            steps.append(n)
    flush(len(block.nodes))
    return steps


# ---- loop-carried buffers written row by row ---------------------------------------------------
class _RowBuffer:
    """A loop-carried buffer that only ``update`` nodes read: written in place; the rows
    written (index, value) are kept for the gradient."""

    __slots__ = ("tensor", "init", "writes")

    def __init__(self, init: Tensor) -> None:
        self.init = init
        self.tensor = Tensor._wrap(init._data.copy(), init._dtype, init._device)
        self.writes: list = []

    def write(self, i: int, v: Tensor, dim: int) -> None:
        x = self.tensor
        size = x.shape[dim]
        if not -size <= i < size:
            raise DimError(f"index {i} is out of bounds for dim {dim} with size {size} (an item "
                           "assignment x[i] = v in a scripted function)")  # fmt: skip
        i = i % size
        if v._device is not x._device:
            v = v.to(x._device)
        with x._device.backend.scope():
            x._data[(slice(None),) * dim + (i, Ellipsis)] = v._data
        self.writes.append((i, dim, v))

    def result(self) -> Tensor:
        """The buffer, with one node whose backward gives each row written last at its index
        that index's gradient, and the initial value the gradient of the rows never written."""
        out = self.tensor
        last: dict = {}
        for k, (i, dim, _) in enumerate(self.writes):
            last[(i, dim)] = k
        live = [(i, dim, v) for k, (i, dim, v) in enumerate(self.writes) if last[(i, dim)] == k]
        sources = [self.init] + [v for _, _, v in live]
        edges, metas = joint._edges(sources, list(range(len(sources))))
        if all(e is None for e in edges):
            return out
        need_init = edges[0] is not None
        shape, dev = out.shape, out._device
        written = [(i, dim) for i, dim, _ in live]

        def backward(g):
            grads = [None]
            if need_init:  # (zeros where rows were written, as eager's CopySlices gives)
                F = autograd._F()
                keep = F.ones(shape, dtype=F.bool, device=dev)
                with keep._device.backend.scope():
                    for i, dim in written:
                        keep._data[(slice(None),) * dim + (i, Ellipsis)] = False
                grads[0] = F.where(keep, g, 0.0)
            for (i, dim), e in zip(written, edges[1:], strict=True):
                grads.append(None if e is None else g[(slice(None),) * dim + (i,)])
            return tuple(grads)

        node = autograd.FunctionNode("ScriptRowsBackward", edges, [out], backward, metas)
        out._ag = GradInfo(True, node, 0)
        return out


def _functional_update(x: Tensor, i: int, v: Tensor, dim: int) -> Tensor:
    """``x`` with index ``i`` along ``dim`` set to ``v``: a copy, differentiable in both."""
    size = x.shape[dim]
    if not -size <= i < size:
        raise DimError(f"index {i} is out of bounds for dim {dim} with size {size} (an item "
                       "assignment x[i] = v in a scripted function)")  # fmt: skip
    if v._device is not x._device:
        v = v.to(x._device)
    out = x.clone()
    out[(slice(None),) * dim + (i,)] = v
    return out


def _select(x: Tensor, i: int, dim: int) -> Tensor:
    size = x.shape[dim]
    if not -size <= i < size:
        raise DimError(f"select: index {i} is out of bounds for dim {dim} with size {size}")
    return x[(slice(None),) * dim + (i,)]


# ---- running -----------------------------------------------------------------------------------
class _Runner:
    """A scripted specialization's graph run with gradients (see the module docstring)."""

    def __init__(self, raw: Graph) -> None:
        self.raw = raw
        self.target = _target_of(raw)
        self._steps: dict = {}  # id(block) -> steps
        self._owned: dict = {}  # id(loop node) -> (body with in-place updates, owned indices)

    def steps(self, block: Block) -> list:
        s = self._steps.get(id(block))
        if s is None:
            s = self._steps[id(block)] = _steps(block, self.target)
        return s

    def run(self, tensors: list) -> list:
        g = self.raw
        env = dict(zip(g.block.params, [*tensors, *g.captured], strict=True))
        return self.run_block(g.block, env)

    def run_block(self, block: Block, env: dict, rows: dict | None = None, index=None) -> list:
        """Run ``block`` on ``env``; ``rows``: the enclosing loop's row buffers by tensor id,
        ``index``: (its iteration-number parameter, the number as a Python int), which ``x[t]``
        and ``ys[t] = h`` read without copying a device tensor back."""

        def val(v):
            return v.value if isinstance(v, Const) else env[v]

        def int_of(v) -> int:
            if index is not None and v is index[0]:
                return index[1]
            return ctl.truth_int(val(v))

        for s in self.steps(block):
            if isinstance(s, _Segment):
                outs = s.run([env[v] for v in s.inputs])
                for o, t in zip(s.outputs, outs, strict=True):
                    env[o] = t
                continue
            n = s
            if n.op == "loop":
                res = self.run_loop(n, [val(v) for v in n.inputs])
            elif n.op == "if":
                b = n.blocks[0] if ctl.truth(val(n.inputs[0])) else n.blocks[1]
                res = self.run_block(b, dict(zip(b.params, [val(v) for v in n.inputs[1:]])))
            elif n.op == "select":
                res = [_select(val(n.inputs[0]), int_of(n.inputs[1]), n.attr("dim"))]
            elif n.op == "update":
                x, i, v = val(n.inputs[0]), int_of(n.inputs[1]), val(n.inputs[2])
                d = n.attr("dim")
                buf = rows.get(id(x)) if rows and n.attr("inplace", False) else None
                if buf is not None:
                    buf.write(i, v, d)
                    res = [x]
                else:
                    res = [_functional_update(x, i, v, d)]
            elif n.op == "constant":
                res = [n.attr("value")]
            elif n.op == "mask_positions":
                res = [mask_positions(val(n.inputs[0]))]
            elif n.op == "arange":
                a = n.attr_dict
                res = [arange(int(a["start"]), int(a["end"]), int(a["step"]), dtype=a["dtype"],
                              device=a["device"])]  # fmt: skip
            elif n.op in ("print", "assert"):
                ctl.interpret_node(n, env, None)
                continue
            elif n.op == "fused":  # (a raw graph has none; a fused body runs op by op)
                b = n.blocks[0]
                res = self.run_block(b, dict(zip(b.params, [val(v) for v in n.inputs])))
            else:  # pragma: no cover - every node of a raw graph is one of the above
                raise TraceError(f"backward through a scripted graph: no rule for node {n.op}")
            for o, t in zip(n.outputs, res, strict=True):
                env[o] = t
        return [val(r) for r in block.results]

    def run_loop(self, n, args: list) -> list:
        k = n.attr("n_carried")
        trip = ctl.truth_int(args[0])
        go = ctl.truth(args[1])
        carried = list(args[2 : 2 + k])
        caps = list(args[2 + k :])
        owned = self._owned.get(id(n))
        if owned is None:
            owned = self._owned[id(n)] = ctl._updates_in_place(n.blocks[0], k)
        body, own = owned
        dev = body.params[0].type.device
        rows: dict = {}
        bufs = []
        if own and go and trip != 0:
            for j in own:
                b = _RowBuffer(carried[j])
                carried[j] = b.tensor
                rows[id(b.tensor)] = b
                bufs.append((j, b))
        i = 0
        while go and (trip < 0 or i < trip):
            env = dict(zip(body.params, [ctl.index_tensor(i, dev), *carried, *caps]))
            res = self.run_block(body, env, rows, (body.params[0], i))
            go = ctl.truth(res[0])
            carried = res[1:]
            i += 1
        for j, b in bufs:
            carried[j] = b.result()
        return carried


def run_with_grad(c, tensors: list) -> list:
    """Run specialization ``c`` (``scripting.specialize.Compiled``) of a scripted function
    whose graph has control flow on ``tensors`` (its flat inputs), recording gradients."""
    r = c.__dict__.get("_grad_runner")
    if r is None:
        r = c._grad_runner = _Runner(c.raw_graph)
    return r.run(list(tensors))


def script_call(c, tensors) -> list | None:
    """A scripted function's specialization ``c`` called on ``tensors`` with grad mode on: its
    outputs with gradients, or None where no tensor requires grad. A straight-line graph gets
    one joint graph (``joint.script_call``); one with ``if`` / ``loop`` nodes runs as
    ``run_with_grad`` does."""
    raw = c.raw_graph
    if not any(n.blocks for n in raw.block.nodes):
        return joint.script_call(c, tensors)
    if True not in joint.grad_mask([*tensors, *raw.captured]):
        return None
    return run_with_grad(c, tensors)
