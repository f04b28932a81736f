"""``fusejit.nn.init``: in place, returns the tensor, the bounds and spreads PyTorch gives from
the fans and gains, seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusejit
from fusejit import DTypeError, ShapeError, nn
from fusejit.nn import init
from tests.parity_helpers import host


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported"):
        init.calculate_gain("swish")


def test_fills_in_place():
    t = fusejit.empty(3, 4)
    assert init.zeros_(t) is t and not host(t).any()
    assert init.ones_(t) is t and (host(t) == 1).all()
    assert init.constant_(t, 2.5) is t and (host(t) == 2.5).all()
    e = init.eye_(fusejit.empty(3, 4))
    np.testing.assert_array_equal(host(e), np.eye(3, 4, dtype=np.float32))
    d = init.dirac_(fusejit.empty(2, 2, 3, 3))
    x = fusejit.randn(1, 2, 5, 5)
    np.testing.assert_allclose(
        host(fusejit.nn.functional.conv2d(x, d, padding=1)), host(x), rtol=1e-6
    )


def test_uniform_normal_seeded():
    fusejit.manual_seed(5)
    a = init.uniform_(fusejit.empty(2000, dtype=fusejit.float64), -2.0, 3.0)
    fusejit.manual_seed(5)
    b = init.uniform_(fusejit.empty(2000, dtype=fusejit.float64), -2.0, 3.0)
    np.testing.assert_array_equal(host(a), host(b))
    assert host(a).min() >= -2.0 and host(a).max() < 3.0
    n = host(init.normal_(fusejit.empty(20000, dtype=fusejit.float64), 1.0, 0.5))
    assert abs(n.mean() - 1.0) < 0.02 and abs(n.std() - 0.5) < 0.02
    g = fusejit.Generator().manual_seed(3)
    c = host(init.normal_(fusejit.empty(5), generator=g))
    g.manual_seed(3)
    np.testing.assert_array_equal(c, host(init.normal_(fusejit.empty(5), generator=g)))


def test_trunc_normal():
    t = host(init.trunc_normal_(fusejit.empty(20000, dtype=fusejit.float64), 0.5, 1.0, 0.0, 1.0))
    assert t.min() >= 0.0 and t.max() <= 1.0
    # N(0.5, 1) cut to [0, 1] is symmetric about 0.5 and flatter than uniform's 1/12 variance
    assert abs(t.mean() - 0.5) < 0.01 and 0.075 < t.var() < 1 / 12
    with pytest.raises(ValueError):
        init.trunc_normal_(fusejit.empty(3), a=1.0, b=0.0)


@pytest.mark.parametrize("shape", [(64, 32), (16, 8, 3, 3)])
def test_xavier_kaiming(shape):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    t = fusejit.empty(*shape, dtype=fusejit.float64)
    xb = math.sqrt(6 / (fan_in + fan_out)) * 2.0
    u = host(init.xavier_uniform_(t, gain=2.0))
    assert np.abs(u).max() <= xb and np.abs(u).max() > 0.9 * xb
    s = host(init.xavier_normal_(t)).std()
    assert abs(s / math.sqrt(2 / (fan_in + fan_out)) - 1) < 0.1
    kb = math.sqrt(2) * math.sqrt(3 / fan_out)
    k = host(init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"))
    assert np.abs(k).max() <= kb and np.abs(k).max() > 0.9 * kb
    ks = host(init.kaiming_normal_(t, a=0.0)).std()
    assert abs(ks / (math.sqrt(2 / (1 + 0)) / math.sqrt(fan_in)) - 1) < 0.1
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(t, mode="fan")


def test_orthogonal():
    for shape in [(6, 4), (3, 7), (4, 2, 2)]:
        q = host(init.orthogonal_(fusejit.empty(*shape, dtype=fusejit.float64), gain=2.0))
        m = q.reshape(shape[0], -1)
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(small, 4.0 * np.eye(small.shape[0]), atol=1e-12)
    with pytest.raises(ShapeError):
        init.orthogonal_(fusejit.empty(3))


def test_errors_and_no_grad():
    with pytest.raises(ShapeError, match="fewer than 2 dims"):
        init.xavier_uniform_(fusejit.empty(5))
    with pytest.raises(DTypeError, match="floating-point"):
        init.normal_(fusejit.zeros(3, dtype=fusejit.int64))
    p = nn.Parameter(fusejit.empty(4, 4))
    assert init.kaiming_uniform_(p, a=math.sqrt(5)) is p and p.requires_grad
    assert fusejit.is_grad_enabled()


def test_linear_default_init_matches_kaiming_bound():
    lin = nn.Linear(25, 7)
    assert np.abs(host(lin.weight)).max() <= 1 / 5
    conv = nn.Conv2d(3, 7, 3)
    bound = 1 / math.sqrt(27)
    assert np.abs(host(conv.weight)).max() <= bound
    assert np.abs(host(conv.bias)).max() <= bound
