"""Random numbers: generators, the random factories and the in-place random fills.

Every generator draws on the CPU (numpy's PCG64) and the values are moved to the result's
device, so one seed gives the same values on every device. Each device has its own default
generator, as in PyTorch: ``fusejit.manual_seed`` seeds all of them (those made later too),
``fusejit.cuda.manual_seed`` the GPU's; a ``fusejit.Generator(device=...)`` passed as
``generator=`` draws for results on a device of its type.

``rand_like(x)`` (with x's dtype and device, the default generator) is an op of the table
(``fusejit/ops/random.py``): a traced or optimized graph draws fresh values at each call, and
dropout is written with it. Every other function here raises a ``TraceError`` under
``fusejit.trace`` (a traced graph would replay this call's values as a constant forever).
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import Device, as_device
from fusejit.base.errors import DeviceError, DTypeError, ShapeError, TraceError, fmt_shape
from fusejit.base.shapes import describe, int_arg, shape_arg
from fusejit.eager import dispatch, recording
from fusejit.eager.autograd import bump_version
from fusejit.eager.inplace import check_writeable
from fusejit.eager.tensor import Tensor
from fusejit.ops.random import RAND_LIKE, set_source

__all__ = [
    "Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
    "set_rng_state", "rand", "randn", "randint", "randperm", "rand_like", "randn_like",
    "randint_like", "bernoulli", "multinomial", "normal",
]  # fmt: skip

_U64 = 2**64
_STATE_BYTES = 1 + 8 + 16 + 16 + 1 + 4  # version, seed, PCG64 state and increment, cached half


def _fresh_seed() -> int:
    """A seed from the operating system's entropy (what an unseeded generator starts from)."""
    return int.from_bytes(os.urandom(8), "little") >> 1


def _seed_arg(name: str, seed) -> int:
    """``seed`` as PyTorch takes it: an int in [-2**63, 2**64); a negative one is taken modulo
    2**64."""
    s = int_arg(name, seed, "seed")
    if not -(2**63) <= s < _U64:
        raise ValueError(f"{name}: seed must be in [-2**63, 2**64), got {s}")
    return s % _U64


class Generator:
    """A source of random numbers for results on ``device`` ('cpu', 'cuda', 'cuda:N').

    Values are drawn on the CPU and moved, so a CPU and a CUDA generator seeded alike give the
    same values.

    >>> import fusejit
    >>> g = fusejit.Generator().manual_seed(7)
    >>> a = fusejit.rand(3, generator=g)
    >>> bool((a == fusejit.rand(3, generator=g.manual_seed(7))).all())
    True
    """

    __slots__ = ("device", "_seed", "_rng")

    def __init__(self, device="cpu") -> None:
        self.device: Device = as_device(device)
        self._set(_fresh_seed())

    def _set(self, s: int) -> None:
        self._seed = s
        self._rng = np.random.Generator(np.random.PCG64(s))

    def manual_seed(self, seed: int) -> Generator:
        """Seed this generator; returns it."""
        self._set(_seed_arg("manual_seed", seed))
        return self

    def seed(self) -> int:
        """Seed this generator from the operating system's entropy; returns the seed."""
        s = _fresh_seed()
        self._set(s)
        return s

    def initial_seed(self) -> int:
        """The seed this generator was last seeded with."""
        return self._seed

    def get_state(self) -> Tensor:
        """The generator's state as a CPU uint8 tensor (for ``set_state``)."""
        st = self._rng.bit_generator.state
        raw = b"".join([
            bytes([1]),
            self._seed.to_bytes(8, "little"),
            st["state"]["state"].to_bytes(16, "little"),
            st["state"]["inc"].to_bytes(16, "little"),
            bytes([st["has_uint32"]]),
            int(st["uinteger"]).to_bytes(4, "little"),
        ])  # fmt: skip
        return Tensor._wrap(np.frombuffer(raw, np.uint8).copy(), dt.uint8, as_device("cpu"))

    def set_state(self, new_state: Tensor) -> Generator:
        """Restore a state ``get_state`` returned; returns the generator."""
        if not isinstance(new_state, Tensor) or new_state.dtype is not dt.uint8:
            raise DTypeError(
                "set_state: expected the uint8 tensor get_state returned, got "
                + (f"a {new_state.dtype.name} tensor" if isinstance(new_state, Tensor)
                   else describe(new_state))
            )  # fmt: skip
        raw = new_state.cpu().numpy().tobytes()
        if new_state.ndim != 1 or len(raw) != _STATE_BYTES or raw[0] != 1:
            raise ValueError(
                f"set_state: not a generator state (expected {_STATE_BYTES} bytes from "
                f"get_state, got a tensor of shape {fmt_shape(new_state.shape)})"
            )
        seed = int.from_bytes(raw[1:9], "little")
        bits = np.random.PCG64()
        bits.state = {
            "bit_generator": "PCG64",
            "state": {
                "state": int.from_bytes(raw[9:25], "little"),
                "inc": int.from_bytes(raw[25:41], "little"),
            },
            "has_uint32": raw[41],
            "uinteger": int.from_bytes(raw[42:46], "little"),
        }
        self._seed, self._rng = seed, np.random.Generator(bits)
        return self

    def __repr__(self) -> str:
        return f"<fusejit.Generator device='{self.device}'>"


