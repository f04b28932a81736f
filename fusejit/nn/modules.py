"""Neural-network building blocks: ``Module``, ``Parameter`` and common layers.

Modules hold their parameters, buffers and submodules in ordered registries filled by attribute
assignment, as in ``torch.nn``. Layers run eagerly; wrap a model in ``fusejit.optimize`` to
trace and fuse it.

>>> import fusejit
>>> from fusejit import nn
>>> _ = fusejit.manual_seed(0)
>>> mlp = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
>>> mlp(fusejit.ones(3, 4)).shape
(3, 2)
>>> [name for name, _ in mlp.named_parameters()]
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple

from fusejit.base import dtypes as dt
from fusejit.base.device import as_device
from fusejit.base.errors import FusejitError, fmt_shape
from fusejit.eager.autograd import zero_grads
from fusejit.eager.creation import ones, zeros
from fusejit.eager.elementwise import gelu, relu, sigmoid, silu, tanh
from fusejit.eager.grad_mode import no_grad
from fusejit.eager.linalg import linear
from fusejit.eager.random import rand, randn
from fusejit.eager.reductions import layer_norm, softmax
from fusejit.eager.tensor import Tensor, tensor
from fusejit.nn import functional as F

__all__ = [
    "Module", "Parameter", "Linear", "LayerNorm", "Embedding", "Dropout", "ReLU", "GELU",
    "SiLU", "Tanh", "Sigmoid", "Softmax", "Identity", "Sequential", "ModuleList",
    "LoadStateDictError",
]  # fmt: skip


class _Version:
    """Bumped whenever a module's structure changes in a way a traced graph can go stale over:
    a parameter, buffer or submodule is (re)assigned, parameters change dtype or device, a
    training flag changes. ``fusejit.optimize`` compares it on every call (one int compare)."""

    value = 0
    # while fusejit.optimize records a trace: the modules called, whose training flags then
    # become part of the optimized function's signatures
    seen: list | None = None


def _bump() -> None:
    _Version.value += 1


class LoadStateDictError(FusejitError, RuntimeError):
    """``load_state_dict`` found missing or unexpected keys, or tensors of the wrong shape.

    ``missing_keys``, ``unexpected_keys`` and ``mismatched`` (key, checkpoint shape, model
    shape) say what; nothing was copied.
    """

    def __init__(self, msg, missing_keys=(), unexpected_keys=(), mismatched=()) -> None:
        super().__init__(msg)
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.mismatched = list(mismatched)


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A tensor that a ``Module`` registers as a parameter when assigned to an attribute.

    It shares storage with the tensor it is made from and requires grad unless told not to
    (only floating-point parameters can).

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.zeros(2))
    >>> isinstance(p, fusejit.Tensor), p.shape, p.requires_grad
    (True, (2,), True)
    """

    __slots__ = ()

    def __new__(cls, data=None, requires_grad: bool = True):
        if data is None:
            data = zeros(0)
        elif not isinstance(data, Tensor):
            data = tensor(data)
        p = cls._wrap(data._data, data._dtype, data._device)
        if requires_grad:
            p.requires_grad = True  # (a DTypeError for an integer or bool parameter)
        return p

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__


def _plain(t: Tensor) -> Tensor:
    """A plain ``Tensor`` sharing ``t``'s storage (what ``state_dict`` hands out)."""
    return Tensor._wrap(t._data, t._dtype, t._device)


def _swap_storage(t: Tensor, new: Tensor) -> None:
    # Module.to keeps every parameter object and swaps what it holds, so references to the
    # parameters (optimizers, traced graphs that capture them) stay attached to the model.
    t._data, t._dtype, t._device = new._data, new._dtype, new._device


def _parse_to(args, device, dtype):
    for a in args:
        if isinstance(a, dt.DType) or (isinstance(a, str) and a in dt._BY_NAME):
            dtype = a
        elif isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        else:
            device = a
    return (
        None if device is None else as_device(device),
        None if dtype is None else dt.as_dtype(dtype),
    )


