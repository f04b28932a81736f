"""``fusejit.autograd``: reverse-mode automatic differentiation, as ``torch.autograd``.

Ops on tensors that require grad record a graph (``Tensor.grad_fn``); ``Tensor.backward`` and
``grad`` run it backward with the derivative rules of the op table (``OpDef.vjp``). The engine
lives in ``fusejit/eager/autograd.py``.

>>> import fusejit
>>> x = fusejit.tensor([1.0, 2.0, 3.0]).requires_grad_()
>>> y = (x * x).sum()
>>> fusejit.autograd.grad(y, x)[0].tolist()
[2.0, 4.0, 6.0]
"""

from fusejit.base.errors import AutogradError
from fusejit.eager.autograd import Function, FunctionCtx, Node, backward, grad, gradcheck
from fusejit.eager.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

__all__ = [
    "AutogradError", "Function", "FunctionCtx", "Node", "backward", "grad", "gradcheck",
    "enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled",
]  # fmt: skip