# default generators, one per device; created on first use, seeded with the last
# fusejit.manual_seed when there was one
_DEFAULTS: dict[Device, Generator] = {}
_SEED_ALL: list[int | None] = [None]


def default_for(device) -> Generator:
    """The default generator of ``device``."""
    dev = as_device(device)
    g = _DEFAULTS.get(dev)
    if g is None:
        g = _DEFAULTS[dev] = Generator(dev)
        if _SEED_ALL[0] is not None:
            g._set(_SEED_ALL[0])
    return g


default_generator = default_for("cpu")


def manual_seed(seed: int) -> Generator:
    """Seed the default generator of every device (as ``torch.manual_seed``); returns the
    CPU's.

    >>> import fusejit
    >>> _ = fusejit.manual_seed(0); a = fusejit.rand(3)
    >>> _ = fusejit.manual_seed(0); bool((a == fusejit.rand(3)).all())
    True
    """
    s = _seed_arg("manual_seed", seed)
    _SEED_ALL[0] = s
    for g in _DEFAULTS.values():
        g._set(s)
    return default_generator


def seed() -> int:
    """Seed every default generator from the operating system's entropy; returns the seed."""
    s = _fresh_seed()
    manual_seed(s)
    return s


def initial_seed() -> int:
    """The seed of the CPU's default generator."""
    return default_generator.initial_seed()


def generator_states(devices=()) -> dict:
    """The state of every default generator (those of ``devices`` made first), for
    ``set_generator_states``: the JIT puts them back to run a graph's draws again as the run it
    recorded drew them (its check against eager, its first compiled run)."""
    for dev in devices:
        default_for(dev)
    return {dev: g._rng.bit_generator.state for dev, g in _DEFAULTS.items()}


def set_generator_states(states: dict) -> None:
    """Put the default generators back in the ``states`` ``generator_states`` gave."""
    for dev, st in states.items():
        _DEFAULTS[dev]._rng.bit_generator.state = st


def get_rng_state() -> Tensor:
    """The CPU default generator's state (a uint8 tensor)."""
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    """Restore the CPU default generator's state from ``get_rng_state``."""
    default_generator.set_state(new_state)


# ---- helpers ----------------------------------------------------------------------------------
def _not_traced(name: str) -> None:
    if recording.tracing() is not None:
        raise TraceError(
            f"{name}: random values cannot be recorded in a traced graph: the graph would "
            "replay this call's values as a constant on every call; draw them outside the "
            "traced function and pass them in as an input"
        )


