"""fusejit.onnx.load: ONNX models run through fusejit's JIT.

Round trips (fusejit -> export -> load) must give fusejit's own results (within a few ulps:
the imported graph is fused differently); models written with ``onnx.helper`` are compared with
onnxruntime; unsupported ops are listed in one error; the traced result saves as an archive
that runs without onnx.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="fusejit.onnx import tests need the onnx package")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402

import fusejit  # noqa: E402
import fusejit.nn as nn  # noqa: E402
import fusejit.nn.functional as Fn  # noqa: E402
import fusejit.onnx as fonnx  # noqa: E402
from fusejit.onnx.importer import ImportError_  # noqa: E402

RNG = np.random.default_rng(0)


def close(got, want, ulps: float = 16.0, scale: float = 1.0) -> None:
    """``got`` equals ``want`` within ``ulps`` ulps of max(|want|, scale), same dtype/shape."""
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    want = want.numpy() if hasattr(want, "numpy") else np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return
    eps = float(np.finfo(want.dtype).eps)
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = ulps * eps * np.maximum(np.abs(want.astype(np.float64)), scale)
    assert (err <= bound).all(), float((err / bound).max())


def roundtrip(fn, inputs, tmp_path, **kw):
    traced = fusejit.trace(fn, tuple(inputs))
    path = tmp_path / "m.onnx"
    fonnx.export(traced, path, **kw)
    m = fonnx.load(path)
    got = m(*inputs)
    want = traced(*inputs)
    return m, got, want


def _mlp():
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_mlp_roundtrip_and_archive(tmp_path):
    model = _mlp()
    x = fusejit.randn(8, 64)
    path = tmp_path / "mlp.onnx"
    fonnx.export(model, path, x, input_names=["pixels"])
    m = fonnx.load(str(path))
    want = model(x)
    close(m(x), want)
    close(m(pixels=x.numpy()), want)  # by name, from numpy
    assert m.graph is not None and "fused" in str(m)
    # saved as a fusejit archive, which runs in a process where onnx cannot be imported
    m.save(tmp_path / "mlp.fjz")
    np.save(tmp_path / "x.npy", x.numpy())
    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "import numpy as np, fusejit\n"
        f"f = fusejit.load({str(tmp_path / 'mlp.fjz')!r})\n"
        f"y = f(fusejit.tensor(np.load({str(tmp_path / 'x.npy')!r})))\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, y.numpy())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    close(np.load(tmp_path / "y.npy"), want)


def _rmsnorm(x, w, eps=1e-6):
    return x * fusejit.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


@pytest.mark.parametrize("d", [fusejit.float32, fusejit.float64])
def test_norm_softmax_blocks(d, tmp_path):
    def block(x, w, b):
        h = Fn.layer_norm(x, (16,), w, b)
        return Fn.softmax(h, -1), Fn.log_softmax(_rmsnorm(x, w), dim=-1), Fn.softmax(x, 0)

    x = fusejit.tensor(RNG.standard_normal((2, 6, 16)).astype(d.np))
    w = fusejit.tensor(RNG.standard_normal(16).astype(d.np))
    b = fusejit.tensor(RNG.standard_normal(16).astype(d.np))
    _, got, want = roundtrip(block, (x, w, b), tmp_path)
    for g, w_ in zip(got, want):
        close(g, w_)


def test_rms_norm_and_cross_entropy_blocks(tmp_path):
    def block(x, w, target):
        r = Fn.rms_norm(x, (10,), w, 1e-6)
        return r, Fn.cross_entropy(x, target), Fn.gelu(x)

    x = fusejit.tensor(RNG.standard_normal((5, 10)).astype(np.float32))
    w = fusejit.tensor(RNG.standard_normal(10).astype(np.float32))
    t = fusejit.tensor(RNG.integers(0, 10, 5))
    m, got, want = roundtrip(block, (x, w, t), tmp_path)
    for g, w_ in zip(got, want):
        close(g, w_)
    # GELU exported in its erf form comes back as fusejit's one gelu primitive
    assert " gelu(" in str(m.graph) and " erf(" not in str(m.graph)


def test_nanogpt_roundtrip(tmp_path):
    from fusejit.bench.models import NanoGPT

    fusejit.manual_seed(0)
    model = NanoGPT(vocab=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
    for p in model.parameters():
        p.requires_grad_(False)
    idx = fusejit.tensor(RNG.integers(0, 64, (2, 8)))
    path = tmp_path / "gpt.onnx"
    fonnx.export(model, path, idx)
    m = fonnx.load(path)
    close(m(idx), model(idx), ulps=64)


def _model(nodes, inputs, outputs, inits=(), opset=21):
    g = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def _ort(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_hand_built_model_against_onnxruntime():
    """A small CNN written with onnx.helper: Conv, BatchNormalization, Relu, MaxPool, Gemm,
    Softmax, ReduceMean, integer Div, run by fusejit and by onnxruntime."""
    w = onnx.numpy_helper.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    cb = onnx.numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32), "cb")
    bn = [
        onnx.numpy_helper.from_array(v.astype(np.float32), n)
        for n, v in [
            ("scale", RNG.uniform(0.5, 2, 4)),
            ("bias", RNG.standard_normal(4)),
            ("mean", RNG.standard_normal(4)),
            ("var", RNG.uniform(0.5, 2, 4)),
        ]
    ]
    fc = onnx.numpy_helper.from_array(RNG.standard_normal((5, 64)).astype(np.float32), "fc")
    shape = onnx.numpy_helper.from_array(np.array([2, -1], np.int64), "shape")
    nodes = [
        oh.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
        oh.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"]),
        oh.make_node("Relu", ["b"], ["r"]),
        oh.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        oh.make_node("Reshape", ["p", "shape"], ["f"]),
        oh.make_node("Gemm", ["f", "fc"], ["g"], transB=1, alpha=0.5),
        oh.make_node("Softmax", ["g"], ["y"], axis=-1),
        oh.make_node("ReduceMean", ["r"], ["m"], keepdims=0),
        oh.make_node("Div", ["i", "j"], ["q"]),
        oh.make_node("Mod", ["i", "j"], ["md"]),
    ]
    f32 = TP.FLOAT
    model = _model(
        nodes,
        [
            oh.make_tensor_value_info("x", f32, [2, 3, 8, 8]),
            oh.make_tensor_value_info("i", TP.INT32, [6]),
            oh.make_tensor_value_info("j", TP.INT32, [6]),
        ],
        [
            oh.make_tensor_value_info("y", f32, [2, 5]),
            oh.make_tensor_value_info("m", f32, []),
            oh.make_tensor_value_info("q", TP.INT32, [6]),
            oh.make_tensor_value_info("md", TP.INT32, [6]),
        ],
        [w, cb, *bn, fc, shape],
    )
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    i = np.array([7, -7, 7, -7, 0, 5], np.int32)
    j = np.array([2, 2, -2, -2, 3, 5], np.int32)
    want = _ort(model, {"x": x, "i": i, "j": j})
    got = fonnx.load(model)(x, i, j)
    for g, w_ in zip(got, want):
        close(g, w_, ulps=64)
    # integer Div truncates toward zero and Mod (fmod=0) takes the divisor's sign, as ONNX
    assert got[2].tolist() == [3, -3, -3, 3, 0, 1]
    assert got[3].tolist() == [1, 1, -1, -1, 0, 0]


def test_unsupported_ops_in_one_error():
    nodes = [
        oh.make_node("Relu", ["x"], ["a"]),
        oh.make_node("LSTM", ["a", "w", "r"], ["b"], hidden_size=2),
        oh.make_node("StringNormalizer", ["s"], ["t"]),
        oh.make_node("LSTM", ["a", "w", "r"], ["c"], hidden_size=2),
    ]
    g = oh.make_graph(
        nodes,
        "g",
        [
            oh.make_tensor_value_info("x", TP.FLOAT, [1, 1, 2]),
            oh.make_tensor_value_info("w", TP.FLOAT, [1, 8, 2]),
            oh.make_tensor_value_info("r", TP.FLOAT, [1, 8, 2]),
            oh.make_tensor_value_info("s", TP.STRING, [2]),
        ],
        [oh.make_tensor_value_info("c", TP.FLOAT, ["a", "b", "c", "d"])],
    )
    with pytest.raises(ImportError_, match=r"LSTM \(2 nodes\), StringNormalizer \(1 node\)"):
        fonnx.load(oh.make_model(g))


def test_path_bytes_and_proto_load_alike_and_bad_files_are_named(tmp_path):
    g = oh.make_graph([oh.make_node("Relu", ["x"], ["y"])], "g",
                      [oh.make_tensor_value_info("x", TP.FLOAT, [3])],
                      [oh.make_tensor_value_info("y", TP.FLOAT, [3])])  # fmt: skip
    model = oh.make_model(g)
    path = tmp_path / "relu.onnx"
    onnx.save(model, path)
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    for given in (model, model.SerializeToString(), path, str(path)):
        np.testing.assert_array_equal(fonnx.load(given)(x).numpy(), np.maximum(x, 0))
    with pytest.raises(FileNotFoundError, match="no such file"):
        fonnx.load(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ImportError_, match="not valid"):
        fonnx.load(tmp_path / "bad.onnx")
    with pytest.raises(ImportError_, match="not valid"):
        fonnx.load(b"not a protobuf")


def test_missing_static_value_and_unknown_dtype_are_named():
    # Reshape's shape from a float computation: only known at run time
    nodes = [oh.make_node("Reshape", ["x", "s"], ["y"])]
    model = _model(
        nodes,
        [oh.make_tensor_value_info("x", TP.FLOAT, [4]),
         oh.make_tensor_value_info("s", TP.INT64, [200])],
        [oh.make_tensor_value_info("y", TP.FLOAT, ["a", "b"])],
    )  # fmt: skip
    m = fonnx.load(model)
    with pytest.raises(ImportError_, match="Reshape.*must be known when the model is loaded"):
        m(np.zeros(4, np.float32), np.ones(200, np.int64))
    model = _model(
        [oh.make_node("Relu", ["x"], ["y"])],
        [oh.make_tensor_value_info("x", TP.BFLOAT16, [4])],
        [oh.make_tensor_value_info("y", TP.BFLOAT16, [4])],
    )
    with pytest.raises(ImportError_, match="BFLOAT16 has no fusejit dtype"):
        fonnx.load(model)


def test_shape_inputs_given_at_run_time_are_traced_per_value():
    nodes = [oh.make_node("Reshape", ["x", "s"], ["y"])]
    model = _model(
        nodes,
        [oh.make_tensor_value_info("x", TP.FLOAT, [6]),
         oh.make_tensor_value_info("s", TP.INT64, [2])],
        [oh.make_tensor_value_info("y", TP.FLOAT, ["a", "b"])],
    )  # fmt: skip
    m = fonnx.load(model)
    x = np.arange(6, dtype=np.float32)
    assert m(x, np.array([2, 3])).shape == (2, 3)
    assert m(x, np.array([3, 2])).shape == (3, 2)


def test_control_flow_runs_eagerly():
    out_t = [oh.make_tensor_value_info("t", TP.FLOAT, [3])]
    out_e = [oh.make_tensor_value_info("e", TP.FLOAT, [3])]
    then = oh.make_graph([oh.make_node("Neg", ["x"], ["t"])], "then", [], out_t)
    other = oh.make_graph([oh.make_node("Abs", ["x"], ["e"])], "else", [], out_e)
    model = _model(
        [oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        [oh.make_tensor_value_info("c", TP.BOOL, []),
         oh.make_tensor_value_info("x", TP.FLOAT, [3])],
        [oh.make_tensor_value_info("y", TP.FLOAT, [3])],
    )  # fmt: skip
    m = fonnx.load(model)
    x = np.array([-1.0, 2.0, -3.0], np.float32)
    assert m(np.array(True), x).tolist() == [1.0, -2.0, 3.0]
    assert m(np.array(False), x).tolist() == [1.0, 2.0, 3.0]
    assert m.eager and m.graph is None


@pytest.mark.skipif(not fusejit.is_cuda_available(), reason="no CUDA GPU (cupy) here")
def test_load_on_cuda(tmp_path):
    model = _mlp()
    x = fusejit.randn(8, 64)
    fonnx.export(model, tmp_path / "mlp.onnx", x)
    m = fonnx.load(tmp_path / "mlp.onnx", device="cuda")
    y = m(x.to("cuda"))
    assert y.device.type == "cuda"
    close(y.cpu(), model(x), ulps=64)


def test_docstring_examples():
    import doctest

    import fusejit.onnx.backend as backend
    import fusejit.onnx.importer.loader as loader

    for mod in (loader, backend):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.attempted and not res.failed, mod.__name__


@pytest.mark.parametrize("exponent", [1.0, 2.0, 3.0, -1.0, 0.5])
def test_one_element_constants_become_literals(exponent):
    """``(x * c1 + c2) ** e`` with one-element float initializers: the fused kernel reads only
    ``x`` (the constants are literals, the constant exponent multiplies) and the result is
    onnxruntime's and float64 numpy's."""
    init = onnx.numpy_helper.from_array
    inits = [init(np.array([0.5], np.float32), "c1"), init(np.array([1.25], np.float32), "c2"),
             init(np.array(exponent, np.float32), "e")]  # fmt: skip
    nodes = [oh.make_node("Mul", ["x", "c1"], ["a"]), oh.make_node("Add", ["c2", "a"], ["b"]),
             oh.make_node("Pow", ["b", "e"], ["y"])]  # fmt: skip
    io = [oh.make_tensor_value_info(n, TP.FLOAT, [64, 32]) for n in ("x", "y")]
    model = _model(nodes, io[:1], io[1:], inits)
    x = (RNG.standard_normal((64, 32)) * 3).astype(np.float32)
    m = fonnx.load(model)
    got = m(x).numpy()
    assert m.graph.captured == [], m.graph  # no constant is read as a tensor
    want = (x.astype(np.float64) * 0.5 + 1.25) ** exponent
    np.testing.assert_allclose(got, want, rtol=4e-7 * 3, atol=0)
    np.testing.assert_allclose(got, _ort(model, {"x": x})[0], rtol=4e-7 * 3, atol=0)
