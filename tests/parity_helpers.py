"""What the PyTorch-parity tests share: one test body run on every device (the CPU here, the GPU
where one is usable, skipped with the reason elsewhere), tensors made from numpy arrays on a
device, comparison against a numpy reference, and the check that a traced call gives eager's
result.

    @pytest.mark.parametrize("device", DEVICES)
    def test_fmod(device):
        a = np.array([5.0, -5.0, 2.5], np.float32)
        got = fusejit.fmod(on(a, device), 2.0)
        assert_close(got, np.fmod(a, np.float32(2.0)), exact=True)
        assert_traced(lambda x: fusejit.fmod(x, 2.0), on(a, device))

The GPU cases carry the ``cuda`` mark and a ``cuda`` in their ids, so ``bench/gpu_check.sh``
runs them with ``-k cuda`` over ``tests/test_parity_*.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusejit

EPS = {"float16": 2.0**-10, "float32": 2.0**-23, "float64": 2.0**-52}


def _why_no_gpu() -> str:
    try:
        from fusejit.backends.cuda import _problem

        return _problem(0) or "CUDA is usable"
    except Exception as e:  # pragma: no cover - the backend module itself failed
        return f"fusejit.backends.cuda failed to import: {e}"


CUDA_OK = fusejit.is_cuda_available()
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not CUDA_OK, reason=f"no usable GPU: {_why_no_gpu()}"),
        ],
    ),
]


def on(a, device: str = "cpu") -> fusejit.Tensor:
    """A tensor holding a copy of numpy array (or scalar) ``a``, on ``device``."""
    t = fusejit.from_numpy(np.array(a, order="C", copy=True))  # (keeps 0-d arrays 0-d)
    return t if device == "cpu" else t.to(device)


def host(t) -> np.ndarray:
    """A tensor's values as a numpy array on the host (numpy values pass through)."""
    if isinstance(t, fusejit.Tensor):
        return t.cpu().numpy()
    return np.asarray(t)


def assert_close(got, want, exact: bool = False, ulps: float = 4.0, scale: float = 1.0,
                 what: str = "") -> None:  # fmt: skip
    """``got`` (a tensor) has ``want``'s dtype and shape and its values: bitwise (NaN equal)
    when ``exact`` or not floating point, else within ``ulps`` units of the result dtype,
    relative, and ``ulps * eps * scale`` absolute."""
    g, w = host(got), np.asarray(want)
    assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != {w.dtype}"
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    if exact or g.dtype.kind != "f":
        np.testing.assert_array_equal(g, w, err_msg=what)
        return
    tol = ulps * EPS[g.dtype.name]
    np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale, equal_nan=True, err_msg=what)


def assert_traced(fn, *args, exact: bool = True, ulps: float = 4.0):
    """``fusejit.trace(fn, args)`` gives eager's result (bitwise when ``exact``); returns the
    traced function."""
    traced = fusejit.trace(fn, args)
    want, got = fn(*args), traced(*args)
    if isinstance(want, fusejit.Tensor):
        want, got = (want,), (got,)
    for g, w in zip(got, want, strict=True):
        assert_close(g, host(w), exact=exact, ulps=ulps, what=f"traced {fn}")
    return traced