def _requires_grad(t: Tensor, requires_grad: bool) -> Tensor:
    """``t``, made to require grad when ``requires_grad`` (the factories' keyword)."""
    return t.requires_grad_() if requires_grad else t


def _rng(name: str, generator, dev: Device) -> np.random.Generator:
    if generator is None:
        return default_for(dev)._rng
    if not isinstance(generator, Generator):
        raise DTypeError(f"{name}: generator must be a fusejit.Generator, got "
                         f"{describe(generator)}")  # fmt: skip
    if generator.device.type != dev.type:
        raise DeviceError(
            f"{name}: the generator is a {generator.device.type} generator but the result is "
            f"on {dev}; pass a fusejit.Generator(device='{dev.type}')"
        )
    return generator._rng


def _float_dtype(name: str, dtype, default=dt.default_float) -> dt.DType:
    d = default if dtype is None else dt.as_dtype(dtype)
    if not d.is_floating_point:
        raise DTypeError(f"{name}: expected a floating-point dtype, got {d.name}")
    return d


def _c_array(arr, d: dt.DType) -> np.ndarray:
    """``arr`` (an array or a numpy scalar of a 0-d draw) as a C-contiguous array of ``d``."""
    arr = np.asarray(arr, dtype=d.np)
    return arr if arr.flags.c_contiguous else arr.copy()


def _make(arr: np.ndarray, d: dt.DType, dev: Device) -> Tensor:
    arr = _c_array(arr, d)
    return Tensor._wrap(dev.backend.from_numpy(arr), d, dev)


def _uniform(rng: np.random.Generator, shape: tuple, d: dt.DType) -> np.ndarray:
    """Uniform on [0, 1) in ``d``: never 1.0 (a float64 draw rounded to float32 or float16
    could be)."""
    if d is dt.float64:
        return rng.random(shape)
    if d is dt.float32:
        return rng.random(shape, dtype=np.float32)
    return (rng.integers(0, 2**11, size=shape) * 2.0**-11).astype(d.np)


def _write(name: str, self: Tensor, arr: np.ndarray) -> Tensor:
    """``self`` with the host values ``arr`` written into it."""
    check_writeable(name, self)
    arr = _c_array(arr, self.dtype)
    if self.device.type == "cpu":
        self._data[...] = arr
    else:
        b = self.device.backend
        with b.scope():
            self._data[...] = b.from_numpy(arr)
    bump_version(self)
    return self


def _real(name: str, what: str, v) -> float:
    if isinstance(v, Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise DTypeError(f"{name}: {what} must be a real number, got {describe(v)}")
    return float(v)


def _host(t: Tensor) -> np.ndarray:
    return t.device.backend.to_numpy(t._data)


# ---- factories --------------------------------------------------------------------------------
def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1).

    >>> import fusejit
    >>> fusejit.rand(2, 3).shape
    (2, 3)
    """
    _not_traced("rand")
    d, dev = _float_dtype("rand", dtype), as_device(device)
    shape = shape_arg("rand", size, nonnegative=True)
    t = _make(_uniform(_rng("rand", generator, dev), shape, d), d, dev)
    return _requires_grad(t, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal.

    >>> import fusejit
    >>> fusejit.randn(4, dtype=fusejit.float64).dtype
    fusejit.float64
    """
    _not_traced("randn")
    d, dev = _float_dtype("randn", dtype), as_device(device)
    shape = shape_arg("randn", size, nonnegative=True)
    t = _make(_rng("randn", generator, dev).standard_normal(shape), d, dev)
    return _requires_grad(t, requires_grad)


def _int_range(name: str, d: dt.DType, low: int, high: int) -> None:
    """A ShapeError unless [low, high) is a non-empty range ``d`` can hold."""
    if low >= high:
        raise ShapeError(f"{name}: low ({low}) must be less than high ({high})")
    if d.is_floating_point:
        lo, hi = -(2 ** (np.finfo(d.np).nmant + 1)), 2 ** (np.finfo(d.np).nmant + 1)
    elif d is dt.bool_:
        lo, hi = 0, 1
    else:
        lo, hi = int(np.iinfo(d.np).min), int(np.iinfo(d.np).max)
    if low < lo or high - 1 > hi:
        raise ShapeError(f"{name}: the range [{low}, {high}) does not fit {d.name} "
                         f"([{lo}, {hi}])")  # fmt: skip


