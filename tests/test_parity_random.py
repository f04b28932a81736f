"""Random numbers as PyTorch 2.x: generators (seeds, states, one per device), the factories
(randperm, multinomial, bernoulli, normal, the ``*_like`` ones), the in-place fills, their
errors, their statistics for fixed seeds, and the TraceError under ``fusejit.trace``."""

from __future__ import annotations

import numpy as np
import pytest
from parity_helpers import DEVICES, host, on

import fusejit
from fusejit import DeviceError, DTypeError, ShapeError, TraceError

FLOATS = [fusejit.float16, fusejit.float32, fusejit.float64]
INTS = [fusejit.uint8, fusejit.int8, fusejit.int16, fusejit.int32, fusejit.int64]


@pytest.fixture(autouse=True)
def _restore_default_generators():
    """Each test leaves the default generators as it found them."""
    from fusejit.eager import random as r

    states = {d: g.get_state() for d, g in r._DEFAULTS.items()}
    seed_all = r._SEED_ALL[0]
    yield
    for d, s in states.items():
        r._DEFAULTS[d].set_state(s)
    r._SEED_ALL[0] = seed_all


# ---- generators ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_manual_seed_repeats_on_every_device(device):
    fusejit.manual_seed(123)
    a = fusejit.rand(100, device=device)
    b = fusejit.randn(3, 4, device=device)
    fusejit.manual_seed(123)
    assert np.array_equal(host(a), host(fusejit.rand(100, device=device)))
    assert np.array_equal(host(b), host(fusejit.randn(3, 4, device=device)))
    # one seed, the same values on every device (each device's own generator)
    fusejit.manual_seed(5)
    c = fusejit.randint(0, 1000, (50,), device=device)
    fusejit.manual_seed(5)
    assert np.array_equal(host(c), host(fusejit.randint(0, 1000, (50,))))
    assert c.device == fusejit.device(device)


def test_manual_seed_returns_the_cpu_generator_and_initial_seed():
    g = fusejit.manual_seed(42)
    assert isinstance(g, fusejit.Generator) and g is fusejit.default_generator
    assert fusejit.initial_seed() == 42 and g.initial_seed() == 42
    assert fusejit.manual_seed(-1).initial_seed() == 2**64 - 1  # as torch: modulo 2**64
    s = fusejit.seed()
    assert fusejit.initial_seed() == s
    with pytest.raises(DTypeError, match="seed must be an int"):
        fusejit.manual_seed(1.5)
    with pytest.raises(ValueError, match="seed must be in"):
        fusejit.manual_seed(2**64)


def test_per_device_default_generators_are_separate():
    from fusejit.eager import random as r

    fusejit.manual_seed(9)
    cuda_gen = r.default_for("cuda")  # made after the seed: seeded with it
    assert cuda_gen.initial_seed() == 9
    fusejit.cuda.manual_seed(3)  # the GPU's generator only
    assert cuda_gen.initial_seed() == 3 and fusejit.initial_seed() == 9
    fusejit.cuda.manual_seed_all(4)
    assert cuda_gen.initial_seed() == 4 and fusejit.initial_seed() == 9
    # a draw on the CPU does not advance the GPU's generator
    before = cuda_gen.get_state()
    fusejit.rand(10)
    assert np.array_equal(host(before), host(cuda_gen.get_state()))


def test_generator_argument_state_and_seed():
    g = fusejit.Generator()
    assert g.device == fusejit.device("cpu") and "cpu" in repr(g)
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    state = g.get_state()
    assert state.dtype is fusejit.uint8 and state.ndim == 1
    a = fusejit.rand(10, generator=g)
    b = fusejit.randn(10, generator=g)
    g.set_state(state)
    assert np.array_equal(host(a), host(fusejit.rand(10, generator=g)))
    assert np.array_equal(host(b), host(fusejit.randn(10, generator=g)))
    # an explicit generator leaves the default one alone
    fusejit.manual_seed(0)
    x = fusejit.rand(5)
    fusejit.manual_seed(0)
    fusejit.rand(5, generator=fusejit.Generator().manual_seed(1))
    assert np.array_equal(host(x), host(fusejit.rand(5)))
    # two generators of one seed agree
    g1, g2 = fusejit.Generator().manual_seed(3), fusejit.Generator().manual_seed(3)
    p1, p2 = fusejit.randperm(20, generator=g1), fusejit.randperm(20, generator=g2)
    assert p1.tolist() == p2.tolist()
    assert g.seed() == g.initial_seed()
    fusejit.set_rng_state(fusejit.get_rng_state())


