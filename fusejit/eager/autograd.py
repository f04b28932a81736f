"""Reverse-mode autograd: the graph eager ops record, and the backward pass over it.

Recording: ``dispatch.elementwise`` and ``dispatch.apply`` call ``record`` when grad mode is on
and an operand requires grad. ``record`` makes one ``OpNode`` per op call: the op's operands
(kept for its derivative rule), its results (kept as aliases that do not point back at the
node, so that no reference cycle keeps activations alive), the storage versions of both, and
one edge per operand: the node that made it (and which of its results it is), the gradient
accumulator of a leaf, or None. The results get the node (``GradInfo.node``).

Backward: ``run_backward`` orders the nodes reachable from the roots (each after every node
that consumes one of its results), then runs each node's rule (``OpDef.vjp``, called with the
``fusejit`` namespace and the node as ``ctx``) on the summed gradients of its results. The
engine, not the rules, reduces a gradient to its operand's shape (summing the broadcast dims,
``sum_to_size``) and casts it to the operand's dtype, so a rule may return a gradient of the
broadcast result shape and dtype. Rules run under ``no_grad`` unless ``create_graph`` is set;
then they record like any ops, and a gradient can itself be differentiated.

Version counters: every write into a storage in place bumps the storage's version (views share
it). A node remembers the versions of the tensors it keeps; reading one whose version changed
from a rule (``ctx.inputs[i]``, ``ctx.outputs[i]``) is an AutogradError naming the op.

In-place ops on tensors that require grad record too: the op is computed out of place (which
records its node), the node keeps a copy of the overwritten value where it is an operand, and
the written tensor takes the node as its history (PyTorch's rebase); written through a view
(made by one recorded op from a base), the base takes a ``CopySlices`` node. A leaf that
requires grad, or a view of one, cannot be written in place while grad mode is on. A view
taken before its base (or another view of it) was written in place sees the write; its history
is made again from the base's on its next use (``sync_view``, PyTorch's view replay), so that
its gradient reaches what was written.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import weakref

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.errors import AutogradError, DeviceError, ShapeError, TraceError, fmt_shape
from fusejit.eager import recording
from fusejit.eager.grad_mode import MODE
from fusejit.eager.tensor import GradInfo, Tensor

__all__ = [
    "record", "backward", "grad", "gradcheck", "Function", "sum_to_size", "bump_version",
    "version_of", "Node", "GradInfo",
]  # fmt: skip

_new = object.__new__
_heappush, _heappop = heapq.heappush, heapq.heappop  # (one global lookup each in the walk)


_FUSEJIT = []


def _F():
    """The ``fusejit`` namespace the rules are written against (looked up at run time: this
    module sits below it)."""
    if _FUSEJIT:
        return _FUSEJIT[0]
    _FUSEJIT.append(sys.modules["fusejit"])
    return _FUSEJIT[0]


# ---- storage versions --------------------------------------------------------------------------
# id of a storage's root array -> how many times it was written in place. A node that keeps a
# tensor keeps its root alive, so the id cannot be reused while a saved version refers to it.
VERSIONS: dict[int, int] = {}


def storage_key(a) -> int:
    """The id of the array that owns ``a``'s memory (views of one storage share it)."""
    b = a.base
    while b is not None:
        a = b
        b = getattr(a, "base", None)
    return id(a)


def version_of(t: Tensor) -> int:
    """The number of in-place writes into ``t``'s storage so far (``Tensor._version``)."""
    return VERSIONS.get(storage_key(t._data), 0)


def _key_version(t: Tensor) -> tuple[int, int]:
    k = storage_key(t._data)
    return k, VERSIONS.get(k, 0)


def bump_version(t: Tensor) -> None:
    """Note an in-place write into ``t``'s storage (every in-place op calls this, once it has
    written)."""
    global EPOCH
    k = storage_key(t._data)
    VERSIONS[k] = VERSIONS.get(k, 0) + 1
    EPOCH += 1  # (views checked before this write must be checked again)


# ---- nodes -------------------------------------------------------------------------------------
def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p)


def _describe(t) -> str:
    return f"a {t._dtype.name} tensor of shape {fmt_shape(t.shape)}"


