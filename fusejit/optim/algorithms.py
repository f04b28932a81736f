"""The optimizers: ``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``.

Each ``step`` follows the arithmetic, in its order, of PyTorch's single-tensor (for-loop)
implementation, written with public fusejit functions (table ops); ``SGD``, ``Adam`` and
``AdamW`` with ``fused`` (the default) run the same arithmetic as one multi-tensor kernel per
device and dtype (``fused.py``), with bitwise the same results. The arithmetic of one
parameter's update is a function of its own (``sgd_update``, ``adam_update``,
``rmsprop_update``, ``adagrad_update``: new tensors from old ones, nothing written), which
``fusejit.trace`` fuses into one kernel; ``step`` writes its results back in place.
"""

from __future__ import annotations

import math

from fusejit.eager.composites import addcdiv, addcmul, lerp
from fusejit.eager.elementwise import maximum, sqrt
from fusejit.eager.grad_mode import no_grad
from fusejit.eager.tensor import Tensor
from fusejit.optim import fused as fused_step
from fusejit.optim.optimizer import Optimizer, _new_state, _step_tensor, _write, required

__all__ = [
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "sgd_update", "adam_update", "rmsprop_update",
    "adagrad_update",
]  # fmt: skip


def _check(ok: bool, what: str, value) -> None:
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _fused_arg(fused):
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f"fused must be True, False or None, got {type(fused).__name__}")
    return fused


def _next_step(state: dict) -> float:
    step = state["step"].item() + 1
    state["step"] = _step_tensor(step)
    return step


def sgd_update(
    param, grad, momentum_buffer, *, lr, momentum, dampening, weight_decay, nesterov, maximize
):
    """One SGD step of one parameter as new tensors: ``(param, momentum_buffer)`` (the buffer is
    None without momentum; pass None as ``momentum_buffer`` on the first step)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    buf = None
    if momentum != 0:
        if momentum_buffer is None:
            buf = grad.clone()
        else:
            buf = momentum_buffer * momentum + (1 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    return param + (-lr) * grad, buf


def adam_update(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    *,
    step,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    amsgrad,
    maximize,
    decoupled=False,
):
    """One Adam (``decoupled``: AdamW) step of one parameter as new tensors: ``(param, exp_avg,
    exp_avg_sq, max_exp_avg_sq)`` (the last None without ``amsgrad``); ``step`` counts from 1."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled:
            param = param * (1 - lr * weight_decay)
        else:
            grad = grad + weight_decay * param
    exp_avg = lerp(exp_avg, grad, 1 - beta1)
    exp_avg_sq = addcmul(exp_avg_sq * beta2, grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)
    return _adam_tail(param, exp_avg, exp_avg_sq, max_exp_avg_sq, -step_size,
                      bias_correction2_sqrt, eps, amsgrad)  # fmt: skip


def _adam_tail(param, exp_avg, exp_avg_sq, max_exp_avg_sq, neg_step_size, bc2_sqrt, eps, amsgrad):
    """The end of an Adam step, from ``-lr / bias_correction1`` and ``sqrt(bias_correction2)``
    (Python floats, or 0-d tensors filled at each call of a traced training step)."""
    if amsgrad:
        max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq)
        denom = sqrt(max_exp_avg_sq) / bc2_sqrt + eps
    else:
        max_exp_avg_sq = None
        denom = sqrt(exp_avg_sq) / bc2_sqrt + eps
    if isinstance(neg_step_size, Tensor):  # (addcdiv's value is a number)
        new = param + neg_step_size * exp_avg / denom
    else:
        new = addcdiv(param, exp_avg, denom, value=neg_step_size)
    return new, exp_avg, exp_avg_sq, max_exp_avg_sq