def randint(low, high=None, size=(), *, generator=None, dtype=None, device=None) -> Tensor:
    """Integers in [low, high); ``randint(high, size)`` draws from [0, high).

    >>> import fusejit
    >>> x = fusejit.randint(3, 7, (100,))
    >>> bool(((x >= 3) & (x < 7)).all())
    True
    """
    _not_traced("randint")
    if high is None or isinstance(high, (tuple, list)):  # randint(high) or randint(high, size)
        low, high, size = 0, low, (size if high is None else high)
    low, high = int_arg("randint", low, "low"), int_arg("randint", high, "high")
    shape = shape_arg("randint", (size,), nonnegative=True)
    d, dev = (dt.int64 if dtype is None else dt.as_dtype(dtype)), as_device(device)
    _int_range("randint", d, low, high)
    return _make(_rng("randint", generator, dev).integers(low, high, size=shape), d, dev)


def randperm(n: int, *, generator=None, dtype=dt.int64, device=None) -> Tensor:
    """A random permutation of ``0 .. n-1``.

    >>> import fusejit
    >>> sorted(fusejit.randperm(5).tolist())
    [0, 1, 2, 3, 4]
    """
    _not_traced("randperm")
    n = int_arg("randperm", n, "n")
    if n < 0:
        raise ShapeError(f"randperm: n must be non-negative, got {n}")
    d, dev = dt.as_dtype(dtype), as_device(device)
    if d is dt.bool_:
        raise DTypeError("randperm: bool is not a dtype for a permutation; use an int dtype")
    if n > 0:
        _int_range("randperm", d, 0, n)
    return _make(_rng("randperm", generator, dev).permutation(n), d, dev)


def _like(x: Tensor, dtype, device):
    if not isinstance(x, Tensor):
        raise DTypeError(f"expected a tensor, got {describe(x)}")
    return (x.dtype if dtype is None else dt.as_dtype(dtype),
            x.device if device is None else as_device(device))  # fmt: skip


def _draw_like(b, shape: tuple, np_dtype) -> object:
    """The values of the table's ``rand_like`` on backend ``b``: ``rand``'s draw from the
    default generator of its device."""
    dev = as_device("cpu" if b.name == "cpu" else f"{b.name}:{b.index}")
    d = dt.as_dtype(np_dtype)
    return b.from_numpy(_c_array(_uniform(default_for(dev)._rng, shape, d), d))


set_source(_draw_like)


def rand_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False,  # noqa: A002
              generator=None) -> Tensor:  # fmt: skip
    """``rand`` with ``input``'s shape, dtype and device. With those and the default
    generator it is a graph node: a traced function draws fresh values at each call.

    >>> import fusejit
    >>> f = fusejit.trace(lambda x: fusejit.rand_like(x) * x, (fusejit.ones(3),))
    >>> bool((f(fusejit.ones(3)) != f(fusejit.ones(3))).any())
    True
    """
    d, dev = _like(input, dtype, device)
    if generator is None and d is input.dtype and dev == input.device and d.is_floating_point:
        return _requires_grad(dispatch.apply(RAND_LIKE, (input,), {}), requires_grad)
    _not_traced("rand_like")
    t = rand(input.shape, generator=generator, dtype=_float_dtype("rand_like", d), device=dev)
    return _requires_grad(t, requires_grad)


def randn_like(input: Tensor, *, dtype=None, device=None, requires_grad: bool = False,  # noqa: A002
               generator=None) -> Tensor:  # fmt: skip
    """``randn`` with ``input``'s shape, dtype and device."""
    _not_traced("randn_like")
    d, dev = _like(input, dtype, device)
    t = randn(input.shape, generator=generator, dtype=_float_dtype("randn_like", d), device=dev)
    return _requires_grad(t, requires_grad)