def test_generator_errors():
    g = fusejit.Generator()
    with pytest.raises(DTypeError, match="uint8 tensor"):
        g.set_state(fusejit.zeros(46))
    with pytest.raises(ValueError, match="not a generator state"):
        g.set_state(fusejit.zeros(3, dtype=fusejit.uint8))
    with pytest.raises(DTypeError, match="generator must be a fusejit.Generator"):
        fusejit.rand(3, generator=np.random.default_rng())
    # a generator draws for results on a device of its type, as in PyTorch
    with pytest.raises(DeviceError, match="cuda generator but the result is on cpu"):
        fusejit.rand(3, generator=fusejit.Generator(device="cuda"))
    with pytest.raises(DeviceError, match="cuda generator"):
        fusejit.zeros(3).normal_(generator=fusejit.Generator(device="cuda"))


@pytest.mark.parametrize("device", DEVICES)
def test_cuda_generator_draws_what_a_cpu_generator_of_its_seed_draws(device):
    g = fusejit.Generator(device=device).manual_seed(11)
    got = fusejit.randn(7, generator=g, device=device)
    want = fusejit.randn(7, generator=fusejit.Generator().manual_seed(11))
    assert np.array_equal(host(got), host(want))


# ---- factories -------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_rand_randn_dtypes_and_statistics(device, dtype):
    g = fusejit.Generator(device=device).manual_seed(0)
    u = fusejit.rand(20000, dtype=dtype, device=device, generator=g)
    assert u.dtype is dtype and u.device == fusejit.device(device)
    h = host(u).astype(np.float64)
    assert h.min() >= 0 and h.max() < 1  # never 1.0, in float16 either
    assert abs(h.mean() - 0.5) < 0.01 and abs(h.var() - 1 / 12) < 0.005
    n = host(fusejit.randn(20000, dtype=dtype, device=device, generator=g)).astype(np.float64)
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03


def test_rand_float16_is_never_one():
    fusejit.manual_seed(0)
    assert host(fusejit.rand(2**20, dtype=fusejit.float16)).max() < 1


@pytest.mark.parametrize("name", ["rand", "randn"])
def test_rand_randn_refuse_int_dtypes(name):
    with pytest.raises(DTypeError, match=f"{name}: expected a floating-point dtype, got int64"):
        getattr(fusejit, name)(3, dtype=fusejit.int64)
    with pytest.raises(ShapeError):
        getattr(fusejit, name)(-1)


@pytest.mark.parametrize("device", DEVICES)
def test_randperm_is_a_permutation(device):
    for n in (0, 1, 2, 17, 1000):
        p = fusejit.randperm(n, device=device)
        assert p.dtype is fusejit.int64 and p.shape == (n,)
        assert sorted(host(p).tolist()) == list(range(n))
    for d in [*INTS, *FLOATS]:
        p = fusejit.randperm(100, dtype=d, device=device)
        assert p.dtype is d and sorted(host(p).astype(int).tolist()) == list(range(100))
    fusejit.manual_seed(1)
    a = fusejit.randperm(50)
    fusejit.manual_seed(1)
    assert a.tolist() == fusejit.randperm(50).tolist()
    assert a.tolist() != list(range(50))