def _adam_traced(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, decay, neg_step_size,
                 bc2_sqrt, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                 decoupled):  # fmt: skip
    """``adam_update`` with what changes between steps given as 0-d tensors (a traced training
    step fills them at each call): ``decay`` = ``1 - lr * weight_decay``, ``neg_step_size`` =
    ``-lr / bias_correction1``, ``bc2_sqrt``; the same arithmetic, rounded the same."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled:
            param = param * decay
        else:
            grad = grad + weight_decay * param
    exp_avg = lerp(exp_avg, grad, 1 - beta1)
    exp_avg_sq = addcmul(exp_avg_sq * beta2, grad, grad, value=1 - beta2)
    return _adam_tail(param, exp_avg, exp_avg_sq, max_exp_avg_sq, neg_step_size, bc2_sqrt, eps,
                      amsgrad)  # fmt: skip


def rmsprop_update(
    param,
    grad,
    square_avg,
    grad_avg,
    momentum_buffer,
    *,
    lr,
    alpha,
    eps,
    weight_decay,
    momentum,
    centered,
    maximize,
):
    """One RMSprop step of one parameter as new tensors: ``(param, square_avg, grad_avg,
    momentum_buffer)`` (``grad_avg`` None unless ``centered``, the buffer None without
    momentum)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg = addcmul(square_avg * alpha, grad, grad, value=1 - alpha)
    if centered:
        grad_avg = lerp(grad_avg, grad, 1 - alpha)
        avg = sqrt(addcmul(square_avg, grad_avg, grad_avg, value=-1))
    else:
        grad_avg = None
        avg = sqrt(square_avg)
    avg = avg + eps
    if momentum > 0:
        buf = addcdiv(momentum_buffer * momentum, grad, avg)
        return param + (-lr) * buf, square_avg, grad_avg, buf
    return addcdiv(param, grad, avg, value=-lr), square_avg, grad_avg, None


