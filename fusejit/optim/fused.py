"""The fused ``step`` of ``SGD``, ``Adam`` and ``AdamW`` (``fused=True``): the parameters of a
group that have a gradient are updated by one multi-tensor kernel per (device, dtype)
(``fusejit/codegen/multi_tensor.py``, launched by ``fusejit.backends.multi_tensor``), which
reads each parameter, gradient and state once and writes the parameter and states in place.

The results equal the single-tensor updates' (``algorithms.sgd_update``, ``adam_update``)
bitwise: the kernels compute the same steps in the same order and dtypes. What a kernel cannot
take goes through the single-tensor update instead, with the same result: a parameter, gradient
or state that is not contiguous, that has another dtype or device than its parameter, a
learning rate or other hyper-parameter that is a tensor, or a step recorded by
``fusejit.trace`` (whose graph records the table ops).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from fusejit.backends import multi_tensor as bm
from fusejit.codegen.multi_tensor import UpdateSpec
from fusejit.eager import recording
from fusejit.eager.autograd import bump_version
from fusejit.optim.optimizer import _new_state, _step_tensor

# ``fused=None`` on the CPU: the fused step is the default there too. Measured with
# bench/bench_optim.py on the 2-core development machine (bench/RESULTS.md): AdamW over 148
# float32 tensors of 1.2M elements together is 4-5x faster fused than the single-tensor step,
# and 10 small tensors (a digits MLP) still faster; the kernel is compiled once per option set
# and dtype, then loaded from the kernel cache.
CPU_DEFAULT = True


def enabled(fused, device) -> bool:
    """Whether a group's ``fused`` setting (True, False, None: the device's default) fuses on
    ``device``."""
    if fused is None:
        return device.type == "cuda" or CPU_DEFAULT
    return bool(fused)


def _numbers(*values) -> bool:
    return all(isinstance(v, Real) and not isinstance(v, bool) for v in values)


def _state_ok(t, p) -> bool:
    return (
        t is not None
        and t._dtype is p._dtype
        and t._device is p._device
        and t._data.shape == p._data.shape
        and t._data.flags.c_contiguous
    )


def _next_step(state: dict, st) -> float:
    """The step count after this step: ``state["step"]`` (a 0-d float32 CPU tensor) counted up
    in place, as PyTorch's optimizers do (the single-tensor step replaces the tensor; the value
    is the same)."""
    a = st._data
    if type(a) is np.ndarray and a.shape == () and a.dtype == np.float32:
        step = float(a) + 1
        a[()] = step
        return step
    step = st.item() + 1
    state["step"] = _step_tensor(step)
    return step


def _addresses(opt, group: dict, dtype, device) -> bm.Addresses:
    """The optimizer's address tables, one per group, dtype and device (kept on the optimizer,
    so they go with it)."""
    tables = opt.__dict__.get("_multi_tensor_addresses")
    if tables is None:
        tables = opt._multi_tensor_addresses = {}
    # by the group's position: a group replaced (load_state_dict) reuses its tables, whose
    # rows then change at the next step and let the old arrays go
    index = next(i for i, g in enumerate(opt.param_groups) if g is group)
    key = (index, dtype, device)
    t = tables.get(key)
    if t is None:
        t = tables[key] = bm.Addresses()
    return t


def _partition(opt, group, fused):
    """``({(device, dtype): [(p, grad array)]}, rest)``: the parameters with a gradient the
    kernels take, by device and dtype, and the (parameter, gradient) pairs they do not."""
    parts: dict = {}
    rest = []
    tracing = recording.TRACER is not None
    for p, grad in opt._params_with_grad(group):
        d = p._data
        if (
            tracing
            or not enabled(fused, p._device)
            or grad._dtype is not p._dtype
            or grad._device is not p._device
            or grad._data.shape != d.shape
            or not d.flags.c_contiguous
            or not getattr(d.flags, "writeable", True)
        ):
            rest.append((p, grad))
            continue
        g = grad._data
        if not g.flags.c_contiguous:  # (read only: a contiguous copy will do)
            g = p.device.backend.xp.ascontiguousarray(g)
        parts.setdefault((p._device, p._dtype), []).append((p, g))
    return parts, rest


def sgd_step(opt, group) -> list:
    """Update ``group``'s parameters that the kernels take (see the module docstring); returns
    the (parameter, gradient) pairs left for the single-tensor update."""
    lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
    damp, nesterov, maximize = group["dampening"], group["nesterov"], group["maximize"]
    if not _numbers(lr, wd, mom, damp):
        return list(opt._params_with_grad(group))
    parts, rest = _partition(opt, group, group.get("fused"))
    for (_device, dtype), items in parts.items():
        spec = UpdateSpec(
            "sgd", dtype.name, maximize=bool(maximize), weight_decay=wd != 0,
            momentum=mom != 0, nesterov=bool(nesterov),
        )  # fmt: skip
        taken, flags, bufs = [], [], []
        for p, g in items:
            if mom != 0:
                state = opt.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = _new_state(p)  # (the kernel copies the gradient in)
                    first = 1
                elif _state_ok(buf, p):
                    first = 0
                else:
                    rest.append((p, p.grad))
                    continue
                bufs.append(buf)
                flags.append(first)
            taken.append((p, g))
        if not taken:
            continue
        lists = [[p._data for p, _ in taken], [g for _, g in taken]]
        if mom != 0:
            lists.append([b._data for b in bufs])
        T = len(taken)
        flag_arr = np.array(flags, np.int64) if flags else np.zeros(T, np.int64)
        scalars = (wd, mom, 1 - damp, -lr)
        addresses = _addresses(opt, group, dtype, _device)
        bm.update(spec, lists, np.zeros((T, 2)), flag_arr, scalars, addresses)
        for (p, _), buf, first in zip(taken, bufs or [None] * T, flags or [0] * T):
            bump_version(p)
            if buf is not None:
                if first:
                    opt.state[p]["momentum_buffer"] = buf
                else:
                    bump_version(buf)
    return rest


def adam_step(opt, group, decoupled: bool) -> list:
    """The fused ``Adam`` / ``AdamW`` (``decoupled``) update of ``group``; returns the
    (parameter, gradient) pairs left for the single-tensor update."""
    lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
    wd, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
    if not _numbers(lr, beta1, beta2, eps, wd):
        return list(opt._params_with_grad(group))
    weight = 1 - beta1
    from_end = abs(weight) >= 0.5  # (lerp computes from its end there)
    names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")
    parts, rest = _partition(opt, group, group.get("fused"))
    for (_device, dtype), items in parts.items():
        spec = UpdateSpec(
            "adam", dtype.name, maximize=bool(maximize), weight_decay=wd != 0,
            decoupled=decoupled, amsgrad=bool(amsgrad), lerp_from_end=from_end,
        )  # fmt: skip
        taken, states, steps = [], [], []
        for p, g in items:
            state = opt.state[p]
            if not state:
                state["step"] = _step_tensor()
                for name in names:
                    state[name] = _new_state(p)
            ts = [state.get(name) for name in names]
            st = state.get("step")
            if st is None or not (_state_ok(ts[0], p) and _state_ok(ts[1], p)
                                  and (len(ts) == 2 or _state_ok(ts[2], p))):  # fmt: skip
                rest.append((p, p.grad))
                continue
            steps.append(_next_step(state, st))
            taken.append((p, g))
            states.append(ts)
        if not taken:
            continue
        # per tensor: -lr / bias_correction1 and sqrt(bias_correction2), in Python floats as
        # the single-tensor step computes them
        tscal = np.array(
            [(-(lr / (1 - beta1**t)), math.sqrt(1 - beta2**t)) for t in steps], np.float64
        )
        lists = [[p._data for p, _ in taken], [g for _, g in taken]]
        lists += [[ts[j]._data for ts in states] for j in range(len(names))]
        scalars = (
            (1 - lr * wd) if decoupled else wd,
            (1 - weight) if from_end else weight,
            beta2,
            1 - beta2,
            eps,
        )
        flags = np.zeros(len(taken), np.int64)
        bm.update(spec, lists, tscal, flags, scalars, _addresses(opt, group, dtype, _device))
        for (p, _), ts in zip(taken, states):
            bump_version(p)
            for t in ts:
                bump_version(t)
    return rest


__all__ = ["sgd_step", "adam_step", "enabled", "CPU_DEFAULT"]