def test_randperm_errors():
    with pytest.raises(ShapeError, match="n must be non-negative"):
        fusejit.randperm(-1)
    with pytest.raises(DTypeError, match="n must be an int"):
        fusejit.randperm(2.0)
    with pytest.raises(ShapeError, match="does not fit int8"):
        fusejit.randperm(200, dtype=fusejit.int8)
    with pytest.raises(DTypeError, match="bool"):
        fusejit.randperm(2, dtype=fusejit.bool)


@pytest.mark.parametrize("device", DEVICES)
def test_randint_dtypes_and_range(device):
    for d in [*INTS, *FLOATS]:
        x = fusejit.randint(-3 if d is not fusejit.uint8 else 0, 5, (1000,), dtype=d,
                            device=device)  # fmt: skip
        h = host(x)
        assert x.dtype is d and h.min() >= -3 and h.max() <= 4
        assert np.array_equal(h, np.round(h))
    assert set(host(fusejit.randint(2, (200,), dtype=fusejit.bool, device=device)).tolist()) == {
        False,
        True,
    }
    with pytest.raises(ShapeError, match="does not fit uint8"):
        fusejit.randint(-1, 5, (3,), dtype=fusejit.uint8)
    with pytest.raises(ShapeError, match="low .5. must be less than high .5."):
        fusejit.randint(5, 5, (3,))


@pytest.mark.parametrize("device", DEVICES)
def test_like_factories(device):
    x = on(np.zeros((3, 4), np.float64), device)[:, ::2]  # a non-contiguous input
    for fn in (fusejit.rand_like, fusejit.randn_like):
        y = fn(x)
        assert y.shape == (3, 2) and y.dtype is fusejit.float64 and y.device == x.device
        assert fn(x, dtype=fusejit.float16).dtype is fusejit.float16
    r = fusejit.randint_like(x, 10)
    assert r.dtype is fusejit.float64 and host(r).min() >= 0 and host(r).max() < 10
    r = fusejit.randint_like(on(np.zeros(500, np.int16), device), 3, 6)
    assert r.dtype is fusejit.int16 and set(host(r).tolist()) == {3, 4, 5}
    with pytest.raises(DTypeError, match="rand_like: expected a floating-point dtype"):
        fusejit.rand_like(on(np.zeros(3, np.int32), device))
    with pytest.raises(DTypeError, match="randn_like"):
        fusejit.randn_like(x, dtype=fusejit.int8)


@pytest.mark.parametrize("device", DEVICES)
def test_bernoulli(device):
    fusejit.manual_seed(0)
    p = on(np.array([0.0, 1.0, 0.0, 1.0]), device)
    assert host(fusejit.bernoulli(p)).tolist() == [0.0, 1.0, 0.0, 1.0]
    for d in FLOATS:
        x = fusejit.full((20000,), 0.3, dtype=d, device=device)
        b = fusejit.bernoulli(x)
        assert b.dtype is d and set(host(b).tolist()) <= {0.0, 1.0}
        assert abs(host(b).astype(np.float64).mean() - 0.3) < 0.015
    # p given: a float or a tensor broadcast to input's shape; the result has input's dtype
    z = on(np.zeros((2, 10000), np.int32), device)
    b = fusejit.bernoulli(z, 0.75)
    assert b.dtype is fusejit.int32 and abs(host(b).mean() - 0.75) < 0.02
    b = z.bernoulli(on(np.array([[0.0], [1.0]]), device))
    assert host(b)[0].sum() == 0 and host(b)[1].min() == 1
    y = on(np.zeros(10000, np.float32), device)[::2]
    assert y.bernoulli_(0.5) is y and abs(host(y).mean() - 0.5) < 0.03
    assert fusejit.bernoulli(fusejit.zeros(0, device=device)).shape == (0,)
    assert fusejit.bernoulli(fusejit.tensor(1.0, device=device)).item() == 1.0