_SEQ = itertools.count()


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook off again."""

    __slots__ = ("_list", "_fn")

    def __init__(self, hooks: list, fn) -> None:
        self._list, self._fn = hooks, fn

    def remove(self) -> None:
        if self._fn in self._list:
            self._list.remove(self._fn)


class Node:
    """A function of the backward graph (``Tensor.grad_fn``): ``name()`` as PyTorch's
    (``MulBackward0``), ``next_functions`` the nodes its gradients flow to."""

    __slots__ = ("edges", "n_out", "hooks", "retained", "released", "seq", "__weakref__")
    is_acc = False  # (AccumulateGrad: True)

    def __init__(self, edges, n_out: int) -> None:
        # a node is made after every node its gradients flow to: backward runs nodes in
        # decreasing ``seq``, each after all the nodes that consume its results
        self.seq = next(_SEQ)
        self.edges = edges
        self.n_out = n_out
        self.hooks = None  # result index -> tensor hooks of that result
        self.retained = None  # result index -> weak reference of a tensor that retains its grad
        self.released = False

    def name(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"

    @property
    def next_functions(self) -> tuple:
        return tuple((None, 0) if e is None else e for e in self.edges)

    def out_meta(self, i: int):
        """(shape, dtype, device) of result ``i``."""
        raise NotImplementedError

    def run(self, grads: list) -> tuple:
        raise NotImplementedError

    def release(self) -> None:
        self.released = True


class _Saved:
    """The tensors a node keeps, checked against their versions when a rule reads them."""

    __slots__ = ("_node", "_items", "_versions", "_what", "_alias")

    def __init__(self, node, items, versions, what: str, alias: bool) -> None:
        # (plain stores: a rule makes one of these at each ``ctx.inputs`` / ``ctx.outputs``)
        self._node = node
        self._items = items
        self._versions = versions
        self._what = what
        self._alias = alias

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        if type(i) is slice:  # (slice has no subclasses; a rule reads ``ctx.inputs[k]`` often)
            return tuple(self[j] for j in range(*i.indices(len(self._items))))
        if self._node.released:
            _raise_released(self._node)
        t = self._items[i]
        kv = self._versions[i]  # (storage key, version when saved); None: a Python scalar
        if kv is None:
            return t
        if VERSIONS.get(kv[0], 0) != kv[1]:
            if self._alias:
                t = Tensor._wrap(*t)
            raise AutogradError(
                f"backward: {self._what} {i} of {self._node.name()} ({_describe(t)}), needed "
                f"for the gradient, was modified by an in-place operation after it was saved "
                f"(it is at version {VERSIONS.get(kv[0], 0)}; it was saved at version "
                f"{kv[1]}); clone() it before writing into it, or write into a copy"
            )
        if self._alias:  # a result: a tensor of its array (with this node's history, when
            a = _new(Tensor)  # create_graph records the rule)
            a._data, a._dtype, a._device = t
            a._ag = GradInfo(True, self._node, i) if MODE.enabled else None
            return a
        return t

    def __iter__(self):
        return (self[i] for i in range(len(self._items)))


def _raise_count(node, res) -> None:
    raise AutogradError(
        f"backward: the derivative rule of {node.op.name} gave {len(res)} gradients for "
        f"{len(node._inputs)} operands"
    )


def _raise_released(node) -> None:
    raise AutogradError(
        f"backward: trying to run backward through {node.name()} a second time (or read its "
        "saved tensors after they were freed); the first backward freed the graph. Pass "
        "retain_graph=True to the first backward() or autograd.grad() to run it again"
    )


class OpNode(Node):
    """The node of one call of an op-table op; it is the ``ctx`` its rule reads: ``inputs``
    (operands as called, tensors and Python scalars), ``outputs``, ``attrs``,
    ``needs_input_grad``."""

    __slots__ = ("op", "attrs", "_inputs", "_outputs", "_in_versions", "_out_versions",
                 "needs_input_grad", "epoch")  # fmt: skip

    def __init__(self, op, args, attrs, outs, edges, needs) -> None:
        # (Node.__init__ written out, and the storage keys inline: this runs on every op that
        # records)
        self.seq = next(_SEQ)
        self.edges = edges
        self.n_out = len(outs)
        self.hooks = self.retained = None
        self.released = False
        self.needs_input_grad = needs
        self.epoch = EPOCH
        self.op = op
        self.attrs = attrs
        self._inputs = list(args)
        versions = VERSIONS
        vs = []
        for a in args:
            if isinstance(a, Tensor):
                d = a._data
                b = d.base
                while b is not None:
                    d = b
                    b = getattr(d, "base", None)
                k = id(d)
                vs.append((k, versions.get(k, 0)))
            else:
                vs.append(None)
        self._in_versions = vs
        metas = []  # (array, dtype, device): the results, made tensors when a rule reads them
        ovs = []
        for o in outs:
            d = o._data
            metas.append((d, o._dtype, o._device))
            b = d.base
            while b is not None:
                d = b
                b = getattr(d, "base", None)
            k = id(d)
            ovs.append((k, versions.get(k, 0)))
        self._outputs = metas
        self._out_versions = ovs

    def name(self) -> str:
        return _camel(self.op.name) + "Backward0"

    @property
    def inputs(self):
        ins = self._inputs
        if self.epoch == EPOCH and ins is not None:
            # nothing was written in place since this node was made (every write bumps the
            # epoch): its operands are at their saved versions, read them without the checks
            return ins
        return _Saved(self, ins, self._in_versions, "input", False)

    @property
    def outputs(self) -> _Saved:
        return _Saved(self, self._outputs, self._out_versions, "output", True)

    def out_meta(self, i: int):
        d, dtype, device = self._outputs[i]
        return d.shape, dtype, device

    def input_meta(self, i: int):
        a = self._inputs[i]
        return a._data.shape, a._dtype, a._device

    def snapshot(self, t: Tensor) -> None:
        """``t`` is about to be overwritten in place: keep a copy of its value where it is an
        operand of this node (with its history, for double backward)."""
        for i, a in enumerate(self._inputs):
            if a is t:
                c = _new(Tensor)
                with t._device.backend.scope():
                    c._data, c._dtype, c._device = t._data.copy(), t._dtype, t._device
                c._ag = getattr(t, "_ag", None)
                self._inputs[i] = c
                self._in_versions[i] = _key_version(c)

    def run(self, grads: list) -> tuple:
        if self.released:
            _raise_released(self)
        vjp = self.op.vjp
        if vjp is None:
            raise AutogradError(
                f"backward: the op {self.op.name} has no derivative rule in the op table yet "
                f"({self.name()}); compute without it or detach() its inputs"
            )
        res = vjp(_F(), self, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        if len(res) != len(self._inputs):
            _raise_count(self, res)
        return res

    def release(self) -> None:
        self.released = True
        self._inputs = self._outputs = None


class FunctionNode(Node):
    """A node whose backward is a Python function of the result gradients (``Function``,
    assignment into a tensor)."""

    __slots__ = ("_name", "_backward", "_metas", "_in_metas", "fresh")

    def __init__(self, name, edges, outs, backward, in_metas, fresh: bool = False) -> None:
        Node.__init__(self, edges, len(outs))
        # ``fresh``: the backward returns tensors made for the call, none of them an argument
        # or another of its results (a compiled backward's, fusejit/jit/joint.py): a leaf may
        # take one as its .grad without a copy, where nothing else holds its memory
        self.fresh = fresh
        self._name = name
        self._backward = backward
        self._metas = [(o._data.shape, o._dtype, o._device) for o in outs]
        self._in_metas = in_metas

    def name(self) -> str:
        return self._name

    def out_meta(self, i: int):
        return self._metas[i]

    def input_meta(self, i: int):
        return self._in_metas[i]

    def run(self, grads: list) -> tuple:
        if self.released:
            _raise_released(self)
        res = self._backward(*grads)
        if not isinstance(res, tuple):
            res = (res,)
        if len(res) != len(self.edges):
            raise AutogradError(
                f"backward: {self._name} gave {len(res)} gradients for {len(self.edges)} inputs"
            )
        return res

    def release(self) -> None:
        self.released = True
        self._backward = None


class AccumulateGrad(Node):
    """The end of the graph at a leaf: adds the gradient into the leaf's ``.grad``."""

    __slots__ = ("leaf", "_meta", "leaf_hooks")
    is_acc = True

    def __init__(self, leaf: Tensor) -> None:
        Node.__init__(self, (), 1)
        self.leaf = weakref.ref(leaf)
        self._meta = (leaf._data.shape, leaf._dtype, leaf._device)
        self.leaf_hooks: list = []

    def name(self) -> str:
        return "AccumulateGrad"

    @property
    def variable(self):
        return self.leaf()

    def out_meta(self, i: int):
        return self._meta

    def accumulate(self, g: Tensor, create_graph: bool, owned: bool = False) -> None:
        """Add ``g`` into the leaf's ``.grad`` (``owned``: ``g`` is a tensor nothing else refers
        to, which ``.grad`` may take as it is where its array is its own, contiguous memory)."""
        t = self.leaf()
        if t is None:
            return
        info = t._ag
        old = info.grad
        if create_graph:
            info.grad = g if old is None else _F().add(old, g)
        elif old is None:
            d = g._data
            if (
                owned
                and d.base is None
                and d.flags.c_contiguous
                and sys.getrefcount(g._data) == _ONE_OWNER
                and getattr(g, "_ag", None) is None
            ):
                info.grad = g  # (PyTorch's AccumulateGrad steals such a gradient too)
            else:
                info.grad = _fresh(g)
        elif getattr(old, "_ag", None) is not None and old._ag.requires_grad:
            info.grad = _F().add(old.detach(), g)
        elif old._device.type == "cpu":
            old._data += g._data
        else:
            with old._device.backend.scope():  # (cuda:N: on that GPU)
                old._data += g._data

    def release(self) -> None:
        pass  # (a leaf's accumulator serves every graph it takes part in)