def adagrad_update(param, grad, state_sum, *, step, lr, lr_decay, eps, weight_decay, maximize):
    """One Adagrad step of one parameter as new tensors: ``(param, sum)``; ``step`` counts
    from 1."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum = addcmul(state_sum, grad, grad, value=1)
    std = sqrt(state_sum) + eps
    return addcdiv(param, grad, std, value=-clr), state_sum


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum (PyTorch's form: ``buf = momentum * buf +
    (1 - dampening) * grad``), Nesterov momentum, L2 ``weight_decay`` and ``maximize``.
    ``fused`` (None: the default, fused; False: one tensor at a time) updates a group's
    parameters with one kernel per device and dtype, with the same results
    (``fusejit/optim/fused.py``).

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.tensor([1.0, 2.0]))
    >>> opt = fusejit.optim.SGD([p], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     p.grad = fusejit.ones(2)
    ...     _ = opt.step()
    >>> [round(v, 4) for v in p.tolist()]
    [0.71, 1.71]
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
    ):
        if lr is not required:
            _check(lr >= 0.0, "learning rate", lr)
        _check(momentum >= 0.0, "momentum value", momentum)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            fused=_fused_arg(fused),
        )
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        tracer = self._step_tracer()
        with no_grad():
            for group in self.param_groups:
                lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
                damp, nesterov = group["dampening"], group["nesterov"]
                if tracer is not None and self._traced_group(tracer, group):
                    continue
                if group.get("fused") is False:
                    todo = self._params_with_grad(group)
                else:  # the parameters the multi-tensor kernels do not take
                    todo = fused_step.sgd_step(self, group)
                for p, grad in todo:
                    state = self.state[p]
                    new_p, buf = sgd_update(
                        p,
                        grad,
                        state.get("momentum_buffer"),
                        lr=lr,
                        momentum=mom,
                        dampening=damp,
                        weight_decay=wd,
                        nesterov=nesterov,
                        maximize=group["maximize"],
                    )
                    if buf is not None:
                        if "momentum_buffer" in state:
                            _write(state["momentum_buffer"], buf)
                        else:
                            state["momentum_buffer"] = buf
                    elif not state:
                        del self.state[p]
                    _write(p, new_p)
        return loss

    def _traced_group(self, tracer, group) -> bool:
        """The update of ``group`` recorded into a training step's graph, ``lr`` a live scalar
        (read at each call); False (the update runs as eager's, this call is not the one
        compiled) where the momentum buffers do not exist yet."""
        todo = list(self._params_with_grad(group))
        mom = group["momentum"]
        if mom != 0 and any("momentum_buffer" not in self.state.get(p, ()) for p, _ in todo):
            tracer.not_yet = "SGD creates its momentum buffers in this step"
            return False
        lrs: dict = {}
        for p, grad in todo:
            key = (p.dtype, p.device)
            if key not in lrs:
                lrs[key] = tracer.live_scalars(lambda g=group: [g["lr"]], p.dtype, p.device)[0]
            state = self.state.get(p, {})  # (without momentum SGD keeps no state)
            new_p, buf = sgd_update(p, grad, state.get("momentum_buffer"), lr=lrs[key],
                                    momentum=mom, dampening=group["dampening"],
                                    weight_decay=group["weight_decay"],
                                    nesterov=group["nesterov"],
                                    maximize=group["maximize"])  # fmt: skip
            if buf is not None:
                _write(state["momentum_buffer"], buf)
            _write(p, new_p)
        return True


class Adam(Optimizer):
    """Adam (Kingma & Ba), with L2 ``weight_decay`` added to the gradient, ``amsgrad`` and
    ``maximize``, as ``torch.optim.Adam``. (``AdamW`` decays the weights instead.) ``fused``
    as ``SGD``'s: one kernel per device and dtype updates a group, with the same results.

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.tensor([1.0, -1.0]))
    >>> opt = fusejit.optim.Adam([p], lr=0.1)
    >>> p.grad = fusejit.tensor([0.5, -3.0])
    >>> _ = opt.step()
    >>> [round(v, 4) for v in p.tolist()]
    [0.9, -0.9]
    """

    _decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
    ):
        _check(lr >= 0.0, "learning rate", lr)
        _check(eps >= 0.0, "epsilon value", eps)
        _check(0.0 <= betas[0] < 1.0, "beta parameter at index 0", betas[0])
        _check(0.0 <= betas[1] < 1.0, "beta parameter at index 1", betas[1])
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            fused=_fused_arg(fused),
        )
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        tracer = self._step_tracer()
        with no_grad():
            for group in self.param_groups:
                lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
                wd, amsgrad = group["weight_decay"], group["amsgrad"]
                if tracer is not None and self._traced_group(tracer, group):
                    continue
                if group.get("fused") is False:
                    todo = self._params_with_grad(group)
                else:  # the parameters the multi-tensor kernels do not take
                    todo = fused_step.adam_step(self, group, self._decoupled)
                for p, grad in todo:
                    state = self.state[p]
                    if not state:
                        state["step"] = _step_tensor()
                        state["exp_avg"] = _new_state(p)
                        state["exp_avg_sq"] = _new_state(p)
                        if amsgrad:
                            state["max_exp_avg_sq"] = _new_state(p)
                    step = _next_step(state)
                    new = adam_update(
                        p,
                        grad,
                        state["exp_avg"],
                        state["exp_avg_sq"],
                        state.get("max_exp_avg_sq"),
                        step=step,
                        lr=lr,
                        beta1=beta1,
                        beta2=beta2,
                        eps=eps,
                        weight_decay=wd,
                        amsgrad=amsgrad,
                        maximize=group["maximize"],
                        decoupled=self._decoupled,
                    )
                    _write(state["exp_avg"], new[1])
                    _write(state["exp_avg_sq"], new[2])
                    if amsgrad:
                        _write(state["max_exp_avg_sq"], new[3])
                    _write(p, new[0])
        return loss

    def _traced_group(self, tracer, group) -> bool:
        """The update of ``group`` recorded into a training step's graph: the step counts are
        counted up and the bias corrections and ``lr`` computed on the host at each call (as
        eager computes them, in Python floats), given to the graph as live scalars; False (the
        update runs as eager's, this call is not the one compiled) where the state does not
        exist yet."""
        todo = list(self._params_with_grad(group))
        names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
        if any(not all(k in self.state[p] for k in ["step", *names]) for p, _ in todo):
            tracer.not_yet = f"{type(self).__name__} creates its state in this step"
            return False
        beta1, beta2 = group["betas"]
        wd, decoupled = group["weight_decay"], self._decoupled
        state = self.state
        for p, _ in todo:
            tracer.host_written(state[p]["step"])

        def values(p=None):
            lr = group["lr"]
            st = state[p]["step"]
            step = st.item() + 1
            st._data[...] = step  # (counted in place, as the fused step does)
            return [-(lr / (1 - beta1**step)), math.sqrt(1 - beta2**step)]

        decays: dict = {}
        for p, grad in todo:
            key = (p.dtype, p.device)
            if key not in decays:
                decays[key] = tracer.live_scalars(lambda: [1 - group["lr"] * wd], p.dtype,
                                                  p.device)[0]  # fmt: skip
            neg_step_size, bc2_sqrt = tracer.live_scalars(lambda p=p: values(p), p.dtype,
                                                          p.device)  # fmt: skip
            st = state[p]
            new = _adam_traced(p, grad, st["exp_avg"], st["exp_avg_sq"], st.get("max_exp_avg_sq"),
                               decay=decays[key], neg_step_size=neg_step_size,
                               bc2_sqrt=bc2_sqrt, beta1=beta1, beta2=beta2, eps=group["eps"],
                               weight_decay=wd, amsgrad=group["amsgrad"],
                               maximize=group["maximize"], decoupled=decoupled)  # fmt: skip
            for name, value in zip(names, new[1:]):
                _write(st[name], value)
            _write(p, new[0])
        return True


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): the weights shrink by
    ``lr * weight_decay`` each step before the Adam update (``weight_decay`` defaults to 0.01).

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.tensor([1.0]))
    >>> opt = fusejit.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    >>> p.grad = fusejit.tensor([1.0])
    >>> _ = opt.step()
    >>> round(p.item(), 4)
    0.85
    """

    _decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, fused=fused
        )


