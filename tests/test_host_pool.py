"""The host buffer pool: reuse only when nothing else can see the memory."""

import gc

import numpy as np
import pytest
from fusejit.backends.host_pool import MIN_BYTES, POOL, HostPool

import fusejit

N = MIN_BYTES // 4 + 1000  # float32 elements: above the pool's threshold


@pytest.fixture
def traced():
    x = fusejit.randn(N)
    return fusejit.trace(lambda x: x * 2 + 1, x), x


def _stats():
    return dict(POOL.stats)


def test_a_dead_result_is_reused_and_values_stay_right(traced):
    f, x = traced
    want = x.numpy() * 2 + 1
    f(x)  # dies at once: its buffer goes back
    before = _stats()
    for _ in range(3):
        y = f(x)
        np.testing.assert_array_equal(y.numpy(), want)
        del y
    after = _stats()
    assert after["reused"] - before["reused"] >= 3
    assert after["released"] - before["released"] >= 3


@pytest.mark.parametrize(
    "keep",
    [
        lambda t: t.numpy(),  # the array itself
        lambda t: t.numpy()[10:],  # a numpy view of it
        lambda t: t[5:],  # a tensor view
        lambda t: memoryview(t.numpy()),  # a buffer export
        lambda t: t.numpy().reshape(-1, 2)[:, 0],  # a strided view
    ],
)
def test_memory_seen_elsewhere_is_never_handed_out(traced, keep):
    f, x = traced
    y = f(x)
    held = keep(y)
    snapshot = np.array(held, copy=True)
    del y
    gc.collect()
    others = [f(x * 0 - 5) for _ in range(4)]  # would land in y's buffer if it were reused
    np.testing.assert_array_equal(np.asarray(held), snapshot)
    for o in others:
        assert (o.numpy() == -9).all()


def test_a_view_that_outlives_its_tensor_releases_the_buffer_when_it_dies(traced):
    f, x = traced
    y = f(x)
    v = y[1:]
    del y
    before = _stats()["released"]
    del v
    assert _stats()["released"] == before + 1


def test_small_arrays_and_foreign_arrays_are_not_pooled():
    before = _stats()
    a = fusejit.ones(100) * 2
    b = fusejit.from_numpy(np.ones(N, np.float32))
    del a, b
    assert _stats() == before


def test_limit_and_clear():
    pool = HostPool(limit=3 * MIN_BYTES)
    arrays = [pool.empty((MIN_BYTES // 4,), np.float32) for _ in range(5)]
    while arrays:
        pool.release(arrays.pop())  # nothing else refers to the array, as from a dying tensor
    assert pool.stats["released"] == 5
    assert pool.cached_bytes == 3 * MIN_BYTES  # the limit: two of the five were freed
    kept = pool.cached_bytes
    again = pool.empty((MIN_BYTES // 4,), np.float32)
    assert pool.stats["reused"] == 1 and pool.cached_bytes == kept - MIN_BYTES
    del again
    pool.clear()
    assert pool.cached_bytes == 0


def test_disabled_pool_allocates_plain_arrays():
    pool = HostPool(limit=0)
    a = pool.empty((MIN_BYTES,), np.float64)
    assert a.base is None and a.flags.owndata


def test_empty_cache_frees_the_kept_buffers(traced):
    f, x = traced
    f(x)  # its result dies at once: its buffer is kept
    assert POOL.cached_bytes > 0
    fusejit.empty_cache()
    assert POOL.cached_bytes == 0


def test_empty_cache_with_cupy_imported_but_no_gpu_in_use():
    # cupy importable on a machine without a usable driver: its pool is not touched (asking
    # it for the device count would raise); a GPU in use has its cached blocks freed
    pytest.importorskip("cupy")
    import cupy  # noqa: F401

    fusejit.empty_cache()
    assert POOL.cached_bytes == 0


def test_large_eager_ops_reuse_the_buffers_of_dead_results():
    # eager ufunc ops on contiguous inputs of one shape write into pooled buffers; a view of
    # a result keeps its memory out of later results, and other layouts stay numpy's own
    x, y = fusejit.randn(N), fusejit.randn(N)
    xn, yn = x.numpy().copy(), y.numpy().copy()
    (x * 2).exp()  # warms the pool with dead results
    before = _stats()
    a = x + y
    b = (x * 3 - 1).abs()
    c = 2.5 / (y * y + 1)
    after = _stats()
    assert after["reused"] - before["reused"] >= 3
    np.testing.assert_array_equal(a.numpy(), xn + yn)
    np.testing.assert_array_equal(b.numpy(), np.abs(xn * np.float32(3) - np.float32(1)))
    np.testing.assert_array_equal(c.numpy(), np.float32(2.5) / (yn * yn + np.float32(1)))
    held = a.numpy()[::2]
    snapshot = held.copy()
    del a
    gc.collect()
    others = [x * 0 - 7 for _ in range(4)]
    np.testing.assert_array_equal(held, snapshot)
    assert all((o.numpy() == -7).all() for o in others)
    # a transposed input: the result's layout is numpy's (not a pooled C-order buffer)
    m = fusejit.randn(512, N // 512).T
    r = m * 2
    assert r.numpy().strides == (m.numpy() * np.float32(2)).strides