class _Holder:
    __slots__ = ("_data",)


def _one_owner() -> int:
    """What ``AccumulateGrad.accumulate``'s ``sys.getrefcount(g._data)`` gives for an array
    that ``g`` alone refers to, measured the same way (the count includes the call's and the
    local's own references, which differ between Python versions)."""
    h = _Holder()
    h._data = np.empty(1)
    d = h._data  # (as accumulate holds it)
    n = sys.getrefcount(h._data)
    del d
    return n


_ONE_OWNER = _one_owner()


def _fresh(g: Tensor) -> Tensor:
    """``g`` as a tensor of its own memory, contiguous, that nothing else refers to (what
    ``.grad`` holds: optimizers and clipping write into it)."""
    t = _new(Tensor)
    with g._device.backend.scope():
        t._data, t._dtype, t._device = g._data.copy(), g._dtype, g._device
    t._ag = None
    return t


def _edge(t: Tensor, info: GradInfo):
    node = info.node
    if node is not None:
        return (node, info.index)
    acc = info.acc
    if acc is None:
        acc = info.acc = AccumulateGrad(t)
    return (acc, 0)


def _differentiable_dtype(d: dt.DType) -> bool:
    return d.kind == "f" or d.kind == "c"


def record(op, args, attrs, outs) -> None:
    """Record the call of ``op`` on ``args`` (tensors and Python scalars) with ``attrs`` that
    gave ``outs`` (a tuple of tensors), when an operand requires grad (the caller checked that
    grad mode is on). Results of a non-differentiable op, and integer results, do not require
    grad."""
    if recording.TRACER is not None:
        return  # (a traced graph records no autograd: issue #20 adds joint graphs)
    if not op.differentiable:
        return
    edges = []
    needs = []
    for a in args:
        info = getattr(a, "_ag", None) if isinstance(a, Tensor) else None
        if REWRITTEN and info is not None and info.node is not None and info.synced != EPOCH:
            info = sync_view(a, info)
        if info is not None and info.requires_grad:
            # (``_edge`` written out for the two usual cases: a result of a node, a leaf whose
            # accumulator exists)
            if info.node is not None:
                edges.append((info.node, info.index))
            elif info.acc is not None:
                edges.append((info.acc, 0))
            else:
                edges.append(_edge(a, info))
            needs.append(True)
        else:
            edges.append(None)
            needs.append(False)
    if True not in needs:
        return
    node = OpNode(op, args, attrs or {}, outs, edges, tuple(needs))
    for i, o in enumerate(outs):
        k = o._dtype.kind  # (``_differentiable_dtype`` written out)
        if k == "f" or k == "c":
            g = o._ag = GradInfo(True, node, i)
            if REWRITTEN:
                g.synced = EPOCH  # (made of operands in step with their bases: in step too)


def needs_grad(tensors) -> bool:
    """Grad mode is on and a tensor among ``tensors`` requires grad."""
    if not MODE.enabled:
        return False
    for t in tensors:
        info = getattr(t, "_ag", None)
        if info is not None and info.requires_grad:
            return True
    return False


# ---- in-place writes ---------------------------------------------------------------------------
# Set once a tensor's history was rewritten by an in-place write: from then on a view read as an
# operand or a root is first checked against its base's history (``sync_view``).
REWRITTEN = False
# Bumped after every in-place write: a history ``sync_view`` checked at the current epoch is
# known to be in step with its bases' (``GradInfo.synced``).
EPOCH = 0


def _view_of(t: Tensor):
    """(base, view op, attrs, result index) where ``t`` is a view made by one op-table op of
    a tensor ``base`` (sharing its storage) while recording, else None."""
    info = getattr(t, "_ag", None)
    if info is None:
        return None
    if info.view is not None:
        return info.view
    node = info.node
    if not isinstance(node, OpNode) or node._outputs is None or len(node._inputs) != 1:
        return None
    base = node._inputs[0]
    if not isinstance(base, Tensor) or storage_key(base._data) != storage_key(t._data):
        return None
    return base, node.op, node.attrs, info.index


def check_inplace(name: str, self: Tensor) -> None:
    """Before ``name`` writes into ``self``: an AutogradError where grad mode is on and ``self``
    is a leaf that requires grad, or a view of one."""
    global REWRITTEN
    info = getattr(self, "_ag", None)
    if info is None or not info.requires_grad or not MODE.enabled:
        return
    if REWRITTEN and info.node is not None:
        info = sync_view(self, info)
        if info is None:
            return
    REWRITTEN = True
    if info.node is None:
        raise AutogradError(
            f"{name}: {_describe(self)} is a leaf that requires grad and cannot be modified in "
            "place while grad mode is on; modify it under fusejit.no_grad(), or use the "
            "out-of-place op"
        )
    view = _view_of(self)
    cinfo = info
    while view is not None:
        if cinfo.view is None and cinfo.node.n_out > 1:
            raise AutogradError(
                f"{name}: {_describe(self)} is a view of one of the {cinfo.node.n_out} results "
                f"of {view[1].name}, which cannot be modified in place while grad mode is on "
                "(as in PyTorch); clone() it first, or write into the tensor it was taken from"
            )
        base = view[0]
        binfo = cinfo = getattr(base, "_ag", None)
        if binfo is not None and binfo.requires_grad and binfo.node is None:
            raise AutogradError(
                f"{name}: {_describe(self)} is a view (made by {view[1].name}) of a leaf that "
                "requires grad, which cannot be modified in place while grad mode is on; "
                "modify it under fusejit.no_grad()"
            )
        view = _view_of(base) if binfo is not None else None


def _apply_view(view, t: Tensor) -> Tensor:
    """The view ``view`` describes, taken of ``t`` instead of its base."""
    from fusejit.eager import dispatch  # (it imports this module)

    r = dispatch.apply(view[1], (t,), view[2])
    return r[view[3]] if isinstance(r, tuple) else r


