"""fusejit: eager tensors on the CPU and NVIDIA GPUs, and a JIT that fuses their ops.

>>> import fusejit
>>> x = fusejit.arange(4, dtype=fusejit.float32)
>>> (x * 2 + 1).tolist()
[1.0, 3.0, 5.0, 7.0]
"""

from __future__ import annotations

import math as _math
import os as _os
import sys as _sys

# In a source checkout, ``backends/`` and ``kernels/`` sit beside this package and are installed
# inside it as ``fusejit.backends`` and ``fusejit.kernels``. Running from the checkout without
# installing (PYTHONPATH=.), make the same names resolve to those folders.
_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "backends")) and _os.path.isfile(
    _os.path.join(_root, "backends", "cpu.py")
):
    __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821

from fusejit.backends.host_pool import POOL as _HOST_POOL  # noqa: E402
from fusejit.base import dtypes as _dtypes  # noqa: E402
from fusejit.eager.creation import (  # noqa: E402
    arange, empty, empty_like, eye, full, full_like, linspace, ones, ones_like, zeros,
    zeros_like,
)  # fmt: skip
from fusejit.eager.random import (  # noqa: E402
    Generator, bernoulli, default_generator, get_rng_state, initial_seed, manual_seed,
    multinomial, normal, rand, rand_like, randint, randint_like, randn, randn_like, randperm,
    seed, set_rng_state,
)  # fmt: skip
from fusejit.base.device import Device, device  # noqa: E402
from fusejit.base.dtypes import (  # noqa: E402
    DType, bool_, complex64, complex128, float16, float32, float64, int8, int16, int32, int64,
    promote_types, result_type, uint8,
)  # fmt: skip
from fusejit.base.errors import (  # noqa: E402
    AutogradError, CompileError, DeviceError, DimError, DTypeError, FusejitError, LinAlgError,
    ShapeError, TraceError,
)  # fmt: skip
from fusejit.base.shapes import broadcast_shapes  # noqa: E402
from fusejit.eager.complex_functions import (  # noqa: E402
    angle, conj, imag, is_complex, real, view_as_complex, view_as_real,
)  # fmt: skip
from fusejit.eager.activations import (  # noqa: E402
    celu, celu_, elu, elu_, glu, hardtanh, hardtanh_, leaky_relu, leaky_relu_, prelu,
)  # fmt: skip
from fusejit.eager.composites import (  # noqa: E402
    addcdiv, addcmul, allclose, clamp, clamp_max, clamp_min, equal, isclose, lerp, masked_fill,
    nan_to_num, nan_to_num_, norm,
)  # fmt: skip
from fusejit.eager.elementwise import *  # noqa: E402, F403
from fusejit.eager.elementwise import cast, gelu, where  # noqa: E402
from fusejit.eager.indexing import (  # noqa: E402
    argwhere, bincount, bucketize, gather, histc, index_add, index_copy, index_fill, index_put,
    index_select, masked_scatter, masked_select, narrow, nonzero, one_hot, scatter, scatter_add,
    scatter_reduce, searchsorted, take, take_along_dim, unique,
)  # fmt: skip
from fusejit.eager.linalg import (  # noqa: E402
    addbmm, addmm, addmv, baddbmm, bmm, cross, dot, einsum, kron, linear, matmul, mm, mv, outer,
    tensordot,
)  # fmt: skip
from fusejit.eager.linalg_functions import cdist, det, logdet, slogdet  # noqa: E402
from fusejit.eager.linalg_functions import inv as inverse  # noqa: E402
from fusejit.eager.movement import (  # noqa: E402
    atleast_1d, atleast_2d, atleast_3d, broadcast_tensors, broadcast_to, cat, chunk,
    column_stack, diag, diag_embed, diagonal, dstack, expand, flatten, flip, hsplit, hstack,
    meshgrid, movedim, moveaxis, permute, repeat, repeat_interleave, reshape, roll, rot90, split,
    squeeze, stack, swapaxes, swapdims, t, tensor_split, tile, transpose, tril, triu, unbind,
    unflatten, unsqueeze, view, vsplit, vstack,
)  # fmt: skip
from fusejit.eager.reductions import (  # noqa: E402
    all, amax, amin, any, argmax, argmin, cumprod, cumsum, layer_norm, log_softmax, logsumexp,
    max, mean, min, prod, softmax, std, sum, var,
)  # fmt: skip
from fusejit.eager.sorting import argsort, sort, topk  # noqa: E402
from fusejit.eager.interop import as_tensor, is_floating_point, is_tensor, numel  # noqa: E402
from fusejit.eager.threads import get_num_threads, set_num_threads  # noqa: E402
from fusejit.base.finfo import finfo, iinfo  # noqa: E402
from fusejit.eager.statistics import (  # noqa: E402
    aminmax, count_nonzero, cummax, cummin, kthvalue, logcumsumexp, median, mode, nanmean,
    nanmedian, nanquantile, nansum, quantile, std_mean, var_mean,
)  # fmt: skip
from fusejit.eager.tensor import Tensor, from_dlpack, from_numpy, tensor  # noqa: E402
from fusejit.eager.grad_mode import (  # noqa: E402
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad,
    set_grad_enabled,
)  # fmt: skip

