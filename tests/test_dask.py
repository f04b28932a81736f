"""fusejit.dask on a 2-process LocalCluster: results against numpy (float64 references), one
fused kernel per block, each worker loading the archive and building its kernel once, ragged
chunks, reductions across chunks, errors."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="dask is not installed (pip install fusejit[dask])")
distributed = pytest.importorskip("distributed", reason="distributed is not installed")

import fusejit  # noqa: E402
import fusejit.dask as fd  # noqa: E402
from fusejit.base.errors import ShapeError, TraceError  # noqa: E402
from fusejit.jit.archive import MANIFEST  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _stats(client, reset=False) -> dict:
    return client.run(fd.worker_stats, reset=reset)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_elementwise_chain_one_kernel_per_block_each_worker_builds_it_once(client):
    a = _rng().uniform(1.0, 2.0, (64, 50)).astype(np.float32)
    b = _rng(1).uniform(0.0, 1.0, (64, 50)).astype(np.float32)
    x = da.from_array(a, chunks=(8, 50))  # 8 blocks
    y = da.from_array(b, chunks=(8, 50))

    def f(x, y):
        return (x.log() * 1.25 + y.tanh()).sqrt() * x - y.exp()

    _stats(client, reset=True)
    out = fd.map_blocks(f, x, y)
    assert out.shape == (64, 50) and out.dtype == np.float32 and out.chunks == x.chunks
    got = client.compute(out).result()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = np.sqrt(np.log(a64) * 1.25 + np.tanh(b64)) * a64 - np.exp(b64)
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=2e-6)
    stats = _stats(client)
    ran = [s for s in stats.values() if s["blocks"]]
    assert sum(s["blocks"] for s in stats.values()) == 8
    for s in ran:  # one fused kernel a block, no op outside it
        assert s["kernel_launches"] == s["blocks"] and s["eager_steps"] == 0
        assert s["archives_loaded"] == 1  # the archive is loaded once per worker process
        assert s["kernels_built"] == 1, s  # compiled or read from disk once, whatever the blocks


def test_workers_are_other_processes(client):
    pids = {s["pid"] for s in _stats(client).values()}
    assert len(pids) == 2 and not pids & {__import__("os").getpid()}


def test_row_softmax_over_row_chunks_with_a_ragged_last_block(client):
    a = _rng(2).normal(0, 3, (203, 37)).astype(np.float32)
    x = da.from_array(a, chunks=(50, 37))  # 50, 50, 50, 50, 3
    _stats(client, reset=True)
    sm = fd.map_blocks(lambda t: fusejit.softmax(t * 0.5, dim=1), x)
    assert sm.chunks == ((50, 50, 50, 50, 3), (37,))
    got = client.compute(sm).result()
    z = a.astype(np.float64) * 0.5
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    for s in _stats(client).values():
        if s["blocks"]:
            assert s["kernel_launches"] == s["blocks"] and s["eager_steps"] == 0
            assert s["kernels_built"] <= 2  # the row kernel, once per specialization at most


def test_ragged_chunks_in_two_dims_share_one_elementwise_kernel(client):
    a = _rng(3).uniform(-2, 2, (23, 17))
    x = da.from_array(a, chunks=(5, 6))  # rows 5,5,5,5,3; cols 6,6,5: four block shapes
    _stats(client, reset=True)
    got = client.compute(fd.map_blocks(lambda t: t * t.sigmoid() + 0.375, x)).result()
    np.testing.assert_allclose(got, a / (1 + np.exp(-a)) + 0.375, rtol=1e-12, atol=1e-12)
    for s in _stats(client).values():
        if s["blocks"]:
            assert s["kernels_built"] == 1 and s["kernel_launches"] == s["blocks"]


def test_a_last_block_of_one_row_and_a_shape_specific_graph(client):
    a = _rng(11).uniform(-1, 1, (13, 8))
    x = da.from_array(a, chunks=(6, 8))  # 6, 6, 1: a one-row block broadcasts differently
    got = client.compute(fd.map_blocks(lambda t: fusejit.softmax(t, dim=1) * 2, x)).result()
    e = np.exp(a - a.max(1, keepdims=True))
    np.testing.assert_allclose(got, 2 * e / e.sum(1, keepdims=True), rtol=1e-12)
    b = fd._Blocks("t", lambda t: t.reshape(t.shape[0], 4, 2).sum(dim=2), (x,), (), True)
    assert len(b.traced) == 2  # a reshape is shape-specific: one signature per block shape
    r = fd.map_blocks(lambda t: t.reshape(t.shape[0], 4, 2).sum(dim=2) + 1, x)
    assert r.chunks == ((6, 6, 1), (4,))
    np.testing.assert_allclose(
        client.compute(r).result(), a.reshape(13, 4, 2).sum(2) + 1, rtol=1e-12
    )


def test_shape_generic_functions_are_traced_once_on_small_blocks():
    x = da.from_array(np.ones((1000, 300), np.float32), chunks=(300, 300))
    b = fd._Blocks("t", lambda t: fusejit.softmax(t, dim=1).exp(), (x,), (), True)
    assert len(b.traced) == 1 and b.traced[0].raw_graph.block.params[0].type.shape == (2, 3)
    assert b.out_chunks == [x.chunks]


def test_functions_reading_the_block_size_are_traced_at_the_real_sizes(client):
    a = _rng(12).uniform(-1, 1, (40, 8))
    x = da.from_array(a, chunks=(6, 8))  # 6 x 6, 4
    mean_rows = lambda t: t - t.sum(dim=1, keepdim=True) / t.shape[1]  # noqa: E731
    b = fd._Blocks("t", mean_rows, (x,), (), True)
    assert b.traced[0].raw_graph.block.params[0].type.shape == (6, 8)
    got = client.compute(fd.map_blocks(mean_rows, x)).result()
    np.testing.assert_allclose(got, a - a.mean(1, keepdims=True), rtol=1e-12, atol=1e-15)
    by_rows = lambda t: t * t.shape[0]  # noqa: E731 - 6 for most blocks, 4 for the last
    got = client.compute(fd.map_blocks(by_rows, x)).result()
    np.testing.assert_allclose(got, a * np.repeat([6, 6, 6, 6, 6, 6, 4], [6] * 6 + [4])[:, None])
    fixed = lambda t: t.reshape(t.shape[0], 4, 2).sum(dim=2)  # noqa: E731 - fails at (2, 3)
    got = client.compute(fd.map_blocks(fixed, x)).result()
    np.testing.assert_allclose(got, a.reshape(40, 4, 2).sum(2), rtol=1e-12)


def test_the_archive_of_a_function_is_the_same_bytes_each_time():
    x = da.from_array(np.ones((40, 8), np.float32), chunks=(6, 8))
    f = lambda t: fusejit.softmax(t, dim=1) * 3  # noqa: E731
    a = fd._Blocks("t", f, (x,), (), True).archive
    b = fd._Blocks("t", f, (x,), (), True).archive
    assert a.digest == b.digest  # so a worker keeps one loaded function for both graphs


def test_broadcast_operand_and_tuple_results(client):
    a = _rng(4).uniform(1, 2, (30, 8)).astype(np.float32)
    bias = _rng(5).uniform(0, 1, (1, 8)).astype(np.float32)
    x = da.from_array(a, chunks=(7, 8))
    b = da.from_array(bias, chunks=(1, 8))
    _stats(client, reset=True)
    s, d = fd.map_blocks(lambda x, b: (x + b, (x - b).log()), x, b)
    got_s, got_d = client.compute([s, d], sync=True)
    a64, b64 = a.astype(np.float64), bias.astype(np.float64)
    np.testing.assert_allclose(got_s, a64 + b64, rtol=1e-6)
    np.testing.assert_allclose(got_d, np.log(a64 - b64), rtol=1e-5, atol=1e-6)
    blocks = sum(s["blocks"] for s in _stats(client).values())
    assert blocks == len(x.chunks[0])  # both results from one run of each block


def test_row_reduction_along_an_unchunked_axis_drops_it(client):
    a = _rng(6).normal(size=(40, 12))
    x = da.from_array(a, chunks=(9, 12))
    r = fd.map_blocks(lambda t: (t * t).sum(dim=1).sqrt(), x, drop_axis=1)
    assert r.shape == (40,) and r.chunks == ((9, 9, 9, 9, 4),)
    np.testing.assert_allclose(client.compute(r).result(), np.sqrt((a * a).sum(1)), rtol=1e-12)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "prod"])
def test_reduce_across_chunks(client, op):
    a = _rng(7).uniform(0.9, 1.1, (50, 20))
    x = da.from_array(a, chunks=(8, 6))
    fn = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min, "prod": np.prod}[op]
    ref = np.exp(a) * 0.5
    for dim in (None, 0, 1, (0, 1)):
        got = client.compute(fd.reduce(lambda t: t.exp() * 0.5, x, op=op, dim=dim)).result()
        axis = None if dim is None else dim
        np.testing.assert_allclose(got, fn(ref, axis=axis), rtol=1e-12)
    got = client.compute(fd.reduce(None, x, op=op, dim=0, keepdim=True)).result()
    np.testing.assert_allclose(got, fn(a, axis=0, keepdims=True), rtol=1e-12)


def test_reduce_partial_is_one_kernel_per_block(client):
    a = _rng(8).uniform(0, 1, 10_000).astype(np.float32)
    x = da.from_array(a, chunks=1000)
    _stats(client, reset=True)
    got = client.compute(fd.reduce(lambda t: (t * 3.5).exp(), x, op="sum")).result()
    np.testing.assert_allclose(got, np.exp(a.astype(np.float64) * 3.5).sum(), rtol=1e-5)
    stats = _stats(client).values()
    assert sum(s["blocks"] for s in stats) == 10
    for s in stats:
        if s["blocks"]:
            assert s["kernel_launches"] == s["blocks"] and s["eager_steps"] == 0


def test_worker_stats_time_the_blocks_and_reset(client):
    a = _rng(12).uniform(1, 2, (64, 4096)).astype(np.float32)
    x = da.from_array(a, chunks=(16, 4096))
    _stats(client, reset=True)
    got = client.compute(fd.map_blocks(lambda t: t.log().sqrt() * t, x)).result()
    np.testing.assert_allclose(got, np.sqrt(np.log(a.astype(np.float64))) * a, rtol=2e-6)
    stats = _stats(client, reset=True).values()
    assert sum(s["blocks"] for s in stats) == 4
    for s in stats:
        if s["blocks"]:  # the kernel call is part of the block task, and runs on its thread
            assert 0 < s["kernel_s"] <= s["task_s"]
            assert 0 < s["kernel_cpu_s"] <= s["task_cpu_s"] <= s["process_cpu_s"]
    for s in _stats(client).values():  # reset: nothing since
        assert s["blocks"] == 0 and s["task_s"] == s["kernel_s"] == s["kernel_cpu_s"] == 0
        assert 0 <= s["process_cpu_s"] < 5


def test_optimized_and_traced_functions_take_dask_arrays(client):
    a = _rng(9).uniform(0, 1, (12, 5))
    x = da.from_array(a, chunks=(4, 5))

    @fusejit.optimize
    def f(t, scale):
        return (t * scale).cos()

    out = f(x, 3.0)
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(client.compute(out).result(), np.cos(a * 3.0), rtol=1e-12)
    t = fusejit.trace(lambda t: t.exp() - 1, fusejit.ones(2, 2, dtype=fusejit.float64))
    np.testing.assert_allclose(client.compute(t(x)).result(), np.expm1(a), rtol=1e-12)
    # tensors still run the plan
    assert t(fusejit.zeros(2, 2, dtype=fusejit.float64)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_a_module_s_weights_travel_in_the_archive(client):
    fusejit.manual_seed(0)
    lin = fusejit.nn.Linear(8, 3).to(fusejit.float64)
    a = _rng(13).normal(size=(50, 8))
    x = da.from_array(a, chunks=(16, 8))  # 16, 16, 16, 2
    y = fd.map_blocks(lambda t: fusejit.gelu(lin(t)), x)
    assert y.chunks == ((16, 16, 16, 2), (3,))
    w, b = lin.weight.numpy(), lin.bias.numpy()
    z = a @ w.T + b
    from scipy.special import erf  # (the reference gelu; only this test needs scipy)

    np.testing.assert_allclose(
        client.compute(y).result(), 0.5 * z * (1 + erf(z / np.sqrt(2))), rtol=1e-12, atol=1e-15
    )


def test_int_and_bool_blocks(client):
    a = np.arange(-20, 20, dtype=np.int32).reshape(8, 5)
    x = da.from_array(a, chunks=(3, 5))
    got = client.compute(fd.map_blocks(lambda t: (t * t) % 7 > 2, x)).result()
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, (a * a) % 7 > 2)


def test_the_archive_is_a_fusejit_archive_not_code():
    x = da.from_array(np.ones((4, 4), np.float32), chunks=2)
    b = fd._Blocks("t", lambda t: t + 1, (x,), (), True)
    z = zipfile.ZipFile(io.BytesIO(b.archive.data))
    names = z.namelist()
    assert MANIFEST in names and all(
        n == MANIFEST or n.startswith(("graphs/", "tensors/", "kernels/")) for n in names
    )
    assert fusejit.load(io.BytesIO(b.archive.data))(fusejit.zeros(2, 2)).tolist() == [[1.0] * 2] * 2
    assert fd.Archive(b.archive.data).digest == b.archive.digest


def test_a_row_op_along_a_chunked_axis_is_refused():
    x = da.from_array(np.ones((10, 10), np.float32), chunks=(5, 5))
    with pytest.raises(ShapeError, match=r"softmax reads along dim 1, which is split into 2"):
        fd.map_blocks(lambda t: fusejit.softmax(t, dim=1), x)
    with pytest.raises(ShapeError, match=r"sum reads along dim 0"):
        fd.map_blocks(lambda t: t - t.sum(dim=0, keepdim=True), x)
    with pytest.raises(ShapeError, match="drop_axis 1 is split into 2 chunks"):
        fd.map_blocks(lambda t: t.sum(dim=1), x, drop_axis=1)


def test_bad_inputs():
    x = da.from_array(np.ones((6, 4), np.float32), chunks=3)
    with pytest.raises(TypeError, match=r"argument 1 is .*not a dask.array.Array.*from_array"):
        fd.map_blocks(lambda a, b: a + b, x, np.ones((6, 4), np.float32))
    with pytest.raises(TypeError, match="no arrays given"):
        fd.map_blocks(lambda: fusejit.ones(1))
    with pytest.raises(TypeError, match="fn must be callable"):
        fd.map_blocks(3, x)
    with pytest.raises(ShapeError, match="different numbers of dims"):
        fd.map_blocks(lambda a, b: a + b, x, da.ones(4, chunks=2))
    with pytest.raises(ShapeError, match=r"do not broadcast \(dim 0\)"):
        fd.map_blocks(lambda a, b: a + b, x, da.ones((5, 4), chunks=2))
    with pytest.raises(TraceError):
        fd.map_blocks(lambda a: 3, x)
    with pytest.raises(ShapeError, match="rank-1 result for rank-2 blocks.*drop_axis"):
        fd.map_blocks(lambda a: a.sum(dim=1), x.rechunk((3, 4)))
    with pytest.raises(ValueError, match="op must be one of"):
        fd.reduce(None, x, op="median")
    with pytest.raises(ShapeError, match="dim 2 is out of range"):
        fd.reduce(None, x, dim=2)
    with pytest.raises(TypeError, match="fn=None reduces one array"):
        fd.reduce(None, x, x)


def test_no_dask_scheduler_needed():
    x = da.from_array(np.arange(7, dtype=np.float64), chunks=3)
    got = fd.map_blocks(lambda t: t * 2, x).compute(scheduler="sync")
    np.testing.assert_array_equal(got, np.arange(7) * 2.0)


@pytest.mark.cuda
@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="no CUDA GPU with cupy here")
def test_cupy_blocks_run_on_the_gpu():
    import cupy as cp  # (only where a GPU is)

    a = _rng(10).uniform(0.5, 1.5, (64, 33)).astype(np.float32)
    x = da.from_array(cp.asarray(a), chunks=(16, 33), asarray=False)
    sm = fd.map_blocks(lambda t: fusejit.softmax(t.log(), dim=1), x)
    got = sm.compute(scheduler="sync")
    assert isinstance(got, cp.ndarray)
    z = np.log(a.astype(np.float64))
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(cp.asnumpy(got), e / e.sum(1, keepdims=True), rtol=1e-5)
    total = fd.reduce(lambda t: t * 2, x, op="sum").compute(scheduler="sync")
    np.testing.assert_allclose(float(total), a.astype(np.float64).sum() * 2, rtol=1e-5)