def test_bernoulli_errors():
    with pytest.raises(ValueError, match=r"probabilities must be in \[0, 1\], got 1.5"):
        fusejit.bernoulli(fusejit.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="probabilities must be in"):
        fusejit.bernoulli(fusejit.tensor([float("nan")]))
    with pytest.raises(ValueError, match="got -0.1"):
        fusejit.bernoulli(fusejit.zeros(3), -0.1)
    with pytest.raises(DTypeError, match="floating-point tensor, got int64"):
        fusejit.bernoulli(fusejit.tensor([0, 1]))


@pytest.mark.parametrize("device", DEVICES)
def test_multinomial(device):
    fusejit.manual_seed(0)
    w = on(np.array([1.0, 2.0, 3.0, 0.0, 4.0]), device)
    # with replacement: frequencies follow the weights; a zero weight is never drawn
    s = fusejit.multinomial(w, 20000, replacement=True)
    assert s.dtype is fusejit.int64 and s.shape == (20000,) and s.device == w.device
    freq = np.bincount(host(s), minlength=5) / 20000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.0, 0.4], atol=0.015)
    # without replacement: never repeats, never a zero weight
    for _ in range(20):
        s = host(fusejit.multinomial(w, 4))
        assert sorted(s.tolist()) == [0, 1, 2, 4]
    # 2-d: one draw a row; float16 and float32 weights; a non-contiguous input
    w2 = on(np.array([[0.0, 0.0, 1.0], [5.0, 0.0, 0.0]], np.float16), device)
    assert host(fusejit.multinomial(w2, 3, True)).tolist() == [[2, 2, 2], [0, 0, 0]]
    w3 = on(np.ones((4, 8), np.float32), device).t()
    s = host(w3.multinomial(4))
    assert s.shape == (8, 4) and all(len(set(r)) == 4 for r in s.tolist())
    # the first of several draws without replacement follows the weights
    first = [int(host(fusejit.multinomial(on(np.array([1.0, 3.0]), device), 1))[0])
             for _ in range(2000)]  # fmt: skip
    assert abs(np.mean(first) - 0.75) < 0.04
    g = fusejit.Generator(device=device)
    a = fusejit.multinomial(w, 50, True, generator=g.manual_seed(4))
    b = fusejit.multinomial(w, 50, True, generator=g.manual_seed(4))
    assert host(a).tolist() == host(b).tolist()


