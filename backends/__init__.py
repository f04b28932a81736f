"""Device backends: ``cpu`` (numpy storage, numba kernels) and ``cuda`` (cupy storage, NVRTC).

Installed as ``fusejit.backends``; each module exposes a backend object with the same methods.
"""