def _copy_slices(view, t: Tensor) -> None:
    """``t``, a view of ``view[0]`` (the base), has a new history: the base takes a node
    (PyTorch's ``CopySlices``) whose gradient is the incoming one with the view's elements
    zeroed for the base's old history, and the view's elements for ``t``'s new one."""
    base = view[0]
    outer = _view_of(base)  # (read before the base's history changes)
    binfo = getattr(base, "_ag", None)
    base_edge = _edge(base, binfo) if binfo is not None and binfo.requires_grad else None
    tinfo = getattr(t, "_ag", None)
    t_edge = (tinfo.node, tinfo.index) if tinfo is not None and tinfo.node is not None else None
    edges = [base_edge, t_edge]
    metas = [(base._data.shape, base._dtype, base._device), (t._data.shape, t._dtype, t._device)]

    def backward(g):
        prev = MODE.enabled
        MODE.enabled = False
        try:
            g = g.contiguous()  # (a view op such as view() needs what its base allowed)
            gb = g.clone()
            _apply_view(view, gb).fill_(0)
            return gb, _apply_view(view, g)
        finally:
            MODE.enabled = prev

    node = FunctionNode("CopySlices", edges, (base,), backward, metas)
    new = GradInfo(True, node, 0)
    if binfo is not None:
        new.view = binfo.view
    base._ag = new
    if tinfo is not None:  # (with the base's history it is in step with)
        tinfo.view = (*view[:4], (node, 0))
    if outer is not None:  # (a view of a view: its base changes too)
        _copy_slices(outer, base)


def sync_view(t: Tensor, info: GradInfo):
    """``t``'s history, made again where ``t`` is a view whose base's history changed since
    ``t``'s was made (the base, or another view of it, was written in place): the view op
    applied to the base's history now (PyTorch's view replay), so that a gradient through
    ``t`` reaches what was written. ``t`` takes it; None where the base no longer requires
    grad (it was overwritten by a constant, and ``t`` with it). A view of a view: the bases
    first, outermost first (a loop, not recursion: chains of views may be long); a history
    checked since the last in-place write (``EPOCH``) is not checked again."""
    epoch = EPOCH
    if info.synced == epoch:
        return info
    chain = []
    cur, ci = t, info
    while True:
        view = _view_of(cur)
        if view is None:
            ci.synced = epoch
            break
        chain.append((cur, ci, view))
        cur = view[0]
        ci = getattr(cur, "_ag", None)
        if ci is None or ci.node is None or ci.synced == epoch:
            break
    for cur, ci, view in reversed(chain):
        ci = _replay(cur, ci, view)
        if ci is not None:
            ci.synced = epoch
    return getattr(t, "_ag", None)


def _replay(t: Tensor, info: GradInfo, view):
    """One step of ``sync_view``: ``t`` is ``view`` of ``view[0]``, whose history is current."""
    base = view[0]
    binfo = getattr(base, "_ag", None)
    if binfo is not None and binfo.requires_grad:
        if binfo.node is None:
            return info  # (a leaf's history cannot be rewritten)
        now = (binfo.node, binfo.index)
    else:
        now = None
    then = view[4] if info.view is not None else info.node.edges[0]
    if then is not None and now is not None and then[0] is now[0] and then[1] == now[1]:
        return info
    if now is None:
        t._ag = None
        return None
    prev = MODE.enabled
    MODE.enabled = True
    try:
        r = _apply_view(view, base)
    finally:
        MODE.enabled = prev
    rinfo = getattr(r, "_ag", None)
    if rinfo is None or rinfo.node is None:
        return info  # (nothing recorded: under fusejit.trace, which records no autograd)
    new = GradInfo(True, rinfo.node, rinfo.index)
    new.grad = info.grad
    t._ag = new
    if info.retains:
        retain_grad(t)
    return new


def rebase(self: Tensor, result: Tensor) -> None:
    """``result`` (an out-of-place op's result) is about to be written into ``self``: ``self``
    takes ``result``'s history (keeping a copy of its old value where the node needs it); where
    ``self`` is a view, its base takes a ``CopySlices`` node."""
    rinfo = getattr(result, "_ag", None)
    if REWRITTEN and rinfo is not None and rinfo.node is not None:
        rinfo = sync_view(result, rinfo)  # (copy_ of a view taken before a write)
    info = getattr(self, "_ag", None)
    view = _view_of(self) if info is not None else None
    if rinfo is not None and rinfo.node is not None:
        node = rinfo.node
        if isinstance(node, OpNode):
            node.snapshot(self)
        self._ag = GradInfo(True, node, rinfo.index)
        if view is not None:
            _copy_slices(view, self)
    elif info is not None and info.node is not None and MODE.enabled:
        self._ag = None  # (overwritten by a value without history: a constant now)
        if view is not None:
            _copy_slices(view, self)


def rebase_view(self: Tensor, view) -> None:
    """``self`` (a view of ``view[0]``) just took a new history: its base takes it too."""
    if view is not None:
        _copy_slices(view, self)


# ---- helpers the rules use ---------------------------------------------------------------------
def sum_to_size(x: Tensor, *size) -> Tensor:
    """``x`` summed down to ``size`` (a shape ``x``'s shape broadcasts from): the leading dims
    it lacks and its size-1 dims are summed, as ``torch.Tensor.sum_to_size``. How a gradient
    of a broadcast result becomes its operand's.

    >>> import fusejit
    >>> fusejit.ones(2, 3).sum_to_size(1, 3).tolist()
    [[2.0, 2.0, 2.0]]
    """
    shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
    shape = tuple(int(s) for s in shape)
    xs = tuple(x.shape)
    if xs == shape:
        return x
    lead = len(xs) - len(shape)
    if lead < 0 or any(s != 1 and s != xs[lead + i] for i, s in enumerate(shape)):
        raise ShapeError(
            f"sum_to_size: a tensor of shape {fmt_shape(xs)} cannot be summed to shape "
            f"{fmt_shape(shape)} (the shape must broadcast to the tensor's)"
        )
    dims = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and xs[lead + i] != 1
    )
    F = _F()
    r = F.sum(x, dim=dims, keepdim=True) if dims else x
    return F.reshape(r, shape)


