"""``fusejit.cuda``: whether GPUs can be used, how many, and the seeds of their generators.

>>> import fusejit
>>> isinstance(fusejit.cuda.is_available(), bool)
True
"""

from __future__ import annotations

from fusejit.eager import random as _random

__all__ = ["is_available", "device_count", "manual_seed", "manual_seed_all", "initial_seed"]


def device_count() -> int:
    """The number of GPUs fusejit can use: 0 without cupy, a driver, a GPU or NVRTC."""
    # (imported here: the CUDA backend module is loaded only where it is asked about)
    from fusejit.backends.cuda import device_count as count

    return count()


def is_available() -> bool:
    """True when at least one GPU can be used (``fusejit.is_cuda_available()``)."""
    return device_count() > 0


def manual_seed(seed: int) -> None:
    """Seed the default generator of ``cuda:0`` (the CPU's and the other GPUs' are left
    alone); as in PyTorch, it works without a GPU too."""
    _random.default_for("cuda:0").manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """Seed the default generator of every GPU."""
    n = max(1, device_count())
    for i in range(n):
        _random.default_for(f"cuda:{i}").manual_seed(seed)
    for dev, g in list(_random._DEFAULTS.items()):
        if dev.type == "cuda":
            g.manual_seed(seed)


def initial_seed() -> int:
    """The seed of ``cuda:0``'s default generator."""
    return _random.default_for("cuda:0").initial_seed()