def randint_like(input: Tensor, low=0, high=None, *, dtype=None, device=None,  # noqa: A002
                 generator=None) -> Tensor:  # fmt: skip
    """``randint`` with ``input``'s shape, dtype and device: ``randint_like(x, high)`` or
    ``randint_like(x, low, high)``."""
    _not_traced("randint_like")
    d, dev = _like(input, dtype, device)
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, generator=generator, dtype=d, device=dev)


# ---- distributions ----------------------------------------------------------------------------
def _probabilities(name: str, p: Tensor) -> np.ndarray:
    if not p.dtype.is_floating_point:
        raise DTypeError(f"{name}: probabilities must be a floating-point tensor, got "
                         f"{p.dtype.name}")  # fmt: skip
    return _host(p).astype(np.float64)


def bernoulli(input: Tensor, p=None, *, generator=None) -> Tensor:  # noqa: A002
    """0 or 1 for each element: 1 with probability ``input`` (or ``p`` when given), in
    ``input``'s dtype.

    >>> import fusejit
    >>> fusejit.bernoulli(fusejit.tensor([0.0, 1.0])).tolist()
    [0.0, 1.0]
    """
    _not_traced("bernoulli")
    if not isinstance(input, Tensor):
        raise DTypeError(f"bernoulli: input must be a tensor, got {describe(input)}")
    rng = _rng("bernoulli", generator, input.device)
    if p is None:
        probs = _probabilities("bernoulli", input)
    elif isinstance(p, Tensor):
        probs = np.broadcast_to(_probabilities("bernoulli", p), input.shape)
    else:
        probs = np.float64(_real("bernoulli", "p", p))
    outside = ~((probs >= 0) & (probs <= 1))
    if np.any(outside):
        bad = probs if np.ndim(probs) == 0 else probs[outside][0]
        raise ValueError(f"bernoulli: probabilities must be in [0, 1], got {bad}")
    drawn = rng.random(input.shape) < probs
    return _make(drawn, input.dtype, input.device)


