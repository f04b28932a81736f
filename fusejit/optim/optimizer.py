"""``Optimizer``: the base class of ``fusejit.optim``'s algorithms, with PyTorch's parameter
groups, ``zero_grad``, ``step(closure)`` and ``state_dict`` / ``load_state_dict`` structure.

Updates are written with public fusejit functions (table ops) and written back into the
parameters in place under ``no_grad``.
"""

from __future__ import annotations

import copy
from collections import defaultdict

from fusejit.base import dtypes as dt
from fusejit.base.errors import DTypeError
from fusejit.eager import recording
from fusejit.eager.autograd import zero_grads
from fusejit.eager.creation import full_like, zeros_like
from fusejit.eager.grad_mode import enable_grad, no_grad
from fusejit.eager.tensor import Tensor, tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """The default of a hyper-parameter that every parameter group must give (``lr`` of SGD)."""

    def __repr__(self) -> str:
        return "<required parameter>"

    def __deepcopy__(self, memo):
        return self


required = _Required()
# group settings that ``load_state_dict`` keeps from the optimizer rather than the loaded dict:
# a state saved by a fused optimizer loads into an unfused one and the other way round
_KEPT_ON_LOAD = ("fused",)


def _step_tensor(value: float = 0.0) -> Tensor:
    """The ``step`` count of a parameter's state: a 0-d float32 tensor on the CPU, as PyTorch's."""
    return tensor(float(value), dtype=dt.float32)


class Optimizer:
    """Base class of the optimizers: holds ``param_groups`` (a list of dicts, each with its
    ``params`` and its hyper-parameters, filled from ``defaults``) and ``state`` (per parameter).

    Subclasses implement ``step``.

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.ones(2))
    >>> opt = fusejit.optim.SGD([p], lr=0.5)
    >>> p.grad = fusejit.tensor([1.0, -2.0])
    >>> _ = opt.step()
    >>> p.tolist()
    [0.5, 2.0]
    >>> opt.zero_grad(); p.grad is None
    True
    """

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        if isinstance(params, dict):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                "dicts, but got dict (pass [dict] for one parameter group)"
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (a dict with ``params`` and hyper-parameters; those not
        given take the optimizer's defaults), e.g. to train layers unfrozen later."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
            if not getattr(p, "is_leaf", True):
                raise ValueError("can't optimize a non-leaf Tensor")
            if not p.dtype.is_floating_point:
                raise DTypeError(
                    f"{type(self).__name__}: can only optimize floating-point tensors, got a "
                    f"parameter of dtype {p.dtype.name}"
                )
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to None (the default) or to zeros."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def _closure_loss(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def step(self, closure=None):
        """One update of every parameter that has a ``.grad``; ``closure`` (re-evaluating the
        model and returning the loss) is called first when given; returns its loss."""
        raise NotImplementedError

    # -- state_dict ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"state": {index: {name: value}}, "param_groups": [{..., "params": [indices]}]}``
        as PyTorch's: parameters are numbered in the order of the groups."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = dict(self.state[p])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load what ``state_dict`` returned (possibly from a checkpoint): the hyper-parameters
        of each group and the per-parameter state, cast to each parameter's dtype and device."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(
                "load_state_dict: expected a dict with 'state' and 'param_groups' (what "
                "Optimizer.state_dict() returns)"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, s in zip(self.param_groups, saved_groups):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    "of optimizer's group"
                )
        id_map = {}
        for g, s in zip(self.param_groups, saved_groups):
            for i, p in zip(s["params"], g["params"]):
                id_map[int(i)] = p
        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            k = int(k)
            if k not in id_map:
                continue
            p = id_map[k]
            state[p] = {name: _cast_state(p, name, value) for name, value in v.items()}
        new_groups = []
        for g, s in zip(self.param_groups, saved_groups):
            ng = copy.deepcopy({k: v for k, v in s.items() if k != "params"})
            for k in _KEPT_ON_LOAD:  # how this optimizer runs, not what it learned
                if k in g:
                    ng[k] = g[k]
            ng["params"] = g["params"]
            new_groups.append(ng)
        self.state = state
        self.param_groups = new_groups

    # -- helpers for the algorithms -----------------------------------------------------------

    def _step_tracer(self):
        """The tracer recording this ``step`` into a whole training step's graph, or None.
        Once per step it registers a guard on what the traced update assumes: the parameter
        groups (the same dicts and parameters, hyper-parameters other than ``lr`` equal) and
        each parameter's state (the same keys and tensors); a call that fails it traces
        again (``fusejit/jit/train_step.py``)."""
        tracer = recording.tracing()
        if tracer is None or not hasattr(tracer, "live_scalars"):
            return None
        groups = [(g, list(g["params"]), {k: v for k, v in g.items() if k not in ("params", "lr")})
                  for g in self.param_groups]  # fmt: skip
        states = [(p, dict(st)) for p, st in self.state.items()]
        name = type(self).__name__

        def check():
            if len(self.param_groups) != len(groups):
                n = len(self.param_groups)
                return f"{name} has {n} parameter groups, traced with {len(groups)}"
            for i, (g, params, hyper) in enumerate(groups):
                now = self.param_groups[i]
                if (
                    now is not g
                    or len(now["params"]) != len(params)
                    or any(a is not b for a, b in zip(now["params"], params))
                ):
                    return f"parameter group {i} of {name} was replaced or has other parameters"
                for k, v in hyper.items():
                    if k not in g or g[k] != v:
                        return (f"{name} parameter group {i}: {k} is {g.get(k)!r}, traced with "
                                f"{v!r} (only lr is read at each call)")  # fmt: skip
            if len(self.state) != len(states):
                return (
                    f"the state of {name} has {len(self.state)} entries, traced with {len(states)}"
                )
            for p, st in states:
                now = self.state.get(p) if p in self.state else None
                if (
                    now is None
                    or now.keys() != st.keys()
                    or any(now[k] is not v for k, v in st.items() if k != "step")
                ):
                    return f"the state of {name} for a parameter of shape {list(p.shape)} changed"
            return None

        tracer.guard(check)
        return tracer

    def _params_with_grad(self, group: dict):
        for p in group["params"]:
            if p.grad is not None:
                yield p, p.grad


def _cast_state(p: Tensor, name: str, value):
    """A state value loaded for parameter ``p``: tensors go to ``p``'s device, floating ones
    to its dtype; ``step`` stays a float32 CPU tensor, as PyTorch keeps it."""
    if not isinstance(value, Tensor):
        return copy.deepcopy(value)
    if name == "step":
        return _step_tensor(value.item())
    if value.dtype.is_floating_point:
        return value.to(device=p.device, dtype=p.dtype).clone()
    return value.to(p.device).clone()


def _write(p: Tensor, value: Tensor) -> None:
    """Store an update into parameter or state tensor ``p`` in place."""
    with no_grad():
        p.copy_(value)


def _new_state(p: Tensor, fill: float = 0.0) -> Tensor:
    return zeros_like(p) if fill == 0 else full_like(p, fill)
