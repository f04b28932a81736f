"""Exceptions raised at the public API (each one names the op and what was wrong), and the
warning of a trace that will not generalize."""

from __future__ import annotations


class FusejitError(Exception):
    """Base class of every error fusejit raises on purpose."""


class ShapeError(FusejitError, ValueError):
    """Shapes or sizes that do not fit the op (broadcasting, matmul, reshape, a negative size,
    a zero count, ...)."""


class DTypeError(FusejitError, TypeError):
    """A dtype the op does not support, a result that cannot be cast, or an argument of a type
    the op does not take (a float, a string or None where a size or a dim must be an int)."""


class DeviceError(FusejitError, RuntimeError):
    """Mixed devices in one op, or a device that cannot be used on this machine."""


class DimError(FusejitError, IndexError, ValueError):
    """A ``dim`` outside the tensor's rank (an IndexError as in PyTorch, and a ValueError)."""


class LinAlgError(FusejitError, RuntimeError):
    """A matrix a linear-algebra function cannot take: a singular matrix for ``linalg.inv`` or
    ``linalg.solve``, one that is not positive-definite for ``linalg.cholesky`` (a RuntimeError,
    as ``torch.linalg.LinAlgError``)."""


class CompileError(FusejitError, RuntimeError):
    """Code generation or compilation of a kernel failed."""


class TraceError(FusejitError, RuntimeError):
    """Something in a traced function cannot be recorded into a graph."""


class AutogradError(FusejitError, RuntimeError):
    """A backward pass that cannot run: a tensor that does not require grad, a graph already
    freed, a saved tensor modified in place, an op without a derivative (a RuntimeError, as
    PyTorch's)."""


class TracerWarning(UserWarning):
    """A traced function did something whose result will not generalize to other inputs."""


def fmt_shape(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"
