"""The optimizers: ``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``.

Each ``step`` follows the arithmetic, in its order, of PyTorch's single-tensor (for-loop)
implementation, written with public fusejit functions (table ops), so that a traced training
step can fuse an update into one kernel per parameter.
"""

from __future__ import annotations

import math

from fusejit.eager.composites import addcdiv, addcmul, lerp
from fusejit.eager.elementwise import maximum, sqrt
from fusejit.eager.grad_mode import no_grad
from fusejit.optim.optimizer import Optimizer, _new_state, _step_tensor, _write, required

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


def _check(ok: bool, what: str, value) -> None:
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _next_step(state: dict) -> float:
    step = state["step"].item() + 1
    state["step"] = _step_tensor(step)
    return step


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum (PyTorch's form: ``buf = momentum * buf +
    (1 - dampening) * grad``), Nesterov momentum, L2 ``weight_decay`` and ``maximize``.

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
        )
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in self.param_groups:
                lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
                damp, nesterov = group["dampening"], group["nesterov"]
                for p, grad in self._params_with_grad(group):
                    if group["maximize"]:
                        grad = -grad
                    if wd != 0:
                        grad = grad + wd * p
                    if mom != 0:
                        state = self.state[p]
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = grad.clone()
                        else:
                            _write(buf, buf * mom + (1 - damp) * grad)
                        grad = grad + mom * buf if nesterov else buf
                    _write(p, p + (-lr) * grad)
        return loss


class Adam(Optimizer):
    """Adam (Kingma & Ba), with L2 ``weight_decay`` added to the gradient, ``amsgrad`` and
    ``maximize``, as ``torch.optim.Adam``. (``AdamW`` decays the weights instead.)

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
        )
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad():
            for group in self.param_groups:
                lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
                wd, amsgrad = group["weight_decay"], group["amsgrad"]
                for p, grad in self._params_with_grad(group):
                    state = self.state[p]
                    if not state:
                        state["step"] = _step_tensor()
                        state["exp_avg"] = _new_state(p)
                        state["exp_avg_sq"] = _new_state(p)
                        if amsgrad:
                            state["max_exp_avg_sq"] = _new_state(p)
                    if group["maximize"]:
                        grad = -grad
                    step = _next_step(state)
                    if wd != 0:
                        if self._decoupled:
                            _write(p, p * (1 - lr * wd))
                        else:
                            grad = grad + wd * p
                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    _write(exp_avg, lerp(exp_avg, grad, 1 - beta1))
                    _write(exp_avg_sq, addcmul(exp_avg_sq * beta2, grad, grad, value=1 - beta2))
                    bias_correction1 = 1 - beta1**step
                    bias_correction2 = 1 - beta2**step
                    step_size = lr / bias_correction1
                    bias_correction2_sqrt = math.sqrt(bias_correction2)
                    if amsgrad:
                        max_sq = state["max_exp_avg_sq"]
                        _write(max_sq, maximum(max_sq, exp_avg_sq))
                        denom = sqrt(max_sq) / bias_correction2_sqrt + eps
                    else:
                        denom = sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
                    _write(p, addcdiv(p, exp_avg, denom, value=-step_size))
        return loss


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
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


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
                    if group["maximize"]:
                        grad = -grad
                    _next_step(state)
                    if wd != 0:
                        grad = grad + wd * p
                    square_avg = state["square_avg"]
                    _write(square_avg, addcmul(square_avg * alpha, grad, grad, value=1 - alpha))
                    if centered:
                        grad_avg = state["grad_avg"]
                        _write(grad_avg, lerp(grad_avg, grad, 1 - alpha))
                        avg = sqrt(addcmul(square_avg, grad_avg, grad_avg, value=-1))
                    else:
                        avg = sqrt(square_avg)
                    avg = avg + eps
                    if mom > 0:
                        buf = state["momentum_buffer"]
                        _write(buf, addcdiv(buf * mom, grad, avg))
                        _write(p, p + (-lr) * buf)
                    else:
                        _write(p, addcdiv(p, grad, avg, value=-lr))
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
                    if group["maximize"]:
                        grad = -grad
                    if wd != 0:
                        grad = grad + wd * p
                    clr = lr / (1 + (step - 1) * lr_decay)
                    state_sum = state["sum"]
                    _write(state_sum, addcmul(state_sum, grad, grad, value=1))
                    std = sqrt(state_sum) + eps
                    _write(p, addcdiv(p, grad, std, value=-clr))
        return loss