def _check_name(what: str, module, name) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{what}: the name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{what}: the name {name!r} must be non-empty and contain no '.'")
    d = module.__dict__
    if name in d and name != "training" or (name in type(module).__dict__):
        raise KeyError(f"{what}: attribute {name!r} already exists")


class Module:
    """Base class of layers and models: subclass it, assign layers and ``Parameter`` s in
    ``__init__`` (after ``super().__init__()``) and compute in ``forward``.

    >>> import fusejit
    >>> from fusejit import nn
    >>> class Scale(nn.Module):
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.w = nn.Parameter(fusejit.ones(n))
    ...     def forward(self, x):
    ...         return x * self.w
    >>> m = Scale(3)
    >>> m(fusejit.full((3,), 2.0)).tolist(), list(m.state_dict())
    ([2.0, 2.0, 2.0], ['w'])
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # ---- registration -----------------------------------------------------------------------
    def _stores(self):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign parameters or submodules to {type(self).__name__} before "
                "Module.__init__() is called (call super().__init__() first)"
            )
        return d["_parameters"], d["_buffers"], d["_modules"]

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, (Parameter, Module)):
            params, buffers, modules = self._stores()
            self._forget(name)
            (params if isinstance(value, Parameter) else modules)[name] = value
            _bump()
            return
        d = self.__dict__
        params, buffers, modules = (d.get(k) or {} for k in ("_parameters", "_buffers", "_modules"))
        if name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} "
                    "(a fusejit.nn.Parameter or None is expected; wrap tensors in Parameter)"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as submodule {name!r}")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r}")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            if name != "training":
                return
        _bump()

    def __getattr__(self, name: str):
        # only reached when normal lookup fails: parameters, buffers and submodules
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if not self._forget(name):
            object.__delattr__(self, name)
        _bump()

    def _forget(self, name: str) -> bool:
        d = self.__dict__
        found = False
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                del s[name]
                found = True
        d.get("_non_persistent", set()).discard(name)
        if name in d and name != "training":
            del d[name]
        return found

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None")
        _check_name("register_parameter", self, name)
        params, _, _ = self._stores()
        self._forget(name)
        params[name] = param
        _bump()

    def register_buffer(self, name: str, value: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not a parameter (running statistics, masks); moved by
        ``to()`` and saved in ``state_dict()`` unless ``persistent=False``."""
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None")
        _check_name("register_buffer", self, name)
        _, buffers, _ = self._stores()
        self._forget(name)
        buffers[name] = value
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        _bump()

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None")
        _check_name("add_module", self, name)
        _, _, modules = self._stores()
        self._forget(name)
        modules[name] = module
        _bump()

    # ---- traversal --------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True):  # fmt: skip
        """``(dotted name, module)`` for this module (name ``prefix``) and every submodule,
        depth first; a module reached twice is listed once unless ``remove_duplicate=False``."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                sub = f"{prefix}.{name}" if prefix else name
                yield from m.named_modules(memo, sub, remove_duplicate)

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` (``""``: this module)."""
        m = self
        for part in target.split(".") if target else ():
            sub = m._modules.get(part) if isinstance(m, Module) else None
            if sub is None:
                raise AttributeError(f"{type(m).__name__} has no submodule {part!r} ({target!r})")
            m = sub
        return m

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target``."""
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._parameters or m._parameters[name] is None:
            raise AttributeError(f"{type(m).__name__} has no parameter {name!r}")
        return m._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path ``target``."""
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._buffers or m._buffers[name] is None:
            raise AttributeError(f"{type(m).__name__} has no buffer {name!r}")
        return m._buffers[name]

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named(self, store: str, prefix: str, recurse: bool):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, t in getattr(m, store).items():
                if t is not None and id(t) not in seen:  # shared (tied) tensors once
                    seen.add(id(t))
                    yield (f"{mp}.{name}" if mp else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        yield from self._named("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        """``(dotted name, buffer)`` of every buffer, non-persistent ones included."""
        yield from self._named("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call ``fn`` on every submodule (children first) and on this module; returns this
        module (``model.apply(init_weights)``)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- state ------------------------------------------------------------------------------
    def _state_items(self, prefix: str = ""):
        for mp, m in self.named_modules(prefix=prefix):
            pre = f"{mp}." if mp else ""
            for name, p in m._parameters.items():
                if p is not None:
                    yield pre + name, p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    yield pre + name, b

    def state_dict(self, *, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name. The tensors share storage with
        the module's (``keep_vars=True`` gives the ``Parameter`` objects themselves)."""
        return OrderedDict((k, v if keep_vars else _plain(v)) for k, v in self._state_items(prefix))

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy tensors from ``state_dict`` into this module's parameters and buffers *in
        place* (the parameter objects stay the same, so optimized wrappers keep reading them).

        Raises ``LoadStateDictError`` on a shape mismatch, and with ``strict`` on missing or
        unexpected keys, before copying anything. Values may be tensors, arrays or lists.
        """
        own = dict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        values = {}
        for k, dst in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            if not isinstance(v, Tensor):
                v = tensor(v, dtype=dst.dtype)
            if tuple(v.shape) != tuple(dst.shape):
                mismatched.append((k, tuple(v.shape), tuple(dst.shape)))
            values[k] = v
        problems = []
        if strict and missing:
            problems.append("missing key(s): " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            problems.append("unexpected key(s): " + ", ".join(repr(k) for k in unexpected))
        for k, got, want in mismatched:
            problems.append(
                f"size mismatch for {k!r}: the checkpoint has shape {fmt_shape(got)}, "
                f"the model {fmt_shape(want)}"
            )
        if problems:
            raise LoadStateDictError(
                f"load_state_dict for {type(self).__name__}: " + "; ".join(problems),
                missing,
                unexpected,
                mismatched,
            )
        with no_grad():  # (writing parameters that require grad, as PyTorch's)
            for k, v in values.items():
                own[k].copy_(v)
        return IncompatibleKeys(missing, unexpected)

    # ---- device, dtype, mode ----------------------------------------------------------------
    def to(self, *args, device=None, dtype=None) -> Module:
        """Move parameters and buffers to ``device`` and/or convert the floating-point ones to
        ``dtype``, in place (the tensor objects are kept). Returns ``self``."""
        dev, d = _parse_to(args, device, dtype)
        if d is not None and not d.is_floating_point:
            raise TypeError(f"Module.to: dtype must be a floating-point dtype, got {d.name}")
        changed = False
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is None:
                        continue
                    new = t
                    if dev is not None and new.device is not dev:
                        new = new.to(dev)
                    if d is not None and new.dtype.is_floating_point and new.dtype is not d:
                        new = new.to(dtype=d)
                    if new is not t:
                        _swap_storage(t, new)
                        changed = True
        if changed:
            _bump()
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device=None) -> Module:
        """Move to a GPU: ``device`` an index or name, the first GPU by default."""
        if device is None or isinstance(device, int):
            device = f"cuda:{device or 0}"
        return self.to(device)

    def float(self) -> Module:
        return self.to(dtype=dt.float32)

    def double(self) -> Module:
        return self.to(dtype=dt.float64)

    def half(self) -> Module:
        return self.to(dtype=dt.float16)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter: set them to None (the default), or fill
        them with zeros (``set_to_none=False``)."""
        zero_grads(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter (freeze a model with False); returns the
        module."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``Dropout`` is active) on this module and all submodules."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    # ---- calling and printing ---------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        seen = _Version.seen
        if seen is not None:
            seen.append(self)
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (f"\n  {extra}" if extra else "")
        return head + "\n" + "\n".join(lines) + "\n)"


# ---- layers -------------------------------------------------------------------------------------
def _uniform(shape, bound: float, dtype, device) -> Parameter:
    """U(-bound, bound), drawn from the seeded generator in float64 and then converted."""
    u = rand(*shape, dtype=dt.float64) * (2.0 * bound) - bound
    return Parameter(u.to(device=as_device(device), dtype=dtype or dt.default_float))


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape ``[out_features, in_features]``.

    Initialized as in PyTorch: weight and bias uniform on ``(-1/sqrt(in), 1/sqrt(in))``.

    >>> import fusejit
    >>> lin = fusejit.nn.Linear(3, 2)
    >>> lin(fusejit.zeros(5, 3)).shape, lin.weight.shape
    ((5, 2), (2, 3))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        # kaiming_uniform(a=sqrt(5)) reduces to this bound, the same as the bias's
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = _uniform((out_features, in_features), bound, dtype, device)
        if bias:
            self.bias = _uniform((out_features,), bound, dtype, device)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")  # fmt: skip


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dims, then scale and shift (weight
    starts at ones, bias at zeros).

    >>> import fusejit
    >>> ln = fusejit.nn.LayerNorm(4)
    >>> [round(v, 4) for v in ln(fusejit.arange(4.0)).tolist()]
    [-1.3416, -0.4472, 0.4472, 1.3416]
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, *, device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(self.normalized_shape, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(zeros(self.normalized_shape, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")  # fmt: skip


class Embedding(Module):
    """A lookup table: ``forward(index)`` gathers rows of ``weight`` (init N(0, 1); the
    ``padding_idx`` row, if given, starts at zero).

    The rows are gathered with ``index_select`` (``F.embedding``), so the layer traces and
    fuses like any other.

    >>> import fusejit
    >>> emb = fusejit.nn.Embedding(10, 3, padding_idx=0)
    >>> emb(fusejit.tensor([[0, 4], [4, 9]])).shape, emb(fusejit.tensor([0])).tolist()
    ((2, 2, 3), [[0.0, 0.0, 0.0]])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 *, device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        w = randn(num_embeddings, embedding_dim, dtype=dt.float64)
        w = w.to(dtype=dtype or dt.default_float)
        if padding_idx is not None:
            w[padding_idx] = 0.0
        self.weight = Parameter(w.to(device=as_device(device)))

    def forward(self, index) -> Tensor:
        w = self.weight
        if not isinstance(index, Tensor):
            index = tensor(index, device=w.device)
        if index.dtype.is_floating_point or index.dtype is dt.bool_:
            raise TypeError(f"Embedding: indices must be integers, got {index.dtype.name}")
        return F.embedding(index, w, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode and scale the rest by
    ``1/(1-p)``; the identity in eval mode: ``F.dropout`` (masks from ``fusejit.rand_like``,
    seeded by ``fusejit.manual_seed``, fresh at each call of a traced or optimized function).

    >>> import fusejit
    >>> d = fusejit.nn.Dropout(0.5).eval()
    >>> d(fusejit.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.inplace = inplace  # accepted for familiarity; the result is always a new tensor

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
            what = x.dtype.name if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"Dropout: expected a floating-point tensor, got {what}")
        return F.dropout(x, self.p, training=True)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class ReLU(Module):
    """``max(x, 0)``."""

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class GELU(Module):
    """GELU, exact (``approximate='none'``) or the tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """``x * sigmoid(x)``."""

    def forward(self, x: Tensor) -> Tensor:
        return silu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class Softmax(Module):
    """Softmax along ``dim`` (default: the last dim)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ---- containers ---------------------------------------------------------------------------------
class Sequential(Module):
    """Modules applied in order; built from arguments or an ordered dict of named modules.

    >>> import fusejit
    >>> from fusejit import nn
    >>> seq = nn.Sequential(nn.ReLU(), nn.Tanh())
    >>> len(seq), type(seq[1]).__name__
    (2, 'Tanh')
    """

    def __init__(self, *modules) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(str(name), m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[_index(idx, len(items))][1]

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


def _index(i: int, n: int) -> int:
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for a container of {n} modules")
    return i % n


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain list's would not be).

    >>> import fusejit
    >>> layers = fusejit.nn.ModuleList([fusejit.nn.Linear(2, 2) for _ in range(3)])
    >>> len(list(layers.parameters()))
    6
    """

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[_index(idx, len(mods))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(idx, len(self))), module)

    def _renumber(self, mods) -> None:
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m
        _bump()

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.insert: expected a Module, got {type(module).__name__}")
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)

    def __delitem__(self, idx: int) -> None:
        mods = list(self._modules.values())
        del mods[_index(idx, len(mods))]
        self._renumber(mods)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it instead")
