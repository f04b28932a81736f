"""Public functions of complex values (``fusejit/ops/complex_ops.py``): ``real``, ``imag``,
``angle``, ``conj``, ``view_as_real``, ``view_as_complex``, ``is_complex``.

``real`` and ``imag`` of a complex tensor, and ``view_as_real`` / ``view_as_complex``, are views
sharing its storage, as in PyTorch; ``conj`` is a copy (PyTorch's is a lazy view). ``abs`` and
``+ - * /`` of complex tensors are the elementwise ops (``fusejit.abs`` gives the magnitude, a
float tensor).
"""

from __future__ import annotations

from fusejit.base.errors import DTypeError, ShapeError, fmt_shape
from fusejit.eager import dispatch
from fusejit.eager.tensor import Tensor
from fusejit.ops.complex_ops import ANGLE, CONJ, IMAG, REAL, VIEW_AS_COMPLEX, VIEW_AS_REAL

__all__ = ["real", "imag", "angle", "conj", "view_as_real", "view_as_complex", "is_complex"]


def _tensor(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(x).__name__}")
    return x


def _need_complex(name: str, x: Tensor) -> None:
    if x.dtype.kind != "c":
        raise DTypeError(f"{name}: expected a complex tensor, got dtype {x.dtype.name}")


def is_complex(x) -> bool:
    """Whether ``x`` holds complex values (complex64 or complex128).

    >>> import fusejit
    >>> fusejit.is_complex(fusejit.tensor([1 + 2j])), fusejit.ones(2).is_complex()
    (True, False)
    """
    return _tensor("is_complex", x).dtype.kind == "c"


def real(x) -> Tensor:
    """The real parts of a complex tensor, a view sharing its storage (as ``torch.real``); a
    real tensor itself.

    >>> import fusejit
    >>> fusejit.tensor([1 + 2j, 3 - 1j]).real.tolist()
    [1.0, 3.0]
    """
    if _tensor("real", x).dtype.kind != "c":
        return x
    return dispatch.apply(REAL, (x,), {})


def imag(x) -> Tensor:
    """The imaginary parts of a complex tensor, a view sharing its storage (as
    ``torch.imag``); a real tensor is a ``DTypeError``, as PyTorch's error.

    >>> import fusejit
    >>> fusejit.tensor([1 + 2j, 3 - 1j]).imag.tolist()
    [2.0, -1.0]
    """
    _need_complex("imag", _tensor("imag", x))
    return dispatch.apply(IMAG, (x,), {})


def angle(x) -> Tensor:
    """The angle (argument) of each element, in radians: ``atan2(imag, real)`` for complex
    values (a float tensor of their parts' dtype); for real ones pi where negative, else 0
    (nan stays nan; ints and bool give float32), as ``torch.angle``.

    >>> import fusejit
    >>> fusejit.angle(fusejit.tensor([1j, -2.0])).tolist()
    [1.5707963705062866, 3.1415927410125732]
    """
    return dispatch.apply(ANGLE, (_tensor("angle", x),), {})


def conj(x) -> Tensor:
    """The complex conjugate (a copy; PyTorch's is a lazy view); a real tensor itself.

    >>> import fusejit
    >>> fusejit.conj(fusejit.tensor([1 + 2j])).tolist()
    [(1-2j)]
    """
    if _tensor("conj", x).dtype.kind != "c":
        return x
    return dispatch.apply(CONJ, (x,), {})


def view_as_real(x) -> Tensor:
    """A complex tensor as a float tensor with a last dim of 2 (real, imaginary), a view
    sharing its storage (as ``torch.view_as_real``).

    >>> import fusejit
    >>> fusejit.view_as_real(fusejit.tensor([1 + 2j])).tolist()
    [[1.0, 2.0]]
    """
    _need_complex("view_as_real", _tensor("view_as_real", x))
    return dispatch.apply(VIEW_AS_REAL, (x,), {})


def view_as_complex(x) -> Tensor:
    """A float32 or float64 tensor with a last dim of 2 (real, imaginary) as a complex tensor,
    a view sharing its storage (as ``torch.view_as_complex``): the last dim must have stride 1
    and the other dims even strides.

    >>> import fusejit
    >>> fusejit.view_as_complex(fusejit.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [(1+2j), (3+4j)]
    """
    _tensor("view_as_complex", x)
    if x.dtype.name not in ("float32", "float64"):
        raise DTypeError(
            f"view_as_complex: expected a float32 or float64 tensor, got dtype {x.dtype.name}"
        )
    if x.ndim == 0 or x.shape[-1] != 2:
        raise ShapeError(
            f"view_as_complex: expected a last dim of size 2, got shape {fmt_shape(x.shape)}"
        )
    strides = x.stride()
    if strides[-1] != 1 or any(s % 2 for s in strides[:-1]):
        raise ShapeError(
            f"view_as_complex: expected a last dim of stride 1 and even strides elsewhere, "
            f"got strides {list(strides)}; call .contiguous() first"
        )
    return dispatch.apply(VIEW_AS_COMPLEX, (x,), {})