def test_multinomial_errors():
    w = fusejit.tensor([1.0, 1.0, 0.0])
    with pytest.raises(ShapeError, match="cannot draw 4 samples from 3 categories"):
        fusejit.multinomial(w, 4)
    with pytest.raises(ValueError, match="fewer than 3 categories of nonzero weight"):
        fusejit.multinomial(w, 3)
    with pytest.raises(ShapeError, match="num_samples must be positive"):
        fusejit.multinomial(w, 0, True)
    with pytest.raises(ValueError, match="finite and non-negative"):
        fusejit.multinomial(fusejit.tensor([1.0, -1.0]), 1)
    with pytest.raises(ValueError, match="finite and non-negative"):
        fusejit.multinomial(fusejit.tensor([1.0, float("inf")]), 1)
    with pytest.raises(ValueError, match="sum to zero"):
        fusejit.multinomial(fusejit.zeros(2, 3), 1, True)
    with pytest.raises(ShapeError, match="1-d or 2-d"):
        fusejit.multinomial(fusejit.ones(2, 2, 2), 1)
    with pytest.raises(DTypeError, match="floating-point tensor, got int64"):
        fusejit.multinomial(fusejit.tensor([1, 2]), 1)
    with pytest.raises(DTypeError, match="num_samples must be an int"):
        fusejit.multinomial(w, 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_normal_overloads(device):
    fusejit.manual_seed(0)
    x = fusejit.normal(3.0, 2.0, (20000,), device=device)
    assert x.dtype is fusejit.float32 and x.device == fusejit.device(device)
    h = host(x).astype(np.float64)
    assert abs(h.mean() - 3) < 0.05 and abs(h.std() - 2) < 0.05
    assert fusejit.normal(0.0, 1.0, (2, 3), dtype=fusejit.float64).dtype is fusejit.float64
    # tensors broadcast together; the result has their dtype and device
    mean = on(np.array([[-100.0], [100.0]]), device)
    std = on(np.array([0.0, 1.0, 2.0], np.float64), device)
    y = fusejit.normal(mean, std)
    assert y.shape == (2, 3) and y.dtype is fusejit.float64
    assert host(y)[:, 0].tolist() == [-100.0, 100.0]  # std 0: the mean exactly
    m16 = on(np.full(20000, 5.0, np.float16), device)[::2]  # non-contiguous, float16
    z = fusejit.normal(m16, 0.5)
    assert z.dtype is fusejit.float16 and abs(host(z).astype(np.float64).mean() - 5) < 0.03
    w = fusejit.normal(1.0, on(np.full(10000, 3.0, np.float32), device))
    assert w.dtype is fusejit.float32 and abs(host(w).std() - 3) < 0.1
    assert fusejit.normal(on(np.zeros(0), device), 1.0).shape == (0,)
    assert fusejit.normal(on(np.array(2.0), device), 0.0).item() == 2.0  # 0-d


def test_normal_errors():
    with pytest.raises(ValueError, match="std must be >= 0, got -1.0"):
        fusejit.normal(0.0, -1.0, (3,))
    with pytest.raises(ValueError, match="std must be >= 0, got -2.0"):
        fusejit.normal(fusejit.zeros(2), fusejit.tensor([1.0, -2.0]))
    with pytest.raises(ValueError, match="std must be >= 0"):
        fusejit.normal(fusejit.zeros(2), -0.5)
    with pytest.raises(DTypeError, match="give size"):
        fusejit.normal(0.0, 1.0)
    with pytest.raises(DTypeError, match="mean must be a floating-point tensor"):
        fusejit.normal(fusejit.tensor([1, 2]), 1.0)
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        fusejit.normal(fusejit.zeros(2), fusejit.ones(3))
    with pytest.raises(DTypeError, match="floating-point dtype"):
        fusejit.normal(0.0, 1.0, (3,), dtype=fusejit.int32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_inplace_fills(device, dtype):
    g = fusejit.Generator(device=device).manual_seed(2)
    x = fusejit.zeros(20000, dtype=dtype, device=device)
    assert x.normal_(1.0, 2.0, generator=g) is x and x.dtype is dtype
    h = host(x).astype(np.float64)
    assert abs(h.mean() - 1) < 0.06 and abs(h.std() - 2) < 0.06
    h = host(x.uniform_(-2, 3, generator=g)).astype(np.float64)
    assert h.min() >= -2 and h.max() <= 3 and abs(h.mean() - 0.5) < 0.05
    h = host(x.uniform_(**{"from": 5, "to": 6})).astype(np.float64)
    assert h.min() >= 5 and h.max() <= 6
    h = host(x.exponential_(4.0, generator=g)).astype(np.float64)
    assert h.min() >= 0 and abs(h.mean() - 0.25) < 0.01
    h = host(x.random_(3, 7, generator=g))
    assert set(h.tolist()) == {3, 4, 5, 6}
    h = host(x.random_(2))
    assert set(h.tolist()) == {0, 1}
    h = host(x.random_()).astype(np.float64)
    assert h.min() >= 0 and h.max() <= 2 ** (np.finfo(dtype.np).nmant + 1)
    assert np.array_equal(h, np.round(h))
    # a view writes through to its base
    base = fusejit.zeros(4, 6, dtype=dtype, device=device)
    base[:, ::2].uniform_(1, 2)
    hb = host(base)
    assert (hb[:, 1::2] == 0).all() and (hb[:, ::2] >= 1).all()


@pytest.mark.parametrize("device", DEVICES)
def test_random_on_ints_and_bool(device):
    for d in INTS:
        x = fusejit.zeros(3000, dtype=d, device=device).random_()
        info = np.iinfo(d.np)
        h = host(x).astype(np.float64)
        assert h.min() >= 0 and h.max() <= info.max and h.max() > info.max / 2
        assert set(host(x.random_(-2 if d is not fusejit.uint8 else 0, 2)).tolist()) <= {
            -2, -1, 0, 1,
        }  # fmt: skip
    b = fusejit.zeros(100, dtype=fusejit.bool, device=device).random_()
    assert set(host(b).tolist()) == {False, True}


def test_inplace_errors():
    x = fusejit.zeros(3)
    with pytest.raises(ValueError, match="std must be >= 0"):
        x.normal_(0, -1)
    with pytest.raises(ValueError, match=r"from \(2.0\) must not be greater than to \(1.0\)"):
        x.uniform_(2, 1)
    with pytest.raises(ValueError, match="lambd must be > 0"):
        x.exponential_(0)
    with pytest.raises(ShapeError, match="must be less than high"):
        x.random_(5, 5)
    with pytest.raises(ShapeError, match="does not fit int8"):
        fusejit.zeros(3, dtype=fusejit.int8).random_(0, 1000)
    for name in ("normal_", "uniform_", "exponential_"):
        with pytest.raises(DTypeError, match=f"{name}: expected a floating-point tensor"):
            getattr(fusejit.zeros(3, dtype=fusejit.int64), name)()
    with pytest.raises(ShapeError, match="expanded view"):
        fusejit.zeros(1).expand(3).normal_()


# ---- tracing ---------------------------------------------------------------------------------
CALLS = {
    "rand": lambda x: x + fusejit.rand(3),
    "randn": lambda x: x + fusejit.randn(3),
    "randint": lambda x: x + fusejit.randint(0, 3, (3,)),
    "randperm": lambda x: x + fusejit.randperm(3),
    # (with x's dtype and device and the default generator, rand_like is a graph node:
    # tests/test_random_graphs.py)
    "rand_like": lambda x: x + fusejit.rand_like(x, dtype=fusejit.float64),
    "randn_like": lambda x: x + fusejit.randn_like(x),
    "randint_like": lambda x: x + fusejit.randint_like(x, 5),
    "bernoulli": lambda x: fusejit.bernoulli(x * 0 + 0.5),
    "multinomial": lambda x: fusejit.multinomial(x.abs() + 1, 2),
    "normal": lambda x: fusejit.normal(x, 1.0),
    "normal_": lambda x: (x * 1).normal_(),
    "uniform_": lambda x: (x * 1).uniform_(),
    "exponential_": lambda x: (x * 1).exponential_(),
    "random_": lambda x: (x * 1).random_(4),
    "bernoulli_": lambda x: (x * 1).bernoulli_(),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_random_under_trace_is_a_clear_error(name):
    # never a random constant frozen into the graph
    x = fusejit.ones(3)
    with pytest.raises(TraceError, match=f"^{name}: random values cannot be recorded in a traced "
                       "graph"):  # fmt: skip
        fusejit.trace(CALLS[name], (x,), check_trace=False)
    CALLS[name](x)  # eager works


def test_docstring_examples():
    import doctest

    from fusejit import cuda
    from fusejit.eager import random

    for mod in (random, cuda):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


@pytest.mark.parametrize("device", DEVICES)
def test_zero_d_and_empty_draws(device):
    for make in (fusejit.rand, fusejit.randn):
        for d in FLOATS:
            assert make(dtype=d, device=device).shape == ()
            assert make(0, 3, dtype=d, device=device).shape == (0, 3)
    assert fusejit.randint(5, (), device=device).shape == ()
    assert fusejit.normal(0.0, 1.0, (), device=device).shape == ()
    x = fusejit.tensor(0.0, device=device)
    for fill in ("normal_", "uniform_", "exponential_", "random_", "bernoulli_"):
        assert getattr(x, fill)().shape == ()
        assert getattr(fusejit.zeros(0, device=device), fill)().shape == (0,)
    assert fusejit.rand_like(x).shape == () and fusejit.randn_like(x).shape == ()
