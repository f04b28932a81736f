"""``fusejit.nn.utils``: gradient clipping and flattening parameters into one vector, as
``torch.nn.utils``.

>>> import fusejit
>>> from fusejit import nn
>>> p = nn.Parameter(fusejit.zeros(2))
>>> p.grad = fusejit.tensor([3.0, 4.0])
>>> nn.utils.clip_grad_norm_([p], max_norm=1.0).item()
5.0
>>> [round(v, 4) for v in p.grad.tolist()]
[0.6, 0.8]
"""

from __future__ import annotations

from fusejit.base.errors import DeviceError
from fusejit.eager.composites import clamp
from fusejit.eager.elementwise import cast, isfinite
from fusejit.eager.grad_mode import no_grad
from fusejit.eager.linalg_functions import vector_norm
from fusejit.eager.movement import cat, stack
from fusejit.eager.tensor import Tensor, tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _params(parameters) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def clip_grad_norm_(
    parameters,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach=None,
) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their total ``norm_type``-norm
    (over all gradients, as if concatenated) is at most ``max_norm``; returns the total norm
    before clipping. ``norm_type`` may be ``inf``. With ``error_if_nonfinite``, a nan or inf
    total norm raises a RuntimeError (a check that reads the norm back to the host).

    The scale is ``min(1, max_norm / (total_norm + 1e-6))``, as PyTorch's.
    """
    grads = [p.grad for p in _params(parameters) if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return tensor(0.0)
    with no_grad():
        norms = [vector_norm(g, norm_type) for g in grads]
        first = norms[0]
        norms = [n.to(first.device) for n in norms]
        total = vector_norm(stack(norms), norm_type)
        if error_if_nonfinite and not bool(isfinite(total)):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is "
                "non-finite, so it cannot be clipped. To disable this error and scale the "
                "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
            )
        coef = clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            c = coef.to(g.device)
            g.mul_(c if c.dtype is g.dtype else cast(c, g.dtype))
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp the gradients of ``parameters`` in place to ``[-clip_value, clip_value]``.

    >>> import fusejit
    >>> p = fusejit.nn.Parameter(fusejit.zeros(3))
    >>> p.grad = fusejit.tensor([-3.0, 0.5, 2.0])
    >>> fusejit.nn.utils.clip_grad_value_([p], 1.0)
    >>> p.grad.tolist()
    [-1.0, 0.5, 1.0]
    """
    clip_value = float(clip_value)
    with no_grad():
        for p in _params(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)


def _check_device(params: list[Tensor], what: str) -> None:
    devices = {p.device for p in params}
    if len(devices) > 1:
        raise DeviceError(
            f"{what}: found parameters on different devices ({', '.join(map(str, devices))}), "
            "this is not supported"
        )


def parameters_to_vector(parameters) -> Tensor:
    """The values of ``parameters`` flattened and concatenated into one new 1-D tensor.

    >>> import fusejit
    >>> m = fusejit.nn.Linear(2, 1)
    >>> fusejit.nn.utils.parameters_to_vector(m.parameters()).shape
    (3,)
    """
    params = _params(parameters)
    _check_device(params, "parameters_to_vector")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of 1-D ``vec`` into ``parameters`` (in place; PyTorch instead
    rebinds each parameter's ``.data`` to a view of ``vec``).

    >>> import fusejit
    >>> m = fusejit.nn.Linear(2, 1)
    >>> fusejit.nn.utils.vector_to_parameters(fusejit.arange(3.0), m.parameters())
    >>> m.weight.tolist(), m.bias.tolist()
    ([[0.0, 1.0]], [2.0])
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected fusejit.Tensor, but got: {type(vec).__name__}")
    params = _params(parameters)
    _check_device(params, "vector_to_parameters")
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(
            f"vector_to_parameters: vec of shape {tuple(vec.shape)} does not hold the {total} "
            "values of the parameters"
        )
    start = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec[start : start + n].reshape(p.shape))
            start += n
