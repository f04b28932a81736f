"""Device backends: ``cpu`` (numpy storage, numba kernels) and ``cuda`` (cupy storage, NVRTC).

Installed as ``fusejit.backends``; each module exposes a backend object with the same methods.
Importing this package registers them with ``fusejit.base.device``.
"""

from fusejit.backends import cpu

from fusejit.base.device import register_backend


def _cuda_backend(index: int | None):
    # imported on first use of a GPU only: it imports cupy, which is optional and slow to load
    from fusejit.backends import cuda

    return cuda.get_backend(index)


register_backend("cpu", lambda index: cpu.BACKEND)
register_backend("cuda", _cuda_backend)
