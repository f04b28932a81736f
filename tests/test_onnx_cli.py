"""``python -m fusejit export model.fjz model.onnx``: a saved archive exported by the command (run
as a subprocess), loaded by onnxruntime, whose outputs equal fusejit's (the tolerance of
tests/test_onnx_export.py); and the command's errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="fusejit export needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="the exported models are run by onnxruntime")

from test_onnx_export import assert_same  # noqa: E402

import fusejit  # noqa: E402
import fusejit.nn as nn  # noqa: E402
import fusejit.nn.functional as Fn  # noqa: E402
from fusejit.__main__ import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "fusejit", "export", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def _run(path, feeds: dict) -> list:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _readme_mlp():
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_export_archive_as_subprocess(tmp_path):
    """The README's MLP, traced and saved; exported by the command with names and an opset."""
    model = _readme_mlp()
    x = fusejit.randn(8, 64)
    fusejit.save(fusejit.trace(model, (x,)), tmp_path / "mlp.fjz")
    p = _cli(tmp_path / "mlp.fjz", tmp_path / "mlp.onnx", "--opset", "17",
             "--input-names", "pixels", "--output-names", "logits")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert f"wrote {tmp_path / 'mlp.onnx'}" in p.stdout and "opset 17" in p.stdout
    proto = onnx.load(str(tmp_path / "mlp.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    assert [i.name for i in proto.graph.input] == ["pixels"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    got = _run(tmp_path / "mlp.onnx", {"pixels": x.numpy()})[0]
    assert_same(got, model(x).numpy(), False, "mlp")
    # what fusejit.load gives for the same archive: the same numbers
    assert_same(got, fusejit.load(tmp_path / "mlp.fjz")(x).numpy(), False, "loaded mlp")


def test_export_scripted_block_with_several_outputs(tmp_path):
    """A scripted (straight line) softmax / layer norm block with two inputs and two outputs,
    exported with the default names and opset."""

    @fusejit.script
    def block(x, w):
        h = Fn.layer_norm(x, (16,), w)
        return Fn.softmax(h, -1), (h * w).sum(-1)

    rng = np.random.default_rng(1)
    x = fusejit.tensor(rng.standard_normal((3, 5, 16)).astype(np.float32))
    w = fusejit.tensor(rng.standard_normal(16).astype(np.float32))
    want = [t.numpy() for t in block(x, w)]
    fusejit.save(block, tmp_path / "block.fjz")
    p = _cli(tmp_path / "block.fjz", tmp_path / "block.onnx")
    assert p.returncode == 0, p.stderr
    proto = onnx.load(str(tmp_path / "block.onnx"))
    names = [i.name for i in proto.graph.input]
    assert len(names) == 2 and [o.name for o in proto.graph.output] == ["output_0", "output_1"]
    got = _run(tmp_path / "block.onnx", dict(zip(names, (x.numpy(), w.numpy()))))
    for k, (g, w_) in enumerate(zip(got, want)):
        assert_same(g, w_, False, f"block output {k}")


def _main(capsys, *args) -> tuple[int, str]:
    rc = main(["export", *map(str, args)])
    return rc, capsys.readouterr().err


def test_missing_file_and_not_an_archive(tmp_path, capsys):
    rc, err = _main(capsys, tmp_path / "nope.fjz", tmp_path / "m.onnx")
    assert rc == 2 and f"{tmp_path / 'nope.fjz'}: no such file" in err
    rc, err = _main(capsys, tmp_path, tmp_path / "m.onnx")
    assert rc == 2 and "is a folder, not an archive" in err
    (tmp_path / "text.fjz").write_text("not a zip file")
    rc, err = _main(capsys, tmp_path / "text.fjz", tmp_path / "m.onnx")
    assert rc == 1 and "cannot read the archive" in err and "not a fusejit archive" in err
    fusejit.save(fusejit.trace(lambda x: x + 1, (fusejit.ones(2),)), tmp_path / "f.fjz")
    rc, err = _main(capsys, tmp_path / "f.fjz", tmp_path / "no" / "m.onnx")
    assert rc == 2 and "does not exist" in err
    assert not (tmp_path / "m.onnx").exists()


def test_op_without_rule_and_bad_opset(tmp_path, capsys):
    x = fusejit.randn(3, 3)
    fusejit.save(fusejit.trace(lambda x: fusejit.linalg.svdvals(x) + 1, (x,)), tmp_path / "c.fjz")
    rc, err = _main(capsys, tmp_path / "c.fjz", tmp_path / "c.onnx")
    assert rc == 1 and "'linalg_svdvals'" in err and "cannot be exported" in err
    assert not (tmp_path / "c.onnx").exists()
    fusejit.save(fusejit.trace(lambda x: x * 2, (x,)), tmp_path / "m.fjz")
    rc, err = _main(capsys, tmp_path / "m.fjz", tmp_path / "m.onnx", "--opset", "12")
    assert rc == 1 and "opset 12" in err