bool = bool_  # noqa: A001 - fusejit.bool, as torch.bool
half, float, double = float16, float32, float64  # noqa: A001
short, int, long = int16, int32, int64  # noqa: A001
cfloat, cdouble = complex64, complex128
clip = clamp
concat = cat
concatenate = cat

inf, nan, pi, e = _math.inf, _math.nan, _math.pi, _math.e

__version__ = "0.1.0"


def is_cuda_available() -> bool:  # noqa: D401
    """True when cupy is importable and at least one CUDA GPU can be used."""
    try:  # (imported here: it imports cupy, an optional dependency that is slow to load)
        from fusejit.backends.cuda import device_count
    except ImportError:
        return False
    return device_count() > 0


def empty_cache() -> None:
    """Free the large host buffers kept for reuse by dead CPU tensors (and cupy's cached GPU
    blocks, when cupy is in use). Tensors still alive keep their memory.

    >>> import fusejit
    >>> fusejit.empty_cache()
    """
    _HOST_POOL.clear()
    # only where a GPU is in use: cupy imported on a machine without a usable driver raises
    cuda_backend = _sys.modules.get(f"{__name__}.backends.cuda")
    if cuda_backend is not None and cuda_backend._BACKENDS:
        for b in list(cuda_backend._BACKENDS.values()):
            with b.scope():
                b.xp.get_default_memory_pool().free_all_blocks()


from fusejit.store import CacheError, cache_info, clear_cache  # noqa: E402
from fusejit.base.errors import TracerWarning  # noqa: E402
from fusejit.eager.autograd import sum_to_size  # noqa: E402

# Names imported on first use (PEP 562): the JIT's front ends and the nn, optim, fft, linalg,
# autograd and cuda modules are not needed to make tensors and run eager ops, and importing
# them all took about half of ``import fusejit``. ``fusejit.<name>`` and ``from fusejit import
# <name>`` work as for any other name. name -> (module, attribute; None: the module itself)
_LAZY = {
    "jit": ("fusejit.jit", None),
    "ir": ("fusejit.ir", None),
    "checkpoint": ("fusejit.checkpoint", None),
    "TracedFunction": ("fusejit.jit.api", "TracedFunction"),
    "trace": ("fusejit.jit.api", "trace"),
    "cuda": ("fusejit.cuda", None),
    "linalg": ("fusejit.linalg", None),
    "nn": ("fusejit.nn", None),
    "explain": ("fusejit.jit.explain", "explain"),
    "optimize": ("fusejit.jit.optimize", "optimize"),
    "OptimizeWarning": ("fusejit.jit.optimize", "OptimizeWarning"),
    "mark_dynamic": ("fusejit.jit.optimize", "mark_dynamic"),
    "ScriptError": ("fusejit.jit.scripting", "ScriptError"),
    "script": ("fusejit.jit.scripting", "script"),
    "ArchiveError": ("fusejit.jit.archive", "ArchiveError"),
    "load": ("fusejit.jit.archive", "load"),
    "save": ("fusejit.jit.archive", "save"),
    "fft": ("fusejit.fft", None),
    "autograd": ("fusejit.autograd", None),
    "optim": ("fusejit.optim", None),
    "CheckpointError": ("fusejit.checkpoint", "CheckpointError"),
    "load_state_dict": ("fusejit.checkpoint", "load_state_dict"),
    "save_state_dict": ("fusejit.checkpoint", "save_state_dict"),
    "array_api": ("fusejit.array_api", None),
    "onnx": ("fusejit.onnx", None),
}


def __getattr__(name: str):
    place = _LAZY.get(name)
    if place is None:
        raise AttributeError(f"module 'fusejit' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(place[0])
    value = module if place[1] is None else getattr(module, place[1])
    globals()[name] = value  # (the next access is a plain attribute)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# ``from fusejit import *``: the public names, the lazily imported ones among them (submodules
# are left out, as ``import *`` of a package leaves them out); without this list it would miss
# every name of ``_LAZY``.
__all__ = sorted(
    [
        n
        for n, v in globals().items()
        if not n.startswith("_") and n != "annotations" and not isinstance(v, type(_os))
    ]
    + [n for n, (_, attr) in _LAZY.items() if attr is not None]
)
