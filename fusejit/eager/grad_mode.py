"""Whether ops record what autograd needs: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``inference_mode`` (context managers and decorators, as PyTorch's) and ``is_grad_enabled``.

The mode is per thread, as PyTorch's: a ``no_grad`` block in one thread leaves the others
recording.
"""

from __future__ import annotations

import functools
import threading

__all__ = [
    "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled",
    "is_inference_mode_enabled",
]  # fmt: skip


class _Mode(threading.local):
    enabled = True
    inference = False


MODE = _Mode()


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad record their backward (the default)."""
    return MODE.enabled


def is_inference_mode_enabled() -> bool:
    """True inside ``inference_mode()``."""
    return MODE.inference


class _ModeContext:
    """A context manager that is also a decorator (a fresh context per call)."""

    def _new(self):
        return type(self)()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._new():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_ModeContext):  # noqa: N801 - PyTorch's name
    """Ops inside run without recording for backward (results do not require grad).

    >>> import fusejit
    >>> with fusejit.no_grad():
    ...     fusejit.is_grad_enabled()
    False
    """

    def __enter__(self):
        self._prev = MODE.enabled
        MODE.enabled = False
        return self

    def __exit__(self, *exc) -> None:
        MODE.enabled = self._prev


class enable_grad(_ModeContext):  # noqa: N801
    """Recording on again inside a ``no_grad`` block.

    >>> import fusejit
    >>> with fusejit.no_grad(), fusejit.enable_grad():
    ...     fusejit.is_grad_enabled()
    True
    """

    def __enter__(self):
        self._prev = MODE.enabled
        MODE.enabled = True
        return self

    def __exit__(self, *exc) -> None:
        MODE.enabled = self._prev


class set_grad_enabled(_ModeContext):  # noqa: N801
    """Recording on or off (``mode``), from the call on, or inside a ``with`` block.

    >>> import fusejit
    >>> with fusejit.set_grad_enabled(False):
    ...     fusejit.is_grad_enabled()
    False
    """

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {type(mode).__name__}")
        self.mode = mode
        self._prev = MODE.enabled
        MODE.enabled = mode  # (takes effect at once, as PyTorch's, also without ``with``)

    def _new(self):
        return type(self)(self.mode)

    def __call__(self, fn):
        MODE.enabled = self._prev  # (as a decorator it changes nothing until the call)
        return super().__call__(fn)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        MODE.enabled = self._prev


class inference_mode(_ModeContext):  # noqa: N801
    """``no_grad`` for inference (``mode=False``: no change).

    >>> import fusejit
    >>> with fusejit.inference_mode():
    ...     fusejit.is_grad_enabled()
    False
    """

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)

    def _new(self):
        return type(self)(self.mode)

    def __enter__(self):
        self._prev = (MODE.enabled, MODE.inference)
        if self.mode:
            MODE.enabled, MODE.inference = False, True
        return self

    def __exit__(self, *exc) -> None:
        MODE.enabled, MODE.inference = self._prev