def bernoulli_(self: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Fill ``self`` with 0 or 1, 1 with probability ``p`` (a float or a tensor)."""
    _not_traced("bernoulli_")
    return _write("bernoulli_", self, _host(bernoulli(self, p, generator=generator)))


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,  # noqa: A002
                generator=None) -> Tensor:  # fmt: skip
    """Indices drawn from the categories of each row of ``input`` (non-negative weights,
    1-d or 2-d), int64; without ``replacement`` an index appears at most once per row.

    >>> import fusejit
    >>> fusejit.multinomial(fusejit.tensor([0.0, 1.0, 0.0]), 2, replacement=True).tolist()
    [1, 1]
    """
    _not_traced("multinomial")
    if not isinstance(input, Tensor):
        raise DTypeError(f"multinomial: input must be a tensor, got {describe(input)}")
    k = int_arg("multinomial", num_samples, "num_samples")
    if input.ndim not in (1, 2):
        raise ShapeError(f"multinomial: input must be 1-d or 2-d, got shape "
                         f"{fmt_shape(input.shape)}")  # fmt: skip
    w = _probabilities("multinomial", input)
    rows = w.reshape(-1, w.shape[-1])
    n = rows.shape[1]
    if k <= 0:
        raise ShapeError(f"multinomial: num_samples must be positive, got {k}")
    if n == 0:
        raise ShapeError("multinomial: input has no categories (its last dim is 0)")
    if not replacement and k > n:
        raise ShapeError(f"multinomial: cannot draw {k} samples from {n} categories without "
                         "replacement")  # fmt: skip
    if not np.all(np.isfinite(rows) & (rows >= 0)):
        raise ValueError("multinomial: the weights must be finite and non-negative (got inf, "
                         "nan or a negative one)")  # fmt: skip
    sums = rows.sum(axis=1)
    if np.any(sums <= 0):
        raise ValueError("multinomial: the weights of a row sum to zero")
    rng = _rng("multinomial", generator, input.device)
    if replacement:
        cum = np.cumsum(rows, axis=1)
        u = rng.random((rows.shape[0], k)) * sums[:, None]
        idx = np.stack([np.searchsorted(c, r, side="right") for c, r in zip(cum, u)])
        last = n - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)  # (u * sum may round up to sum)
        idx = np.minimum(idx, last[:, None])
    else:
        if np.any((rows > 0).sum(axis=1) < k):
            raise ValueError(f"multinomial: a row has fewer than {k} categories of nonzero "
                             "weight to draw without replacement")  # fmt: skip
        # the categories in order of exponential arrival times of rates ``w``: the order in
        # which drawing one at a time without replacement picks them
        with np.errstate(divide="ignore"):
            keys = rng.standard_exponential(rows.shape) / rows
        idx = np.argsort(keys, axis=1, kind="stable")[:, :k]
    out = idx.reshape((k,) if input.ndim == 1 else (rows.shape[0], k))
    return _make(out, dt.int64, input.device)


def _float_tensor(name: str, what: str, t: Tensor) -> None:
    if not t.dtype.is_floating_point:
        raise DTypeError(f"{name}: {what} must be a floating-point tensor, got {t.dtype.name}")


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    """Normal values of mean ``mean`` and standard deviation ``std`` (tensors, broadcast
    together, or numbers with ``size``).

    >>> import fusejit
    >>> fusejit.normal(2.0, 0.0, (3,)).tolist()
    [2.0, 2.0, 2.0]
    >>> fusejit.normal(fusejit.zeros(2), 0.0).tolist()
    [0.0, 0.0]
    """
    _not_traced("normal")
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if not tensors:
        m, s = _real("normal", "mean", mean), _real("normal", "std", std)
        if size is None:
            raise DTypeError("normal: with a number mean and std, give size")
        if not s >= 0:
            raise ValueError(f"normal: std must be >= 0, got {s}")
        shape = shape_arg("normal", (size,), nonnegative=True)
        d, dev = _float_dtype("normal", dtype), as_device(device)
        z = _rng("normal", generator, dev).standard_normal(shape)
        return _make(m + s * z, d, dev)
    if size is not None:
        raise DTypeError("normal: size is given by mean and std when either is a tensor")
    for what, t in (("mean", mean), ("std", std)):
        if isinstance(t, Tensor):
            _float_tensor("normal", what, t)
        else:
            _real("normal", what, t)
    devs = {t.device for t in tensors}
    if len(devs) > 1:
        raise DeviceError(f"normal: mean is on {mean.device} and std on {std.device}; "
                          "move them to one device")  # fmt: skip
    dev = tensors[0].device
    d = tensors[0].dtype if len(tensors) == 1 else dt.promote_types(mean.dtype, std.dtype)
    if dtype is not None and dt.as_dtype(dtype) is not d:
        raise DTypeError(f"normal: dtype {dt.as_dtype(dtype).name} differs from the "
                         f"dtype {d.name} of mean and std")  # fmt: skip
    if device is not None and as_device(device) is not dev:
        raise DeviceError(f"normal: device {as_device(device)} differs from the device {dev} "
                          "of mean and std")  # fmt: skip
    b = dev.backend
    shapes = [t.shape for t in tensors]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(
            f"normal: shapes {fmt_shape(mean.shape)} of mean and {fmt_shape(std.shape)} of std "
            "cannot be broadcast"
        ) from None
    if isinstance(std, Tensor):
        hs = _host(std)
        bad = ~(hs >= 0)
        if bad.any():
            raise ValueError(f"normal: std must be >= 0, got {hs[bad][0]}")
    elif not float(std) >= 0:
        raise ValueError(f"normal: std must be >= 0, got {float(std)}")
    z = np.asarray(_rng("normal", generator, dev).standard_normal(shape))  # (0-d: a float)
    with b.scope():  # (on cuda:N, compute on that GPU)
        s = std._data.astype(np.float64) if isinstance(std, Tensor) else float(std)
        m = mean._data.astype(np.float64) if isinstance(mean, Tensor) else float(mean)
        res = (m + s * b.from_numpy(z)).astype(d.np)
    return Tensor._wrap(res, d, dev)


# ---- in-place fills (Tensor methods) ----------------------------------------------------------
def _inplace_float(name: str, self: Tensor) -> None:
    _not_traced(name)
    if not isinstance(self, Tensor):
        raise DTypeError(f"{name}: expected a tensor, got {describe(self)}")
    if not self.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating-point tensor, got {self.dtype.name}")


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill ``self`` with normal values of ``mean`` and ``std``."""
    _inplace_float("normal_", self)
    m, s = _real("normal_", "mean", mean), _real("normal_", "std", std)
    if not s >= 0:
        raise ValueError(f"normal_: std must be >= 0, got {s}")
    z = _rng("normal_", generator, self.device).standard_normal(self.shape)
    return _write("normal_", self, m + s * z)


def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None, **kw) -> Tensor:
    """Fill ``self`` with values uniform on [``from``, ``to``) (``uniform_(from=, to=)`` or
    positionally)."""
    _inplace_float("uniform_", self)
    a, b = kw.pop("from", a), kw.pop("to", b)
    if kw:
        raise TypeError(f"uniform_: unexpected keyword arguments {sorted(kw)}")
    lo, hi = _real("uniform_", "from", a), _real("uniform_", "to", b)
    if not lo <= hi:
        raise ValueError(f"uniform_: from ({lo}) must not be greater than to ({hi})")
    u = _rng("uniform_", generator, self.device).random(self.shape)
    return _write("uniform_", self, lo + (hi - lo) * u)