def _fit(node, i: int, g, create_graph: bool):
    """Gradient ``g`` a rule gave for operand ``i`` of ``node``, summed to the operand's shape
    and cast to its dtype."""
    shape, dtype, device = node.input_meta(i)
    if not isinstance(g, Tensor):
        raise AutogradError(
            f"backward: the derivative rule of {node.name()} gave a {type(g).__name__} for "
            f"operand {i}, expected a tensor"
        )
    if g._data.shape != shape:
        try:
            g = sum_to_size(g, shape)
        except ShapeError:
            raise AutogradError(
                f"backward: {node.name()} gave a gradient of shape {fmt_shape(g.shape)} for "
                f"operand {i} of shape {fmt_shape(shape)}"
            ) from None
    if g._dtype is not dtype:
        if not _differentiable_dtype(dtype):
            return None
        if g._dtype.kind == "c" and dtype.kind == "f":
            g = _F().real(g)
        if g._dtype is not dtype:
            g = _F().cast(g, dtype)
    return g


# ---- the backward pass -------------------------------------------------------------------------
def _topo(roots) -> list:
    """The nodes reachable from ``roots``, each before every node its gradients flow to."""
    order = []
    seen = set()
    for r in roots:
        if r in seen:
            continue
        seen.add(r)
        stack = [(r, iter(r.edges))]
        while stack:
            node, it = stack[-1]
            for e in it:
                if e is not None and e[0] not in seen:
                    seen.add(e[0])
                    stack.append((e[0], iter(e[0].edges)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _add(buf: list, i: int, g) -> None:
    old = buf[i]
    buf[i] = g if old is None else _F().add(old, g)


def _root_edge(t, what: str):
    if not isinstance(t, Tensor):
        raise TypeError(f"{what}: expected a tensor, got {type(t).__name__}")
    info = getattr(t, "_ag", None)
    if REWRITTEN and info is not None and info.node is not None:
        info = sync_view(t, info)
    if info is None or not info.requires_grad:
        hint = ""
        if recording.TRACER is None:
            hint = " (was it computed under no_grad, or from tensors none of which requires grad?)"
        raise AutogradError(
            f"{what}: {_describe(t)} does not require grad and has no grad_fn{hint}"
        )
    return _edge(t, info)


def _root_grad(t: Tensor, g, what: str, i: int) -> Tensor:
    F = _F()
    if g is None:
        if t._data.size != 1:
            raise AutogradError(
                f"{what}: output {i}, {_describe(t)}, is not a scalar: a gradient can be created "
                "implicitly only for one-element outputs; pass gradient= (a tensor of its shape)"
            )
        return F.ones_like(t)
    if not isinstance(g, Tensor):
        g = F.full_like(t, g)
    if g._data.shape != t._data.shape:
        raise ShapeError(
            f"{what}: the gradient of shape {fmt_shape(g.shape)} does not match output {i}, "
            f"{_describe(t)}"
        )
    if g._device is not t._device and g._device != t._device:
        raise DeviceError(f"{what}: the gradient is on {g._device}, output {i} on {t._device}")
    if g._dtype is not t._dtype:
        g = F.cast(g, t._dtype)
    return g


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None,
                 accumulate=True, allow_unused=False, what="backward"):  # fmt: skip
    """The backward pass from ``outputs`` (tensors) with ``grad_outputs``; into the leaves'
    ``.grad`` (``accumulate``, only those of ``inputs`` when given), or, without
    ``accumulate``, the gradients of ``inputs`` returned."""
    tracer = recording.tracing() if recording.TRACER is not None else None
    if tracer is not None:
        hook = getattr(tracer, "backward", None)
        if hook is not None and accumulate and inputs is None and not create_graph:
            return hook(outputs, grad_outputs)  # a whole training step (fusejit/jit/train_step.py)
        raise TraceError(
            f"{what}: inside a traced function only loss.backward() (into .grad, no inputs=, no "
            "create_graph) is recorded; autograd.grad and higher derivatives are not yet"
        )
    if retain_graph is None:
        retain_graph = create_graph
    if len(outputs) == 1:
        t, g = outputs[0], grad_outputs[0]
        info = getattr(t, "_ag", None) if type(t) is Tensor else None
        if (
            info is not None
            and info.node is not None
            and (not REWRITTEN or info.synced == EPOCH)  # (else sync_view first: _root_edge)
            and info.requires_grad
            and type(g) is Tensor
            and g._dtype is t._dtype
            and g._device is t._device
            and g._data.shape == t._data.shape
        ):  # (a result of a node and a gradient that fits it: what the checks below accept)
            roots = None
            node, root_index = info.node, info.index
        else:
            roots = (_root_edge(t, what),)
            grads = (_root_grad(t, g, what, 0),)
    else:
        roots = [_root_edge(t, what) for t in outputs]
        grads = [_root_grad(t, g, what, i) for i, (t, g) in enumerate(zip(outputs, grad_outputs))]
    targets = None
    if inputs is not None:
        targets = {}
        for k, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(f"{what}: inputs must be tensors, got {type(t).__name__}")
            info = getattr(t, "_ag", None)
            if REWRITTEN and info is not None and info.node is not None:
                info = sync_view(t, info)
            if info is None or not info.requires_grad:
                raise AutogradError(f"{what}: input {k}, {_describe(t)}, does not require grad")
            targets.setdefault(_edge(t, info), []).append(k)
    if roots is None:  # (the usual case: one result of a node, its gradient as given)
        buf = [None] * node.n_out
        buf[root_index] = g
        buffers: dict = {node: buf}
        heap: list = [(-node.seq, node)]  # (-seq, node): the node of the highest seq first
    elif len(roots) == 1:
        node, i = roots[0]
        buf = [None] * node.n_out
        buf[i] = grads[0]
        buffers = {node: buf}
        heap = [(-node.seq, node)]
    else:
        buffers = {}
        heap = []
        for (node, i), g in zip(roots, grads):
            buf = buffers.get(node)
            if buf is None:
                buf = buffers[node] = [None] * node.n_out
                _heappush(heap, (-node.seq, node))
            _add(buf, i, g)
    needed = None
    if targets is not None:
        order = _topo([n for _, n in heap])
        tnodes = {n for n, _ in targets}
        needed = set()
        for node in reversed(order):
            if node in tnodes or any(e is not None and e[0] in needed for e in node.edges):
                needed.add(node)
    captured: dict | None = None if targets is None else {}
    # a gradient for a leaf goes straight into its ``.grad`` as its rule gives it, without a
    # turn of the walk for the leaf's accumulator (the usual case: no hooks on the leaf, no
    # inputs=, no create_graph); two gradients of one leaf are then added into it in turn
    direct = targets is None and accumulate and not create_graph
    prev = MODE.enabled
    MODE.enabled = True if create_graph else False
    F = _FUSEJIT[0] if _FUSEJIT else _F()
    try:
        while heap:
            node = _heappop(heap)[1]
            buf = buffers.pop(node)
            if needed is not None and node not in needed:
                continue
            if node.hooks:
                for i, hooks in node.hooks.items():
                    for h in list(hooks):
                        if buf[i] is not None:
                            r = h(buf[i])
                            if r is not None:
                                buf[i] = r
            if node.retained:
                for i, ref in node.retained.items():
                    t = ref()
                    if t is not None and buf[i] is not None:
                        g = buf[i] if create_graph else buf[i].detach()
                        old = t._ag.grad
                        t._ag.grad = _fresh(g) if old is None else F.add(old, g)
            if node.is_acc:
                g = buf[0]
                if node.leaf_hooks:
                    for h in list(node.leaf_hooks):
                        r = h(g)
                        if r is not None:
                            g = r
                if targets is not None and (node, 0) in targets:
                    captured[(node, 0)] = g
                    if accumulate:
                        node.accumulate(g, create_graph)
                elif targets is None and accumulate:
                    node.accumulate(g, create_graph)
                continue
            if targets is not None:
                for i in range(node.n_out):
                    if (node, i) in targets:
                        captured[(node, i)] = buf[i]
                if not any(e is not None and e[0] in needed for e in node.edges):
                    continue
            if buf[0] is None or node.n_out > 1:  # (``None in buf`` would compare tensors)
                for i in range(node.n_out):
                    if buf[i] is None:
                        shape, dtype, device = node.out_meta(i)
                        if _differentiable_dtype(dtype):
                            buf[i] = F.zeros(shape, dtype=dtype, device=device)
            owned = False  # (a rule's gradient may be its incoming one, or shared)
            if type(node) is OpNode:
                # (``OpNode.run`` written out: the walk runs it for nearly every node, and a
                # method call, ``_F()`` and ``isinstance`` are a good part of the time it adds
                # to the rule's own)
                ins = node._inputs
                vjp = node.op.vjp
                if node.released or vjp is None:
                    node.run(buf)  # (raises the error)
                res = vjp(F, node, *buf)
                if not isinstance(res, tuple):
                    res = (res,)
                if len(res) != len(ins):
                    _raise_count(node, res)
            else:
                res = node.run(buf)
                ins = None
                owned = getattr(node, "fresh", False)
                if not retain_graph:
                    # (what it saved, a compiled backward's activations, is freed before the
                    # leaves below take copies of their gradients)
                    node.release()
            if owned and direct:
                res = list(res)  # (emptied as the leaves take their gradients, below)
            i = 0
            for e, g in zip(node.edges, res):
                if e is not None and g is not None:
                    if ins is not None:
                        a = ins[i]
                        bad = (
                            type(g) is not Tensor
                            or g._dtype is not a._dtype
                            or g._data.shape != a._data.shape
                        )
                    else:
                        m = node.input_meta(i)
                        bad = type(g) is not Tensor or g._data.shape != m[0] or g._dtype is not m[1]
                    if bad:
                        g = _fit(node, i, g, create_graph)
                    if g is not None:
                        nxt = e[0]
                        if direct and nxt.is_acc and not nxt.leaf_hooks:
                            if owned:
                                # (without this reference the result is freed once .grad has
                                # it, not with all of the node's at the end)
                                res[i] = None
                            nxt.accumulate(g, False, owned)
                            i += 1
                            continue
                        nb = buffers.get(nxt)
                        if nb is None:
                            nb = buffers[nxt] = [None] * nxt.n_out
                            _heappush(heap, (-nxt.seq, nxt))
                            nb[e[1]] = g
                        else:
                            _add(nb, e[1], g)
                i += 1
            # the gradients live in the buffers now, each freed once its node has run (held
            # here, the results of a node with many, a compiled backward's, stayed till the end)
            res = g = buf = None
            if not retain_graph:
                node.release()
    finally:
        MODE.enabled = prev
    if targets is None:
        return None
    if accumulate:  # backward(inputs=...): the non-leaf inputs keep their gradient too
        for (node, i), ks in targets.items():
            g = captured.get((node, i))
            if g is not None and not node.is_acc:
                t = inputs[ks[0]]
                g = g if create_graph else g.detach()
                old = t._ag.grad
                t._ag.grad = _fresh(g) if old is None else F.add(old, g)
        return None
    out = [None] * len(inputs)
    for key, ks in targets.items():
        g = captured.get(key)
        for k in ks:
            if g is None and not allow_unused:
                raise AutogradError(
                    f"{what}: input {k}, {_describe(inputs[k])}, was not used to compute the "
                    "outputs (its gradient is undefined); pass allow_unused=True for None"
                )
            out[k] = g
    return tuple(out)


def _as_tuple(x) -> tuple:
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def backward(self: Tensor, gradient=None, retain_graph=None, create_graph: bool = False,
             inputs=None) -> None:  # fmt: skip
    """Compute the gradients of this tensor with respect to the leaves it was computed from,
    adding them into their ``.grad`` (``gradient``: the gradient of this tensor, needed unless
    it has one element; ``retain_graph``: keep the graph for another backward;
    ``create_graph``: record the backward, for higher derivatives; ``inputs``: accumulate only
    into these).

    >>> import fusejit
    >>> x = fusejit.tensor([1.0, 2.0]).requires_grad_()
    >>> (x * x).sum().backward()
    >>> x.grad.tolist()
    [2.0, 4.0]
    """
    if inputs is not None:
        inputs = _as_tuple(inputs)
    run_backward((self,), (gradient,), retain_graph, create_graph, inputs, True, True)


def backward_all(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False,
                 inputs=None) -> None:  # fmt: skip
    """``fusejit.autograd.backward``: the backward pass from several tensors at once (each with
    its gradient in ``grad_tensors``, None for a one-element tensor), accumulating into the
    leaves' ``.grad``, as ``torch.autograd.backward``.

    >>> import fusejit
    >>> x = fusejit.tensor([1.0, 2.0]).requires_grad_()
    >>> fusejit.autograd.backward([(x * 2).sum(), (x * x).sum()])
    >>> x.grad.tolist()
    [4.0, 6.0]
    """
    tensors = _as_tuple(tensors)
    if grad_tensors is None:
        grad_tensors = (None,) * len(tensors)
    else:
        grad_tensors = (grad_tensors,) if isinstance(grad_tensors, Tensor) else tuple(grad_tensors)
        if len(grad_tensors) != len(tensors):
            raise ShapeError(f"backward: {len(grad_tensors)} grad_tensors for {len(tensors)} "
                             "tensors")  # fmt: skip
    if inputs is not None:
        inputs = _as_tuple(inputs)
    run_backward(tensors, grad_tensors, retain_graph, create_graph, inputs, accumulate=True,
                 allow_unused=True)  # fmt: skip


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused: bool = False, materialize_grads: bool = False) -> tuple:  # fmt: skip
    """The gradients of ``outputs`` with respect to ``inputs`` (a tuple, one per input),
    without touching any ``.grad`` (``torch.autograd.grad``).

    >>> import fusejit
    >>> x = fusejit.tensor([3.0]).requires_grad_()
    >>> fusejit.autograd.grad((x * x).sum(), x)[0].tolist()
    [6.0]
    """
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    else:
        grad_outputs = _as_tuple(grad_outputs)
        if len(grad_outputs) != len(outputs):
            raise ShapeError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    res = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs,
                       accumulate=False, allow_unused=allow_unused or materialize_grads,
                       what="grad")  # fmt: skip
    if materialize_grads:
        F = _F()
        res = tuple(F.zeros_like(x) if g is None else g for x, g in zip(inputs, res))
    return res


