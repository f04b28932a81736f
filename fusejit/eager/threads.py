"""``set_num_threads`` / ``get_num_threads``: the threads CPU kernels split their loops over
(``backends/cpu_kernels.py``, numba-compiled kernels called on slices from one pool), and the
BLAS pool of numpy's matmul (through threadpoolctl, an optional dependency)."""

from __future__ import annotations

from fusejit.backends import cpu_kernels
from fusejit.base.shapes import int_arg

__all__ = ["set_num_threads", "get_num_threads"]

_BLAS_LIMIT: list = []  # the threadpoolctl limiter in force (kept: it holds the setting)


def get_num_threads() -> int:
    """The threads large CPU kernels split over (by default the CPUs this process may use,
    or ``NUMBA_NUM_THREADS``).

    >>> import fusejit
    >>> fusejit.get_num_threads() >= 1
    True
    """
    return cpu_kernels.THREADS


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for CPU kernels and for the BLAS behind numpy's matmul (the latter
    needs threadpoolctl: without it, an ImportError and nothing changed)."""
    n = int_arg("set_num_threads", n, "n")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n}")
    try:  # (optional dependency: not every install has it)
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        raise ImportError(
            "set_num_threads: setting the BLAS threads needs threadpoolctl, which is not "
            "installed (pip install threadpoolctl); no thread count was changed"
        ) from e
    _BLAS_LIMIT[:] = [threadpool_limits(limits=n, user_api="blas")]
    cpu_kernels.set_threads(n)