def exponential_(self: Tensor, lambd: float = 1.0, *, generator=None) -> Tensor:
    """Fill ``self`` with exponential values of rate ``lambd``."""
    _inplace_float("exponential_", self)
    rate = _real("exponential_", "lambd", lambd)
    if not rate > 0:
        raise ValueError(f"exponential_: lambd must be > 0, got {rate}")
    e = _rng("exponential_", generator, self.device).standard_exponential(self.shape)
    return _write("exponential_", self, e / rate)


def random_(self: Tensor, *args, generator=None, **kw) -> Tensor:
    """Fill ``self`` with integers: ``random_(to)`` from [0, to), ``random_(from, to)`` from
    [from, to), ``random_()`` from [0, the largest integer the dtype holds exactly]."""
    _not_traced("random_")
    if not isinstance(self, Tensor):
        raise DTypeError(f"random_: expected a tensor, got {describe(self)}")
    if len(args) > 2:
        raise TypeError(f"random_: takes at most 2 positional arguments, got {len(args)}")
    lo, hi = (0, args[0]) if len(args) == 1 else (tuple(args) + (0, None))[:2]
    lo, hi = kw.pop("from", lo), kw.pop("to", hi)
    if kw:
        raise TypeError(f"random_: unexpected keyword arguments {sorted(kw)}")
    d = self.dtype
    lo = int_arg("random_", lo, "from")
    if hi is None:
        if d.is_floating_point:
            hi = 2 ** (np.finfo(d.np).nmant + 1) + 1
        elif d is dt.bool_:
            hi = 2
        else:
            hi = int(np.iinfo(d.np).max) + 1
    hi = int_arg("random_", hi, "to")
    _int_range("random_", d, lo, hi)
    v = _rng("random_", generator, self.device).integers(lo, hi, size=self.shape)
    return _write("random_", self, v)


METHODS = {
    "normal_": normal_, "uniform_": uniform_, "exponential_": exponential_,
    "random_": random_, "bernoulli": bernoulli, "bernoulli_": bernoulli_,
    "multinomial": multinomial,
}  # fmt: skip