# ---- Tensor methods ----------------------------------------------------------------------------
def _grad_fn(self):
    info = getattr(self, "_ag", None)
    if REWRITTEN and info is not None and info.node is not None:
        info = sync_view(self, info)
    return None if info is None else info.node


def _is_leaf(self) -> bool:
    info = getattr(self, "_ag", None)
    return info is None or info.node is None


def detach(self) -> Tensor:
    """A tensor sharing this one's storage, without history (does not require grad)."""
    if recording.TRACER is not None:
        # a node of the graph (a view: writes through it reach this tensor's value, as the
        # tracer's view tracking sees), through which a joint graph passes no gradient
        return _F().eager.call("detach", self)
    t = _new(Tensor)
    t._data, t._dtype, t._device = self._data, self._dtype, self._device
    t._ag = None
    return t


def detach_(self) -> Tensor:
    """Detach this tensor from its history in place (it becomes a leaf not requiring grad)."""
    info = getattr(self, "_ag", None)
    if info is not None:
        info.node = None
        info.requires_grad = False
    return self


def zero_grads(params, set_to_none: bool = True) -> None:
    """Clear the ``.grad`` of each tensor of ``params`` (what ``Module.zero_grad`` and
    ``Optimizer.zero_grad`` do): set it to None, or detach it and fill it with zeros."""
    for p in params:
        g = p.grad
        if g is None:
            continue
        if set_to_none:
            p.grad = None
            if recording.TRACER is not None:  # (a traced step need not check what it was)
                note = getattr(recording.TRACER, "note_grad_cleared", None)
                if note is not None:
                    note(p)
        else:
            detach_(g)
            g.zero_()