class RMSprop(Optimizer):
    """RMSprop (Hinton), as ``torch.optim.RMSprop``: a running mean of squared gradients with
    smoothing ``alpha``, optionally ``centered`` (minus the squared mean gradient), with
    ``momentum``, L2 ``weight_decay`` and ``maximize``.

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.tensor([1.0]))
    >>> opt = fusejit.optim.RMSprop([p], lr=0.01, alpha=0.75)
    >>> p.grad = fusejit.tensor([2.0])
    >>> _ = opt.step()
    >>> round(p.item(), 4)
    0.98
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ):
        _check(lr >= 0.0, "learning rate", lr)
        _check(eps >= 0.0, "epsilon value", eps)
        _check(momentum >= 0.0, "momentum value", momentum)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        _check(alpha >= 0.0, "alpha value", alpha)
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in self.param_groups:
                lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
                wd, mom, centered = group["weight_decay"], group["momentum"], group["centered"]
                for p, grad in self._params_with_grad(group):
                    state = self.state[p]
                    if not state:
                        state["step"] = _step_tensor()
                        state["square_avg"] = _new_state(p)
                        if mom > 0:
                            state["momentum_buffer"] = _new_state(p)
                        if centered:
                            state["grad_avg"] = _new_state(p)
                    _next_step(state)
                    new = rmsprop_update(
                        p,
                        grad,
                        state["square_avg"],
                        state.get("grad_avg"),
                        state.get("momentum_buffer"),
                        lr=lr,
                        alpha=alpha,
                        eps=eps,
                        weight_decay=wd,
                        momentum=mom,
                        centered=centered,
                        maximize=group["maximize"],
                    )
                    for name, value in zip(("square_avg", "grad_avg", "momentum_buffer"), new[1:]):
                        if value is not None:
                            _write(state[name], value)
                    _write(p, new[0])
        return loss


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as ``torch.optim.Adagrad``: steps scaled by the root of the
    running sum of squared gradients (started at ``initial_accumulator_value``), the rate
    decayed as ``lr / (1 + (step - 1) * lr_decay)``.

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.tensor([1.0]))
    >>> opt = fusejit.optim.Adagrad([p], lr=0.5)
    >>> p.grad = fusejit.tensor([4.0])
    >>> _ = opt.step()
    >>> round(p.item(), 4)
    0.5
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ):
        _check(lr >= 0.0, "learning rate", lr)
        _check(lr_decay >= 0.0, "lr_decay value", lr_decay)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        _check(
            initial_accumulator_value >= 0.0,
            "initial_accumulator_value value",
            initial_accumulator_value,
        )
        _check(eps >= 0.0, "epsilon value", eps)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            maximize=maximize,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group) -> None:
        state = self.state[p]
        if not state:
            state["step"] = _step_tensor()
            state["sum"] = _new_state(p, group["initial_accumulator_value"])

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "state") and len(self.param_groups) > 0:
            group = self.param_groups[-1]
            for p in group["params"]:
                self._init_state(p, group)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in self.param_groups:
                lr, lr_decay, eps, wd = (
                    group["lr"],
                    group["lr_decay"],
                    group["eps"],
                    group["weight_decay"],
                )
                for p, grad in self._params_with_grad(group):
                    state = self.state[p]
                    self._init_state(p, group)
                    step = _next_step(state)
                    new_p, new_sum = adagrad_update(
                        p,
                        grad,
                        state["sum"],
                        step=step,
                        lr=lr,
                        lr_decay=lr_decay,
                        eps=eps,
                        weight_decay=wd,
                        maximize=group["maximize"],
                    )
                    _write(state["sum"], new_sum)
                    _write(p, new_p)
        return loss