def retain_grad(self) -> None:
    """Keep this non-leaf tensor's gradient in ``.grad`` on backward (a no-op on leaves)."""
    info = getattr(self, "_ag", None)
    if info is None or not info.requires_grad:
        raise AutogradError(
            f"retain_grad: {_describe(self)} does not require grad; it has no gradient to keep"
        )
    if info.node is None or info.retains:
        return
    info.retains = True
    node = info.node
    if node.retained is None:
        node.retained = {}
    node.retained[info.index] = weakref.ref(self)


def _retains_grad(self) -> bool:
    info = getattr(self, "_ag", None)
    return info is not None and info.retains


def register_hook(self, hook) -> RemovableHandle:
    """Call ``hook(grad)`` with this tensor's gradient on each backward; a tensor it returns
    replaces the gradient. Returns a handle whose ``remove()`` takes the hook off."""
    info = getattr(self, "_ag", None)
    if info is None or not info.requires_grad:
        raise AutogradError(
            f"register_hook: {_describe(self)} does not require grad; a hook on it would never run"
        )
    if info.node is None:
        acc = _edge(self, info)[0]
        hooks = acc.leaf_hooks
    else:
        node = info.node
        if node.hooks is None:
            node.hooks = {}
        hooks = node.hooks.setdefault(info.index, [])
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def _version(self) -> int:
    return version_of(self)


def _get_data(self) -> Tensor:
    """``t.data``: the tensor's storage without its history (``detach()``)."""
    return detach(self)


def _set_data(self, value) -> None:
    """``t.data = other``: ``t`` holds ``other``'s storage from now on (its autograd flags
    stay)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"data: expected a tensor, got {type(value).__name__}")
    info = getattr(self, "_ag", None)
    if info is not None and info.requires_grad and not _differentiable_dtype(value._dtype):
        raise AutogradError(
            f"data: a tensor that requires grad cannot hold {value._dtype.name} data"
        )
    self._data, self._dtype, self._device = value._data, value._dtype, value._device


METHODS = {
    "backward": backward,
    "grad_fn": property(_grad_fn),
    "is_leaf": property(_is_leaf),
    "detach": detach,
    "detach_": detach_,
    "retain_grad": retain_grad,
    "retains_grad": property(_retains_grad),
    "register_hook": register_hook,
    "_version": property(_version),
    "data": property(_get_data, _set_data),
    "sum_to_size": sum_to_size,
}


# ---- custom functions --------------------------------------------------------------------------
class FunctionCtx:
    """The ``ctx`` of a ``Function``: ``save_for_backward``, ``saved_tensors``,
    ``needs_input_grad``; any other attribute may be set on it."""

    def save_for_backward(self, *tensors) -> None:
        self._saved = tensors
        self._saved_versions = [version_of(t) if isinstance(t, Tensor) else 0 for t in tensors]

    @property
    def saved_tensors(self) -> tuple:
        saved = getattr(self, "_saved", ())
        for i, t in enumerate(saved):
            if isinstance(t, Tensor) and version_of(t) != self._saved_versions[i]:
                raise AutogradError(
                    f"backward: saved tensor {i} of {self._name} ({_describe(t)}) was modified "
                    "by an in-place operation after it was saved"
                )
        return tuple(saved)

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_diff = {id(t) for t in tensors}


class Function:
    """A differentiable function given by its ``forward`` and ``backward`` (static methods
    taking ``ctx`` first), called with ``apply``, as ``torch.autograd.Function``.

    >>> import fusejit
    >>> class Cube(fusejit.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x * x * g
    >>> x = fusejit.tensor([2.0]).requires_grad_()
    >>> Cube.apply(x).sum().backward(); x.grad.tolist()
    [12.0]
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function.forward must be defined")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("Function.backward must be defined")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        ctx._name = cls.__name__ + "Backward"
        edges = []
        for a in args:
            info = getattr(a, "_ag", None) if isinstance(a, Tensor) else None
            if REWRITTEN and info is not None and info.node is not None and MODE.enabled:
                info = sync_view(a, info)
            edges.append(_edge(a, info) if info is not None and info.requires_grad else None)
        ctx.needs_input_grad = tuple(e is not None for e in edges)
        prev = MODE.enabled
        MODE.enabled = False
        try:
            out = cls.forward(ctx, *args, **kwargs)
        finally:
            MODE.enabled = prev
        if not prev or not any(e is not None for e in edges):
            return out
        single = isinstance(out, Tensor)
        outs = (out,) if single else tuple(out)
        fixed = []
        for o in outs:
            if isinstance(o, Tensor) and any(o is a for a in args):
                o = detach(o)
            fixed.append(o)
        tensors = [o for o in fixed if isinstance(o, Tensor)]
        saved = getattr(ctx, "_saved", None)
        if saved:  # results kept for backward as aliases: a result would point back at ctx
            ids = {id(o) for o in tensors}
            ctx._saved = tuple(detach(t) if id(t) in ids else t for t in saved)
        non_diff = getattr(ctx, "_non_diff", set())
        in_metas = [
            (a._data.shape, a._dtype, a._device) if isinstance(a, Tensor) else ((), None, None)
            for a in args
        ]

        def run(*grads):
            return cls.backward(ctx, *grads)

        node = FunctionNode(ctx._name, edges, tensors, run, in_metas)
        for i, o in enumerate(tensors):
            if _differentiable_dtype(o._dtype) and id(o) not in non_diff:
                o._ag = GradInfo(True, node, i)
        return fixed[0] if single else tuple(fixed)


# ---- gradcheck ---------------------------------------------------------------------------------
def _flat_outputs(out) -> list:
    outs = [out] if isinstance(out, Tensor) else list(out)
    return [o for o in outs if isinstance(o, Tensor) and _differentiable_dtype(o._dtype)]


def _to_np(t: Tensor) -> np.ndarray:
    return np.asarray(t._device.backend.to_numpy(t._data))


def _with_data(t: Tensor, arr: np.ndarray) -> Tensor:
    return Tensor._wrap(t._device.backend.from_numpy(np.array(arr, order="C")), t._dtype,
                        t._device)  # fmt: skip


def _jacobians(fn, inputs, eps):
    """Numerical Jacobians by central differences: for each input that requires grad, an
    array of shape (n_out_total, n_in) (complex outputs as their real and imaginary parts)."""
    base = [_to_np(t) if isinstance(t, Tensor) else None for t in inputs]

    def call(k, arr):
        # (copies that require grad as the inputs do: fn may itself differentiate)
        args = [
            (_with_data(t, arr if i == k else base[i]).requires_grad_(t.requires_grad)
             if isinstance(t, Tensor) else t)
            for i, t in enumerate(inputs)
        ]  # fmt: skip
        outs = _flat_outputs(fn(*args))
        parts = []
        for o in outs:
            a = _to_np(o).astype(np.complex128 if o._dtype.kind == "c" else np.float64)
            if o._dtype.kind == "c":
                parts += [a.real.ravel(), a.imag.ravel()]
            else:
                parts.append(a.ravel())
        return np.concatenate(parts) if parts else np.zeros(0)

    jac = []
    for k, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            jac.append(None)
            continue
        x = base[k].astype(np.float64)
        cols = []
        for j in range(x.size):
            xp = x.copy().ravel()
            xm = x.copy().ravel()
            xp[j] += eps
            xm[j] -= eps
            fp = call(k, xp.reshape(x.shape).astype(base[k].dtype))
            fm = call(k, xm.reshape(x.shape).astype(base[k].dtype))
            cols.append((fp - fm) / (2 * eps))
        n_out = len(call(k, base[k]))
        jac.append(np.stack(cols, axis=1) if cols else np.zeros((n_out, 0)))
    return jac


def _analytical(fn, inputs):
    F = _F()
    outs = _flat_outputs(fn(*inputs))
    diff_in = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    rows: list[list[np.ndarray]] = [[] for _ in diff_in]
    for o in outs:
        n = o.numel()
        units = (1.0, 1j) if o._dtype.kind == "c" else (1.0,)
        for u in units:
            for j in range(n):
                v = np.zeros(n, dtype=o._dtype.np)
                v[j] = u
                go = _with_data(o, v.reshape(o.shape))
                if not o.requires_grad:
                    gs = [None] * len(diff_in)
                else:
                    gs = grad(o, diff_in, go, retain_graph=True, allow_unused=True)
                for k, g in enumerate(gs):
                    if g is None:
                        rows[k].append(np.zeros(diff_in[k].numel()))
                    else:
                        rows[k].append(_to_np(g).astype(np.float64).ravel())
    del F
    res = []
    it = iter(rows)
    for t in inputs:
        if isinstance(t, Tensor) and t.requires_grad:
            r = next(it)
            res.append(np.stack(r) if r else np.zeros((0, t.numel())))
        else:
            res.append(None)
    return res


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:  # fmt: skip
    """Check the gradients autograd computes for ``fn(*inputs)`` against central differences
    (``torch.autograd.gradcheck``): every input that requires grad (float64, for precision) is
    perturbed by ``eps`` element by element; the Jacobians must agree within ``atol + rtol *
    |numerical|``. Complex outputs are checked on their real and imaginary parts. True, or an
    AutogradError naming the input and the worst element (False with
    ``raise_exception=False``).

    >>> import fusejit
    >>> x = fusejit.tensor([0.5, 1.5], dtype=fusejit.float64).requires_grad_()
    >>> fusejit.autograd.gradcheck(fusejit.sin, (x,))
    True
    """
    inputs = _as_tuple(inputs) if not isinstance(inputs, Tensor) else (inputs,)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t._dtype is not dt.float64:
            import warnings

            warnings.warn(
                f"gradcheck: input {i} is {t._dtype.name}, not float64: central differences "
                "will be imprecise",
                stacklevel=2,
            )
    num = _jacobians(fn, inputs, eps)
    ana = _analytical(fn, inputs)
    for k, (n, a) in enumerate(zip(num, ana)):
        if n is None:
            continue
        if n.shape != a.shape:
            msg = (f"gradcheck: input {k}: numerical Jacobian of shape {n.shape}, analytical "
                   f"of shape {a.shape}")  # fmt: skip
        else:
            bad = ~(np.abs(a - n) <= atol + rtol * np.abs(n))
            bad |= np.isnan(a) != np.isnan(n)
            if not bad.any():
                continue
            o, j = np.argwhere(bad)[0]
            msg = (
                f"gradcheck: Jacobian mismatch for input {k} ({_describe(inputs[k])}) at output "
                f"element {o}, input element {j}: analytical {a[o, j]!r}, numerical "
                f"{n[o, j]!r} ({int(bad.sum())} of {bad.size} entries differ)"
            )
        if raise_exception:
            raise AutogradError(msg)
        return False
    return True
